#pragma once
// The JSON object `vkssm listen --json` prints for one detection, and `vkssm serve` sends as one
// WebSocket text message per detection: one definition, so both give the same fields and values
// (time rounded to 10 ms, score to 3 decimals) for the same audio.
#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/listener.h"

namespace vkssm::cli {

// `index` is the input's position on the command line, `input` its name ('-' for standard input;
// a WebSocket session is one stream of raw audio, so serve sends 0 and "-").
inline nlohmann::ordered_json listen_event_json(const ListenerEvent& e, int index, const std::string& input) {
  return {{"stream", index},
          {"input", input},
          {"word", e.word},
          {"time", std::round(e.time * 100.0) / 100.0},
          {"score", std::round(e.score * 1000.0) / 1000.0}};
}

}  // namespace vkssm::cli

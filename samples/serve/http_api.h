#pragma once
// The HTTP endpoints of `vkssm serve` (routes, JSON in and out, error mapping). They only check
// requests and translate them to step-loop jobs (batcher.h) and Redis calls (redis_store.h).
#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "engine/vkssm.hpp"
#include "host/tokenizer.h"
#include "samples/serve/batcher.h"
#include "samples/serve/json_fields.h"
#include "samples/serve/metrics.h"
#include "samples/serve/redis_store.h"

namespace httplib {
class Server;
}

namespace vkssm::serve {

struct ApiContext {
  const ModelInfo* info = nullptr;
  std::string model_name;             // the model folder's name, as /v1/models reports it
  const Tokenizer* tokenizer = nullptr;  // nullptr: prompts must be ids, replies carry no text
  Batcher* batcher = nullptr;
  RedisStore* redis = nullptr;        // nullptr: sessions live in this process only
  Metrics* metrics = nullptr;
  std::string api_key;
  int max_tokens = 4096;
  std::atomic<bool> draining{false};  // set by Server::stop(): new work gets 503
  int ws_port = 0;                    // where the WebSocket audio endpoint listens
};

void add_routes(httplib::Server& http, ApiContext& api);

// The WebSocket audio endpoint's session side (websocket_server.cpp calls these on a worker
// thread; they wait for the step loop and Redis).
//
// The upgrade request's Authorization header against --api-key: the 401 to answer, or nothing.
std::optional<HttpError> check_api_key(const ApiContext& c, const std::string& authorization);
// Attaches a connection to session `id` (loading it from Redis when another replica created
// it). Throws HttpError: 404 unknown session, 400 a token model's session, 409 already streaming,
// 503 draining or Redis down.
void open_audio_session(ApiContext& c, const std::string& id, std::shared_ptr<AudioFeed> feed,
                        std::shared_ptr<AudioSink> sink);
// The connection is gone: the session ends, here and in Redis. Never throws.
void end_audio_session(ApiContext& c, const std::string& id);

}  // namespace vkssm::serve

#pragma once
// `vkssm listen`: the speech-command recognizer over the Listener (engine/listener.h).
#include <vector>

#include "samples/cli_args.h"

namespace vkssm::cli {

extern const std::vector<Flag> kListenFlags;
extern const char* const kListenDetails;
int cmd_listen(const Args& args);

}  // namespace vkssm::cli

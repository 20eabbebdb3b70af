#pragma once
// `vkssm serve`: the HTTP server (server.h) as a command; runs until SIGTERM or SIGINT.
#include <vector>

#include "samples/cli_args.h"

namespace vkssm::cli {

extern const std::vector<Flag> kServeFlags;
extern const char* const kServeDetails;
int cmd_serve(const Args& args);

}  // namespace vkssm::cli

#pragma once
// `vkssm quantize`: a checkpoint as a llama.cpp GGUF file with its matrices in one ggml type.
#include <vector>

#include "samples/cli_args.h"

namespace vkssm::cli {

extern const std::vector<Flag> kQuantizeFlags;
extern const char* const kQuantizeDetails;
int cmd_quantize(const Args& args);

}  // namespace vkssm::cli

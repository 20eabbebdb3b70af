#pragma once
// `vkssm tokenize` and `vkssm detokenize`: text <-> token ids with a model's tokenizer, through
// standard input and output.
#include <vector>

#include "samples/cli_args.h"

namespace vkssm::cli {

extern const std::vector<Flag> kTokenizeFlags;
extern const char* const kTokenizeDetails;
extern const char* const kDetokenizeDetails;
int cmd_tokenize(const Args& args);
int cmd_detokenize(const Args& args);

}  // namespace vkssm::cli

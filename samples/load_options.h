#pragma once
// LoadOptions from the model flags every `vkssm` command that loads a model shares (--backend,
// --device, --weights); one parser, so every command accepts and refuses the same values.
#include "engine/vkssm.hpp"
#include "samples/cli_args.h"

namespace vkssm::cli {

// One stream slot unless the command raises max_streams. Throws UsageError on a bad value.
LoadOptions load_options(const Args& args);

}  // namespace vkssm::cli

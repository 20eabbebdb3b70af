#pragma once
// LoadOptions from the model flags every `vkssm` command that loads a model shares (--backend,
// --device, --weights, --threads); one parser, so every command accepts and refuses the same values.
#include "engine/vkssm.hpp"
#include "samples/cli_args.h"

namespace vkssm::cli {

// One stream slot unless the command raises max_streams. Throws UsageError on a bad value.
LoadOptions load_options(const Args& args);

// When --backend auto chose the backend, says which and why on stderr ("vkssm: auto backend: cpu:
// the only Vulkan device, ... is a CPU implementation"): a run on the CPU should not surprise.
void report_backend_choice(const ModelInfo& info);

// The help lines of --backend and --threads, for every command's flag list.
extern const char* const kBackendHelp;
extern const char* const kThreadsHelp;

}  // namespace vkssm::cli

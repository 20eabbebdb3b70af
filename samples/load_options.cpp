#include "samples/load_options.h"

#include <iostream>

namespace vkssm::cli {

const char* const kBackendHelp =
    "auto (default: Vulkan on a GPU, else cpu), vulkan, cpu (threads + SIMD) or reference (the plain C++ reference)";
const char* const kThreadsHelp = "cpu backend: threads in all (default: $VKSSM_THREADS, else one per core)";

LoadOptions load_options(const Args& args) {
  LoadOptions opt;
  opt.max_streams = 1;  // one stream, unless the command raises it (logits with several --ids)
  std::string backend = args.get_or("--backend", "auto");
  const std::optional<BackendKind> kind = backend_from_name(backend);
  if (!kind) throw UsageError("--backend: expected auto, vulkan, reference or cpu, got '" + backend + "'");
  opt.backend = *kind;
  if (args.has("--device")) opt.device = static_cast<int>(parse_int("--device", args.get("--device"), 0, 1 << 20));
  // The bound of $VKSSM_THREADS, so both ways of asking agree.
  if (args.has("--threads")) opt.cpu_threads = static_cast<int>(parse_int("--threads", args.get("--threads"), 1, 1024));
  std::string weights = args.get_or("--weights", "auto");
  if (weights == "auto") opt.weights = WeightStorage::Auto;
  else if (weights == "f32") opt.weights = WeightStorage::F32;
  else if (weights == "f16") opt.weights = WeightStorage::F16;
  else if (weights == "q8_0") opt.weights = WeightStorage::Q8_0;
  else if (weights == "q4_0") opt.weights = WeightStorage::Q4_0;
  else if (weights == "q4_k") opt.weights = WeightStorage::Q4_K;
  else if (weights == "q5_k") opt.weights = WeightStorage::Q5_K;
  else if (weights == "q6_k") opt.weights = WeightStorage::Q6_K;
  else throw UsageError("--weights: expected auto, f32, f16, q8_0, q4_0, q4_k, q5_k or q6_k, got '" + weights + "'");
  return opt;
}

void report_backend_choice(const ModelInfo& info) {
  if (info.backend_reason != "requested") std::cerr << "vkssm: auto backend: " << info.backend_reason << "\n";
}

}  // namespace vkssm::cli

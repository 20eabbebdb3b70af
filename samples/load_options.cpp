#include "samples/load_options.h"

namespace vkssm::cli {

LoadOptions load_options(const Args& args) {
  LoadOptions opt;
  opt.max_streams = 1;  // one stream, unless the command raises it (logits with several --ids)
  std::string backend = args.get_or("--backend", "vulkan");
  if (backend == "vulkan") opt.backend = BackendKind::Vulkan;
  else if (backend == "reference") opt.backend = BackendKind::Reference;
  else if (backend == "cpu") opt.backend = BackendKind::Cpu;
  else throw UsageError("--backend: expected vulkan, reference or cpu, got '" + backend + "'");
  if (args.has("--device")) opt.device = static_cast<int>(parse_int("--device", args.get("--device"), 0, 1 << 20));
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

}  // namespace vkssm::cli

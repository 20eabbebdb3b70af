// Entry points of the public API: read a checkpoint, pick the architecture, build the backend.
#include "engine/cpu_model.h"
#include "engine/vkssm.hpp"
#include "host/checkpoint.h"
#include "host/error.h"
#include "models/mamba1/mamba1_model.h"
#include "models/mamba1/mamba1_vulkan.h"

namespace vkssm {

std::unique_ptr<Model> create_mamba1(const Mamba1Weights& weights, const LoadOptions& options) {
  if (options.backend == BackendKind::Cpu)  // host memory: "automatic" means a modest 64
    return create_mamba1_cpu(weights, options.max_streams == 0 ? 64 : options.max_streams);
  return create_mamba1_vulkan(weights, options);
}

std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& options) {
  Checkpoint ckpt = Checkpoint::open(path);
  // parse_mamba1_config names the architecture it found when it is not one vkssm runs.
  Mamba1Weights weights = load_mamba1(ckpt);
  return create_mamba1(weights, options);
}

}  // namespace vkssm

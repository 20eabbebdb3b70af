// Entry points of the public API: read a checkpoint, pick the architecture, build the backend.
#include "engine/vkssm.hpp"
#include "host/checkpoint.h"
#include "host/config_json.h"
#include "host/error.h"
#include "models/mamba1/mamba1_model.h"
#include "models/mamba1/mamba1_vulkan.h"
#include "models/mamba2/mamba2_model.h"
#include "models/s4d/s4d_model.h"

namespace vkssm {

std::unique_ptr<Model> create_mamba1(const Mamba1Weights& weights, const LoadOptions& options) {
  if (options.backend == BackendKind::Cpu) return create_mamba1_cpu(weights, options);
  return create_mamba1_vulkan(weights, options);
}

std::unique_ptr<Model> create_mamba2(const Mamba2Weights& weights, const LoadOptions& options) {
  if (options.backend == BackendKind::Cpu) return create_mamba2_cpu(weights, options);
  return create_mamba2_vulkan(weights, options);
}

std::unique_ptr<Model> create_s4d(const S4DWeights& weights, const LoadOptions& options) {
  if (options.backend == BackendKind::Cpu) return create_s4d_cpu(weights, options);
  return create_s4d_vulkan(weights, options);
}

std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& options) {
  Checkpoint ckpt = Checkpoint::open(path);
  const std::string arch = config_architecture(ckpt.config());
  if (arch == "mamba") return create_mamba1(load_mamba1(ckpt), options);
  if (arch == "mamba2") return create_mamba2(load_mamba2(ckpt), options);
  if (arch == "s4d") return create_s4d(load_s4d(ckpt), options);
  throw Error("unsupported architecture '" + arch + "' in " + ckpt.config_source() +
              " (vkssm supports: mamba, mamba2, s4d)");
}

}  // namespace vkssm

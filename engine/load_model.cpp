// Entry points of the public API: read a checkpoint, recognise its architecture in the registry
// (engine/architecture.h), let the architecture build the backend.
#include "engine/architecture.h"
#include "engine/vkssm.hpp"
#include "host/checkpoint.h"

namespace vkssm {

std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& options) {
  Checkpoint ckpt = Checkpoint::open(path);
  return architecture_of(ckpt.config(), ckpt.config_source()).load(ckpt, options);
}

std::vector<std::string> supported_architectures() {
  std::vector<std::string> names;
  for (const Architecture* a : architectures()) names.push_back(a->name);
  return names;
}

}  // namespace vkssm

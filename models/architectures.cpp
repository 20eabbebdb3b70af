// The architecture registry's list (engine/architecture.h): one line per architecture. Each
// function is defined in its folder, models/<arch>/<arch>_architecture.cpp. The order is the
// order of help texts and of the "vkssm supports: ..." list.
#include <vector>

#include "engine/architecture.h"

namespace vkssm {

const Architecture& mamba1_architecture();
const Architecture& falcon_mamba_architecture();
const Architecture& mamba2_architecture();
const Architecture& s4d_architecture();

const std::vector<const Architecture*>& registered_architectures() {
  static const std::vector<const Architecture*> all = {
      &mamba1_architecture(),
      &falcon_mamba_architecture(),
      &mamba2_architecture(),
      &s4d_architecture(),
  };
  return all;
}

}  // namespace vkssm

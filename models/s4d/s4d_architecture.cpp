// S4D in the architecture registry (engine/architecture.h). A frame model: the bench does not
// time it (`vkssm listen --bench` measures the speech-command model instead).
#include "engine/architecture.h"
#include "models/s4d/s4d_model.h"

namespace vkssm {
namespace {

const ArchitectureParts<S4DWeights> kParts{load_s4d, create_s4d_cpu, create_s4d_vulkan, s4d_model_info,
                                           s4d_state_header};

}  // namespace

const Architecture& s4d_architecture() {
  static const Architecture entry = make_architecture(
      "s4d", "S4D (diagonal state-space layers), frame model: float frames in and out", true,
      {{"s4d"}, {"S4DClassifier", "S4DModel"}, {}, false}, kParts);
  return entry;
}

}  // namespace vkssm

// Mamba-2 in the architecture registry (engine/architecture.h).
#include "engine/architecture.h"
#include "models/mamba2/mamba2_model.h"

namespace vkssm {
namespace {

const ArchitectureParts<Mamba2Weights> kParts{load_mamba2, create_mamba2_cpu, create_mamba2_vulkan,
                                              mamba2_model_info, mamba2_state_header};

// The mamba2-130m layout (N 128, head_dim 64, 1 group) at the bench's size.
std::unique_ptr<Model> random_model(const BenchShape& shape, const LoadOptions& options) {
  Mamba2Config c = bench_sized<Mamba2Config>(shape);
  c.d_state = 128;
  c.head_dim = 64;
  return kParts.create(random_mamba2(c, 42), options);
}

}  // namespace

const Architecture& mamba2_architecture() {
  static const Architecture entry = make_architecture(
      "mamba2", "Mamba-2 (state-spaces/mamba; HF Mamba2ForCausalLM), token model", false,
      {{"mamba2"}, {"Mamba2ForCausalLM", "Mamba2Model"}, {"Mamba2"}, false}, kParts, random_model,
      "the mamba2-130m layout: N 128, head_dim 64, 1 group");
  return entry;
}

}  // namespace vkssm

// Mamba-1 and Falcon-Mamba in the architecture registry (engine/architecture.h). Both read the
// same tensors and run on the same backends; Mamba1Config::dt_b_c_rms tells them apart.
#include "engine/architecture.h"
#include "models/mamba1/mamba1_model.h"

namespace vkssm {
namespace {

const ArchitectureParts<Mamba1Weights> kParts{load_mamba1, create_mamba1_cpu, create_mamba1_vulkan,
                                              mamba1_model_info, mamba1_state_header};

// The mamba-130m layout (E = 2D, dt_rank = ceil(D/16), N 16) at the bench's size.
Mamba1Config bench_config(const BenchShape& shape) {
  Mamba1Config c = bench_sized<Mamba1Config>(shape);
  c.d_inner = 2 * shape.d_model;
  c.dt_rank = (shape.d_model + 15) / 16;
  return c;
}

std::unique_ptr<Model> random_mamba(const BenchShape& shape, const LoadOptions& options) {
  return kParts.create(random_mamba1(bench_config(shape), 42), options);
}

std::unique_ptr<Model> random_falcon_mamba(const BenchShape& shape, const LoadOptions& options) {
  Mamba1Config c = bench_config(shape);
  c.dt_b_c_rms = true;
  return kParts.create(random_mamba1(c, 42), options);
}

}  // namespace

const Architecture& mamba1_architecture() {
  static const Architecture entry = make_architecture(
      "mamba", "Mamba-1 (state-spaces/mamba; HF MambaForCausalLM), token model", false,
      {{"mamba"}, {"MambaForCausalLM", "MambaModel"}, {"Mamba1"}, true}, kParts, random_mamba,
      "the mamba-130m layout");
  return entry;
}

const Architecture& falcon_mamba_architecture() {
  static const Architecture entry = make_architecture(
      "falcon_mamba", "Falcon-Mamba (HF FalconMambaForCausalLM): Mamba-1 with RMS-normalised dt, B, C", false,
      {{"falcon_mamba"}, {"FalconMambaForCausalLM", "FalconMambaModel"}, {}, false}, kParts,
      random_falcon_mamba, "the mamba-130m layout");
  return entry;
}

}  // namespace vkssm

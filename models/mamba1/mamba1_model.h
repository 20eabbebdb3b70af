#pragma once
// Mamba-1 (state-spaces/mamba `Mamba`, HF `MambaForCausalLM`): configuration and weights as the
// rest of vkssm sees them, whatever checkpoint format they came from.
//
// Falcon-Mamba (HF `FalconMambaForCausalLM`, model_type "falcon_mamba") is Mamba-1 with one more
// operation, so it is a flag here rather than a folder of its own: after x_proj, its dt, B and C
// parts are each RMS-normalised without a weight (x * rsqrt(mean(x^2) + mixer_rms_eps), in fp32)
// before dt_proj and the scan. Same tensors, same state, same step graph otherwise; a folder of
// its own would repeat all of Mamba-1's loader and both backends for that one line.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/backend_choice.h"
#include "engine/vkssm.hpp"
#include "host/checkpoint.h"
#include "host/dtype.h"
#include "host/state_file.h"
#include "models/common/lm_checkpoint.h"

namespace vkssm {

struct Mamba1Config {
  int64_t d_model = 0;     // D
  int64_t n_layer = 0;
  int64_t vocab_size = 0;  // V, rows of the embedding (already padded)
  int64_t d_state = 16;    // N
  int64_t d_conv = 4;      // K
  int64_t expand = 2;
  int64_t d_inner = 0;     // E = expand * D unless given
  int64_t dt_rank = 0;     // R ("auto" = ceil(D / 16))
  float norm_eps = 1e-5f;
  bool tie_embeddings = true;
  bool use_bias = false;       // in_proj / out_proj bias
  bool use_conv_bias = true;
  bool dt_b_c_rms = false;     // Falcon-Mamba: RMS-normalise dt, B and C after x_proj
  float mixer_rms_eps = 1e-6f; // its epsilon (HF `mixer_rms_eps`)
};

// "falcon_mamba" for Falcon-Mamba configs, else "mamba": the registry name the model reports.
const char* mamba1_architecture_name(const Mamba1Config& c);

// Reads either config.json form (HF MambaConfig / FalconMambaConfig or original mamba_ssm
// MambaConfig). `source` names the file in error messages. Throws vkssm::Error on missing/invalid
// keys and on an architecture that is not Mamba-1 or Falcon-Mamba (e.g. ssm_cfg.layer == "Mamba2").
Mamba1Config parse_mamba1_config(const nlohmann::json& config, const std::string& source);

struct Mamba1LayerWeights {
  std::vector<float> norm;       // [D]
  std::vector<float> in_proj;    // [2E, D] row-major (PyTorch layout)
  std::vector<float> in_proj_b;  // [2E] or empty
  std::vector<float> conv_w;     // [E, K]
  std::vector<float> conv_b;     // [E] (zeros when the checkpoint has no conv bias)
  std::vector<float> x_proj;     // [R + 2N, E]
  std::vector<float> dt_proj_w;  // [E, R]
  std::vector<float> dt_proj_b;  // [E]
  std::vector<float> A_log;      // [E, N]
  std::vector<float> D;          // [E]
  std::vector<float> out_proj;   // [D, E]
  std::vector<float> out_proj_b; // [D] or empty
};

struct Mamba1Weights : TokenModelWeights {  // embeddings, norm_f, lm_head, source
  Mamba1Config cfg;
  std::vector<Mamba1LayerWeights> layers;

  // Total number of parameters held (for the bench and sanity checks).
  int64_t parameter_count() const;
};

// Loads and shape-checks every tensor (HF names `backbone.embeddings.weight`, original names
// `backbone.embedding.weight`). Throws vkssm::Error naming the tensor and file.
Mamba1Weights load_mamba1(const Checkpoint& ckpt);

// Random weights of the given shape, deterministic in `seed`, with magnitudes like a trained model
// (so activations stay O(1) through many layers). For tests and the bench.
Mamba1Weights random_mamba1(const Mamba1Config& cfg, uint64_t seed);

// Writes `w` as an HF-format checkpoint folder (config.json + model.safetensors) in `dtype`.
void save_mamba1_hf(const Mamba1Weights& w, const std::string& dir, DType dtype = DType::F32);

// A cheap identity of the weights, stored in state blobs so a state is never restored into a
// different model: FNV-1a over the config dims, the small per-layer vectors (norms, conv, dt bias,
// A_log, D), norm_f and the first embedding row. Independent of the weight storage type.
uint64_t mamba1_fingerprint(const Mamba1Weights& w);

// The CPU reference: a plain, readable implementation of Mamba.step. The oracle of the tests.
class Mamba1CpuReference {
 public:
  struct State {
    std::vector<float> conv;  // [n_layer, E, K], newest input last
    std::vector<float> ssm;   // [n_layer, E, N]
  };
  explicit Mamba1CpuReference(const Mamba1Weights& w) : w_(w) {}
  State new_state() const;  // zeros
  // One token through the model: updates `state`, writes V logits. Throws on token >= V or < 0.
  void step(State& state, int32_t token, float* logits) const;

 private:
  const Mamba1Weights& w_;
};

// What ModelInfo and a state blob header say about this model (both backends use these).
ModelInfo mamba1_model_info(const Mamba1Weights& w);
StateHeader mamba1_state_header(const Mamba1Weights& w);

// The `reference` and `cpu` backends (the reference or the fast stepper behind the Model
// interface; both keep their own copy of the weights).
std::unique_ptr<Model> create_mamba1_cpu(const Mamba1Weights& weights, const LoadOptions& options);
class CpuStepper;
// The fast cpu stepper (mamba1_cpu_fast.cpp; built with VKSSM_CPU_FAST): fp16 matrices under
// WeightStorage::F16, fp32 otherwise.
std::unique_ptr<CpuStepper> make_mamba1_cpu_fast(const Mamba1Weights& weights, const LoadOptions& options);
// The Vulkan backend (mamba1_vulkan.cpp).
std::unique_ptr<Model> create_mamba1_vulkan(const Mamba1Weights& weights, const LoadOptions& options);
// Weights already in memory on the backend `options` asks for, Auto resolved (tests, bench).
inline std::unique_ptr<Model> create_mamba1(const Mamba1Weights& weights, const LoadOptions& options = {}) {
  return create_on_backend(weights, options, create_mamba1_cpu, create_mamba1_vulkan);
}

}  // namespace vkssm

#pragma once
// Mamba-2 (state-spaces/mamba `Mamba2`, HF `Mamba2ForCausalLM`): configuration and weights as the
// rest of vkssm sees them, the CPU reference step and the `cpu` backend. The weights are plain
// fp32 vectors in PyTorch layout, so a GPU backend uploads them as they are.
//
// One layer, for one token (H heads of P channels, E = H·P, G groups of N-wide B/C):
//   zxbcdt = in_proj · RMSNorm(residual)          z [E] | xBC [E + 2GN] | dt [H]
//   xBC    = silu(causal conv over the last K inputs + bias)         x [E] | B [G,N] | C [G,N]
//   dt     = clamp(softplus(dt + dt_bias), time_step_limit)           one per head
//   s[h,p,n] = s·exp(dt[h]·A[h]) + dt[h]·x[h,p]·B[g(h),n]           A = -exp(A_log), g = h / (H/G)
//   y[h,p] = Σn s[h,p,n]·C[g(h),n] + D[h]·x[h,p]
//   out    = out_proj · (RMSNorm per group of E/G channels (y · silu(z)) · norm.weight)
#include <cstdint>
#include <limits>
#include <memory>
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

struct Mamba2Config {
  int64_t d_model = 0;     // D
  int64_t n_layer = 0;
  int64_t vocab_size = 0;  // V (already padded)
  int64_t d_state = 128;   // N
  int64_t d_conv = 4;      // K
  double expand = 2;       // HF allows a fractional one (1.5): E = int(expand * D), as HF computes it
  int64_t d_inner = 0;     // E = n_heads * head_dim (derived from expand when 0)
  int64_t n_heads = 0;     // H
  int64_t head_dim = 64;   // P
  int64_t n_groups = 1;    // G
  float norm_eps = 1e-5f;  // the block RMSNorms, norm_f and the gated norm alike
  float dt_min = 0.0f;     // time_step_limit (dt_limit in ssm_cfg): dt is clamped to [min, max]
  float dt_max = std::numeric_limits<float>::infinity();
  bool tie_embeddings = true;
  bool use_bias = false;       // in_proj / out_proj bias
  bool use_conv_bias = true;

  int64_t conv_dim() const { return d_inner + 2 * n_groups * d_state; }
  int64_t in_proj_rows() const { return 2 * d_inner + 2 * n_groups * d_state + n_heads; }
};

// Reads either config.json form (HF Mamba2Config, or original mamba_ssm with ssm_cfg.layer ==
// "Mamba2"), with each writer's defaults. `source` names the file in errors. Refuses, naming the
// key, what vkssm does not run: LayerNorm, an MLP or attention beside the SSM, per-channel D,
// norm before gate, inconsistent head counts, out-of-range sizes.
Mamba2Config parse_mamba2_config(const nlohmann::json& config, const std::string& source);

struct Mamba2LayerWeights {
  std::vector<float> norm;       // [D] pre-norm of the residual stream
  std::vector<float> in_proj;    // [2E + 2GN + H, D]
  std::vector<float> in_proj_b;  // or empty
  std::vector<float> conv_w;     // [conv_dim, K]
  std::vector<float> conv_b;     // [conv_dim] (zeros without conv bias)
  std::vector<float> dt_bias;    // [H]
  std::vector<float> A_log;      // [H]
  std::vector<float> D;          // [H]
  std::vector<float> gate_norm;  // [E] the gated RMSNorm's weight (mixer.norm.weight)
  std::vector<float> out_proj;   // [D, E]
  std::vector<float> out_proj_b; // or empty
};

struct Mamba2Weights : TokenModelWeights {  // embeddings, norm_f, lm_head, source
  Mamba2Config cfg;
  std::vector<Mamba2LayerWeights> layers;

  int64_t parameter_count() const;
};

// Loads and shape-checks every tensor (HF `backbone.embeddings.weight` or original
// `backbone.embedding.weight`); errors name the tensor and file.
Mamba2Weights load_mamba2(const Checkpoint& ckpt);
// Random weights like a trained model's magnitudes, deterministic in `seed`.
Mamba2Weights random_mamba2(const Mamba2Config& cfg, uint64_t seed);
// HF-format folder (config.json + model.safetensors) in `dtype`.
void save_mamba2_hf(const Mamba2Weights& w, const std::string& dir, DType dtype = DType::F32);
// FNV-1a over the config dims, the small per-layer vectors, norm_f and the first embedding row
// (stored in state blobs so a state is never restored into a different model).
uint64_t mamba2_fingerprint(const Mamba2Weights& w);

// State blob: shape {n_layer, conv_dim, K, H, P, N}; payload = conv states [L][conv_dim][K]
// (newest input last), then ssm states [L][H][P][N].
ModelInfo mamba2_model_info(const Mamba2Weights& w);
StateHeader mamba2_state_header(const Mamba2Weights& w);

// The CPU reference: a plain, readable Mamba2.step in double accumulation, the tests' oracle. It
// works on the state blob's flat payload layout (zeros = a fresh stream).
class Mamba2CpuReference {
 public:
  explicit Mamba2CpuReference(const Mamba2Weights& w) : w_(w) {}
  size_t state_floats() const;
  // One token: updates `state` (state_floats() floats), writes vocab_size logits. Throws on a
  // token outside [0, vocab_size).
  void step(float* state, int32_t token, float* logits) const;

 private:
  const Mamba2Weights& w_;
};

// The `reference` and `cpu` backends (the reference or the fast stepper behind the Model
// interface; both keep their own copy of the weights).
std::unique_ptr<Model> create_mamba2_cpu(const Mamba2Weights& weights, const LoadOptions& options);
class CpuStepper;
// The fast cpu stepper (mamba2_cpu_fast.cpp; built with VKSSM_CPU_FAST).
std::unique_ptr<CpuStepper> make_mamba2_cpu_fast(const Mamba2Weights& weights, const LoadOptions& options);
// The Vulkan backend (mamba2_vulkan.cpp).
std::unique_ptr<Model> create_mamba2_vulkan(const Mamba2Weights& weights, const LoadOptions& options);
// Weights already in memory on the backend `options` asks for, Auto resolved (tests, bench).
inline std::unique_ptr<Model> create_mamba2(const Mamba2Weights& weights, const LoadOptions& options = {}) {
  return create_on_backend(weights, options, create_mamba2_cpu, create_mamba2_vulkan);
}

}  // namespace vkssm

#pragma once
// S4D (state-spaces/s4 `models/s4/s4d.py` S4D layers in the `example.py` S4Model backbone), run as
// a recurrence: one input frame per step instead of the FFT convolution over a whole sequence.
//
// Per layer, H channels of M = d_state/2 complex diagonal modes each (u = the layer input):
//   A = -exp(log_A_real) + i·A_imag,  dt = exp(log_dt),  Cc = C[..,0] + i·C[..,1]
//   zero-order hold, once at load:  dA = exp(dt·A),  dB = (exp(dt·A) - 1) / A
//   s = dA·s + dB·u;   y = gelu(2·Re(Σ_m Cc·s) + D·u);   a = W·y + b [2H];   out = a[:H]·σ(a[H:])
//   post-norm: x = LayerNorm(out + x);   pre-norm: u = LayerNorm(x), x = out + x
// Model: x = encoder(frame); the layers; output = decoder(x). Upstream's classifier decodes the
// mean of x over time; the decoder is affine, so that pooled output is the running mean of these
// per-step outputs.
#include <complex>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/backend_choice.h"
#include "engine/vkssm.hpp"
#include "host/checkpoint.h"
#include "host/dtype.h"
#include "host/state_file.h"

namespace vkssm {

struct S4DConfig {
  int64_t d_input = 0;   // floats per input frame
  int64_t d_model = 0;   // H
  int64_t d_state = 64;  // N (even): N/2 complex modes per channel
  int64_t n_layers = 0;
  int64_t d_output = 0;
  bool prenorm = false;
  float layer_norm_eps = 1e-5f;

  int64_t modes() const { return d_state / 2; }  // M
};

// Reads the project's S4D config.json (model_type "s4d", architectures ["S4DClassifier"]).
// `source` names the file in errors. Throws vkssm::Error on a missing or malformed key, an odd
// d_state, a dimension out of range, or an activation other than "gelu".
S4DConfig parse_s4d_config(const nlohmann::json& config, const std::string& source);

struct S4DLayerWeights {
  // As stored in the checkpoint (s4_layers.{i}.*, norms.{i}.*).
  std::vector<float> log_dt;      // [H]
  std::vector<float> C;           // [H, M, 2] (re, im)
  std::vector<float> log_A_real;  // [H, M]
  std::vector<float> A_imag;      // [H, M]
  std::vector<float> D;           // [H]
  std::vector<float> out_w;       // [2H, H] (the Conv1d's [2H, H, 1]: same bytes)
  std::vector<float> out_b;       // [2H]
  std::vector<float> norm_w;      // [H]
  std::vector<float> norm_b;      // [H]
  // What a step reads instead of log_dt / log_A_real / A_imag: the zero-order-hold discretisation,
  // computed in double by s4d_discretise() and rounded, so no backend evaluates exp() per step.
  std::vector<float> dA;          // [H, M, 2] exp(dt·A) as (re, im)
  std::vector<float> dB;          // [H, M, 2] (exp(dt·A) - 1) / A as (re, im)
};

struct S4DWeights {
  S4DConfig cfg;
  std::vector<float> encoder_w;  // [H, d_input]
  std::vector<float> encoder_b;  // [H]
  std::vector<S4DLayerWeights> layers;
  std::vector<float> decoder_w;  // [d_output, H]
  std::vector<float> decoder_b;  // [d_output]
  DType source_dtype = DType::F32;
  std::string source;  // checkpoint path, for messages

  // Parameters held (the checkpoint's tensors, not the derived dA / dB).
  int64_t parameter_count() const;
  // Floats one step reads: encoder, per layer dA, dB, C, D, output linear, norm, then the decoder.
  int64_t step_weight_floats() const;
};

// The zero-order hold of one layer in double: dA[h·M + m] = exp(dt·A), dB = (exp(dt·A) - 1)/A (its
// limit dt where dt·A is ~0). `what` names the layer in errors. Throws vkssm::Error when a result
// is not finite (absurd log_dt / log_A_real), naming the tensor, channel and mode.
void s4d_zoh(const S4DLayerWeights& L, int64_t H, int64_t M, const std::string& what,
             std::vector<std::complex<double>>& dA, std::vector<std::complex<double>>& dB);

// Fills every layer's dA / dB from its checkpoint parameters (load_s4d and random_s4d call it;
// call it again after editing log_dt, log_A_real or A_imag by hand). Throws like s4d_zoh.
void s4d_discretise(S4DWeights& w);

// Loads and shape-checks every tensor (names in the file comment of s4d_weights.cpp), then
// discretises. Throws vkssm::Error naming the tensor and file.
S4DWeights load_s4d(const Checkpoint& ckpt);

// Random weights initialised like upstream S4D (log_dt uniform in [log 1e-3, log 1e-1],
// log_A_real = log 0.5, A_imag = π·m, C complex normal, D normal, PyTorch Linear/Conv1d bounds),
// except that the LayerNorms get weights near 1 and small biases so tests exercise them.
// Deterministic in `seed`.
S4DWeights random_s4d(const S4DConfig& cfg, uint64_t seed);

// Writes `w` as a checkpoint folder (config.json + model.safetensors) in `dtype`.
void save_s4d(const S4DWeights& w, const std::string& dir, DType dtype = DType::F32);

// Identity of the weights for state blobs: FNV-1a over the config and the small vectors (log_dt,
// C, log_A_real, A_imag, D, norms, encoder / decoder biases).
uint64_t s4d_fingerprint(const S4DWeights& w);

// The CPU reference, the tests' oracle: the recurrence above with double accumulation, on a
// state of n_layers·H·M complex values stored as (re, im) float pairs — the blob payload layout
// [L][H][M][2]. The discretisation is its own, in double, from the checkpoint parameters.
class S4DCpuReference {
 public:
  // Throws vkssm::Error when a weight vector's size disagrees with the config, or like s4d_zoh.
  explicit S4DCpuReference(const S4DWeights& w);
  size_t state_floats() const;
  // One frame of d_input floats through the model: updates `state`, writes d_output floats.
  void step(float* state, const float* frame, float* out) const;

 private:
  const S4DWeights& w_;
  std::vector<std::vector<std::complex<double>>> dA_, dB_;  // per layer [H·M]
  mutable std::vector<double> x_, z_, y_, a_;               // scratch
};

// What ModelInfo and a state blob header say about an S4D model (every backend uses these).
// State blob shape {n_layers, H, M, 2}; payload the complex states [L][H][M] as (re, im) pairs.
ModelInfo s4d_model_info(const S4DWeights& w);
StateHeader s4d_state_header(const S4DWeights& w);

// The `reference` and `cpu` backends (the reference or the fast stepper behind the Model
// interface; both keep their own copy of the weights).
std::unique_ptr<Model> create_s4d_cpu(const S4DWeights& weights, const LoadOptions& options);
class CpuStepper;
// The fast cpu stepper (s4d_cpu_fast.cpp; built with VKSSM_CPU_FAST): fp16 matrices under
// WeightStorage::F16, fp32 otherwise.
std::unique_ptr<CpuStepper> make_s4d_cpu_fast(const S4DWeights& weights, const LoadOptions& options);
// The Vulkan backend (s4d_vulkan.cpp).
std::unique_ptr<Model> create_s4d_vulkan(const S4DWeights& weights, const LoadOptions& options);
// Weights already in memory on the backend `options` asks for, Auto resolved (tests, bench).
inline std::unique_ptr<Model> create_s4d(const S4DWeights& weights, const LoadOptions& options = {}) {
  return create_on_backend(weights, options, create_s4d_cpu, create_s4d_vulkan);
}

}  // namespace vkssm

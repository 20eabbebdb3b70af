#pragma once
// What every token model's fast cpu stepper does alike (engine/cpu/): a step as passes of up to
// kMaxRows rows, a row being one stream of a batched step or one token of a prompt (all its rows
// then point at the one state, and the mixers walk rows in order). The embedding gather, the
// residual stream, the RMSNorms, the final norm and the head live here; an architecture adds its
// layers (mixer()), which read normed rows and add their output into the residual rows.
#include <string>
#include <vector>

#include "engine/cpu/matmul.h"
#include "engine/cpu/thread_pool.h"
#include "engine/cpu_model.h"
#include "models/common/lm_checkpoint.h"

namespace vkssm {

class TokenModelCpuFast : public CpuStepper {
 public:
  // Rows per pass: bounds the activation scratch; bigger batches and longer prompts take passes.
  static constexpr size_t kMaxRows = 64;

  TokenModelCpuFast(const TokenModelWeights& w, size_t d_model, size_t vocab, float norm_eps,
                    const LoadOptions& options);

  std::string device_name() const override;
  uint64_t weight_bytes(uint64_t f32_bytes) const override { return store_.weight_bytes(f32_bytes); }
  std::string weight_type() const override { return store_.weight_type(); }
  void step_token(float* state, int32_t token, float* out) const override;
  void step_tokens(float* const* states, const int32_t* tokens, int batch, float* out,
                   size_t out_stride) const override;
  void prefill(float* state, const int32_t* tokens, int count, float* last) const override;

  // fp16 under WeightStorage::F16, else int8 blocks where the values are exactly such (block
  // storages arrive as their dequantized values), else fp32 (CpuMatrixStore). Every weight matrix
  // is made here, so weight_bytes() counts how it is stored.
  CpuMatrix matrix(const std::vector<float>& m, size_t rows, size_t cols) { return store_.make(m, rows, cols); }

 protected:
  // Layer l for rows [0, n): norms residual() into normed() with its own weight (norm_rows),
  // runs its mixer and adds the output into residual().
  virtual void mixer(size_t l, float* const* states, size_t n) const = 0;
  virtual size_t layer_count() const = 0;

  // out[r] = RMSNorm(x[r]) * weight (weight null: none) for r < n, rows of d_model, on the pool.
  void norm_rows(const float* x, size_t n, const float* weight, float* out) const;

  float* residual() const { return resid_.data(); }
  float* normed() const { return normed_.data(); }
  size_t d_model() const { return D_; }
  ThreadPool& pool() const { return pool_; }
  const Matmul& matmul() const { return matmul_; }

 private:
  void run(float* const* states, const int32_t* tokens, size_t n, float* out, size_t out_stride,
           size_t head_from) const;

  size_t D_, V_;
  float eps_;
  CpuMatrixStore store_;
  mutable ThreadPool pool_;
  Matmul matmul_;
  std::vector<float> norm_f_;
  CpuMatrix head_, embed_;  // embed_ empty when tied: the head's rows are the embeddings
  mutable std::vector<float> resid_, normed_;
  mutable std::vector<float*> row_states_;  // a prompt's rows all point at its one state
};

// x / sqrt(mean(x²) + eps) (* weight when given), one row of n values.
void rms_norm_row(const float* x, size_t n, const float* weight, float eps, float* out);

}  // namespace vkssm

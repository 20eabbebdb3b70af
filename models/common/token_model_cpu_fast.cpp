#include "models/common/token_model_cpu_fast.h"

#include <algorithm>
#include <cmath>

namespace vkssm {

void rms_norm_row(const float* x, size_t n, const float* weight, float eps, float* out) {
  float sum_sq = 0.0f;
  for (size_t i = 0; i < n; ++i) sum_sq += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(sum_sq / float(n) + eps);
  for (size_t i = 0; i < n; ++i) out[i] = x[i] * inv * (weight ? weight[i] : 1.0f);
}

TokenModelCpuFast::TokenModelCpuFast(const TokenModelWeights& w, size_t d_model, size_t vocab, float norm_eps,
                                     const LoadOptions& options)
    : D_(d_model), V_(vocab), eps_(norm_eps), store_(options.weights == WeightStorage::F16),
      pool_(options.cpu_threads), matmul_(pool_), norm_f_(w.norm_f),
      head_(matrix(w.head(), vocab, d_model)),
      resid_(kMaxRows * d_model), normed_(kMaxRows * d_model), row_states_(kMaxRows) {
  if (!w.lm_head.empty()) embed_ = matrix(w.embeddings, vocab, d_model);
}

std::string TokenModelCpuFast::device_name() const {
  return cpu_backend_device_name(pool_);
}

void TokenModelCpuFast::step_token(float* state, int32_t token, float* out) const {
  run(&state, &token, 1, out, V_, 0);
}

void TokenModelCpuFast::step_tokens(float* const* states, const int32_t* tokens, int batch, float* out,
                                    size_t out_stride) const {
  for (size_t i = 0; i < size_t(batch); i += kMaxRows) {
    const size_t n = std::min(kMaxRows, size_t(batch) - i);
    run(states + i, tokens + i, n, out + i * out_stride, out_stride, out_stride == 0 ? n : 0);
  }
}

void TokenModelCpuFast::prefill(float* state, const int32_t* tokens, int count, float* last) const {
  std::fill(row_states_.begin(), row_states_.end(), state);
  for (size_t i = 0; i < size_t(count); i += kMaxRows) {
    const size_t n = std::min(kMaxRows, size_t(count) - i);
    const bool final_pass = i + n == size_t(count);
    run(row_states_.data(), tokens + i, n, last, V_, final_pass ? n - 1 : n);
  }
}

void TokenModelCpuFast::norm_rows(const float* x, size_t n, const float* weight, float* out) const {
  pool_.parallel_for(n, ThreadPool::grain_for(D_, 1), [&](size_t r0, size_t r1, int) {
    for (size_t r = r0; r < r1; ++r) rms_norm_row(x + r * D_, D_, weight, eps_, out + r * D_);
  });
}

// Rows [0, n) through the model; rows [head_from, n) also through the head, row r's logits at
// out + (r - head_from) * out_stride. The residual stream starts as the embeddings (upstream's
// residual = None plus the first hidden state) and takes each mixer's output directly.
void TokenModelCpuFast::run(float* const* states, const int32_t* tokens, size_t n, float* out, size_t out_stride,
                            size_t head_from) const {
  const CpuMatrix& embed = embed_.rows() ? embed_ : head_;
  for (size_t r = 0; r < n; ++r) embed.copy_row(size_t(tokens[r]), resid_.data() + r * D_);
  for (size_t l = 0; l < layer_count(); ++l) mixer(l, states, n);
  if (head_from >= n) return;
  const size_t rows = n - head_from;
  norm_rows(resid_.data() + head_from * D_, rows, norm_f_.data(), normed_.data());
  matmul_(head_, {normed_.data(), D_, rows, out, out_stride, nullptr, false});
}

}  // namespace vkssm

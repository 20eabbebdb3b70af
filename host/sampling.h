#pragma once
// Choosing the next token from logits: greedy, temperature, top-k, with a seeded generator so
// a run is reproducible.
#include <cstdint>

#include "vkssm_export.h"

namespace vkssm {

struct SamplingParams {
  float temperature = 0.0f;  // 0 = greedy (argmax)
  int top_k = 0;             // 0 = all tokens
  uint64_t seed = 0;
};

// A small, portable PRNG (splitmix64/xoshiro-style) so results match across platforms.
class VKSSM_API Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed ^ 0x9E3779B97F4A7C15ull) {}
  // Jumps over n draws: Rng(seed).skip(n).next_u64() is the (n+1)-th draw of Rng(seed).
  Rng& skip(uint64_t n) {
    s_ += n * 0x9E3779B97F4A7C15ull;
    return *this;
  }
  uint64_t next_u64();
  float next_float();  // [0, 1)
 private:
  uint64_t s_;
};

VKSSM_API int32_t argmax(const float* logits, int n);
VKSSM_API int32_t sample_token(const float* logits, int n, const SamplingParams& p, Rng& rng);

// The `index`-th token a stream samples (index 0 first): sample_token with Rng(p.seed) skipped
// `index` draws. sample_token draws once per call, so this equals drawing a stream's tokens in
// order from one Rng(p.seed), and it is what Model::step_sample computes on every backend.
VKSSM_API int32_t sample_nth(const float* logits, int n, const SamplingParams& p, uint64_t index);

}  // namespace vkssm

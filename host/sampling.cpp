// Next-token choice: greedy argmax, or a draw from softmax(logits / temperature) over the top-k
// tokens. Everything is computed in double with the maximum subtracted first, so very large or
// very small logits do not overflow; NaN logits are never chosen unless nothing else is left.
#include "host/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "host/error.h"

namespace vkssm {

// splitmix64: tiny, fast, and its output depends only on the seed, on every platform.
uint64_t Rng::next_u64() {
  s_ += 0x9E3779B97F4A7C15ull;
  uint64_t z = s_;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The top 24 bits make a float in [0, 1) with every value equally likely and 1.0 unreachable.
float Rng::next_float() { return float(next_u64() >> 40) * (1.0f / 16777216.0f); }

namespace {

void check_logits(const float* logits, int n, const char* who) {
  if (n <= 0 || logits == nullptr) {
    throw Error(std::string(who) + ": no logits to choose from (n = " + std::to_string(n) + ")");
  }
}

// NaN ranks below everything, so comparisons stay a strict weak order.
double rank_value(float x) {
  return std::isnan(x) ? -std::numeric_limits<double>::infinity() : double(x);
}

}  // namespace

int32_t argmax(const float* logits, int n) {
  check_logits(logits, n, "argmax");
  int32_t best = 0;
  for (int i = 1; i < n; ++i) {
    if (rank_value(logits[i]) > rank_value(logits[best])) best = i;  // strict: first max wins
  }
  return best;
}

int32_t sample_token(const float* logits, int n, const SamplingParams& p, Rng& rng) {
  check_logits(logits, n, "sample_token");
  if (!(p.temperature >= 0.0f) || std::isinf(p.temperature)) {
    throw Error("sampling temperature must be finite and >= 0 (got " +
                std::to_string(p.temperature) + ")");
  }
  if (p.top_k < 0) {
    throw Error("sampling top_k must be >= 0 (got " + std::to_string(p.top_k) + ")");
  }
  if (p.temperature == 0.0f || p.top_k == 1) return argmax(logits, n);

  // Candidates: all tokens, or the top_k largest (ties broken towards the lower id).
  std::vector<int32_t> cand(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) cand[size_t(i)] = i;
  if (p.top_k > 0 && p.top_k < n) {
    auto higher = [&](int32_t a, int32_t b) {
      const double va = rank_value(logits[a]), vb = rank_value(logits[b]);
      return va != vb ? va > vb : a < b;
    };
    std::partial_sort(cand.begin(), cand.begin() + p.top_k, cand.end(), higher);
    cand.resize(size_t(p.top_k));
  }

  double max_logit = -std::numeric_limits<double>::infinity();
  for (int32_t i : cand) max_logit = std::max(max_logit, rank_value(logits[i]));
  // Nothing finite to weigh (all -inf/NaN), or an +inf logit that outweighs everything.
  if (!std::isfinite(max_logit)) return argmax(logits, n);

  std::vector<double> weight(cand.size());
  double total = 0.0;
  for (size_t j = 0; j < cand.size(); ++j) {
    weight[j] = std::exp((rank_value(logits[cand[j]]) - max_logit) / double(p.temperature));
    total += weight[j];
  }
  // total >= 1 since the max candidate weighs exp(0); walk the cumulative sum to the draw.
  const double u = double(rng.next_float()) * total;
  double cumulative = 0.0;
  for (size_t j = 0; j < cand.size(); ++j) {
    cumulative += weight[j];
    if (u < cumulative) return cand[j];
  }
  // Rounding can leave u just past the last sum: take the last candidate with any weight.
  for (size_t j = cand.size(); j-- > 0;) {
    if (weight[j] > 0.0) return cand[j];
  }
  return cand[0];
}

int32_t sample_nth(const float* logits, int n, const SamplingParams& p, uint64_t index) {
  Rng rng(p.seed);
  rng.skip(index);
  return sample_token(logits, n, p, rng);
}

}  // namespace vkssm

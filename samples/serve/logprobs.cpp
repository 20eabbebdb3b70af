#include "samples/serve/logprobs.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace vkssm::serve {

namespace {

// log sum exp(logits), shifted by the maximum so large logits do not overflow.
double log_normalizer(const float* logits, int64_t vocab) {
  const float top = *std::max_element(logits, logits + vocab);
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(logits[i]) - top);
  return top + std::log(sum);
}

}  // namespace

std::vector<std::pair<int32_t, float>> top_logprobs(const float* logits, int64_t vocab, int k) {
  k = static_cast<int>(std::min<int64_t>(k, vocab));
  if (k <= 0) return {};
  std::vector<int32_t> ids(static_cast<size_t>(vocab));
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  const double norm = log_normalizer(logits, vocab);
  std::vector<std::pair<int32_t, float>> out;
  for (int i = 0; i < k; ++i) out.emplace_back(ids[size_t(i)], static_cast<float>(logits[ids[size_t(i)]] - norm));
  return out;
}

float logprob_of(const float* logits, int64_t vocab, int32_t id) {
  return static_cast<float>(logits[id] - log_normalizer(logits, vocab));
}

}  // namespace vkssm::serve

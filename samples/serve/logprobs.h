#pragma once
// Log-probabilities from a step's logits, for the API's top_logprobs / logprobs fields.
#include <cstdint>
#include <utility>
#include <vector>

namespace vkssm::serve {

// The k most likely tokens with their log-softmax values, most likely first (ties: lower id).
std::vector<std::pair<int32_t, float>> top_logprobs(const float* logits, int64_t vocab, int k);
// log softmax(logits)[id].
float logprob_of(const float* logits, int64_t vocab, int32_t id);

}  // namespace vkssm::serve

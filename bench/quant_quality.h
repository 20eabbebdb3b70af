#pragma once
// What quantized weights cost in model quality, measured through the engine itself (the logits a
// Model computes under each WeightStorage): cross-entropy of held-out text, and the KL divergence
// of each storage's next-token distribution from the f32 one. bin/vkssm_quality prints the tables;
// tests/test_quant_quality.cpp checks these functions.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/vkssm.hpp"

namespace vkssm {

// The storages the bench and the quality tables measure, in table order.
const std::vector<WeightStorage>& measured_weight_storages();

// "f32,q8_0" or "all" (measured_weight_storages()) -> storages, one run each; names as
// parse_weight_storage() takes them, whose error (naming `what`) a bad one gets.
std::vector<WeightStorage> parse_weight_storage_list(const std::string& text, const std::string& what);

// `count` windows of `length` + 1 tokens spread evenly over `tokens` (first at the start, last at
// the end). Throws vkssm::Error when the text is shorter than one window.
std::vector<std::vector<int32_t>> even_windows(const std::vector<int32_t>& tokens, int count, int length);

// Mean cross-entropy in nats per token of predicting each window's tokens 1..n from the tokens
// before it, every window a stream of its own from a zero state (all stepped together, so the
// model needs max_streams >= windows.size()).
double mean_cross_entropy(Model& model, const std::vector<std::vector<int32_t>>& windows);

// The logits [tokens.size()][V] of one stream fed `tokens` from a zero state (slot 0).
std::vector<float> sequence_logits(Model& model, const std::vector<int32_t>& tokens);

// Mean over positions of KL(softmax(p) || softmax(q)) in nats, for logits [T][V] (double sums).
double mean_kl(const std::vector<float>& p_logits, const std::vector<float>& q_logits, int64_t vocab);

}  // namespace vkssm

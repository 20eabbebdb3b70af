#include "bench/quant_quality.h"

#include <algorithm>
#include <cmath>

#include "engine/weight_storage.h"
#include "host/error.h"

namespace vkssm {
namespace {

// log-softmax of one row in double: x - max - log(sum exp(x - max)).
void log_softmax(const float* x, int64_t n, std::vector<double>& out) {
  out.resize(size_t(n));
  const double mx = *std::max_element(x, x + n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - mx);
  const double lse = mx + std::log(sum);
  for (int64_t i = 0; i < n; ++i) out[size_t(i)] = double(x[i]) - lse;
}

}  // namespace

const std::vector<WeightStorage>& measured_weight_storages() {
  static const std::vector<WeightStorage> list = {WeightStorage::F32, WeightStorage::F16, WeightStorage::Q8_0,
                                                  WeightStorage::Q4_0, WeightStorage::Q4_K};
  return list;
}

std::vector<WeightStorage> parse_weight_storage_list(const std::string& text, const std::string& what) {
  if (text == "all") return measured_weight_storages();
  std::vector<WeightStorage> out;
  for (size_t p = 0; p <= text.size();) {
    size_t q = text.find(',', p);
    if (q == std::string::npos) q = text.size();
    out.push_back(parse_weight_storage(text.substr(p, q - p), what));
    p = q + 1;
  }
  return out;
}

std::vector<std::vector<int32_t>> even_windows(const std::vector<int32_t>& tokens, int count, int length) {
  const int64_t span = int64_t(length) + 1;
  if (count < 1 || length < 1 || int64_t(tokens.size()) < span)
    throw Error("text of " + std::to_string(tokens.size()) + " tokens is shorter than one window of " +
                std::to_string(span));
  std::vector<std::vector<int32_t>> out;
  const int64_t last_start = int64_t(tokens.size()) - span;
  for (int i = 0; i < count; ++i) {
    const int64_t start = count == 1 ? 0 : last_start * i / (count - 1);
    out.emplace_back(tokens.begin() + start, tokens.begin() + start + span);
  }
  return out;
}

double mean_cross_entropy(Model& model, const std::vector<std::vector<int32_t>>& windows) {
  const int B = int(windows.size());
  const int64_t V = model.info().vocab_size;
  const size_t steps = windows.empty() ? 0 : windows[0].size() - 1;
  for (const auto& w : windows)
    if (w.size() != steps + 1) throw Error("mean_cross_entropy: windows differ in length");
  std::vector<int32_t> slots(static_cast<size_t>(B)), tokens(static_cast<size_t>(B));
  for (int b = 0; b < B; ++b) {
    slots[size_t(b)] = b;
    model.reset(b);
  }
  std::vector<float> logits(static_cast<size_t>(B) * static_cast<size_t>(V));
  std::vector<double> lp;
  double total = 0;
  for (size_t t = 0; t < steps; ++t) {
    for (int b = 0; b < B; ++b) tokens[size_t(b)] = windows[size_t(b)][t];
    model.step(tokens.data(), slots.data(), B, logits.data());
    for (int b = 0; b < B; ++b) {
      log_softmax(logits.data() + size_t(b) * size_t(V), V, lp);
      total -= lp[size_t(windows[size_t(b)][t + 1])];
    }
  }
  return total / double(steps * size_t(B));
}

std::vector<float> sequence_logits(Model& model, const std::vector<int32_t>& tokens) {
  const int64_t V = model.info().vocab_size;
  std::vector<float> out(tokens.size() * size_t(V));
  const int32_t slot = 0;
  model.reset(slot);
  for (size_t t = 0; t < tokens.size(); ++t) model.step(&tokens[t], &slot, 1, out.data() + t * size_t(V));
  return out;
}

double mean_kl(const std::vector<float>& p_logits, const std::vector<float>& q_logits, int64_t vocab) {
  if (p_logits.size() != q_logits.size() || vocab < 1 || p_logits.size() % size_t(vocab) != 0 || p_logits.empty())
    throw Error("mean_kl: logits of " + std::to_string(p_logits.size()) + " and " + std::to_string(q_logits.size()) +
                " values are not the same rows of " + std::to_string(vocab));
  const size_t T = p_logits.size() / size_t(vocab);
  std::vector<double> lp, lq;
  double total = 0;
  for (size_t t = 0; t < T; ++t) {
    log_softmax(p_logits.data() + t * size_t(vocab), vocab, lp);
    log_softmax(q_logits.data() + t * size_t(vocab), vocab, lq);
    double kl = 0;
    for (int64_t i = 0; i < vocab; ++i) kl += std::exp(lp[size_t(i)]) * (lp[size_t(i)] - lq[size_t(i)]);
    total += kl;
  }
  return total / double(T);
}

}  // namespace vkssm

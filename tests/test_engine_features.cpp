// The engine features every architecture gets, on both backends: rollback, sampling on the device,
// asynchronous submit/collect and prompt prefill. The cpu backend is the reference: on Vulkan the
// same calls must give the same tokens and (within fp32 rounding) the same logits.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/vkssm.hpp"
#include "host/sampling.h"
#include "models/mamba1/mamba1_model.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

using testing_helpers::error_of;
using testing_helpers::max_rel_error;

constexpr int64_t kVocab = 300;  // past one sampler block per thread, small enough to be quick

std::unique_ptr<Model> make_model(BackendKind backend, int streams = 4, int rollback = 0) {
  LoadOptions opt;
  opt.backend = backend;
  opt.max_streams = streams;
  opt.rollback_depth = rollback;
  return create_mamba1(random_mamba1(testing_helpers::small_mamba1_config(kVocab), 11), opt);
}

std::vector<int32_t> ids(int n, int salt) {
  std::vector<int32_t> v(n);
  for (int i = 0; i < n; ++i) v[i] = int32_t((i * 37 + salt * 101 + 5) % kVocab);
  return v;
}

std::vector<float> feed(Model& m, int slot, const std::vector<int32_t>& tokens) {
  std::vector<float> out(tokens.size() * kVocab);
  for (size_t t = 0; t < tokens.size(); ++t) m.step(&tokens[t], &slot, 1, out.data() + t * kVocab);
  return out;
}

class Features : public testing::TestWithParam<BackendKind> {};

TEST_P(Features, RollbackUndoesStepsExactly) {
  auto m = make_model(GetParam(), 2, 4);
  const std::vector<int32_t> a = ids(6, 1), b = ids(3, 2);
  feed(*m, 0, a);
  const std::vector<uint8_t> after_a = m->snapshot(0);
  EXPECT_EQ(m->rollback_available(0), 4);  // 6 steps, depth 4
  feed(*m, 0, b);
  m->rollback(0, 3);
  EXPECT_EQ(m->snapshot(0), after_a);  // bit-identical state
  EXPECT_EQ(m->rollback_available(0), 1);
  // Continuing after a rollback equals continuing without the undone steps.
  auto straight = make_model(GetParam(), 2, 0);
  feed(*straight, 0, a);
  const std::vector<int32_t> c = ids(5, 3);
  EXPECT_EQ(feed(*m, 0, c), feed(*straight, 0, c));
  // Rolling back to the very start (a fresh slot) gives zeros.
  m->reset(1);
  const std::vector<uint8_t> zero = m->snapshot(1);
  feed(*m, 1, ids(2, 4));
  m->rollback(1, 2);
  EXPECT_EQ(m->snapshot(1), zero);
}

TEST_P(Features, RollbackLimitsAreClearErrors) {
  auto m = make_model(GetParam(), 2, 3);
  feed(*m, 0, ids(2, 1));
  const std::vector<uint8_t> before = m->snapshot(0);
  EXPECT_EQ(error_of([&] { m->rollback(0, 4); }),
            "rollback of 4 steps on slot 0 exceeds the rollback depth of 3 (LoadOptions::rollback_depth)");
  EXPECT_EQ(error_of([&] { m->rollback(0, 3); }),
            "rollback of 3 steps on slot 0: only 2 steps since its last reset, restore or fork");
  EXPECT_EQ(error_of([&] { m->rollback(0, -1); }), "rollback of -1 steps: must be >= 0");
  EXPECT_EQ(error_of([&] { m->rollback(2, 1); }), "slot 2 out of range [0, 2)");
  EXPECT_EQ(m->snapshot(0), before);
  m->reset(0);
  EXPECT_EQ(m->rollback_available(0), 0);
  auto none = make_model(GetParam(), 1, 0);
  feed(*none, 0, ids(1, 1));
  EXPECT_EQ(error_of([&] { none->rollback(0, 1); }),
            "rollback of 1 steps on slot 0 exceeds the rollback depth of 0 (LoadOptions::rollback_depth)");
}

// Prefill (prompt tokens as the rows of one step on Vulkan, or one step per token when a rollback
// ring is kept) leaves the state and last logits that stepping token by token leaves.
TEST_P(Features, PrefillLeavesTheStepState) {
  const std::vector<int32_t> prompt = ids(150, 5);  // more than two 64-row prefill steps
  auto ref = make_model(GetParam(), 2, 0);
  const std::vector<float> all = feed(*ref, 1, prompt);
  for (int rollback : {0, 2}) {
    auto m = make_model(GetParam(), 2, rollback);
    std::vector<float> last(kVocab);
    m->prefill(1, prompt.data(), int(prompt.size()), last.data());
    EXPECT_LT(max_rel_error(last.data(), all.data() + (prompt.size() - 1) * kVocab, kVocab), 1e-6f) << rollback;
    EXPECT_EQ(m->snapshot(1), ref->snapshot(1)) << rollback;
    EXPECT_EQ(m->counters().steps, prompt.size());
    if (GetParam() == BackendKind::Vulkan) {
      // 149 tokens in 64-row steps + the last token: 3 submits; with a rollback ring 32 per submit.
      EXPECT_EQ(m->counters().submits, rollback == 0 ? 3u : 5u);
    }
    EXPECT_EQ(m->rollback_available(1), rollback);
  }
  // A prefill continues a stream's state like steps do.
  auto m = make_model(GetParam(), 2, 0);
  feed(*m, 0, std::vector<int32_t>(prompt.begin(), prompt.begin() + 10));
  m->prefill(0, prompt.data() + 10, 90, nullptr);
  auto r2 = make_model(GetParam(), 2, 0);
  feed(*r2, 0, std::vector<int32_t>(prompt.begin(), prompt.begin() + 100));
  EXPECT_EQ(m->snapshot(0), r2->snapshot(0));
  const int32_t bad[2] = {1, int32_t(kVocab)};
  EXPECT_EQ(error_of([&] { m->prefill(0, bad, 2, nullptr); }), "prompt token 1 (id 300) out of range [0, 300)");
  EXPECT_EQ(error_of([&] { m->prefill(0, bad, 0, nullptr); }), "prefill needs at least one token, got 0");
  EXPECT_EQ(error_of([&] { m->prefill(2, bad, 1, nullptr); }), "slot 2 out of range [0, 2)");
}

TEST_P(Features, SubmitCollectOverlapsTwoSteps) {
  auto m = make_model(GetParam(), 4, 0);
  auto ref = make_model(GetParam(), 4, 0);
  const std::vector<int32_t> a = ids(5, 1), b = ids(5, 2);
  std::vector<float> got_a(kVocab), got_b(kVocab);
  for (size_t t = 0; t < a.size(); ++t) {
    // Two independent streams in flight at once: slot 0 then slot 2.
    const int32_t s0 = 0, s2 = 2;
    Model::StepRequest r0{&a[t], nullptr, &s0, 1, nullptr, true};
    Model::StepRequest r2{&b[t], nullptr, &s2, 1, nullptr, true};
    m->submit(r0);
    m->submit(r2);
    EXPECT_EQ(m->in_flight(), 2);
    EXPECT_EQ(error_of([&] { m->submit(r0); }), "two steps are already in flight; collect() one first");
    m->collect(nullptr, got_a.data());
    m->collect(nullptr, got_b.data());
    std::vector<float> want_a(kVocab), want_b(kVocab);
    ref->step(&a[t], &s0, 1, want_a.data());
    ref->step(&b[t], &s2, 1, want_b.data());
    EXPECT_EQ(got_a, want_a) << t;
    EXPECT_EQ(got_b, want_b) << t;
  }
  EXPECT_EQ(m->in_flight(), 0);
  EXPECT_EQ(error_of([&] { m->collect(nullptr, nullptr); }), "collect: no submitted step to collect");
}

// The device sampler against host/sampling.cpp on the same logits.
TEST_P(Features, SampledTokensFollowTheHostRules) {
  const int B = 4;
  auto m = make_model(GetParam(), B, 0);
  auto ref = make_model(BackendKind::Cpu, B, 0);
  std::vector<SamplingParams> params(B);
  params[0] = {0.0f, 0, 1};     // greedy
  params[1] = {0.8f, 0, 42};    // all tokens
  params[2] = {1.3f, 20, 7};    // top-k
  params[3] = {0.5f, 1, 9};     // top-k 1 = greedy
  const std::vector<int32_t> slots = {3, 0, 2, 1};
  std::vector<int32_t> tokens = {1, 2, 3, 4};
  std::vector<uint64_t> drawn(B, 0);
  for (int t = 0; t < 12; ++t) {
    std::vector<int32_t> next(B);
    std::vector<float> logits(B * kVocab);
    m->step_sample(tokens.data(), slots.data(), B, params.data(), next.data(), logits.data());
    std::vector<float> want(B * kVocab);
    ref->step(tokens.data(), slots.data(), B, want.data());
    for (int b = 0; b < B; ++b) {
      ASSERT_LT(max_rel_error(logits.data() + b * kVocab, want.data() + b * kVocab, kVocab), 1e-4f);
      // Sampled from the backend's own logits with the stream's draw index.
      EXPECT_EQ(next[b], sample_nth(logits.data() + b * kVocab, int(kVocab), params[b], drawn[b]))
          << "step " << t << " stream " << b;
      drawn[b]++;
    }
    tokens = next;
  }
}

TEST_P(Features, SamplingWithoutLogitsAndBadParameters) {
  auto m = make_model(GetParam(), 2, 0);
  auto twin = make_model(GetParam(), 2, 0);
  const int32_t slot = 1;
  SamplingParams p{0.9f, 5, 123};
  int32_t tok = 7, tok2 = 7;
  for (int t = 0; t < 5; ++t) {
    int32_t next = -1, next2 = -1;
    std::vector<float> logits(kVocab);
    m->step_sample(&tok, &slot, 1, &p, &next, nullptr);  // ids only
    twin->step_sample(&tok2, &slot, 1, &p, &next2, logits.data());
    EXPECT_EQ(next, next2);
    tok = next;
    tok2 = next2;
  }
  SamplingParams hot{-1.0f, 0, 0};
  EXPECT_EQ(error_of([&] { m->step_sample(&tok, &slot, 1, &hot, &tok, nullptr); }),
            "sampling temperature must be finite and >= 0 (got -1.000000)");
  SamplingParams k{1.0f, -2, 0};
  EXPECT_EQ(error_of([&] { m->step_sample(&tok, &slot, 1, &k, &tok, nullptr); }),
            "sampling top_k must be >= 0 (got -2)");
}

// The device sampler picks top-k candidates one by one, so it has a limit the host does not.
TEST(FeaturesVulkan, DeviceSamplerTopKLimit) {
  auto m = make_model(BackendKind::Vulkan, 1, 0);
  const int32_t slot = 0, tok = 1;
  int32_t next = 0;
  SamplingParams p{1.0f, 257, 0};
  EXPECT_EQ(error_of([&] { m->step_sample(&tok, &slot, 1, &p, &next, nullptr); }),
            "sampling top_k 257 exceeds the device sampler's limit of 256");
  p.temperature = 0.0f;  // greedy ignores top_k
  m->step_sample(&tok, &slot, 1, &p, &next, nullptr);
}

INSTANTIATE_TEST_SUITE_P(Backends, Features, testing::Values(BackendKind::Cpu, BackendKind::Vulkan),
                         [](const testing::TestParamInfo<BackendKind>& i) {
                           return std::string(i.param == BackendKind::Cpu ? "Cpu" : "Vulkan");
                         });

}  // namespace
}  // namespace vkssm

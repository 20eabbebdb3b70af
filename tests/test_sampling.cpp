// Token sampling: greedy and top-1 agree with argmax, a seed fixes the sequence, and draws follow
// softmax(logits / temperature) over the top-k.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "host/error.h"
#include "host/sampling.h"

namespace vkssm {
namespace {

using testing::HasSubstr;

TEST(Sampling, ArgmaxTakesTheFirstMaximum) {
  const float tie[] = {1.0f, 3.0f, -2.0f, 3.0f};
  EXPECT_EQ(argmax(tie, 4), 1);
  const float one[] = {-5.0f};
  EXPECT_EQ(argmax(one, 1), 0);
  const float nan_first[] = {std::nanf(""), -1.0f, 2.0f};
  EXPECT_EQ(argmax(nan_first, 3), 2);  // NaN is never the maximum
}

TEST(Sampling, GreedyAndTopOneAreArgmax) {
  const float logits[] = {0.1f, 2.5f, 2.4f, -1.0f, 2.5f};
  Rng rng(7);
  SamplingParams greedy;  // temperature 0
  EXPECT_EQ(sample_token(logits, 5, greedy, rng), 1);
  for (float temperature : {0.01f, 1.0f, 100.0f}) {
    SamplingParams top1;
    top1.temperature = temperature;
    top1.top_k = 1;
    for (int i = 0; i < 50; ++i) EXPECT_EQ(sample_token(logits, 5, top1, rng), 1);
  }
}

TEST(Sampling, SameSeedSameSequence) {
  std::vector<float> logits(50);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = float(std::sin(double(i))) * 2.0f;
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 20;
  auto draw = [&](uint64_t seed) {
    Rng rng(seed);
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) out.push_back(sample_token(logits.data(), 50, p, rng));
    return out;
  };
  EXPECT_EQ(draw(42), draw(42));
  EXPECT_NE(draw(42), draw(43));

  // The generator itself: fixed output for a seed, floats in [0, 1).
  Rng a(5), b(5);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(a.next_u64(), b.next_u64());
    const float f = a.next_float();
    b.next_float();
    EXPECT_GE(f, 0.0f);
    EXPECT_LT(f, 1.0f);
  }
}

// Fraction of `draws` samples that picked each token.
std::vector<double> frequencies(const std::vector<float>& logits, const SamplingParams& p,
                                int draws) {
  Rng rng(p.seed);
  std::vector<double> freq(logits.size(), 0.0);
  for (int i = 0; i < draws; ++i) {
    freq[size_t(sample_token(logits.data(), int(logits.size()), p, rng))] += 1.0 / draws;
  }
  return freq;
}

TEST(Sampling, FrequenciesFollowSoftmax) {
  // logits differ by ln 3: probabilities 1/4 and 3/4.
  const std::vector<float> logits = {0.0f, float(std::log(3.0))};
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 1;
  const std::vector<double> f = frequencies(logits, p, 20000);
  EXPECT_NEAR(f[0], 0.25, 0.02);
  EXPECT_NEAR(f[1], 0.75, 0.02);

  // Temperature 2 halves the logit gap: probabilities 1/(1+√3) and √3/(1+√3).
  p.temperature = 2.0f;
  const std::vector<double> g = frequencies(logits, p, 20000);
  EXPECT_NEAR(g[1], std::sqrt(3.0) / (1.0 + std::sqrt(3.0)), 0.02);
}

TEST(Sampling, TopKExcludesTheRest) {
  // Token 3 ties token 2 for second place; the lower id wins the top-2 slot.
  const std::vector<float> logits = {5.0f, -1.0f, 4.0f, 4.0f, 0.0f};
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 2;
  p.seed = 3;
  const std::vector<double> f = frequencies(logits, p, 20000);
  EXPECT_EQ(f[1] + f[3] + f[4], 0.0);
  EXPECT_NEAR(f[0], 1.0 / (1.0 + std::exp(-1.0)), 0.02);

  p.top_k = 100;  // more than there are tokens: all of them
  const std::vector<double> all = frequencies(logits, p, 20000);
  EXPECT_GT(all[3], 0.1);
}

TEST(Sampling, LargerTemperatureFlattens) {
  const std::vector<float> logits = {3.0f, 1.0f, 0.0f, -1.0f};
  SamplingParams p;
  p.seed = 9;
  double previous_top = 1.0;
  for (float temperature : {0.25f, 1.0f, 4.0f, 64.0f}) {
    p.temperature = temperature;
    const double top = frequencies(logits, p, 20000)[0];
    EXPECT_LT(top, previous_top) << "temperature " << temperature;
    previous_top = top;
  }
  EXPECT_NEAR(previous_top, 0.25, 0.03);  // nearly uniform at temperature 64
}

TEST(Sampling, ExtremeLogitsStayFinite) {
  // Huge logits would overflow exp() without the max subtracted; -inf and NaN are never drawn.
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> logits = {1e30f, 1e30f - 1e24f, -inf, std::nanf("")};
  SamplingParams p;
  p.temperature = 1.0f;
  const std::vector<double> f = frequencies(logits, p, 2000);
  EXPECT_EQ(f[2] + f[3], 0.0);
  EXPECT_NEAR(f[0] + f[1], 1.0, 1e-9);

  const std::vector<float> all_neg_inf = {-inf, -inf};
  Rng rng(0);
  EXPECT_EQ(sample_token(all_neg_inf.data(), 2, p, rng), 0);
}

TEST(Sampling, BadParametersAreErrors) {
  const float logits[] = {1.0f, 2.0f};
  Rng rng(0);
  SamplingParams p;
  p.temperature = -1.0f;
  try {
    sample_token(logits, 2, p, rng);
    ADD_FAILURE() << "negative temperature accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("temperature"));
  }
  p.temperature = 1.0f;
  p.top_k = -3;
  try {
    sample_token(logits, 2, p, rng);
    ADD_FAILURE() << "negative top_k accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("top_k"));
  }
  try {
    argmax(logits, 0);
    ADD_FAILURE() << "empty logits accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("no logits"));
  }
}

}  // namespace
}  // namespace vkssm

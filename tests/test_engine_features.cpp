// Engine features beyond the cross-architecture contract (tests/test_contract.cpp covers rollback,
// sampling on the device, submit/collect and prefill for every architecture on both backends):
// limits of the Vulkan backend's device sampler.
#include <memory>

#include <gtest/gtest.h>

#include "engine/vkssm.hpp"
#include "host/sampling.h"
#include "models/mamba1/mamba1_model.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

using testing_helpers::error_of;

constexpr int64_t kVocab = 300;  // past one sampler block per thread, small enough to be quick

std::unique_ptr<Model> make_model(BackendKind backend, int streams) {
  LoadOptions opt;
  opt.backend = backend;
  opt.max_streams = streams;
  return create_mamba1(random_mamba1(testing_helpers::small_mamba1_config(kVocab), 11), opt);
}

// The device sampler picks top-k candidates one by one, so it has a limit the host does not.
TEST(FeaturesVulkan, DeviceSamplerTopKLimit) {
  auto m = make_model(BackendKind::Vulkan, 1);
  const int32_t slot = 0, tok = 1;
  int32_t next = 0;
  SamplingParams p{1.0f, 257, 0};
  EXPECT_EQ(error_of([&] { m->step_sample(&tok, &slot, 1, &p, &next, nullptr); }),
            "sampling top_k 257 exceeds the device sampler's limit of 256");
  p.temperature = 0.0f;  // greedy ignores top_k
  m->step_sample(&tok, &slot, 1, &p, &next, nullptr);
}

}  // namespace
}  // namespace vkssm

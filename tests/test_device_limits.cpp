// Device limits and device profiles (engine/vk/device_profiles.h): under VKSSM_DEVICE_PROFILE the
// engine clamps the probed limits and takes the fallbacks of that class of devices (bindings split
// into tiles, fences instead of timeline semaphores, fp32 weights, shared-memory reductions), and
// still gives the CPU reference's outputs. A model whose tied embedding / lm_head is larger than
// 128 MiB (mamba-130m's shape) runs with the validation layer on. Every refusal names its limit.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/vk/compute_pipeline.h"
#include "engine/vk/device_profiles.h"
#include "engine/vk/vulkan_context.h"
#include "engine/vkssm.hpp"
#include "engine/vulkan_lm_head.h"
#include "engine/vulkan_step_model.h"
#include "models/mamba1/mamba1_model.h"
#include "models/mamba2/mamba2_model.h"
#include "models/s4d/s4d_model.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

using testing::HasSubstr;
using testing_helpers::error_of;
using testing_helpers::max_rel_error;
using testing_helpers::ScopedEnv;

using Make = std::function<std::unique_ptr<Model>(const LoadOptions&)>;

const VulkanStepModel& vulkan(const Model& m) { return dynamic_cast<const VulkanStepModel&>(m); }

// 4000 tokens x 128 columns of fp32: a 2 MB tied table, several tiles of 1 MiB under tiny-bindings
// (the last one shorter); the logits of 64 rows fit one 1 MiB binding.
constexpr int64_t kVocab = 4000;

Mamba1Config mamba1_config() {
  Mamba1Config c = testing_helpers::small_mamba1_config(kVocab);
  c.d_model = 128;
  c.d_inner = 256;
  c.dt_rank = 8;
  return c;
}

Mamba2Config mamba2_config() {
  return {.d_model = 128, .n_layer = 2, .vocab_size = kVocab, .d_state = 8, .expand = 2, .head_dim = 16, .n_groups = 1};
}

struct Case {
  const char* arch;
  const char* profile;
};

// Steps three streams (token ids near the end of the vocabulary among them), prefill, rollback by
// 2 and greedy device sampling on Vulkan and on the CPU backend, and compares every output.
void check_against_cpu(const Make& make, bool frames, int64_t d_input) {
  LoadOptions o;
  o.max_streams = 3;
  o.rollback_depth = 2;
  std::unique_ptr<Model> gpu = make(o);
  o.backend = BackendKind::Cpu;
  std::unique_ptr<Model> cpu = make(o);
  const int64_t d = gpu->info().d_output;
  const std::vector<int32_t> slots = {0, 1, 2};
  std::vector<float> got(3 * size_t(d)), want(got.size());
  auto step_both = [&](int t) {
    if (frames) {
      std::vector<float> in(3 * size_t(d_input));
      for (size_t i = 0; i < in.size(); ++i) in[i] = float((i * 7 + size_t(t) * 13) % 11) / 5.0f - 1.0f;
      gpu->step_frames(in.data(), slots.data(), 3, got.data());
      cpu->step_frames(in.data(), slots.data(), 3, want.data());
    } else {
      const int32_t V = int32_t(d);
      const std::vector<int32_t> tokens = {V - 1 - t, V / 2 + t, 3 + t};
      gpu->step(tokens.data(), slots.data(), 3, got.data());
      cpu->step(tokens.data(), slots.data(), 3, want.data());
    }
    EXPECT_LE(max_rel_error(got.data(), want.data(), int64_t(got.size())), 1e-3f) << "step " << t;
  };
  for (int t = 0; t < 3; ++t) step_both(t);
  gpu->rollback(1, 2);
  cpu->rollback(1, 2);
  step_both(3);
  if (frames) return;

  const int32_t V = int32_t(d);
  const std::vector<int32_t> prompt = {V - 1, 17, V - 2, 400, V - 3};
  gpu->reset(2);
  cpu->reset(2);
  gpu->prefill(2, prompt.data(), int(prompt.size()), got.data());
  cpu->prefill(2, prompt.data(), int(prompt.size()), want.data());
  EXPECT_LE(max_rel_error(got.data(), want.data(), d), 1e-3f) << "prefill";

  // Greedy sampling on the device: the token it picks has the largest reference logit (within
  // the tolerance: a near tie may go either way).
  const std::vector<int32_t> tokens = {V - 1, V - 2, 0};
  std::vector<SamplingParams> params(3);
  std::vector<int32_t> picked(3);
  gpu->step_sample(tokens.data(), slots.data(), 3, params.data(), picked.data(), got.data());
  cpu->step(tokens.data(), slots.data(), 3, want.data());
  EXPECT_LE(max_rel_error(got.data(), want.data(), int64_t(got.size())), 1e-3f) << "step_sample";
  for (size_t b = 0; b < 3; ++b) {
    const float* row = want.data() + b * size_t(d);
    const float best = *std::max_element(row, row + d);
    EXPECT_GE(row[picked[b]], best - 1e-3f * std::max(1.0f, std::fabs(best))) << "stream " << b;
  }
}

class ProfileTest : public testing::TestWithParam<Case> {};

TEST_P(ProfileTest, MatchesCpuReference) {
  const Case c = GetParam();
  ScopedEnv profile("VKSSM_DEVICE_PROFILE", c.profile);
  const std::string arch = c.arch;
  Make make;
  bool frames = false;
  int64_t d_input = 0;
  if (arch == "mamba1") {
    auto w = std::make_shared<Mamba1Weights>(random_mamba1(mamba1_config(), 3));
    make = [w](const LoadOptions& o) { return create_mamba1(*w, o); };
  } else if (arch == "mamba2") {
    auto w = std::make_shared<Mamba2Weights>(random_mamba2(mamba2_config(), 4));
    make = [w](const LoadOptions& o) { return create_mamba2(*w, o); };
  } else {
    const S4DConfig cfg{.d_input = 3, .d_model = 16, .d_state = 8, .n_layers = 2, .d_output = 5};
    auto w = std::make_shared<S4DWeights>(random_s4d(cfg, 5));
    make = [w](const LoadOptions& o) { return create_s4d(*w, o); };
    frames = true;
    d_input = cfg.d_input;
  }
  {
    const std::unique_ptr<Model> m = make(LoadOptions{});
    const DeviceCaps& caps = vulkan(*m).caps();
    EXPECT_EQ(caps.profile, c.profile);
    if (std::string(c.profile) == "tiny-bindings") {
      EXPECT_EQ(caps.max_storage_buffer_range, 1u << 20);
    } else {  // vulkan-1.1-minimal
      EXPECT_FALSE(vulkan(*m).uses_timeline()) << "the fence path must run";
      EXPECT_FALSE(caps.subgroup_arithmetic);
      EXPECT_EQ(m->info().weight_type, "f32");
    }
  }
  check_against_cpu(make, frames, d_input);
}

INSTANTIATE_TEST_SUITE_P(DeviceLimits, ProfileTest,
                         testing::Values(Case{"mamba1", "tiny-bindings"}, Case{"mamba2", "tiny-bindings"},
                                         Case{"s4d", "tiny-bindings"}, Case{"mamba1", "vulkan-1.1-minimal"},
                                         Case{"mamba2", "vulkan-1.1-minimal"}, Case{"s4d", "vulkan-1.1-minimal"}),
                         [](const testing::TestParamInfo<Case>& i) {
                           std::string n = std::string(i.param.arch) + "_" + i.param.profile;
                           for (char& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

// The shape of mamba-130m's embedding (50280 x 768 fp32 = 154 MB, tied to the head), one layer:
// larger than one 128 MiB binding, so the gather and the head run in tiles. The last vocabulary
// rows must give the reference's logits, with the validation layer on (test_main.cpp).
class LargeTable : public testing::TestWithParam<const char*> {};

TEST_P(LargeTable, LastVocabularyRowsMatchReference) {
  ScopedEnv profile("VKSSM_DEVICE_PROFILE", GetParam());
  const auto start = std::chrono::steady_clock::now();
  Mamba1Config c = testing_helpers::small_mamba1_config(50280);
  c.d_model = 768;
  c.n_layer = 1;
  c.d_inner = 64;  // the mixer is not what this test is about: keep it small
  c.dt_rank = 4;
  const Mamba1Weights w = random_mamba1(c, 7);
  LoadOptions o;
  o.max_streams = 2;
  const std::unique_ptr<Model> gpu = create_mamba1(w, o);
  o.backend = BackendKind::Cpu;
  const std::unique_ptr<Model> cpu = create_mamba1(w, o);
  const std::vector<int32_t> slots = {0, 1};
  std::vector<float> got(2 * 50280), want(got.size());
  for (const std::vector<int32_t>& ids : {std::vector<int32_t>{50279, 43690}, {50000, 100}, {43689, 50278}}) {
    gpu->step(ids.data(), slots.data(), 2, got.data());
    cpu->step(ids.data(), slots.data(), 2, want.data());
    EXPECT_LE(max_rel_error(got.data(), want.data(), int64_t(got.size())), 1e-3f) << ids[0] << "," << ids[1];
    // The last rows of the head (its last tile) too.
    EXPECT_LE(max_rel_error(got.data() + 50000, want.data() + 50000, 280), 1e-3f);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ large table ] %s: %.1f s\n", GetParam(), seconds);
}

INSTANTIATE_TEST_SUITE_P(DeviceLimits, LargeTable, testing::Values("", "android-baseline-2022"),
                         [](const testing::TestParamInfo<const char*>& i) {
                           return *i.param ? std::string("android_baseline_2022") : std::string("as_probed");
                         });

// ---- refusals ------------------------------------------------------------------------------------

TEST(DeviceLimits, UnknownProfileListsTheKnownOnes) {
  ScopedEnv profile("VKSSM_DEVICE_PROFILE", "adreno-9000");
  const Mamba1Weights w = random_mamba1(testing_helpers::small_mamba1_config(64), 1);
  EXPECT_EQ(error_of([&] { create_mamba1(w, {}); }),
            "VKSSM_DEVICE_PROFILE='adreno-9000' is not a known device profile (known: android-baseline-2022, "
            "vulkan-1.1-minimal, tiny-bindings)");
}

TEST(DeviceLimits, ProfilesOnlyLowerLimits) {
  DeviceCaps caps;
  caps.max_storage_buffer_range = 1000;  // below every profile's
  caps.max_texel_buffer_elements = uint64_t(1) << 27;
  caps.max_per_stage_storage_buffers = 32;
  caps.timeline_semaphores = false;
  caps.subgroup_arithmetic = true;
  apply_device_profile(caps, "android-baseline-2022");
  EXPECT_EQ(caps.max_storage_buffer_range, 1000u);
  EXPECT_FALSE(caps.timeline_semaphores);
  EXPECT_TRUE(caps.subgroup_arithmetic);
  EXPECT_EQ(caps.max_texel_buffer_elements, 65536u);
  EXPECT_EQ(caps.max_per_stage_storage_buffers, 10u);
}

TEST(DeviceLimits, OversizeBindingNamesTensorAndLimit) {
  // tiny-bindings: the logits of 64 step rows x 8000 tokens (2 MB) cannot be one 1 MiB binding.
  ScopedEnv profile("VKSSM_DEVICE_PROFILE", "tiny-bindings");
  const Mamba1Weights w = random_mamba1(testing_helpers::small_mamba1_config(8000), 1);
  EXPECT_THAT(error_of([&] { create_mamba1(w, {}); }),
              testing::MatchesRegex("step outputs \\(bound to .*\\): a binding of 2048000 bytes exceeds "
                                    "maxStorageBufferRange \\(1048576\\) of .*"));
}

TEST(DeviceLimits, OversizeAllocationNamesMaxMemoryAllocationSize) {
  // tiny-bindings also caps allocations at 16 MiB: 1000 streams of 8000 logits need 32 MB.
  ScopedEnv profile("VKSSM_DEVICE_PROFILE", "tiny-bindings");
  const Mamba1Weights w = random_mamba1(testing_helpers::small_mamba1_config(8000), 1);
  LoadOptions o;
  o.max_streams = 1000;
  EXPECT_THAT(error_of([&] { create_mamba1(w, o); }),
              testing::MatchesRegex("step outputs: an allocation of [0-9]+ bytes exceeds maxMemoryAllocationSize "
                                    "\\(16777216\\) of .*"));
}

TEST(DeviceLimits, TooManyStorageBuffersNamesShaderAndLimit) {
  DeviceCaps caps;
  caps.name = "an old phone";
  caps.max_per_stage_storage_buffers = 4;
  EXPECT_EQ(error_of([&] { check_storage_buffers("mamba1_scan_f32", 10, caps); }),
            "shader mamba1_scan_f32 binds 10 storage buffers; maxPerStageDescriptorStorageBuffers of an old phone "
            "is 4");
  EXPECT_EQ(error_of([&] { check_storage_buffers("matvec_texel", 3, caps); }), "(no error)");
}

TEST(DeviceLimits, RowsTooWideForOneBindingNameTheLimit) {
  DeviceCaps caps;
  caps.name = "a tiny device";
  caps.max_storage_buffer_range = 4096;
  caps.min_storage_buffer_offset_alignment = 64;
  caps.max_texel_buffer_elements = 128;  // 2048 bytes of RGBA32F texels
  EXPECT_EQ(tile_rows(200, 32, caps, 0, "lm_head"), 128u);  // 128 rows fill a binding, a multiple of 64
  EXPECT_EQ(tile_rows(200, 32, caps, 16, "lm_head"), 64u);  // a texel view holds 64
  EXPECT_EQ(tile_rows(100, 32, caps, 0, "lm_head"), 100u);  // one binding
  EXPECT_EQ(error_of([&] { tile_rows(1000, 1024, caps, 0, "lm_head"); }),
            "lm_head: rows of 1024 bytes cannot be split into slices of 64 rows within maxStorageBufferRange (4096) "
            "of a tiny device");
}

}  // namespace
}  // namespace vkssm

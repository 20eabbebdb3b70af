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
#include <iterator>
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
#include "host/dtype.h"
#include "models/mamba1/mamba1_model.h"
#include "models/mamba2/mamba2_model.h"
#include "models/s4d/s4d_model.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

using testing::HasSubstr;
using testing_helpers::error_of;
using testing_helpers::max_rel_error;
using testing_helpers::on_vulkan;
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
  LoadOptions o = on_vulkan();
  o.max_streams = 3;
  o.rollback_depth = 2;
  std::unique_ptr<Model> gpu = make(o);
  o.backend = BackendKind::Reference;
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
    const std::unique_ptr<Model> m = make(on_vulkan());
    const DeviceCaps& caps = vulkan(*m).caps();
    EXPECT_EQ(caps.profile, c.profile);
    if (std::string(c.profile) == "tiny-bindings") {
      EXPECT_EQ(caps.max_storage_buffer_range, 1u << 20);
    } else {  // vulkan-1.1-minimal
      EXPECT_FALSE(vulkan(*m).uses_timeline()) << "the fence path must run";
      EXPECT_FALSE(caps.unified_memory);  // so the staged uploads run too
      EXPECT_EQ(caps.upload, UploadPath::Staged);
      EXPECT_GT(vulkan(*m).upload_counters().staged_bytes, 0u);
      EXPECT_EQ(vulkan(*m).upload_counters().mapped_bytes, 0u);
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
  LoadOptions o = on_vulkan();
  o.max_streams = 2;
  const std::unique_ptr<Model> gpu = create_mamba1(w, o);
  o.backend = BackendKind::Reference;
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
  EXPECT_EQ(error_of([&] { create_mamba1(w, on_vulkan()); }),
            "VKSSM_DEVICE_PROFILE='adreno-9000' is not a known device profile (known: android-baseline-2022, "
            "vulkan-1.1-minimal, mali-bifrost, mali-valhall, adreno-6xx, adreno-7xx, jetson-orin, tiny-bindings)");
}

// A device above every profile's limits, every feature on.
DeviceCaps big_device() {
  DeviceCaps caps;
  caps.api_version = VK_API_VERSION_1_3;
  caps.max_storage_buffer_range = uint64_t(1) << 40;
  caps.max_texel_buffer_elements = uint64_t(1) << 40;
  caps.max_memory_allocation_size = uint64_t(1) << 40;
  caps.max_per_stage_storage_buffers = UINT32_MAX;
  caps.shared_memory = 1 << 20;
  caps.max_workgroup_invocations = 1 << 16;
  caps.storage16 = caps.float16 = caps.storage8 = caps.subgroup_arithmetic = caps.timeline_semaphores = true;
  return caps;
}

// Every number of docs/DEVICE_PROFILES.md's table, as the profiles apply it.
TEST(DeviceLimits, RealDeviceClassesClampToTheirTable) {
  struct Row {
    const char* name;
    uint64_t range, texels, allocation;
    uint32_t storage_buffers, shared, invocations, api;
    bool timeline, storage16, float16, subgroup;
  };
  const uint64_t k128MiB = uint64_t(1) << 27, k1GiB = uint64_t(1) << 30, big = uint64_t(1) << 40;
  const Row rows[] = {
      {"android-baseline-2022", k128MiB, 65536, big, 10, 16384, 128, VK_API_VERSION_1_3, true, true, true, true},
      {"vulkan-1.1-minimal", k128MiB, 65536, k1GiB, 10, 16384, 128, VK_API_VERSION_1_1, false, false, false, false},
      {"mali-bifrost", k128MiB, k128MiB, k1GiB, 35, 32768, 512, VK_API_VERSION_1_1, false, true, false, false},
      {"mali-valhall", k128MiB, k128MiB, k1GiB, 35, 32768, 512, VK_API_VERSION_1_3, true, true, true, true},
      {"adreno-6xx", k128MiB, k128MiB, k1GiB, 24, 32768, 1024, VK_API_VERSION_1_1, false, true, false, true},
      {"adreno-7xx", k128MiB, k128MiB, k1GiB, 24, 32768, 1024, VK_API_VERSION_1_3, true, true, true, true},
      {"jetson-orin", 0xFFFFFFFFu, k128MiB, big, 1048576, 49152, 1024, VK_API_VERSION_1_3, true, true, true, true},
      {"tiny-bindings", 1u << 20, 65536, 16u << 20, UINT32_MAX, 1 << 20, 1 << 16, VK_API_VERSION_1_3, true, true,
       true, true},
  };
  ASSERT_EQ(device_profile_names().size(), std::size(rows));
  for (const Row& r : rows) {
    DeviceCaps caps = big_device();
    apply_device_profile(caps, r.name);
    EXPECT_EQ(caps.profile, r.name);
    EXPECT_EQ(caps.max_storage_buffer_range, r.range) << r.name;
    EXPECT_EQ(caps.max_texel_buffer_elements, r.texels) << r.name;
    EXPECT_EQ(caps.max_memory_allocation_size, r.allocation) << r.name;
    EXPECT_EQ(caps.max_per_stage_storage_buffers, r.storage_buffers) << r.name;
    EXPECT_EQ(caps.shared_memory, r.shared) << r.name;
    EXPECT_EQ(caps.max_workgroup_invocations, r.invocations) << r.name;
    EXPECT_EQ(caps.api_version, r.api) << r.name;
    EXPECT_EQ(caps.timeline_semaphores, r.timeline) << r.name;
    EXPECT_EQ(caps.storage16, r.storage16) << r.name;
    // shaderFloat16 is a Vulkan 1.2 feature (or an extension vkssm does not enable): off on 1.1.
    EXPECT_EQ(caps.float16, r.float16) << r.name;
    EXPECT_EQ(caps.storage8, r.api >= VK_API_VERSION_1_2) << r.name;
    EXPECT_EQ(caps.subgroup_arithmetic, r.subgroup) << r.name;
    const bool keeps_api = std::string(r.name) == "android-baseline-2022" || std::string(r.name) == "tiny-bindings";
    EXPECT_EQ(device_profile_api_version(r.name), keeps_api ? UINT32_MAX : r.api) << r.name;
  }
}

// A Vulkan 1.1 class: the instance is created for Vulkan 1.1, so the validation layer (on in every
// test) checks the engine against 1.1 and would flag a 1.2 structure such as
// VkPhysicalDeviceVulkan12Features or the timeline-semaphore features in the device's chain.
// fp16 weights still run there without 16-bit storage: packed in 32-bit words (unpackHalf2x16).
TEST(DeviceLimits, Vulkan11DeviceRunsF16WeightsWithoutOptionalFeatures) {
  ScopedEnv profile("VKSSM_DEVICE_PROFILE", "vulkan-1.1-minimal");
  Mamba1Weights w = random_mamba1(mamba1_config(), 11);
  // The values the device's fp16 copy holds, so the reference sees exactly what the GPU reads.
  for (std::vector<float>* m : {&w.embeddings, &w.lm_head})
    for (float& x : *m) x = half_to_float(float_to_half(x));
  for (auto& l : w.layers)
    for (std::vector<float>* m : {&l.in_proj, &l.x_proj, &l.dt_proj_w, &l.out_proj})
      for (float& x : *m) x = half_to_float(float_to_half(x));
  LoadOptions o = on_vulkan();
  o.max_streams = 2;
  o.weights = WeightStorage::F16;
  const std::unique_ptr<Model> gpu = create_mamba1(w, o);
  const DeviceCaps& caps = vulkan(*gpu).caps();
  EXPECT_EQ(caps.api_version, uint32_t(VK_API_VERSION_1_1));
  EXPECT_FALSE(caps.storage16);
  EXPECT_FALSE(caps.float16);
  EXPECT_FALSE(caps.timeline_semaphores);
  EXPECT_FALSE(vulkan(*gpu).uses_timeline());
  EXPECT_EQ(gpu->info().weight_type, "f16");
  o.backend = BackendKind::Reference;
  o.weights = WeightStorage::F32;
  const std::unique_ptr<Model> cpu = create_mamba1(w, o);
  const std::vector<int32_t> slots = {0, 1};
  std::vector<float> got(2 * size_t(kVocab)), want(got.size());
  for (int t = 0; t < 3; ++t) {
    const std::vector<int32_t> ids = {int32_t(kVocab) - 1 - t, 7 + t};
    gpu->step(ids.data(), slots.data(), 2, got.data());
    cpu->step(ids.data(), slots.data(), 2, want.data());
    EXPECT_LE(max_rel_error(got.data(), want.data(), int64_t(got.size())), 1e-3f) << "step " << t;
  }
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
  EXPECT_THAT(error_of([&] { create_mamba1(w, on_vulkan()); }),
              testing::MatchesRegex("step outputs \\(bound to .*\\): a binding of 2048000 bytes exceeds "
                                    "maxStorageBufferRange \\(1048576\\) of .*"));
}

TEST(DeviceLimits, OversizeAllocationNamesMaxMemoryAllocationSize) {
  // tiny-bindings also caps allocations at 16 MiB: the logits of the 64 step rows (prefill's) of
  // 70000 tokens take 17.9 MB.
  ScopedEnv profile("VKSSM_DEVICE_PROFILE", "tiny-bindings");
  const Mamba1Weights w = random_mamba1(testing_helpers::small_mamba1_config(70000), 1);
  LoadOptions o = on_vulkan();
  o.max_streams = 1;
  EXPECT_THAT(error_of([&] { create_mamba1(w, o); }),
              testing::MatchesRegex("step outputs: an allocation of 17920000 bytes exceeds maxMemoryAllocationSize "
                                    "\\(16777216\\) of .*"));
}

// Every buffer is an allocation of its own, and a device allows only so many at once
// (maxMemoryAllocationCount: 4096 on many phones, 1024 under tiny-bindings): a model that needs
// more is refused, naming the buffer and the limit, and everything it allocated is freed.
TEST(DeviceLimits, TooManyAllocationsNameMaxMemoryAllocationCount) {
  ScopedEnv profile("VKSSM_DEVICE_PROFILE", "tiny-bindings");
  Mamba1Config c = testing_helpers::small_mamba1_config(64);
  c.n_layer = 120;  // about ten weight buffers and two state buffers a layer
  const Mamba1Weights w = random_mamba1(c, 1);
  EXPECT_THAT(error_of([&] { create_mamba1(w, on_vulkan()); }),
              testing::MatchesRegex(".*: allocation 1025 exceeds maxMemoryAllocationCount \\(1024\\) of .*"));
  c.n_layer = 2;
  EXPECT_EQ(create_mamba1(random_mamba1(c, 1), on_vulkan())->info().n_layer, 2);
}

// ---- every per-stream buffer within a binding ----------------------------------------------------

// A Mamba-1 whose layer ssm state is 4 KiB a stream (E 64, N 16) and whose logits are 1 KiB a row:
// under tiny-bindings (1 MiB bindings) 256 streams' states fit one binding, a rollback ring of
// depth 4 for 100 streams (1.6 MB) does not and is split in two, and explicit requests beyond what
// one binding holds run as shards.
Mamba1Config per_stream_config(int64_t vocab) {
  Mamba1Config c = testing_helpers::small_mamba1_config(vocab);
  c.d_inner = 64;
  c.d_state = 16;
  return c;
}

TEST(DeviceLimits, RollbackRingLargerThanABindingRunsManyStreams) {
  ScopedEnv profile("VKSSM_DEVICE_PROFILE", "tiny-bindings");
  const Mamba1Weights w = random_mamba1(per_stream_config(256), 11);
  constexpr int kStreams = 100, kDepth = 4;
  LoadOptions o = on_vulkan();
  o.max_streams = kStreams;
  o.rollback_depth = kDepth;
  const std::unique_ptr<Model> gpu = create_mamba1(w, o);
  o.backend = BackendKind::Reference;
  const std::unique_ptr<Model> cpu = create_mamba1(w, o);
  const MemoryPlan& m = gpu->info().memory;
  EXPECT_EQ(m.capacity_reason, "requested");
  EXPECT_EQ(m.rollback_bytes, uint64_t(kStreams) * kDepth * gpu->info().state_bytes_per_stream);
  EXPECT_GT(uint64_t(kStreams) * kDepth * 64 * 16 * 4, vulkan(*gpu).caps().max_storage_buffer_range);

  std::vector<int32_t> slots(kStreams);
  for (int i = 0; i < kStreams; ++i) slots[size_t(i)] = i;
  std::vector<float> got(size_t(kStreams) * 256), want(got.size());
  auto step_both = [&](int t) {
    std::vector<int32_t> tokens(kStreams);
    for (int i = 0; i < kStreams; ++i) tokens[size_t(i)] = (i * 7 + t * 13) % 256;
    gpu->step(tokens.data(), slots.data(), kStreams, got.data());
    cpu->step(tokens.data(), slots.data(), kStreams, want.data());
    EXPECT_LE(max_rel_error(got.data(), want.data(), int64_t(got.size())), 1e-3f) << "step " << t;
  };
  for (int t = 0; t < 3; ++t) step_both(t);
  // Slots whose ring entries lie in the first part, the second part, and across the split
  // (1 MiB / 4 KiB = 256 entries a part: slot 63's entries are 252..255, slot 64's 256..259).
  for (int slot : {0, 63, 64, 99}) {
    gpu->rollback(slot, 2);
    cpu->rollback(slot, 2);
  }
  step_both(3);
  step_both(4);
  step_both(5);
  // Slot 99 now has 4 steps behind it: back to the oldest entry its ring holds (the ring wrapped).
  gpu->rollback(99, 4);
  cpu->rollback(99, 4);
  step_both(6);
}

// More streams than one binding holds run as shards of one binding each, sharing one copy of the
// weights (engine/vulkan_sharded_model.h). 100 streams of 16000 bytes of logits under tiny-bindings
// (65 a binding): two shards of 50. Every call that touches slots gives the CPU reference's
// results, whichever shard the slots are in and in whatever order the rows come.
TEST(DeviceLimits, MoreStreamsThanABindingHoldsRunAsShards) {
  ScopedEnv profile("VKSSM_DEVICE_PROFILE", "tiny-bindings");
  const Mamba1Weights w = random_mamba1(per_stream_config(4000), 1);
  constexpr int kStreams = 100;
  constexpr int64_t V = 4000;
  LoadOptions o = on_vulkan();
  o.max_streams = kStreams;
  o.rollback_depth = 2;
  const std::unique_ptr<Model> gpu = create_mamba1(w, o);
  o.backend = BackendKind::Reference;
  const std::unique_ptr<Model> cpu = create_mamba1(w, o);
  ASSERT_EQ(gpu->capacity(), kStreams);
  const MemoryPlan& m = gpu->info().memory;
  EXPECT_EQ(m.shards, 2);
  EXPECT_EQ(m.capacity, kStreams);
  EXPECT_EQ(m.capacity_reason, "requested");
  EXPECT_THAT(m.capacity_detail, testing::MatchesRegex("2 shards of at most 50 streams: step outputs \\(logits\\): "
                                                       "16000 bytes per stream, maxStorageBufferRange 1048576 of .* "
                                                       "holds 65 streams"));
  // The second shard adds what a 50-stream model spends beside its weights: the weights are
  // uploaded once.
  {
    LoadOptions half = on_vulkan();
    half.max_streams = 50;
    half.rollback_depth = 2;
    const MemoryPlan one = create_mamba1(w, half)->info().memory;
    uint64_t weights = 0;
    for (const auto& t : one.weights) weights += t.second;
    EXPECT_EQ(m.total_bytes, one.total_bytes + (one.total_bytes - weights));
  }

  std::vector<float> got(size_t(kStreams) * V), want(got.size());
  auto step_both = [&](const std::vector<int32_t>& slots, int t) {
    std::vector<int32_t> tokens(slots.size());
    for (size_t i = 0; i < slots.size(); ++i) tokens[i] = int32_t((slots[i] * 7 + t * 13) % V);
    const int n = int(slots.size());
    gpu->step(tokens.data(), slots.data(), n, got.data());
    cpu->step(tokens.data(), slots.data(), n, want.data());
    EXPECT_LE(max_rel_error(got.data(), want.data(), int64_t(n) * V), 1e-3f) << "step " << t;
  };
  // Every stream, rows in reverse order (the second shard's rows first), then a few from both.
  std::vector<int32_t> all(kStreams);
  for (int i = 0; i < kStreams; ++i) all[size_t(i)] = kStreams - 1 - i;
  step_both(all, 0);
  step_both({99, 3, 50, 49}, 1);
  step_both(all, 2);

  // Fork within a shard and across shards, both ways.
  for (auto [from, to] : {std::pair{3, 7}, std::pair{3, 77}, std::pair{60, 10}}) {
    gpu->fork(from, to);
    cpu->fork(from, to);
  }
  step_both({7, 77, 10, 3, 60}, 3);
  // Rollback and prefill in the second shard; a snapshot from it restores into the first.
  gpu->rollback(77, 1);
  cpu->rollback(77, 1);
  EXPECT_EQ(gpu->rollback_available(77), cpu->rollback_available(77));
  const std::vector<int32_t> prompt = {5, 17, 3999, 0, 42};
  gpu->prefill(95, prompt.data(), int(prompt.size()), got.data());
  cpu->prefill(95, prompt.data(), int(prompt.size()), want.data());
  EXPECT_LE(max_rel_error(got.data(), want.data(), V), 1e-3f) << "prefill";
  const std::vector<uint8_t> blob = gpu->snapshot(95);
  gpu->restore(20, blob.data(), blob.size());
  cpu->restore(20, blob.data(), blob.size());
  step_both({20, 95, 77}, 4);

  // A bad token in the second shard's row changes nothing in either shard; so does a duplicate slot.
  const std::vector<int32_t> slots = {1, 90};
  EXPECT_EQ(error_of([&] { gpu->step(std::vector<int32_t>{1, int32_t(V)}.data(), slots.data(), 2, nullptr); }),
            error_of([&] { cpu->step(std::vector<int32_t>{1, int32_t(V)}.data(), slots.data(), 2, nullptr); }));
  const std::vector<int32_t> dup = {90, 1, 90};
  EXPECT_EQ(error_of([&] { gpu->step(std::vector<int32_t>{1, 2, 3}.data(), dup.data(), 3, nullptr); }),
            error_of([&] { cpu->step(std::vector<int32_t>{1, 2, 3}.data(), dup.data(), 3, nullptr); }));
  EXPECT_EQ(error_of([&] { gpu->reset(kStreams); }), error_of([&] { cpu->reset(kStreams); }));
  step_both({1, 90}, 5);

  // Asynchronous steps: two in flight across both shards, collected in order.
  const std::vector<int32_t> async_slots = {40, 80, 0};
  const std::vector<int32_t> t1 = {1, 2, 3}, t2 = {4, 5, 6};
  std::vector<float> got2(got.size());
  gpu->submit({.tokens = t1.data(), .slots = async_slots.data(), .batch = 3, .want_outputs = true});
  gpu->submit({.tokens = t2.data(), .slots = async_slots.data(), .batch = 3, .want_outputs = true});
  EXPECT_EQ(gpu->in_flight(), 2);
  EXPECT_THAT(error_of([&] { gpu->snapshot(0); }), HasSubstr("not collected"));
  gpu->collect(nullptr, got.data());
  gpu->collect(nullptr, got2.data());
  cpu->step(t1.data(), async_slots.data(), 3, want.data());
  EXPECT_LE(max_rel_error(got.data(), want.data(), 3 * V), 1e-3f) << "first async step";
  cpu->step(t2.data(), async_slots.data(), 3, want.data());
  EXPECT_LE(max_rel_error(got2.data(), want.data(), 3 * V), 1e-3f) << "second async step";

  // Greedy sampling on the device picks each row's own argmax, rows from both shards.
  const std::vector<SamplingParams> greedy(3, SamplingParams{.temperature = 0.0f});
  std::vector<int32_t> next(3, -1);
  gpu->step_sample(t1.data(), async_slots.data(), 3, greedy.data(), next.data(), got.data());
  for (int i = 0; i < 3; ++i) {
    const float* row = got.data() + size_t(i) * V;
    EXPECT_EQ(next[size_t(i)], int32_t(std::max_element(row, row + V) - row)) << "row " << i;
  }
}

// Mamba-2 and S4D (a frame model) in shards too: 100 streams of 4000 outputs under tiny-bindings.
TEST(DeviceLimits, ShardsRunEveryArchitecture) {
  ScopedEnv profile("VKSSM_DEVICE_PROFILE", "tiny-bindings");
  constexpr int kStreams = 100;
  const Mamba2Weights m2 = random_mamba2(mamba2_config(), 4);  // vocabulary 4000
  const S4DConfig s4d_cfg{.d_input = 3, .d_model = 16, .d_state = 8, .n_layers = 2, .d_output = 4000};
  const S4DWeights s4d = random_s4d(s4d_cfg, 5);
  for (const std::string arch : {"mamba2", "s4d"}) {
    SCOPED_TRACE(arch);
    LoadOptions o = on_vulkan();
    o.max_streams = kStreams;
    auto make = [&](const LoadOptions& opt) { return arch == "s4d" ? create_s4d(s4d, opt) : create_mamba2(m2, opt); };
    const std::unique_ptr<Model> gpu = make(o);
    o.backend = BackendKind::Reference;
    const std::unique_ptr<Model> cpu = make(o);
    EXPECT_EQ(gpu->info().memory.shards, 2);
    const int64_t d_out = gpu->info().d_output, d_in = s4d_cfg.d_input;
    std::vector<int32_t> slots(kStreams);
    for (int i = 0; i < kStreams; ++i) slots[size_t(i)] = (i * 37) % kStreams;  // rows from both shards, mixed
    std::vector<float> got(size_t(kStreams) * size_t(d_out)), want(got.size());
    for (int t = 0; t < 3; ++t) {
      const int n = t == 1 ? 7 : kStreams;
      if (arch == "s4d") {
        std::vector<float> frames(size_t(n) * size_t(d_in));
        for (size_t i = 0; i < frames.size(); ++i) frames[i] = std::sin(float(i) * 0.37f + float(t));
        gpu->step_frames(frames.data(), slots.data(), n, got.data());
        cpu->step_frames(frames.data(), slots.data(), n, want.data());
      } else {
        std::vector<int32_t> tokens(static_cast<size_t>(n));
        for (int i = 0; i < n; ++i) tokens[size_t(i)] = (i * 11 + t * 5) % 4000;
        gpu->step(tokens.data(), slots.data(), n, got.data());
        cpu->step(tokens.data(), slots.data(), n, want.data());
      }
      EXPECT_LE(max_rel_error(got.data(), want.data(), int64_t(n) * d_out), 1e-3f) << "step " << t;
    }
  }
}

// A frame model in shards takes several frames per stream in one step: each shard's rows come
// back to the caller's order, F outputs per stream.
TEST(DeviceLimits, ShardsTakeSeveralFramesPerStream) {
  ScopedEnv profile("VKSSM_DEVICE_PROFILE", "tiny-bindings");
  constexpr int kStreams = 100, kFrames = 3;
  const S4DConfig cfg{.d_input = 3, .d_model = 16, .d_state = 8, .n_layers = 2, .d_output = 1000};
  const S4DWeights w = random_s4d(cfg, 6);
  LoadOptions o = on_vulkan();
  o.max_streams = kStreams;
  o.frames_per_step = kFrames;
  const std::unique_ptr<Model> gpu = create_s4d(w, o);
  o.backend = BackendKind::Reference;
  const std::unique_ptr<Model> cpu = create_s4d(w, o);
  EXPECT_GE(gpu->info().memory.shards, 2);
  std::vector<int32_t> slots(kStreams);
  for (int i = 0; i < kStreams; ++i) slots[size_t(i)] = (i * 37) % kStreams;  // rows from every shard, mixed
  std::vector<float> frames(size_t(kStreams) * kFrames * 3);
  for (size_t i = 0; i < frames.size(); ++i) frames[i] = std::sin(float(i) * 0.29f);
  std::vector<float> got(size_t(kStreams) * kFrames * 1000), want(got.size());
  for (Model* m : {gpu.get(), cpu.get()}) {
    m->submit({.frames = frames.data(), .slots = slots.data(), .batch = kStreams, .want_outputs = true,
               .frames_per_stream = kFrames});
    m->collect(nullptr, m == gpu.get() ? got.data() : want.data());
  }
  EXPECT_LE(max_rel_error(got.data(), want.data(), int64_t(got.size())), 1e-3f);
  EXPECT_EQ(error_of([&] {
              gpu->submit({.frames = frames.data(), .slots = slots.data(), .batch = 1, .frames_per_stream = 4});
            }),
            "submit: frames_per_stream 4 is outside 1 .. 3 (LoadOptions::frames_per_step)");
}

// An automatic capacity stops at one binding (one shard: the weights are read once a step), and
// the plan says which buffer and limit.
TEST(DeviceLimits, AutomaticCapacityStopsAtOneBinding) {
  ScopedEnv profile("VKSSM_DEVICE_PROFILE", "tiny-bindings");
  const Mamba1Weights large_vocab = random_mamba1(per_stream_config(4000), 1);
  LoadOptions o = on_vulkan();
  o.max_streams = 0;
  const std::unique_ptr<Model> m = create_mamba1(large_vocab, o);
  EXPECT_EQ(m->capacity(), 65);
  EXPECT_EQ(m->info().memory.shards, 1);
  EXPECT_EQ(m->info().memory.capacity_reason, "binding limit");
  EXPECT_THAT(m->info().memory.capacity_detail, HasSubstr("step outputs (logits): 16000 bytes per stream"));
}

// ---- uploads: staged, written in place, flushed ---------------------------------------------------

// Unified memory (lavapipe is) is written in place; VKSSM_UPLOAD=staged forces the staging copy of
// a discrete card and VKSSM_UPLOAD=flushed the flushes of non-coherent memory. All give the CPU
// reference's outputs with the validation layer on.
class UploadPathTest : public testing::TestWithParam<const char*> {};

TEST_P(UploadPathTest, MatchesCpuReference) {
  const std::string path = GetParam();
  bool unified = false;
  {
    const Mamba1Weights w = random_mamba1(testing_helpers::small_mamba1_config(64), 1);
    unified = vulkan(*create_mamba1(w, on_vulkan())).caps().unified_memory;
  }
  ScopedEnv upload("VKSSM_UPLOAD", path.c_str());
  if (path != "staged" && !unified) {  // a discrete card: the in-place paths are refused, named
    const Mamba1Weights w = random_mamba1(testing_helpers::small_mamba1_config(64), 1);
    EXPECT_THAT(error_of([&] { create_mamba1(w, on_vulkan()); }),
                HasSubstr("VKSSM_UPLOAD='" + path + "' writes device memory in place, but "));
    return;
  }
  auto w = std::make_shared<Mamba1Weights>(random_mamba1(mamba1_config(), 3));
  const Make make = [w](const LoadOptions& o) { return create_mamba1(*w, o); };
  {
    const std::unique_ptr<Model> m = make(on_vulkan());
    const VulkanContext::UploadCounters& n = vulkan(*m).upload_counters();
    EXPECT_EQ(m->info().memory.upload, path);
    if (path == "staged") {
      EXPECT_GT(n.staged_bytes, 0u);
      EXPECT_EQ(n.mapped_bytes, 0u);
    } else {
      EXPECT_EQ(n.staged_bytes, 0u);
      EXPECT_GE(n.mapped_bytes, m->info().memory.weights.front().second);
      if (path == "flushed") {
        EXPECT_GT(n.flushes, 0u);
      }
    }
  }
  check_against_cpu(make, false, 0);
}

INSTANTIATE_TEST_SUITE_P(DeviceLimits, UploadPathTest, testing::Values("staged", "mapped", "flushed"));

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
  // Rows in bands of 128 (host/quant_matrix.h): a slice holds whole bands, and 100 rows pad to 128.
  EXPECT_EQ(tile_rows(100, 32, caps, 0, "lm_head", 128), 100u);
  EXPECT_EQ(tile_rows(200, 20, caps, 0, "lm_head"), 200u);  // 4000 bytes fit one binding,
  EXPECT_EQ(tile_rows(200, 20, caps, 0, "lm_head", 128), 128u);  // but not padded to 256 rows (5120)
  EXPECT_EQ(error_of([&] { tile_rows(1000, 1024, caps, 0, "lm_head"); }),
            "lm_head: rows of 1024 bytes cannot be split into slices of 64 rows within maxStorageBufferRange (4096) "
            "of a tiny device");
}

}  // namespace
}  // namespace vkssm

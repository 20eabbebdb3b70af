// The Vulkan Mamba-1 step against the CPU reference, on random models with awkward sizes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include <unistd.h>
#include <cmath>
#include <vector>

#include "engine/vkssm.hpp"
#include "engine/vulkan_step_model.h"
#include "tests/test_helpers.h"
#include "host/dtype.h"
#include "host/error.h"
#include "models/mamba1/mamba1_model.h"

namespace vkssm {
namespace {

using testing_helpers::error_of;
using testing_helpers::max_rel_error;

struct Shape {
  const char* name;
  int64_t d_model, n_layer, d_state, d_conv, dt_rank, vocab;
  bool tied;
  WeightStorage storage;
  int streams;
};

void PrintTo(const Shape& s, std::ostream* os) { *os << s.name; }

Mamba1Config config_of(const Shape& s) {
  Mamba1Config c;
  c.d_model = s.d_model;
  c.n_layer = s.n_layer;
  c.d_state = s.d_state;
  c.d_conv = s.d_conv;
  c.dt_rank = s.dt_rank;
  c.vocab_size = s.vocab;
  c.expand = 2;
  c.d_inner = 2 * s.d_model;
  c.tie_embeddings = s.tied;
  return c;
}

// The values an fp16 device copy holds, so the reference sees exactly what the GPU reads.
void round_to_f16(std::vector<float>& v) {
  for (float& x : v) x = half_to_float(float_to_half(x));
}
void round_matrices_to_f16(Mamba1Weights& w) {
  round_to_f16(w.embeddings);
  round_to_f16(w.lm_head);
  for (auto& l : w.layers) {
    round_to_f16(l.in_proj);
    round_to_f16(l.x_proj);
    round_to_f16(l.dt_proj_w);
    round_to_f16(l.out_proj);
  }
}


class GpuVsCpu : public testing::TestWithParam<Shape> {};

TEST_P(GpuVsCpu, LogitsMatchReferenceEveryToken) {
  const Shape s = GetParam();
  Mamba1Weights w = random_mamba1(config_of(s), 1234);
  if (s.storage == WeightStorage::F16) round_matrices_to_f16(w);
  LoadOptions opt = testing_helpers::on_vulkan();
  opt.max_streams = s.streams + 1;  // one slot stays unused: it must not disturb the others
  opt.weights = s.storage;
  auto gpu = create_mamba1(w, opt);
  EXPECT_EQ(gpu->info().weight_type, s.storage == WeightStorage::F16 ? "f16" : "f32");
  const uint64_t recorded_at_load = gpu->counters().recordings;
  EXPECT_GT(recorded_at_load, 0u);
  EXPECT_EQ(gpu->counters().submits, 0u);

  Mamba1CpuReference ref(w);
  const int B = s.streams;
  const int64_t V = s.vocab;
  std::vector<Mamba1CpuReference::State> states(B, ref.new_state());
  // Streams use slots in reverse order so slot != batch position.
  std::vector<int32_t> slots(B);
  for (int b = 0; b < B; ++b) slots[b] = B - b;
  std::vector<float> got(B * V), want(B * V);
  for (int t = 0; t < 7; ++t) {
    std::vector<int32_t> tokens(B);
    for (int b = 0; b < B; ++b) tokens[b] = int32_t((t * 131 + b * 977 + 5) % V);
    if (t == 0) tokens[0] = int32_t(V - 1);  // the last row of the embedding
    gpu->step(tokens.data(), slots.data(), B, got.data());
    for (int b = 0; b < B; ++b) ref.step(states[b], tokens[b], want.data() + b * V);
    for (int b = 0; b < B; ++b)
      ASSERT_LT(max_rel_error(got.data() + b * V, want.data() + b * V, V), 1e-3f)
          << "token " << t << " stream " << b;
  }
  StepCounters c = gpu->counters();
  EXPECT_EQ(c.steps, 7u);
  EXPECT_EQ(c.submits, 7u);
  EXPECT_EQ(c.recordings, recorded_at_load);  // everything is recorded at load, never again
  // embed + 4 per layer + head; 5 per layer where x_proj runs as a matvec (texel split)
  const uint64_t per_layer = dynamic_cast<const VulkanStepModel&>(*gpu).tuning().texel ? 5 : 4;
  EXPECT_EQ(c.dispatches, 7u * (2 + per_layer * uint64_t(s.n_layer)));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, GpuVsCpu,
    testing::Values(
        Shape{"d37_n16_k4_tied_f32_b1", 37, 2, 16, 4, 3, 1000, true, WeightStorage::F32, 1},
        Shape{"d37_n1_k2_untied_f32_b3", 37, 2, 1, 2, 1, 1000, false, WeightStorage::F32, 3},
        Shape{"d64_n16_k4_untied_f16_b3", 64, 3, 16, 4, 4, 1000, false, WeightStorage::F16, 3},
        Shape{"d20_n1_k2_tied_f16_b1", 20, 1, 1, 2, 1, 1000, true, WeightStorage::F16, 1},
        Shape{"d130_n16_k4_tied_f32_b3", 130, 2, 16, 4, 9, 1000, true, WeightStorage::F32, 3}),
    [](const testing::TestParamInfo<Shape>& i) { return std::string(i.param.name); });

// Every work split the engine may pick (GPU: 64 threads + subgroup reductions over storage
// buffers; CPU drivers: 8 threads over texel buffers; one thread per workgroup) gives the same
// numbers. VKSSM_TUNE forces the split; lavapipe runs them all.
TEST(Mamba1Gpu, EveryWorkSplitMatchesReference) {
  Shape s{"tunings", 45, 2, 16, 4, 3, 300, false, WeightStorage::F32, 5};
  const std::pair<const char*, const char*> splits[] = {
      {"64,1,64,64,0", "local=64 row_groups=1 conv_chunk=64 ssm_chunk=64 texel=0"},
      {"1,8,256,256,0", "local=1 row_groups=8 conv_chunk=256 ssm_chunk=256 texel=0"},
      {"8,2,32,16,1", "local=8 row_groups=2 conv_chunk=32 ssm_chunk=16 texel=1"},
      {"32,3,40,24,0", "local=32 row_groups=3 conv_chunk=40 ssm_chunk=24 texel=0"}};
  // Without subgroup arithmetic (VKSSM_DEVICE_PROFILE=vulkan-1.1-minimal) the matvec reduces at
  // most 32 threads in shared memory: a wider split is refused, naming the reason.
  const bool subgroups =
      dynamic_cast<const VulkanStepModel&>(*create_mamba1(random_mamba1(config_of(s), 99), testing_helpers::on_vulkan())).caps().subgroup_arithmetic;
  for (const auto& [tune, split] : splits) {
    for (WeightStorage storage : {WeightStorage::F32, WeightStorage::F16}) {
      SCOPED_TRACE(tune);
      Mamba1Weights w = random_mamba1(config_of(s), 99);
      if (storage == WeightStorage::F16) round_matrices_to_f16(w);
      setenv("VKSSM_TUNE", tune, 1);
      LoadOptions opt = testing_helpers::on_vulkan();
      opt.max_streams = s.streams;
      opt.weights = storage;
      if (!subgroups && std::atoi(tune) > 32) {
        EXPECT_THAT(error_of([&] { create_mamba1(w, opt); }),
                    testing::HasSubstr("exceeds 32 threads (no subgroup arithmetic)"));
        unsetenv("VKSSM_TUNE");
        continue;
      }
      auto gpu = create_mamba1(w, opt);
      unsetenv("VKSSM_TUNE");
      // The split that ran is the one asked for.
      EXPECT_EQ(dynamic_cast<const VulkanStepModel&>(*gpu).tuning().describe(), split);
      Mamba1CpuReference ref(w);
      const int B = s.streams;
      std::vector<Mamba1CpuReference::State> states(B, ref.new_state());
      std::vector<int32_t> slots{4, 0, 2, 1, 3};
      std::vector<float> got(B * s.vocab), want(s.vocab);
      for (int t = 0; t < 3; ++t) {
        std::vector<int32_t> tokens(B);
        for (int b = 0; b < B; ++b) tokens[b] = int32_t((t * 17 + b * 31) % s.vocab);
        gpu->step(tokens.data(), slots.data(), B, got.data());
        for (int b = 0; b < B; ++b) {
          ref.step(states[b], tokens[b], want.data());
          ASSERT_LT(max_rel_error(got.data() + b * s.vocab, want.data(), s.vocab), 1e-3f) << "stream " << b;
        }
      }
    }
  }
}

Mamba1Weights small_model() {
  Shape s{"small", 24, 2, 4, 4, 2, 50, true, WeightStorage::F32, 1};
  return random_mamba1(config_of(s), 7);
}

TEST(Mamba1Gpu, ResetAndStreamsJoiningLaterMatchRunningAlone) {
  Mamba1Weights w = small_model();
  LoadOptions opt = testing_helpers::on_vulkan();
  opt.max_streams = 3;
  auto gpu = create_mamba1(w, opt);
  Mamba1CpuReference ref(w);
  const int64_t V = w.cfg.vocab_size;
  std::vector<float> got(3 * V), want(V);

  // Stream A runs 4 tokens alone in slot 2.
  auto a = ref.new_state();
  for (int32_t tok : {3, 9, 27, 1}) {
    int32_t slot = 2;
    gpu->step(&tok, &slot, 1, got.data());
    ref.step(a, tok, want.data());
    ASSERT_LT(max_rel_error(got.data(), want.data(), V), 1e-3f);
  }
  // Slot 2 is reset and reused by stream B while slot 0 joins with stream C, in one batch.
  gpu->reset(2);
  auto b = ref.new_state(), c = ref.new_state();
  int32_t slots[2] = {0, 2};
  for (int t = 0; t < 3; ++t) {
    int32_t tokens[2] = {int32_t(10 + t), int32_t(40 - t)};
    gpu->step(tokens, slots, 2, got.data());
    ref.step(c, tokens[0], want.data());
    ASSERT_LT(max_rel_error(got.data(), want.data(), V), 1e-3f);
    ref.step(b, tokens[1], want.data());
    ASSERT_LT(max_rel_error(got.data() + V, want.data(), V), 1e-3f);
  }
}


TEST(Mamba1Gpu, BadStepInputsAreRefusedAndChangeNothing) {
  Mamba1Weights w = small_model();
  LoadOptions opt = testing_helpers::on_vulkan();
  opt.max_streams = 2;
  auto gpu = create_mamba1(w, opt);
  std::vector<float> logits(2 * w.cfg.vocab_size);
  int32_t tok = 50, slot = 0;
  EXPECT_EQ(error_of([&] { gpu->step(&tok, &slot, 1, logits.data()); }), "token id 50 out of range [0, 50)");
  tok = -1;
  EXPECT_EQ(error_of([&] { gpu->step(&tok, &slot, 1, logits.data()); }), "token id -1 out of range [0, 50)");
  tok = 1;
  slot = 2;
  EXPECT_EQ(error_of([&] { gpu->step(&tok, &slot, 1, logits.data()); }), "slot 2 out of range [0, 2)");
  int32_t toks[3] = {1, 2, 3}, slots[3] = {0, 1, 0};
  EXPECT_THAT(error_of([&] { gpu->step(toks, slots, 3, logits.data()); }),
              testing::HasSubstr("batch of 3 streams exceeds the capacity of 2"));
  int32_t twice[2] = {0, 0};
  EXPECT_EQ(error_of([&] { gpu->step(toks, twice, 2, logits.data()); }), "slot 0 appears twice in one step");
  EXPECT_EQ(gpu->counters().submits, 0u);  // nothing reached the GPU

  // A refused step left the state untouched: the next good step equals a fresh stream's first.
  Mamba1CpuReference ref(w);
  auto st = ref.new_state();
  std::vector<float> want(w.cfg.vocab_size);
  tok = 4;
  slot = 0;
  gpu->step(&tok, &slot, 1, logits.data());
  ref.step(st, tok, want.data());
  EXPECT_LT(max_rel_error(logits.data(), want.data(), w.cfg.vocab_size), 1e-3f);
}

TEST(Mamba1Gpu, ValuesBeyondFp16KeepFp32OrAreRefused) {
  Mamba1Weights w = small_model();
  w.source_dtype = DType::BF16;           // as if read from a bf16 checkpoint
  w.layers[1].out_proj[3] = 1.0e6f;       // representable in bf16, not in fp16
  LoadOptions opt = testing_helpers::on_vulkan();
  opt.weights = WeightStorage::F16;
  EXPECT_THAT(error_of([&] { create_mamba1(w, opt); }),
              testing::HasSubstr("tensor layers.1.out_proj of random_mamba1(seed=7) has values beyond the fp16 range (65504)"));
  opt.weights = WeightStorage::Auto;
  EXPECT_EQ(create_mamba1(w, opt)->info().weight_type, "f32");
}

// A pipeline cache file is written at load and read back by the next load.
TEST(Mamba1Gpu, PipelineCacheIsPersisted) {
  auto dir = std::filesystem::temp_directory_path() / ("vkssm_cache_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  LoadOptions opt = testing_helpers::on_vulkan();
  opt.cache_dir = dir.string();
  create_mamba1(small_model(), opt);
  ASSERT_TRUE(std::filesystem::exists(dir));
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    EXPECT_GT(std::filesystem::file_size(e.path()), 0u);
    ++files;
  }
  EXPECT_EQ(files, 1);
  auto again = create_mamba1(small_model(), opt);  // loads with the cache present
  EXPECT_EQ(again->info().backend, "vulkan");
  std::filesystem::remove_all(dir);
}

// Steps whose logits are not asked for skip the head (prompt tokens) and leave the same state.
// Both work splits: storage buffers (4 dispatches per layer), and texel buffers, where x_proj runs
// as one more matvec and the scan reads dt_proj through a texel buffer (5 per layer).
TEST(Mamba1Gpu, StepsWithoutLogitsSkipTheHeadAndKeepTheState) {
  Mamba1Weights w = small_model();
  for (const auto& [tune, per_layer] : {std::pair{"8,32,256,256,0", 4u}, std::pair{"8,32,256,256,1", 5u}}) {
    SCOPED_TRACE(tune);
    testing_helpers::ScopedEnv env("VKSSM_TUNE", tune);
    auto gpu = create_mamba1(w, testing_helpers::on_vulkan());
    Mamba1CpuReference ref(w);
    const int64_t V = w.cfg.vocab_size;
    std::vector<float> got(V), want(V);
    auto st = ref.new_state();
    int32_t slot = 1;
    for (int32_t tok : {5, 17, 33, 2}) {
      gpu->step(&tok, &slot, 1, nullptr);
      ref.step(st, tok, want.data());
    }
    int32_t last = 41;
    gpu->step(&last, &slot, 1, got.data());
    ref.step(st, last, want.data());
    EXPECT_LT(max_rel_error(got.data(), want.data(), V), 1e-3f);
    const uint64_t per_step = 2 + per_layer * uint64_t(w.cfg.n_layer);  // embedding, layers, head
    EXPECT_EQ(gpu->counters().dispatches, 4 * (per_step - 1) + per_step);
    EXPECT_EQ(gpu->counters().submits, 5u);
  }
}

// max_streams = 0 sizes the pool from device memory: a tiny model gets the 1024-slot ceiling, and
// the last slot works like the first.
TEST(Mamba1Gpu, AutomaticCapacityFillsFromDeviceMemory) {
  Mamba1Weights w = small_model();
  LoadOptions opt = testing_helpers::on_vulkan();
  opt.max_streams = 0;
  auto gpu = create_mamba1(w, opt);
  ASSERT_EQ(gpu->capacity(), 1024);
  Mamba1CpuReference ref(w);
  auto st = ref.new_state();
  std::vector<float> got(w.cfg.vocab_size), want(w.cfg.vocab_size);
  int32_t slot = 1023, tok = 7;
  gpu->step(&tok, &slot, 1, got.data());
  ref.step(st, tok, want.data());
  EXPECT_LT(max_rel_error(got.data(), want.data(), w.cfg.vocab_size), 1e-3f);
  opt.max_streams = -1;
  EXPECT_EQ(error_of([&] { create_mamba1(w, opt); }), "max_streams must be at least 1 (or 0 for automatic), got -1");
}

TEST(Mamba1Gpu, CpuBackendMatchesReference) {
  Mamba1Weights w = small_model();
  LoadOptions opt;
  opt.backend = BackendKind::Reference;
  auto cpu = create_mamba1(w, opt);
  EXPECT_EQ(cpu->info().backend, "reference");
  Mamba1CpuReference ref(w);
  auto st = ref.new_state();
  std::vector<float> got(w.cfg.vocab_size), want(w.cfg.vocab_size);
  for (int32_t tok : {1, 2, 3}) {
    int32_t slot = 0;
    cpu->step(&tok, &slot, 1, got.data());
    ref.step(st, tok, want.data());
    EXPECT_EQ(got, want);
  }
}

}  // namespace
}  // namespace vkssm

namespace vkssm {
namespace {

TEST(VulkanDevice, IndexOutOfRangeNamesTheCount) {
  LoadOptions opt = testing_helpers::on_vulkan();
  opt.device = 57;
  std::string msg;
  try {
    create_mamba1(small_model(), opt);
  } catch (const Error& e) {
    msg = e.what();
  }
  EXPECT_THAT(msg, testing::HasSubstr("device index 57 out of range:"));
  EXPECT_THAT(msg, testing::HasSubstr("Vulkan device(s) found"));
}

TEST(VulkanDevice, NoDriverGivesAClearError) {
  // The loader reads the driver list at instance creation: point it at a file that isn't there.
  const char* old_icd = std::getenv("VK_ICD_FILENAMES");
  const char* old_drv = std::getenv("VK_DRIVER_FILES");
  std::string keep_icd = old_icd ? old_icd : "", keep_drv = old_drv ? old_drv : "";
  setenv("VK_ICD_FILENAMES", "/nonexistent/vkssm_no_driver.json", 1);
  setenv("VK_DRIVER_FILES", "/nonexistent/vkssm_no_driver.json", 1);
  std::string msg;
  try {
    create_mamba1(small_model(), testing_helpers::on_vulkan());
  } catch (const Error& e) {
    msg = e.what();
  }
  if (old_icd) setenv("VK_ICD_FILENAMES", keep_icd.c_str(), 1); else unsetenv("VK_ICD_FILENAMES");
  if (old_drv) setenv("VK_DRIVER_FILES", keep_drv.c_str(), 1); else unsetenv("VK_DRIVER_FILES");
  EXPECT_THAT(msg, testing::HasSubstr("no Vulkan device found (on a machine without a GPU, install "
                                      "mesa-vulkan-drivers"));
}

}  // namespace
}  // namespace vkssm

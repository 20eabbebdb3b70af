// Mamba-2 on Vulkan against the CPU reference, at awkward sizes: several groups, head_dim not a
// multiple of the subgroup size, d_state from 16 to 128, fp32 and fp16 weights, several streams
// in slots out of order; plus snapshot/restore across backends and prefill.
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/vkssm.hpp"
#include "host/dtype.h"
#include "host/npy.h"
#include "models/mamba2/mamba2_model.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

using testing_helpers::max_rel_error;

struct Shape2 {
  const char* name;
  int64_t d_model, n_layer, d_state, head_dim, n_groups, expand, d_conv, vocab;
  bool tied, bias;
  WeightStorage storage;
  int streams;
};

Mamba2Config config_of(const Shape2& s) {
  Mamba2Config c;
  c.d_model = s.d_model;
  c.n_layer = s.n_layer;
  c.d_state = s.d_state;
  c.head_dim = s.head_dim;
  c.n_groups = s.n_groups;
  c.expand = s.expand;
  c.d_conv = s.d_conv;
  c.vocab_size = s.vocab;
  c.tie_embeddings = s.tied;
  c.use_bias = s.bias;
  return c;
}

class Mamba2GpuVsCpu : public testing::TestWithParam<Shape2> {};

TEST_P(Mamba2GpuVsCpu, LogitsMatchReferenceEveryToken) {
  const Shape2& s = GetParam();
  Mamba2Weights w = random_mamba2(config_of(s), 17);
  if (s.storage == WeightStorage::F16) {
    // Both sides then compute with the same (fp16-representable) matrices.
    auto round = [](std::vector<float>& v) {
      for (float& x : v) x = half_to_float(float_to_half(x));
    };
    round(w.embeddings);
    round(w.lm_head);
    for (auto& l : w.layers) {
      round(l.in_proj);
      round(l.out_proj);
    }
  }
  LoadOptions opt = testing_helpers::on_vulkan();
  opt.max_streams = s.streams + 1;
  opt.weights = s.storage;
  auto gpu = create_mamba2(w, opt);
  LoadOptions cpu_opt = opt;
  cpu_opt.backend = BackendKind::Reference;
  auto cpu = create_mamba2(w, cpu_opt);
  const int B = s.streams;
  const int64_t V = s.vocab;
  std::vector<int32_t> slots(B);
  for (int b = 0; b < B; ++b) slots[b] = B - b;
  std::vector<float> got(B * V), want(B * V);
  for (int t = 0; t < 6; ++t) {
    std::vector<int32_t> tokens(B);
    for (int b = 0; b < B; ++b) tokens[b] = int32_t((t * 131 + b * 977 + 5) % V);
    gpu->step(tokens.data(), slots.data(), B, got.data());
    cpu->step(tokens.data(), slots.data(), B, want.data());
    for (int b = 0; b < B; ++b)
      ASSERT_LT(max_rel_error(got.data() + b * V, want.data() + b * V, V), 1e-3f) << "token " << t << " stream " << b;
  }
  // The states agree too, through the shared blob format.
  const std::vector<uint8_t> g = gpu->snapshot(slots[0]);
  cpu->restore(slots[0], g.data(), g.size());
  const int32_t tok = 3;
  gpu->step(&tok, &slots[0], 1, got.data());
  cpu->step(&tok, &slots[0], 1, want.data());
  EXPECT_LT(max_rel_error(got.data(), want.data(), V), 1e-3f);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, Mamba2GpuVsCpu,
    testing::Values(
        //      name                  D   L   N    P   G  ex  K   V     tied  bias  storage              B
        Shape2{"d24_n16_p12_g2_b3", 24, 2, 16, 12, 2, 2, 4, 300, false, true, WeightStorage::F32, 3},
        Shape2{"d20_n128_p10_g1", 20, 1, 128, 10, 1, 2, 4, 100, true, false, WeightStorage::F32, 1},
        Shape2{"d32_n64_p16_g4_f16", 32, 2, 64, 16, 4, 2, 3, 200, true, false, WeightStorage::F16, 2},
        Shape2{"d18_n24_p9_g2_k2", 18, 2, 24, 9, 2, 2, 2, 50, false, false, WeightStorage::F32, 2}),
    [](const testing::TestParamInfo<Shape2>& i) { return std::string(i.param.name); });

// The checkpoint and logits the independent PyTorch reference wrote (tests/data/mamba2_tiny_ref.txt).
TEST(Mamba2Reference, BothBackendsMatchThePyTorchReference) {
  const std::string dir = std::string(VKSSM_SOURCE_DIR) + "/tests/data/";
  const NpyArray want = read_npy_f32(dir + "mamba2_tiny_ref.npy");
  const std::vector<int32_t> ids = {0, 5, 47, 12, 3, 3, 9, 40, 1, 22, 31, 7, 8, 19, 44, 2, 30, 11, 6, 25};
  ASSERT_EQ(want.shape, (std::vector<int64_t>{int64_t(ids.size()), 48}));
  for (BackendKind backend : {BackendKind::Reference, BackendKind::Vulkan}) {
    LoadOptions opt;
    opt.backend = backend;
    auto m = load_model(dir + "mamba2_tiny", opt);
    EXPECT_EQ(m->info().architecture, "mamba2");
    ASSERT_EQ(m->info().vocab_size, 48);
    std::vector<float> got(48);
    const int32_t slot = 0;
    float worst = 0;
    for (size_t t = 0; t < ids.size(); ++t) {
      m->step(&ids[t], &slot, 1, got.data());
      for (int v = 0; v < 48; ++v) worst = std::max(worst, std::fabs(got[v] - want.data[t * 48 + v]));
    }
    EXPECT_LT(worst, 1e-4f) << m->info().backend;
  }
}

TEST(Mamba2Gpu, PrefillAndRollbackMatchSteps) {
  Mamba2Config c;
  c.d_model = 24;
  c.n_layer = 2;
  c.d_state = 16;
  c.head_dim = 12;
  c.n_groups = 2;
  c.vocab_size = 64;
  const Mamba2Weights w = random_mamba2(c, 5);
  LoadOptions opt = testing_helpers::on_vulkan();
  opt.max_streams = 2;
  opt.rollback_depth = 2;
  auto stepped = create_mamba2(w, opt);
  opt.rollback_depth = 0;
  auto prefilled = create_mamba2(w, opt);
  std::vector<int32_t> prompt(80);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = int32_t((i * 13 + 1) % 64);
  std::vector<float> a(64), b(64);
  const int32_t slot = 1;
  for (size_t t = 0; t < prompt.size(); ++t) stepped->step(&prompt[t], &slot, 1, a.data());
  prefilled->prefill(slot, prompt.data(), int(prompt.size()), b.data());
  EXPECT_LT(max_rel_error(a.data(), b.data(), 64), 1e-5f);
  EXPECT_EQ(stepped->snapshot(slot), prefilled->snapshot(slot));
  const std::vector<uint8_t> before = stepped->snapshot(slot);
  stepped->step(&prompt[0], &slot, 1, nullptr);
  stepped->step(&prompt[1], &slot, 1, nullptr);
  stepped->rollback(slot, 2);
  EXPECT_EQ(stepped->snapshot(slot), before);
}

}  // namespace
}  // namespace vkssm

// S4D on Vulkan: against the PyTorch reference fixtures (FFT kernel form, tests/data/s4d_tiny_ref.txt)
// and against the CPU reference at other sizes, several streams, pre- and post-norm; state blobs
// move between backends.
#include <algorithm>
#include <cmath>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/vkssm.hpp"
#include "host/npy.h"
#include "models/s4d/s4d_model.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

using testing_helpers::max_rel_error;

float max_abs_diff(const std::vector<float>& a, const float* b) {
  float worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

TEST(S4DGpu, MatchesThePyTorchReference) {
  const std::string dir = std::string(VKSSM_SOURCE_DIR) + "/tests/data/";
  const NpyArray inputs = read_npy_f32(dir + "s4d_tiny_inputs.npy");
  for (const char* name : {"s4d_tiny", "s4d_tiny_prenorm"}) {
    const NpyArray want = read_npy_f32(dir + name + "_ref.npy");
    LoadOptions opt;
    opt.backend = BackendKind::Vulkan;
    auto m = load_model(dir + name, opt);
    ASSERT_EQ(m->info().d_input, 3);
    ASSERT_EQ(m->info().d_output, 5);
    const int32_t slot = 0;
    std::vector<float> got(5 * 24);
    for (int t = 0; t < 24; ++t) m->step_frames(inputs.data.data() + t * 3, &slot, 1, got.data() + t * 5);
    EXPECT_LT(max_abs_diff(got, want.data.data()), 1e-4f) << name;
  }
}

struct S4DGpuCase {
  const char* name;
  bool prenorm;
  int64_t d_model, d_state;
  std::vector<int32_t> slots;  // the step's rows
  int capacity;
  const char* tune = "";  // VKSSM_TUNE: "" the device's table (lavapipe: the CPU-driver variants)
};

void PrintTo(const S4DGpuCase& c, std::ostream* os) { *os << c.name; }

class S4DGpuVsCpu : public testing::TestWithParam<S4DGpuCase> {};

// The case's shape with 5 inputs, 7 outputs and `layers` layers.
S4DConfig config_of(const S4DGpuCase& p, int64_t layers) {
  S4DConfig c;
  c.d_input = 5;
  c.d_model = p.d_model;
  c.d_state = p.d_state;
  c.n_layers = layers;
  c.d_output = 7;
  c.prenorm = p.prenorm;
  return c;
}

// Odd sizes take the shaders' scalar paths; d_model a multiple of 4 with an even mode count their
// four-channel and two-mode paths; 19 streams fill more than two SIMD vectors of stream lanes on
// CPU drivers, the last one partly. The GPU split (storage buffers; 32-thread workgroups, which
// every device profile allows) runs on lavapipe too through VKSSM_TUNE.
TEST_P(S4DGpuVsCpu, StreamsMatchTheCpuReference) {
  const S4DGpuCase& p = GetParam();
  testing_helpers::ScopedEnv split("VKSSM_TUNE", p.tune);
  const S4DConfig c = config_of(p, 3);
  const S4DWeights w = random_s4d(c, 21);
  LoadOptions opt = testing_helpers::on_vulkan(p.capacity);
  auto gpu = create_s4d(w, opt);
  opt.backend = BackendKind::Reference;
  auto cpu = create_s4d(w, opt);
  const int B = int(p.slots.size());
  const std::vector<int32_t>& slots = p.slots;
  std::vector<float> frames(B * 5), got(B * 7), want(B * 7);
  for (int t = 0; t < 10; ++t) {
    for (size_t i = 0; i < frames.size(); ++i) frames[i] = std::sin(0.7f * float(t) + 0.37f * float(i));
    gpu->step_frames(frames.data(), slots.data(), B, got.data());
    cpu->step_frames(frames.data(), slots.data(), B, want.data());
    for (int b = 0; b < B; ++b)
      ASSERT_LT(max_rel_error(got.data() + b * 7, want.data() + b * 7, 7), 1e-4f) << "step " << t << " stream " << b;
  }
  // A GPU state blob continues on the CPU like the CPU's own state.
  const std::vector<uint8_t> blob = gpu->snapshot(0);
  cpu->restore(1, blob.data(), blob.size());
  const int32_t s0 = 0, s1 = 1;
  cpu->step_frames(frames.data(), &s0, 1, want.data());
  cpu->step_frames(frames.data(), &s1, 1, got.data());
  EXPECT_LT(max_rel_error(got.data(), want.data(), 7), 1e-4f);
  EXPECT_EQ(gpu->info().backend, "vulkan");
  const int32_t tok = 1;
  EXPECT_EQ(testing_helpers::error_of([&] { gpu->step(&tok, &s0, 1, nullptr); }),
            "model 's4d' takes input frames (step_frames), not token ids");
}

// Several frames per stream in one step (StepRequest::frames_per_stream) give the bits that one
// step per frame gives on the same model, and the CPU reference's values; a slot reset between
// steps starts its run from zeros.
TEST_P(S4DGpuVsCpu, SeveralFramesPerStepEqualOneStepPerFrame) {
  const S4DGpuCase& p = GetParam();
  testing_helpers::ScopedEnv split("VKSSM_TUNE", p.tune);
  const S4DConfig c = config_of(p, 2);
  const S4DWeights w = random_s4d(c, 22);
  LoadOptions opt = testing_helpers::on_vulkan(p.capacity);
  opt.frames_per_step = 4;
  auto runs = create_s4d(w, opt);
  auto single = create_s4d(w, opt);
  opt.backend = BackendKind::Reference;
  auto cpu = create_s4d(w, opt);
  const int B = int(p.slots.size());
  const std::vector<int32_t>& slots = p.slots;
  // Frames [stream][frame][5] for up to 4 frames per stream.
  auto frames_of = [&](int step, int F) {
    std::vector<float> f(size_t(B) * F * 5);
    for (size_t i = 0; i < f.size(); ++i) f[i] = std::sin(0.9f * float(step) + 0.31f * float(i));
    return f;
  };
  for (int step = 0; step < 4; ++step) {
    const int F = step == 0 ? 1 : step + 1;  // 1, 2, 3, 4 frames per stream
    if (step == 2) {
      runs->reset(slots[0]);
      single->reset(slots[0]);
      cpu->reset(slots[0]);
    }
    const std::vector<float> frames = frames_of(step, F);
    std::vector<float> got(size_t(B) * F * 7), want(got.size()), cpu_out(got.size());
    runs->submit({.frames = frames.data(), .slots = slots.data(), .batch = B, .want_outputs = true,
                  .frames_per_stream = F});
    runs->collect(nullptr, got.data());
    cpu->submit({.frames = frames.data(), .slots = slots.data(), .batch = B, .want_outputs = true,
                 .frames_per_stream = F});
    cpu->collect(nullptr, cpu_out.data());
    // The same frames one step each: frame t of every stream, then t + 1.
    std::vector<float> one(size_t(B) * 5), out(size_t(B) * 7);
    for (int t = 0; t < F; ++t) {
      for (int b = 0; b < B; ++b)
        std::copy_n(frames.begin() + (size_t(b) * F + t) * 5, 5, one.begin() + size_t(b) * 5);
      single->step_frames(one.data(), slots.data(), B, out.data());
      for (int b = 0; b < B; ++b) std::copy_n(out.begin() + size_t(b) * 7, 7, want.begin() + (size_t(b) * F + t) * 7);
    }
    ASSERT_EQ(got, want) << "step " << step << " with " << F << " frames per stream";
    for (int r = 0; r < B * F; ++r)
      ASSERT_LT(max_rel_error(got.data() + r * 7, cpu_out.data() + r * 7, 7), 1e-4f) << "step " << step << " row " << r;
  }
  EXPECT_EQ(runs->snapshot(slots[0]), single->snapshot(slots[0]));
  // Bad requests: more frames than the model was sized for, none, or frames_per_step at load.
  const std::vector<float> frames = frames_of(0, 5);
  for (Model* m : {runs.get(), cpu.get()}) {
    EXPECT_EQ(testing_helpers::error_of([&] {
                m->submit({.frames = frames.data(), .slots = slots.data(), .batch = 1, .frames_per_stream = 5});
              }),
              "submit: frames_per_stream 5 is outside 1 .. 4 (LoadOptions::frames_per_step)");
    EXPECT_EQ(testing_helpers::error_of([&] {
                m->submit({.frames = frames.data(), .slots = slots.data(), .batch = 1, .frames_per_stream = 0});
              }),
              "submit: frames_per_stream 0 is outside 1 .. 4 (LoadOptions::frames_per_step)");
    EXPECT_EQ(m->in_flight(), 0);
  }
  for (BackendKind backend : {BackendKind::Vulkan, BackendKind::Reference}) {
    opt.backend = backend;
    opt.frames_per_step = 65;
    EXPECT_EQ(testing_helpers::error_of([&] { create_s4d(w, opt); }), "frames_per_step must be within 1 .. 64, got 65");
  }
}

std::vector<int32_t> many_slots() {
  std::vector<int32_t> s;
  for (int i = 0; i < 19; ++i) s.push_back((i * 7 + 3) % 24);  // distinct, out of order
  return s;
}

INSTANTIATE_TEST_SUITE_P(Shapes, S4DGpuVsCpu,
                         testing::Values(S4DGpuCase{"OddPostnorm", false, 37, 10, {2, 0, 3}, 4},
                                         S4DGpuCase{"OddPrenorm", true, 37, 10, {2, 0, 3}, 4},
                                         S4DGpuCase{"Vec4Postnorm", false, 44, 12, many_slots(), 24},
                                         S4DGpuCase{"Vec4Prenorm", true, 44, 12, many_slots(), 24},
                                         S4DGpuCase{"OddGpuSplit", false, 37, 10, many_slots(), 24, "32,1,32,32,0"},
                                         S4DGpuCase{"Vec4GpuSplit", true, 44, 12, many_slots(), 24, "32,1,32,32,0"}),
                         [](const testing::TestParamInfo<S4DGpuCase>& i) { return std::string(i.param.name); });

}  // namespace
}  // namespace vkssm

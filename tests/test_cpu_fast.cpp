// The cpu backend (engine/cpu/, models/*/..._cpu_fast.cpp) against the reference
// (`reference`): the same logits (S4D: outputs) within 1e-3 relative for shapes that do not fit the
// vector width, for batches of 1, 3 and 17 streams, prompts of 1, 5 and 70 tokens (70: more than
// one pass of rows), fp16 weights, outputs that do not depend on the batch or the thread count,
// and the state operations CpuModel adds on top of either stepper; the panel layout and product
// of engine/cpu/matmul at awkward sizes, and the choice of SIMD target ($VKSSM_CPU_SIMD).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

#include <hwy/targets.h>

#include "engine/cpu/matmul.h"
#include "engine/cpu/simd_target.h"
#include "engine/cpu/thread_pool.h"
#include "engine/vkssm.hpp"
#include "host/dtype.h"
#include "models/mamba1/mamba1_model.h"
#include "models/mamba2/mamba2_model.h"
#include "models/s4d/s4d_model.h"
#include "tests/test_helpers.h"

#if VKSSM_CPU_FAST

namespace vkssm {
namespace {

using testing::HasSubstr;
using testing::StartsWith;
using testing_helpers::error_of;
using testing_helpers::max_rel_error;
using testing_helpers::ScopedEnv;

constexpr float kTol = 1e-3f;

// Shapes chosen against the kernels' fast paths: D, E and N not multiples of any vector width,
// an odd E, a vocabulary that leaves a tail of rows; the second with biases, an untied head and
// Falcon-Mamba's normalised dt/B/C; the third the mamba-130m proportions, small.
struct Shape {
  const char* name;
  Mamba1Config cfg;
};
std::vector<Shape> shapes() {
  Mamba1Config odd;
  odd.d_model = 37, odd.n_layer = 2, odd.vocab_size = 101, odd.d_state = 5, odd.d_conv = 4;
  odd.d_inner = 75, odd.dt_rank = 3;
  Mamba1Config falcon = odd;
  falcon.d_conv = 3, falcon.use_bias = true, falcon.tie_embeddings = false, falcon.dt_b_c_rms = true;
  Mamba1Config regular;
  regular.d_model = 64, regular.n_layer = 3, regular.vocab_size = 256, regular.d_state = 16;
  regular.d_inner = 128, regular.dt_rank = 4;
  return {{"odd", odd}, {"falcon_untied_bias", falcon}, {"regular", regular}};
}

LoadOptions options(BackendKind backend, int streams, WeightStorage weights = WeightStorage::F32) {
  LoadOptions o;
  o.backend = backend;
  o.max_streams = streams;
  o.weights = weights;
  o.cpu_threads = 2;  // the pool's split runs even on a one-core machine
  return o;
}

// One step of `batch` streams (slots 0..batch-1) with per-stream tokens; returns [batch][V].
std::vector<float> step(Model& m, int batch, int t) {
  std::vector<int32_t> tokens(static_cast<size_t>(batch)), slots(static_cast<size_t>(batch));
  for (int b = 0; b < batch; ++b) {
    slots[size_t(b)] = b;
    tokens[size_t(b)] = int32_t((b * 7 + t * 13 + 1) % m.info().vocab_size);
  }
  std::vector<float> out(size_t(batch) * size_t(m.info().vocab_size));
  m.step(tokens.data(), slots.data(), batch, out.data());
  return out;
}

class CpuFastShapes : public testing::TestWithParam<Shape> {
 protected:
  Mamba1Weights weights() const { return random_mamba1(GetParam().cfg, 11); }
};

TEST_P(CpuFastShapes, BatchedStepsMatchTheReference) {
  const Mamba1Weights w = weights();
  for (int batch : {1, 3, 17}) {
    auto fast = create_mamba1(w, options(BackendKind::Cpu, 17));
    auto ref = create_mamba1(w, options(BackendKind::Reference, 17));
    for (int t = 0; t < 4; ++t) {
      const std::vector<float> got = step(*fast, batch, t), want = step(*ref, batch, t);
      EXPECT_LE(max_rel_error(got.data(), want.data(), int64_t(got.size())), kTol) << "B " << batch << " step " << t;
    }
  }
}

TEST_P(CpuFastShapes, PrefillThenDecodeMatchesTheReference) {
  const Mamba1Weights w = weights();
  const int64_t V = w.cfg.vocab_size;
  for (int n : {1, 5, 70}) {
    auto fast = create_mamba1(w, options(BackendKind::Cpu, 2));
    auto ref = create_mamba1(w, options(BackendKind::Reference, 2));
    std::vector<int32_t> prompt(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) prompt[size_t(i)] = int32_t((i * 31 + 5) % V);
    std::vector<float> got(static_cast<size_t>(V)), want(static_cast<size_t>(V));
    fast->prefill(1, prompt.data(), n, got.data());
    ref->prefill(1, prompt.data(), n, want.data());
    EXPECT_LE(max_rel_error(got.data(), want.data(), V), kTol) << "prompt of " << n;
    const int32_t slot = 1;
    for (int32_t tok : {3, 0, int32_t(V - 1)}) {
      fast->step(&tok, &slot, 1, got.data());
      ref->step(&tok, &slot, 1, want.data());
      EXPECT_LE(max_rel_error(got.data(), want.data(), V), kTol) << "after a prompt of " << n;
    }
  }
}

// fp16 storage: against the reference on the same matrices rounded to fp16.
TEST_P(CpuFastShapes, Fp16WeightsMatchTheReferenceOnRoundedWeights) {
  Mamba1Weights w = weights();
  auto fast = create_mamba1(w, options(BackendKind::Cpu, 3, WeightStorage::F16));
  EXPECT_EQ(fast->info().weight_type, "f16");
  auto round = [](std::vector<float>& m) {
    for (float& v : m) v = half_to_float(float_to_half(v));
  };
  for (Mamba1LayerWeights& l : w.layers) {
    round(l.in_proj), round(l.x_proj), round(l.dt_proj_w), round(l.out_proj);
  }
  round(w.embeddings), round(w.lm_head);
  auto ref = create_mamba1(w, options(BackendKind::Reference, 3));
  for (int t = 0; t < 3; ++t) {
    const std::vector<float> got = step(*fast, 3, t), want = step(*ref, 3, t);
    EXPECT_LE(max_rel_error(got.data(), want.data(), int64_t(got.size())), kTol) << "step " << t;
  }
}

// Block storages: the fast stepper computes with the same dequantized values as the reference.
TEST_P(CpuFastShapes, BlockWeightsMatchTheReference) {
  const Mamba1Weights w = weights();
  for (WeightStorage ws : {WeightStorage::Q8_0, WeightStorage::Q4_0, WeightStorage::Q4_K, WeightStorage::Q6_K}) {
    auto fast = create_mamba1(w, options(BackendKind::Cpu, 3, ws));
    auto ref = create_mamba1(w, options(BackendKind::Reference, 3, ws));
    EXPECT_EQ(fast->info().weight_type, ref->info().weight_type);
    for (int t = 0; t < 2; ++t) {
      const std::vector<float> got = step(*fast, 3, t), want = step(*ref, 3, t);
      EXPECT_LE(max_rel_error(got.data(), want.data(), int64_t(got.size())), kTol) << "step " << t;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Mamba1, CpuFastShapes, testing::ValuesIn(shapes()),
                         [](const testing::TestParamInfo<Shape>& i) { return std::string(i.param.name); });

// Each output is computed by the same instructions whatever the batch and the thread count, so a
// stream's logits are the same bits alone, in a batch of 17, and on 1 or 3 threads.
TEST(CpuFast, StreamsDoNotDependOnTheBatchOrTheThreads) {
  const Mamba1Weights w = random_mamba1(shapes()[0].cfg, 5);
  for (WeightStorage ws : {WeightStorage::F32, WeightStorage::F16}) {
    LoadOptions one = options(BackendKind::Cpu, 17, ws), three = one;
    one.cpu_threads = 1, three.cpu_threads = 3;
    auto solo = create_mamba1(w, one);
    auto batched = create_mamba1(w, three);
    EXPECT_THAT(solo->info().device_name, HasSubstr("1 threads"));
    EXPECT_THAT(batched->info().device_name, HasSubstr("3 threads"));
    const int64_t V = w.cfg.vocab_size;
    for (int t = 0; t < 3; ++t) {
      const std::vector<float> all = step(*batched, 17, t);
      for (int b = 0; b < 17; ++b) {
        const int32_t token = int32_t((b * 7 + t * 13 + 1) % V);
        std::vector<float> alone(static_cast<size_t>(V));
        solo->step(&token, &b, 1, alone.data());
        EXPECT_TRUE(std::equal(alone.begin(), alone.end(), all.begin() + b * V)) << "stream " << b << " step " << t;
      }
    }
  }
}

TEST(CpuFast, StateOperationsBehaveAsOnTheReference) {
  const Mamba1Weights w = random_mamba1(shapes()[2].cfg, 3);
  const int64_t V = w.cfg.vocab_size;
  LoadOptions fo = options(BackendKind::Cpu, 4), ro = options(BackendKind::Reference, 4);
  fo.rollback_depth = ro.rollback_depth = 2;
  auto fast = create_mamba1(w, fo);
  auto ref = create_mamba1(w, ro);
  const std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6};
  fast->prefill(0, prompt.data(), 6, nullptr);  // with a rollback ring: token by token
  ref->prefill(0, prompt.data(), 6, nullptr);
  EXPECT_EQ(fast->rollback_available(0), 2);
  fast->fork(0, 2);
  ref->fork(0, 2);
  fast->rollback(0, 1);
  ref->rollback(0, 1);
  // A fast snapshot restores into the reference and continues like it.
  auto from_fast = create_mamba1(w, options(BackendKind::Reference, 4));
  const std::vector<uint8_t> blob = fast->snapshot(2);
  from_fast->restore(0, blob.data(), blob.size());
  const size_t vocab = static_cast<size_t>(V);
  std::vector<float> got(vocab), want(vocab), restored(vocab);
  for (int slot : {0, 2}) {
    const int32_t tok = 9;
    fast->step(&tok, &slot, 1, got.data());
    ref->step(&tok, &slot, 1, want.data());
    EXPECT_LE(max_rel_error(got.data(), want.data(), V), kTol) << "slot " << slot;
  }
  const int32_t tok = 9, zero = 0;
  from_fast->step(&tok, &zero, 1, restored.data());
  EXPECT_LE(max_rel_error(restored.data(), want.data(), V), kTol);
  EXPECT_EQ(fast->info().backend, "cpu");
  EXPECT_THAT(fast->info().device_name, StartsWith("host CPU (cpu: 2 threads, "));
}

// Mamba-2: shapes off the vector width (head_dim 6, d_state 5, 2 groups), a clamped dt; batches
// and a prompt longer than one pass of rows, against the reference.
TEST(CpuFast, Mamba2MatchesTheReference) {
  Mamba2Config c;
  c.d_model = 18, c.n_layer = 2, c.vocab_size = 67, c.d_state = 5, c.head_dim = 6, c.n_groups = 2;
  c.d_inner = 36, c.n_heads = 6, c.dt_max = 0.5f, c.use_bias = true;
  const Mamba2Weights w = random_mamba2(c, 1);
  for (WeightStorage ws : {WeightStorage::F32, WeightStorage::F16}) {
    auto fast = create_mamba2(w, options(BackendKind::Cpu, 17, ws));
    EXPECT_THAT(fast->info().device_name, StartsWith("host CPU (cpu: 2 threads, "));
    if (ws == WeightStorage::F16) continue;  // the mamba1 tests cover the fp16 products
    auto ref = create_mamba2(w, options(BackendKind::Reference, 17));
    for (int t = 0; t < 3; ++t) {
      const std::vector<float> got = step(*fast, 17, t), want = step(*ref, 17, t);
      EXPECT_LE(max_rel_error(got.data(), want.data(), int64_t(got.size())), kTol) << "step " << t;
    }
    std::vector<int32_t> prompt(70);
    for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = int32_t((i * 11 + 2) % 67);
    std::vector<float> got(67), want(67);
    fast->prefill(16, prompt.data(), 70, got.data());
    ref->prefill(16, prompt.data(), 70, want.data());
    EXPECT_LE(max_rel_error(got.data(), want.data(), 67), kTol);
  }
}

// S4D: one step of `batch` frame streams (slots 0..batch-1) with per-stream frames; [batch][d_output].
std::vector<float> step_frames(Model& m, int batch, int t) {
  const int64_t in = m.info().d_input;
  std::vector<float> frames(size_t(batch) * size_t(in));
  std::vector<int32_t> slots(static_cast<size_t>(batch));
  for (int b = 0; b < batch; ++b) {
    slots[size_t(b)] = b;
    for (int64_t j = 0; j < in; ++j)
      frames[size_t(b * in + j)] = std::sin(0.37f * float(b) + 1.3f * float(t) + 0.71f * float(j)) * 1.5f;
  }
  std::vector<float> out(size_t(batch) * size_t(m.info().d_output));
  m.step_frames(frames.data(), slots.data(), batch, out.data());
  return out;
}

// S4D shapes against the kernels' fast paths: d_state 10 (five modes, ten floats a channel: one
// AVX2 vector and a pair left over), odd d_input and d_model, post-norm and pre-norm.
S4DConfig s4d_config(bool prenorm) {
  S4DConfig c;
  c.d_input = 7, c.d_model = 13, c.d_state = 10, c.n_layers = 2, c.d_output = 5, c.prenorm = prenorm;
  return c;
}

// Batches of 1, 3, 17 and 70 streams (70: more than one pass of rows), over several frames.
TEST(CpuFast, S4DMatchesTheReference) {
  for (bool prenorm : {false, true}) {
    const S4DWeights w = random_s4d(s4d_config(prenorm), 7);
    for (int batch : {1, 3, 17, 70}) {
      auto fast = create_s4d(w, options(BackendKind::Cpu, 70));
      auto ref = create_s4d(w, options(BackendKind::Reference, 70));
      EXPECT_EQ(fast->info().backend, "cpu");
      EXPECT_THAT(fast->info().device_name, StartsWith("host CPU (cpu: 2 threads, "));
      for (int t = 0; t < 5; ++t) {
        const std::vector<float> got = step_frames(*fast, batch, t), want = step_frames(*ref, batch, t);
        EXPECT_LE(max_rel_error(got.data(), want.data(), int64_t(got.size())), kTol)
            << (prenorm ? "pre-norm" : "post-norm") << " B " << batch << " frame " << t;
      }
    }
  }
}

// fp16 matrices against the reference on the same matrices rounded to fp16; block storages
// against the reference on the same dequantized values (d_model 32 and d_input 64: whole blocks).
TEST(CpuFast, S4DStoredWeightsMatchTheReference) {
  S4DConfig c = s4d_config(false);
  c.d_input = 64, c.d_model = 32;
  S4DWeights w = random_s4d(c, 3);
  for (WeightStorage ws : {WeightStorage::Q8_0, WeightStorage::Q4_0}) {
    auto fast = create_s4d(w, options(BackendKind::Cpu, 3, ws));
    auto ref = create_s4d(w, options(BackendKind::Reference, 3, ws));
    EXPECT_EQ(fast->info().weight_type, ref->info().weight_type);
    for (int t = 0; t < 3; ++t) {
      const std::vector<float> got = step_frames(*fast, 3, t), want = step_frames(*ref, 3, t);
      EXPECT_LE(max_rel_error(got.data(), want.data(), int64_t(got.size())), kTol) << "frame " << t;
    }
  }
  auto fast = create_s4d(w, options(BackendKind::Cpu, 3, WeightStorage::F16));
  EXPECT_EQ(fast->info().weight_type, "f16");
  auto round = [](std::vector<float>& m) {
    for (float& v : m) v = half_to_float(float_to_half(v));
  };
  round(w.encoder_w), round(w.decoder_w);
  for (S4DLayerWeights& l : w.layers) round(l.out_w);
  auto ref = create_s4d(w, options(BackendKind::Reference, 3));
  for (int t = 0; t < 3; ++t) {
    const std::vector<float> got = step_frames(*fast, 3, t), want = step_frames(*ref, 3, t);
    EXPECT_LE(max_rel_error(got.data(), want.data(), int64_t(got.size())), kTol) << "frame " << t;
  }
}

// A stream's outputs are the same bits alone on one thread and in a batch of 17 on two or three.
TEST(CpuFast, S4DStreamsDoNotDependOnTheBatchOrTheThreads) {
  S4DConfig c = s4d_config(false);
  c.d_model = 64, c.d_state = 34;  // enough work per product and scan for the pool to split it
  const S4DWeights w = random_s4d(c, 5);
  for (WeightStorage ws : {WeightStorage::F32, WeightStorage::F16}) {
    LoadOptions one = options(BackendKind::Cpu, 17, ws), two = one, three = one;
    one.cpu_threads = 1, three.cpu_threads = 3;
    auto solo = create_s4d(w, one);
    auto by_two = create_s4d(w, two);
    auto by_three = create_s4d(w, three);
    EXPECT_THAT(solo->info().device_name, HasSubstr("1 threads"));
    EXPECT_THAT(by_three->info().device_name, HasSubstr("3 threads"));
    const size_t d_out = size_t(c.d_output), d_in = size_t(c.d_input);
    for (int t = 0; t < 3; ++t) {
      const std::vector<float> all2 = step_frames(*by_two, 17, t), all3 = step_frames(*by_three, 17, t);
      EXPECT_EQ(all2, all3) << "frame " << t;
      // Each stream alone on one thread, in its own slot, with the frame the batch gave it.
      for (int b = 0; b < 17; ++b) {
        std::vector<float> frame(d_in), alone(d_out);
        for (size_t j = 0; j < d_in; ++j)
          frame[j] = std::sin(0.37f * float(b) + 1.3f * float(t) + 0.71f * float(j)) * 1.5f;
        solo->step_frames(frame.data(), &b, 1, alone.data());
        EXPECT_TRUE(std::equal(alone.begin(), alone.end(), all3.begin() + std::ptrdiff_t(size_t(b) * d_out)))
            << "stream " << b << " frame " << t;
      }
    }
  }
}

// The panel layout (engine/cpu/matmul.h) at heights around a panel's and a vector's.
std::vector<size_t> awkward_heights() {
  const size_t P = Matmul::row_align();
  return {1, 5, P - 1, P, P + 1, 2 * P + 3, 101};
}

TEST(CpuMatrix, PanelsKeepEveryRow) {
  for (size_t rows : awkward_heights()) {
    for (size_t cols : {size_t(1), size_t(7), size_t(48)}) {
      std::vector<float> m(rows * cols);
      for (size_t i = 0; i < m.size(); ++i) m[i] = float(i) * 0.37f - 5.0f;
      for (bool f16 : {false, true}) {
        const CpuMatrix w(m, rows, cols, f16 ? CpuMatrixStorage::F16 : CpuMatrixStorage::F32);
        const uint64_t value_bytes = f16 ? 2 : 4;
        EXPECT_GE(w.bytes(), rows * cols * value_bytes);
        EXPECT_LT(w.bytes(), (rows + Matmul::row_align()) * cols * value_bytes);
        EXPECT_EQ(w.bytes_over_f32(), int64_t(w.bytes()) - int64_t(rows * cols * 4));
        std::vector<float> row(cols);
        for (size_t r = 0; r < rows; ++r) {
          w.copy_row(r, row.data());
          for (size_t c = 0; c < cols; ++c) {
            const float want = f16 ? half_to_float(float_to_half(m[r * cols + c])) : m[r * cols + c];
            ASSERT_EQ(row[c], want) << rows << "x" << cols << " f16 " << f16 << " at " << r << "," << c;
          }
        }
      }
    }
  }
}

// Y = W·X (+ bias, or added to Y) against double sums, for any number of X rows and for a row
// range that starts and ends inside panels: rows outside it are left as they were.
TEST(CpuMatrix, ProductsMatchPlainSumsForAnyRowsAndRange) {
  ThreadPool pool(2);
  const Matmul matmul(pool);
  for (size_t rows : awkward_heights()) {
    const size_t cols = 29;
    std::vector<float> m(rows * cols), bias(rows);
    for (size_t i = 0; i < m.size(); ++i) m[i] = std::sin(float(i) * 0.71f);
    for (size_t r = 0; r < rows; ++r) bias[r] = float(r) * 0.25f;
    const CpuMatrix w(m, rows, cols, CpuMatrixStorage::F32);
    for (size_t n : {size_t(1), size_t(3), size_t(4), size_t(9)}) {
      std::vector<float> x(n * cols);
      for (size_t i = 0; i < x.size(); ++i) x[i] = std::cos(float(i) * 0.13f);
      const size_t r0 = std::min<size_t>(3, rows - 1), r1 = rows - (rows > 7 ? 2 : 0);
      for (bool accumulate : {false, true}) {
        std::vector<float> y(n * rows, 1.5f);
        matmul.rows(w, r0, r1, {x.data(), cols, n, y.data(), rows, bias.data(), accumulate});
        for (size_t i = 0; i < n; ++i) {
          for (size_t r = 0; r < rows; ++r) {
            double want = 1.5;
            if (r >= r0 && r < r1) {
              double sum = bias[r];
              for (size_t c = 0; c < cols; ++c) sum += double(m[r * cols + c]) * x[i * cols + c];
              want = accumulate ? 1.5 + sum : sum;
            }
            EXPECT_NEAR(y[i * rows + r], want, 1e-5 * (1 + std::abs(want)))
                << rows << " rows, n " << n << ", row " << r << ", accumulate " << accumulate;
          }
        }
      }
    }
  }
}

// Values that are whole multiples of a per-block scale, as dequantized Q8_0 / Q4_0 blocks (32
// columns) and Q6_K sub-blocks (16, the product rounded to fp32) are, or such multiples less an
// offset (Q4_K's d * sc * q - dmin * m), go into int8 blocks: about a quarter of the bytes, the
// same rows, the same products bit for bit. Others (here: one value moved off its grid) stay fp32.
TEST(CpuMatrix, ExactBlocksAreStoredAsInt8) {
  ThreadPool pool(2);
  const Matmul matmul(pool);
  for (size_t rows : awkward_heights()) {
    for (size_t cols : {size_t(29), size_t(64), size_t(71)}) {
     for (int kind = 0; kind < 3; ++kind) {
      const size_t block_size = kind == 1 ? 16 : 32;
      std::vector<float> m(rows * cols);
      for (size_t i = 0; i < m.size(); ++i) {
        // 32: an fp16 scale times integers whose largest magnitude is 127 (Q8_0-like blocks) or
        // 8 (Q4_0-like), at the block's first column. 16: an fp16 scale times an int8 sub-block
        // scale (exact in fp32) times integers in [-32, 31] (Q6_K-like).
        const size_t r = i / cols, c = i % cols, block = c / block_size;
        float scale = half_to_float(float_to_half(0.001f * float(1 + (r * 7 + block * 3) % 11)));
        int top = (r + block) % 2 ? 127 : 8;
        if (kind == 1) scale *= float((int((r + block * 5) % 120) - 60) | 1), top = 32;
        if (kind == 2) {  // Q4_K-like: q in [0, 15] with both ends in the block
          const float dmin = half_to_float(float_to_half(0.0007f)), sc = float(1 + (r + block) % 63);
          const float min = dmin * float(1 + (r * 3 + block) % 63);
          const int q = c % 32 == 0 ? 0 : c % 32 == 1 ? 15 : int((i * 37) % 16);
          m[i] = scale * sc * float(q) - min;
        } else {
          m[i] = scale * float(c % block_size == 0 ? -top : int((i * 37) % (2 * top)) - top + 1);
        }
      }
      const CpuMatrix f32(m, rows, cols, CpuMatrixStorage::F32), i8(m, rows, cols, CpuMatrixStorage::I8Blocks);
      ASSERT_EQ(i8.storage(), CpuMatrixStorage::I8Blocks) << rows << "x" << cols;
      EXPECT_EQ(i8.i8_block(), block_size) << rows << "x" << cols;
      EXPECT_EQ(i8.i8_offsets(), kind == 2) << rows << "x" << cols;
      EXPECT_LT(i8.bytes(), f32.bytes() * 9 / 20) << rows << "x" << cols;
      std::vector<float> row(cols);
      for (size_t r = 0; r < rows; ++r) {
        i8.copy_row(r, row.data());
        ASSERT_TRUE(std::equal(row.begin(), row.end(), m.begin() + r * cols)) << "row " << r;
      }
      for (size_t n : {size_t(1), size_t(3), size_t(4), size_t(9)}) {
        std::vector<float> x(n * cols), want(n * rows), got(n * rows);
        for (size_t i = 0; i < x.size(); ++i) x[i] = std::cos(float(i) * 0.13f);
        matmul(f32, {x.data(), cols, n, want.data(), rows, nullptr, false});
        matmul(i8, {x.data(), cols, n, got.data(), rows, nullptr, false});
        EXPECT_EQ(got, want) << rows << "x" << cols << ", n " << n;
      }
      m[m.size() / 2] += 0.0001234f;
      EXPECT_EQ(CpuMatrix(m, rows, cols, CpuMatrixStorage::I8Blocks).storage(), CpuMatrixStorage::F32);
     }
    }
  }
}

// With rows long enough for whole K-quant super-blocks (256 columns), every storage's matrices
// are packed as int8 blocks (ModelInfo counts far fewer bytes than fp32), and the logits match
// the reference on the same dequantized weights.
TEST(CpuFast, BlockStoragesArePackedAndMatchTheReference) {
  Mamba1Config cfg;
  cfg.d_model = 256, cfg.n_layer = 2, cfg.vocab_size = 300, cfg.d_state = 16, cfg.d_inner = 512, cfg.dt_rank = 16;
  const Mamba1Weights w = random_mamba1(cfg, 8);
  const uint64_t f32_bytes = create_mamba1(w, options(BackendKind::Cpu, 2))->info().weight_bytes;
  for (WeightStorage ws : {WeightStorage::Q8_0, WeightStorage::Q4_0, WeightStorage::Q4_K, WeightStorage::Q5_K,
                           WeightStorage::Q6_K}) {
    auto fast = create_mamba1(w, options(BackendKind::Cpu, 2, ws));
    auto ref = create_mamba1(w, options(BackendKind::Reference, 2, ws));
    EXPECT_LT(fast->info().weight_bytes, f32_bytes * 2 / 5) << fast->info().weight_type;
    for (int t = 0; t < 2; ++t) {
      const std::vector<float> got = step(*fast, 2, t), want = step(*ref, 2, t);
      EXPECT_LE(max_rel_error(got.data(), want.data(), int64_t(got.size())), kTol)
          << fast->info().weight_type << " step " << t;
    }
  }
}

// ModelInfo says how the cpu backend stores its weights: fp16 matrices take half the bytes.
TEST(CpuFast, WeightBytesCountTheStoredMatrices) {
  const Mamba1Config cfg = shapes()[2].cfg;
  const Mamba1Weights w = random_mamba1(cfg, 2);
  auto ref = create_mamba1(w, options(BackendKind::Reference, 1));
  auto f32 = create_mamba1(w, options(BackendKind::Cpu, 1));
  auto f16 = create_mamba1(w, options(BackendKind::Cpu, 1, WeightStorage::F16));
  EXPECT_EQ(f32->info().weight_type, "f32");
  EXPECT_EQ(f16->info().weight_type, "f16");
  int64_t padding32 = 0, padding16 = 0, matrix_floats = 0;
  auto add = [&](const std::vector<float>& m, int64_t rows, int64_t cols) {
    padding32 += CpuMatrix(m, size_t(rows), size_t(cols), CpuMatrixStorage::F32).bytes_over_f32();
    padding16 += CpuMatrix(m, size_t(rows), size_t(cols), CpuMatrixStorage::F16).bytes_over_f32() + 2 * rows * cols;
    matrix_floats += rows * cols;
  };
  for (const Mamba1LayerWeights& l : w.layers) {
    add(l.in_proj, 2 * cfg.d_inner, cfg.d_model);
    add(l.x_proj, cfg.dt_rank + 2 * cfg.d_state, cfg.d_inner);
    add(l.dt_proj_w, cfg.d_inner, cfg.dt_rank);
    add(l.out_proj, cfg.d_model, cfg.d_inner);
  }
  add(w.embeddings, cfg.vocab_size, cfg.d_model);  // tied: the head
  const int64_t plain = int64_t(ref->info().weight_bytes);
  EXPECT_EQ(int64_t(f32->info().weight_bytes), plain + padding32);
  EXPECT_EQ(int64_t(f16->info().weight_bytes), plain - 2 * matrix_floats + padding16);
}

TEST(CpuSimd, TargetNamesAreCheckedAgainstTheCpu) {
  const int64_t available = HWY_AVX2 | HWY_SSE4;
  EXPECT_EQ(simd_target_named("sse4", available), HWY_SSE4);
  EXPECT_EQ(simd_target_named("AVX2", available), HWY_AVX2);
  EXPECT_EQ(error_of([&] { simd_target_named("AVX3", available); }),
            "VKSSM_CPU_SIMD='AVX3' is not an instruction set the cpu backend can use on this CPU (AVX2, SSE4)");
}

// The kernels run with the target $VKSSM_CPU_SIMD names (ctest runs these tests again with
// AVX2 and SSE4 on x86-64), else the CPU's best; the model's device name says which.
TEST(CpuSimd, DeviceNameSaysTheChosenTarget) {
  const char* env = std::getenv("VKSSM_CPU_SIMD");
  if (env && *env) {
    EXPECT_STRCASEEQ(simd_target_name(), env);
  }
  auto m = create_mamba1(random_mamba1(shapes()[0].cfg, 1), options(BackendKind::Cpu, 1));
  EXPECT_THAT(m->info().device_name, HasSubstr(std::string(", ") + simd_target_name() + ")"));
}

TEST(CpuFast, BadThreadCountIsAnError) {
  ScopedEnv env("VKSSM_THREADS", "two");
  LoadOptions o = options(BackendKind::Cpu, 1);
  o.cpu_threads = 0;
  EXPECT_EQ(error_of([&] { create_mamba1(random_mamba1(shapes()[0].cfg, 1), o); }),
            "VKSSM_THREADS='two' is not a thread count in [1, 1024]");
}

}  // namespace
}  // namespace vkssm

#endif  // VKSSM_CPU_FAST

// The Mamba-1 CPU reference is the oracle of every GPU test, so it is checked here against two
// formulations written independently of it: scalar formulas for a 1-wide model, and the
// whole-sequence form of upstream's forward pass (layer by layer over all tokens, the selective
// scan summed in closed form) for a model with every dimension different.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "host/error.h"
#include "models/mamba1/mamba1_model.h"

namespace vkssm {
namespace {

using testing::HasSubstr;

// D = 2, E = N = R = 1, K = 2, V = 3, one layer, with biases and an untied head: small enough
// that the expected logits can be written out as scalar formulas. (D = 1 would not do: the final
// RMSNorm of a single number is just its sign.)
Mamba1Weights scalar_model() {
  Mamba1Weights w;
  w.cfg.d_model = 2;
  w.cfg.n_layer = 1;
  w.cfg.vocab_size = 3;
  w.cfg.d_state = 1;
  w.cfg.d_conv = 2;
  w.cfg.expand = 1;
  w.cfg.d_inner = 1;
  w.cfg.dt_rank = 1;
  w.cfg.norm_eps = 1e-5f;
  w.cfg.tie_embeddings = false;
  w.cfg.use_bias = true;
  w.embeddings = {0.5f, -0.3f,  /**/ -1.2f, 0.4f,  /**/ 0.8f, 0.9f};
  Mamba1LayerWeights l;
  l.norm = {1.5f, 0.6f};
  l.in_proj = {0.8f, -0.2f,  /* x_in row */ -0.6f, 0.4f /* z row */};
  l.in_proj_b = {0.1f, 0.2f};
  l.conv_w = {0.3f, 0.9f};  // older tap, newest tap
  l.conv_b = {0.05f};
  l.x_proj = {0.7f, 1.1f, -0.4f};  // rows: dt_in, B, C
  l.dt_proj_w = {0.5f};
  l.dt_proj_b = {-1.0f};
  l.A_log = {0.3f};
  l.D = {0.9f};
  l.out_proj = {1.3f, -0.7f};  // [D = 2, E = 1]
  l.out_proj_b = {-0.05f, 0.02f};
  w.layers.push_back(l);
  w.norm_f = {0.7f, 1.1f};
  w.lm_head = {2.0f, -1.0f,  /**/ 0.5f, 0.5f,  /**/ -0.3f, 1.7f};
  return w;
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }

// ulp-level agreement in float: relative 1e-6 with a small absolute floor for values near 0.
void expect_close(double got, double want, double rel = 1e-6) {
  EXPECT_NEAR(got, want, rel * std::fabs(want) + 1e-7) << "want " << want;
}

TEST(Mamba1Cpu, ScalarModelMatchesHandFormulas) {
  const Mamba1Weights w = scalar_model();
  Mamba1CpuReference ref(w);
  Mamba1CpuReference::State state = ref.new_state();

  const double emb[3][2] = {{0.5, -0.3}, {-1.2, 0.4}, {0.8, 0.9}};
  double prev_x_in = 0.0;  // conv window's older slot
  double s = 0.0;          // ssm state
  for (int32_t token : {1, 0, 2, 1}) {
    // First layer: residual = h + 0.
    const double r0 = emb[token][0], r1 = emb[token][1];
    const double inv_rms = 1.0 / std::sqrt((r0 * r0 + r1 * r1) / 2.0 + 1e-5);
    const double x0 = r0 * inv_rms * 1.5, x1 = r1 * inv_rms * 0.6;
    const double x_in = 0.8 * x0 - 0.2 * x1 + 0.1;
    const double z = -0.6 * x0 + 0.4 * x1 + 0.2;
    const double xc = silu(0.3 * prev_x_in + 0.9 * x_in + 0.05);
    prev_x_in = x_in;
    const double dt = std::log1p(std::exp(0.5 * (0.7 * xc) - 1.0));
    const double A = -std::exp(0.3);
    s = s * std::exp(dt * A) + dt * xc * (1.1 * xc);
    const double y = (s * (-0.4 * xc) + 0.9 * xc) * silu(z);
    const double f0 = 1.3 * y - 0.05 + r0, f1 = -0.7 * y + 0.02 + r1;  // h + residual
    const double inv_rms_f = 1.0 / std::sqrt((f0 * f0 + f1 * f1) / 2.0 + 1e-5);
    const double n0 = f0 * inv_rms_f * 0.7, n1 = f1 * inv_rms_f * 1.1;

    float logits[3];
    ref.step(state, token, logits);
    expect_close(logits[0], 2.0 * n0 - 1.0 * n1);
    expect_close(logits[1], 0.5 * n0 + 0.5 * n1);
    expect_close(logits[2], -0.3 * n0 + 1.7 * n1);
  }
  // The state the reference keeps is the one the formulas describe.
  ASSERT_EQ(state.conv.size(), 2u);
  ASSERT_EQ(state.ssm.size(), 1u);
  expect_close(state.conv[1], prev_x_in);
  expect_close(state.ssm[0], s);
}

TEST(Mamba1Cpu, StateCarriesOverAndNewStateResets) {
  const Mamba1Weights w = scalar_model();
  Mamba1CpuReference ref(w);
  Mamba1CpuReference::State state = ref.new_state();
  EXPECT_EQ(state.conv, std::vector<float>(2, 0.0f));
  EXPECT_EQ(state.ssm, std::vector<float>(1, 0.0f));

  float first[3], second[3], again[3];
  ref.step(state, 1, first);
  ref.step(state, 1, second);
  EXPECT_GT(std::fabs(first[0] - second[0]), 1e-3f);  // same token, different history

  state = ref.new_state();
  ref.step(state, 1, again);
  for (int v = 0; v < 3; ++v) EXPECT_EQ(again[v], first[v]);
}

TEST(Mamba1Cpu, BadTokenIdIsAnErrorAndLeavesStateAlone) {
  const Mamba1Weights w = scalar_model();
  Mamba1CpuReference ref(w);
  Mamba1CpuReference::State state = ref.new_state();
  float logits[3];
  ref.step(state, 0, logits);
  const Mamba1CpuReference::State before = state;
  for (int32_t bad : {3, -1}) {
    try {
      ref.step(state, bad, logits);
      ADD_FAILURE() << "token " << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr("token id " + std::to_string(bad) + " out of range [0, 3)"));
    }
  }
  EXPECT_EQ(state.conv, before.conv);
  EXPECT_EQ(state.ssm, before.ssm);
}

TEST(Mamba1Cpu, MisshapenWeightsAndStateAreErrors) {
  Mamba1Weights w = scalar_model();
  w.source = "hand.safetensors";
  w.layers[0].x_proj.pop_back();
  Mamba1CpuReference ref(w);
  try {
    (void)ref.new_state();
    ADD_FAILURE() << "short x_proj accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("hand.safetensors"));
    EXPECT_THAT(e.what(), HasSubstr("layers.0.x_proj has 2 values, expected 3"));
  }

  const Mamba1Weights good = scalar_model();
  Mamba1CpuReference good_ref(good);
  Mamba1CpuReference::State state;  // empty: not from this model
  float logits[3];
  try {
    good_ref.step(state, 0, logits);
    ADD_FAILURE() << "empty state accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("state does not match the model"));
  }
}

// ---- Whole-sequence formulation ---------------------------------------------------------------

// Deterministic values in [-scale, scale) without depending on the library's generators.
struct TestRng {
  uint64_t s;
  double uniform(double scale) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return (double(s >> 11) / double(1ull << 53) * 2.0 - 1.0) * scale;
  }
  std::vector<float> vec(size_t n, double scale, double offset = 0.0) {
    std::vector<float> v(n);
    for (float& x : v) x = float(offset + uniform(scale));
    return v;
  }
};

// Every dimension distinct so that a transposed or mis-strided read cannot go unnoticed.
Mamba1Weights odd_shaped_model() {
  Mamba1Weights w;
  w.cfg.d_model = 3;
  w.cfg.n_layer = 2;
  w.cfg.vocab_size = 7;
  w.cfg.d_state = 2;
  w.cfg.d_conv = 3;
  w.cfg.d_inner = 5;
  w.cfg.dt_rank = 4;
  w.cfg.norm_eps = 1e-5f;
  const size_t D = 3, E = 5, N = 2, K = 3, R = 4, V = 7;
  TestRng rng{12345};
  w.embeddings = rng.vec(V * D, 1.0);
  for (int l = 0; l < 2; ++l) {
    Mamba1LayerWeights lw;
    lw.norm = rng.vec(D, 0.2, 1.0);
    lw.in_proj = rng.vec(2 * E * D, 0.8);
    lw.conv_w = rng.vec(E * K, 0.6);
    lw.conv_b = rng.vec(E, 0.2);
    lw.x_proj = rng.vec((R + 2 * N) * E, 0.7);
    lw.dt_proj_w = rng.vec(E * R, 0.5);
    lw.dt_proj_b = rng.vec(E, 1.0, -2.0);  // dt around softplus(-2) ≈ 0.13
    lw.A_log = rng.vec(E * N, 0.5, 0.3);
    lw.D = rng.vec(E, 0.5, 1.0);
    lw.out_proj = rng.vec(D * E, 0.6);
    if (l == 1) {  // biases on one layer only, to cover both forms
      lw.in_proj_b = rng.vec(2 * E, 0.1);
      lw.out_proj_b = rng.vec(D, 0.1);
    }
    w.layers.push_back(lw);
  }
  w.norm_f = rng.vec(D, 0.2, 1.0);
  // lm_head left empty: the head is tied to the embeddings.
  return w;
}

using Matrix = std::vector<std::vector<double>>;  // [T][features]

// Upstream's forward pass over a whole sequence: each layer sees all T tokens at once, the conv
// is a causal convolution with zero padding, and the scan's state is written as the sum
//   state_t = Σ_{s ≤ t} exp(A · Σ_{s < r ≤ t} dt_r) · dt_s · xc_s · B_s.
Matrix sequence_logits(const Mamba1Weights& w, const std::vector<int32_t>& tokens) {
  const size_t D = 3, E = 5, N = 2, K = 3, R = 4, V = 7, T = tokens.size();
  auto linear = [](const std::vector<float>& W, const std::vector<float>& b, size_t rows,
                   const std::vector<double>& x) {
    std::vector<double> y(rows, 0.0);
    for (size_t r = 0; r < rows; ++r) {
      for (size_t c = 0; c < x.size(); ++c) y[r] += double(W[r * x.size() + c]) * x[c];
      if (!b.empty()) y[r] += b[r];
    }
    return y;
  };
  auto rms = [](const std::vector<double>& x, const std::vector<float>& g) {
    double ms = 0.0;
    for (double v : x) ms += v * v / double(x.size());
    std::vector<double> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] / std::sqrt(ms + 1e-5) * g[i];
    return y;
  };

  Matrix hidden(T, std::vector<double>(D)), residual(T, std::vector<double>(D, 0.0));
  for (size_t t = 0; t < T; ++t) {
    for (size_t i = 0; i < D; ++i) hidden[t][i] = w.embeddings[size_t(tokens[t]) * D + i];
  }
  for (const Mamba1LayerWeights& lw : w.layers) {
    Matrix x_in(T), z(T), xc(T, std::vector<double>(E)), dt(T, std::vector<double>(E)), B(T),
        C(T);
    for (size_t t = 0; t < T; ++t) {
      for (size_t i = 0; i < D; ++i) residual[t][i] += hidden[t][i];
      const std::vector<double> xz =
          linear(lw.in_proj, lw.in_proj_b, 2 * E, rms(residual[t], lw.norm));
      x_in[t].assign(xz.begin(), xz.begin() + E);
      z[t].assign(xz.begin() + E, xz.end());
    }
    for (size_t t = 0; t < T; ++t) {
      for (size_t e = 0; e < E; ++e) {
        double acc = lw.conv_b[e];
        for (size_t lag = 0; lag < K && lag <= t; ++lag) {
          acc += double(lw.conv_w[e * K + (K - 1 - lag)]) * x_in[t - lag][e];
        }
        xc[t][e] = silu(acc);
      }
      const std::vector<double> dbl = linear(lw.x_proj, {}, R + 2 * N, xc[t]);
      const std::vector<double> dt_in(dbl.begin(), dbl.begin() + R);
      B[t].assign(dbl.begin() + R, dbl.begin() + R + N);
      C[t].assign(dbl.begin() + R + N, dbl.end());
      const std::vector<double> dt_lin = linear(lw.dt_proj_w, lw.dt_proj_b, E, dt_in);
      for (size_t e = 0; e < E; ++e) dt[t][e] = std::log1p(std::exp(dt_lin[e]));
    }
    for (size_t t = 0; t < T; ++t) {
      std::vector<double> y(E);
      for (size_t e = 0; e < E; ++e) {
        double acc = 0.0;
        for (size_t n = 0; n < N; ++n) {
          const double A = -std::exp(double(lw.A_log[e * N + n]));
          double state = 0.0;
          for (size_t s = 0; s <= t; ++s) {
            double dt_after = 0.0;
            for (size_t r = s + 1; r <= t; ++r) dt_after += dt[r][e];
            state += std::exp(A * dt_after) * dt[s][e] * xc[s][e] * B[s][n];
          }
          acc += state * C[t][n];
        }
        y[e] = (acc + lw.D[e] * xc[t][e]) * silu(z[t][e]);
      }
      hidden[t] = linear(lw.out_proj, lw.out_proj_b, D, y);
    }
  }
  Matrix logits(T);
  for (size_t t = 0; t < T; ++t) {
    for (size_t i = 0; i < D; ++i) residual[t][i] += hidden[t][i];
    logits[t] = linear(w.embeddings, {}, V, rms(residual[t], w.norm_f));
  }
  return logits;
}

TEST(Mamba1Cpu, SteppingMatchesWholeSequenceForm) {
  const Mamba1Weights w = odd_shaped_model();
  const std::vector<int32_t> tokens = {3, 0, 6, 3, 3, 1, 5, 2};
  const Matrix want = sequence_logits(w, tokens);

  Mamba1CpuReference ref(w);
  Mamba1CpuReference::State state = ref.new_state();
  ASSERT_EQ(state.conv.size(), 2u * 5u * 3u);
  ASSERT_EQ(state.ssm.size(), 2u * 5u * 2u);
  for (size_t t = 0; t < tokens.size(); ++t) {
    std::vector<float> logits(7);
    ref.step(state, tokens[t], logits.data());
    double scale = 0.0;
    for (double v : want[t]) scale = std::max(scale, std::fabs(v));
    ASSERT_GT(scale, 0.1);  // the comparison means something
    for (size_t v = 0; v < 7; ++v) {
      // The reference rounds its activations and state to fp32, the sequence form does not.
      EXPECT_NEAR(logits[v], want[t][v], 2e-5 * scale) << "token " << t << " logit " << v;
    }
  }
}

}  // namespace
}  // namespace vkssm

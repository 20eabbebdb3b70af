// The CPU reference of Mamba-1: one token through upstream `Mamba.step` for every layer, inside
// the `MambaLMHeadModel` residual stream. This is the oracle the GPU tests compare against, so it
// favours plainness over speed: one loop per formula of docs/architectures (Mamba-1 section), every
// dot product accumulated in double, state stored in fp32 like the GPU keeps it.
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "host/error.h"
#include "models/mamba1/mamba1_model.h"

namespace vkssm {
namespace {

// Sizes as size_t, checked once so the loops below can index without casts.
struct Dims {
  size_t D, E, N, K, R, V, L;
};

Dims dims_of(const Mamba1Config& c, const std::string& source) {
  auto positive = [&](int64_t v, const char* name) {
    if (v <= 0) {
      throw Error(source + ": Mamba-1 config " + name + " = " + std::to_string(v) +
                  " must be positive");
    }
    return size_t(v);
  };
  if (c.n_layer < 0) {
    throw Error(source + ": Mamba-1 config n_layer = " + std::to_string(c.n_layer) +
                " must not be negative");
  }
  return Dims{positive(c.d_model, "d_model"), positive(c.d_inner, "d_inner"),
              positive(c.d_state, "d_state"), positive(c.d_conv, "d_conv"),
              positive(c.dt_rank, "dt_rank"), positive(c.vocab_size, "vocab_size"),
              size_t(c.n_layer)};
}

// Hand-built or half-loaded weights must never make the reference read out of bounds, so every
// vector is checked against the config before it is used. Cheap next to one step's matmuls.
void check_size(const std::vector<float>& v, size_t want, const std::string& name,
                const std::string& source) {
  if (v.size() != want) {
    throw Error(source + ": Mamba-1 tensor " + name + " has " + std::to_string(v.size()) +
                " values, expected " + std::to_string(want));
  }
}

Dims check_weights(const Mamba1Weights& w) {
  const std::string source = w.source.empty() ? std::string("Mamba-1 weights") : w.source;
  const Dims d = dims_of(w.cfg, source);
  if (w.layers.size() != d.L) {
    throw Error(source + ": Mamba-1 weights hold " + std::to_string(w.layers.size()) +
                " layers, config n_layer = " + std::to_string(d.L));
  }
  check_size(w.embeddings, d.V * d.D, "embeddings", source);
  check_size(w.norm_f, d.D, "norm_f", source);
  check_size(w.head(), d.V * d.D, w.lm_head.empty() ? "embeddings (tied head)" : "lm_head",
             source);
  for (size_t l = 0; l < d.L; ++l) {
    const Mamba1LayerWeights& lw = w.layers[l];
    const std::string p = "layers." + std::to_string(l) + ".";
    check_size(lw.norm, d.D, p + "norm", source);
    check_size(lw.in_proj, 2 * d.E * d.D, p + "in_proj", source);
    if (!lw.in_proj_b.empty()) check_size(lw.in_proj_b, 2 * d.E, p + "in_proj_b", source);
    check_size(lw.conv_w, d.E * d.K, p + "conv_w", source);
    if (!lw.conv_b.empty()) check_size(lw.conv_b, d.E, p + "conv_b", source);
    check_size(lw.x_proj, (d.R + 2 * d.N) * d.E, p + "x_proj", source);
    check_size(lw.dt_proj_w, d.E * d.R, p + "dt_proj_w", source);
    check_size(lw.dt_proj_b, d.E, p + "dt_proj_b", source);
    check_size(lw.A_log, d.E * d.N, p + "A_log", source);
    check_size(lw.D, d.E, p + "D", source);
    check_size(lw.out_proj, d.D * d.E, p + "out_proj", source);
    if (!lw.out_proj_b.empty()) check_size(lw.out_proj_b, d.D, p + "out_proj_b", source);
  }
  return d;
}

// y = W x (+ b), W row-major [rows, cols], accumulated in double.
std::vector<float> matvec(const std::vector<float>& W, size_t rows, size_t cols, const float* x,
                          const std::vector<float>& bias) {
  std::vector<float> y(rows);
  for (size_t r = 0; r < rows; ++r) {
    double acc = bias.empty() ? 0.0 : double(bias[r]);
    const float* row = W.data() + r * cols;
    for (size_t c = 0; c < cols; ++c) acc += double(row[c]) * double(x[c]);
    y[r] = float(acc);
  }
  return y;
}

// RMSNorm as upstream (mamba_ssm.ops.triton.layer_norm.rms_norm_ref): x / sqrt(mean(x²) + eps) * w.
std::vector<float> rms_norm(const std::vector<float>& x, const std::vector<float>& weight,
                            float eps) {
  double sum_sq = 0.0;
  for (float v : x) sum_sq += double(v) * double(v);
  const double inv_rms = 1.0 / std::sqrt(sum_sq / double(x.size()) + double(eps));
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = float(double(x[i]) * inv_rms * double(weight[i]));
  return y;
}

// x / sqrt(mean(x²) + eps) in place, without a weight (Falcon-Mamba's rms_forward).
void rms_normalise(float* x, size_t n, float eps) {
  double sum_sq = 0.0;
  for (size_t i = 0; i < n; ++i) sum_sq += double(x[i]) * double(x[i]);
  const double inv_rms = 1.0 / std::sqrt(sum_sq / double(n) + double(eps));
  for (size_t i = 0; i < n; ++i) x[i] = float(double(x[i]) * inv_rms);
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }

// torch.nn.functional.softplus with its default threshold: linear above 20, where
// log1p(exp(x)) equals x to float precision anyway.
double softplus(double x) { return x > 20.0 ? x : std::log1p(std::exp(x)); }

}  // namespace

Mamba1CpuReference::State Mamba1CpuReference::new_state() const {
  const Dims d = check_weights(w_);
  State s;
  s.conv.assign(d.L * d.E * d.K, 0.0f);
  s.ssm.assign(d.L * d.E * d.N, 0.0f);
  return s;
}

void Mamba1CpuReference::step(State& state, int32_t token, float* logits) const {
  const Dims d = check_weights(w_);
  const float eps = w_.cfg.norm_eps;
  if (token < 0 || size_t(token) >= d.V) {
    throw Error("token id " + std::to_string(token) + " out of range [0, " + std::to_string(d.V) +
                ")");
  }
  if (state.conv.size() != d.L * d.E * d.K || state.ssm.size() != d.L * d.E * d.N) {
    throw Error("Mamba-1 state does not match the model (conv " +
                std::to_string(state.conv.size()) + " values, expected " +
                std::to_string(d.L * d.E * d.K) + "; ssm " + std::to_string(state.ssm.size()) +
                " values, expected " + std::to_string(d.L * d.E * d.N) + ")");
  }

  // Upstream starts with residual = None; adding h to a zero residual is the same thing.
  std::vector<float> hidden(w_.embeddings.begin() + ptrdiff_t(size_t(token) * d.D),
                            w_.embeddings.begin() + ptrdiff_t((size_t(token) + 1) * d.D));
  std::vector<float> residual(d.D, 0.0f);

  for (size_t l = 0; l < d.L; ++l) {
    const Mamba1LayerWeights& lw = w_.layers[l];
    float* conv_state = state.conv.data() + l * d.E * d.K;  // [E, K]
    float* ssm_state = state.ssm.data() + l * d.E * d.N;    // [E, N]

    for (size_t i = 0; i < d.D; ++i) residual[i] = hidden[i] + residual[i];
    const std::vector<float> x = rms_norm(residual, lw.norm, eps);

    // in_proj rows [0, E) are the SSM input, rows [E, 2E) the gate z.
    const std::vector<float> xz = matvec(lw.in_proj, 2 * d.E, d.D, x.data(), lw.in_proj_b);
    const float* x_in = xz.data();
    const float* z = xz.data() + d.E;

    // Depthwise causal conv over the last K inputs: shift the window left, newest input last.
    std::vector<float> xc(d.E);
    for (size_t e = 0; e < d.E; ++e) {
      float* window = conv_state + e * d.K;
      for (size_t k = 0; k + 1 < d.K; ++k) window[k] = window[k + 1];
      window[d.K - 1] = x_in[e];
      double acc = lw.conv_b.empty() ? 0.0 : double(lw.conv_b[e]);
      for (size_t k = 0; k < d.K; ++k) acc += double(window[k]) * double(lw.conv_w[e * d.K + k]);
      xc[e] = float(silu(acc));
    }

    // x_proj gives dt_in [R] | B [N] | C [N].
    std::vector<float> dbl = matvec(lw.x_proj, d.R + 2 * d.N, d.E, xc.data(), {});
    if (w_.cfg.dt_b_c_rms) {  // Falcon-Mamba: each part RMS-normalised, without a weight
      rms_normalise(dbl.data(), d.R, w_.cfg.mixer_rms_eps);
      rms_normalise(dbl.data() + d.R, d.N, w_.cfg.mixer_rms_eps);
      rms_normalise(dbl.data() + d.R + d.N, d.N, w_.cfg.mixer_rms_eps);
    }
    const float* B = dbl.data() + d.R;
    const float* C = dbl.data() + d.R + d.N;
    // dt_proj's bias is added inside the softplus, as upstream step() does.
    const std::vector<float> dt_lin = matvec(lw.dt_proj_w, d.E, d.R, dbl.data(), {});

    // Selective scan, one step: discretise A with dt (zero-order hold), B with dt (Euler).
    std::vector<float> y(d.E);
    for (size_t e = 0; e < d.E; ++e) {
      const double dt = softplus(double(dt_lin[e]) + double(lw.dt_proj_b[e]));
      const double dt_x = dt * double(xc[e]);
      double acc = 0.0;
      for (size_t n = 0; n < d.N; ++n) {
        const double A = -std::exp(double(lw.A_log[e * d.N + n]));
        float& s = ssm_state[e * d.N + n];
        s = float(double(s) * std::exp(dt * A) + dt_x * double(B[n]));
        acc += double(s) * double(C[n]);
      }
      acc += double(lw.D[e]) * double(xc[e]);
      y[e] = float(acc * silu(double(z[e])));
    }

    hidden = matvec(lw.out_proj, d.D, d.E, y.data(), lw.out_proj_b);
  }

  for (size_t i = 0; i < d.D; ++i) residual[i] = hidden[i] + residual[i];
  const std::vector<float> x = rms_norm(residual, w_.norm_f, eps);
  const std::vector<float> out = matvec(w_.head(), d.V, d.D, x.data(), {});
  for (size_t v = 0; v < d.V; ++v) logits[v] = out[v];
}

}  // namespace vkssm

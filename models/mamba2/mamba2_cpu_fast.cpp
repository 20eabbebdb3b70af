// Mamba-2 on the cpu backend: the reference's step (mamba2_cpu.cpp) for many rows at once
// (models/common/token_model_cpu_fast.h): in_proj and out_proj are one product over all rows;
// the conv (channel ranges), the scan (head ranges) and the gated RMSNorm walk the rows in
// order, so a prompt's rows carry its one state from token to token. Sums are fp32.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/cpu/ssm_kernels.h"
#include "host/error.h"
#include "models/common/token_model_cpu_fast.h"
#include "models/mamba2/mamba2_model.h"

namespace vkssm {
namespace {

struct FastLayer {
  std::vector<float> norm, conv_w, conv_b, dt_bias, A, D, gate_norm;  // A = -exp(A_log)
  std::vector<float> in_b, out_b;  // empty when the checkpoint has none
  CpuMatrix in_proj, out_proj;
};

const float* or_null(const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }

// Hand-built weights must not make the stepper read out of bounds (the loader checks files).
void check_size(const std::vector<float>& v, size_t want, const std::string& name) {
  if (v.size() != want)
    throw Error("Mamba-2 tensor " + name + " has " + std::to_string(v.size()) + " values, expected " +
                std::to_string(want));
}

class Mamba2FastStepper final : public TokenModelCpuFast {
 public:
  Mamba2FastStepper(const Mamba2Weights& w, const LoadOptions& options)
      : TokenModelCpuFast(w, size_t(w.cfg.d_model), size_t(w.cfg.vocab_size), w.cfg.norm_eps, options),
        cfg_(w.cfg), E_(size_t(w.cfg.d_inner)), N_(size_t(w.cfg.d_state)), K_(size_t(w.cfg.d_conv)),
        H_(size_t(w.cfg.n_heads)), P_(size_t(w.cfg.head_dim)), G_(size_t(w.cfg.n_groups)),
        CD_(size_t(w.cfg.conv_dim())), IN_(size_t(w.cfg.in_proj_rows())), L_(size_t(w.cfg.n_layer)) {
    const size_t D = d_model();
    for (const Mamba2LayerWeights& lw : w.layers) {
      FastLayer l;
      l.norm = lw.norm;
      l.in_proj = matrix(lw.in_proj, IN_, D);
      l.out_proj = matrix(lw.out_proj, D, E_);
      l.in_b = lw.in_proj_b;
      l.out_b = lw.out_proj_b;
      l.conv_w = lw.conv_w;
      l.conv_b = lw.conv_b;
      l.dt_bias = lw.dt_bias;
      l.A.resize(lw.A_log.size());
      std::transform(lw.A_log.begin(), lw.A_log.end(), l.A.begin(), [](float a) { return -std::exp(a); });
      l.D = lw.D;
      l.gate_norm = lw.gate_norm;
      layers_.push_back(std::move(l));
    }
    proj_.resize(kMaxRows * IN_);
    xbc_.resize(kMaxRows * CD_);
    dt_.resize(kMaxRows * H_);
    decay_.resize(kMaxRows * H_);
    y_.resize(kMaxRows * E_);
  }

  size_t state_floats() const override { return L_ * (CD_ * K_ + E_ * N_); }

 private:
  size_t layer_count() const override { return L_; }

  void mixer(size_t l, float* const* states, size_t n) const override {
    const FastLayer& w = layers_[l];
    const size_t D = d_model();
    norm_rows(residual(), n, w.norm.data(), normed());
    matmul()(w.in_proj, {normed(), D, n, proj_.data(), IN_, or_null(w.in_b), false});  // z | xBC | dt

    // Causal conv + SiLU over x | B | C, rows in order.
    pool().parallel_for(CD_, ThreadPool::grain_for(n * K_, 16), [&](size_t c0, size_t c1, int) {
      for (size_t r = 0; r < n; ++r)
        causal_conv_silu(states[r] + l * CD_ * K_, proj_.data() + r * IN_ + E_, w.conv_w.data(), w.conv_b.data(), K_,
                         c0, c1, xbc_.data() + r * CD_);
    });

    // dt and the decay per head and row (H values: on the caller).
    for (size_t r = 0; r < n; ++r) {
      const float* dt_in = proj_.data() + r * IN_ + E_ + CD_;
      for (size_t h = 0; h < H_; ++h) {
        const float x = dt_in[h] + w.dt_bias[h];
        const float dt = std::clamp(x > 20.0f ? x : std::log1p(std::exp(x)), cfg_.dt_min, cfg_.dt_max);
        dt_[r * H_ + h] = dt;
        decay_[r * H_ + h] = std::exp(dt * w.A[h]);
      }
    }

    // The scan, split by heads: per head and row, P·N state updates.
    pool().parallel_for(H_, ThreadPool::grain_for(n * P_ * N_ * 2, 1), [&](size_t h0, size_t h1, int) {
      for (size_t r = 0; r < n; ++r) {
        Mamba2ScanRow row;
        row.head_dim = P_;
        row.d_state = N_;
        row.heads_per_group = H_ / G_;
        row.dt = dt_.data() + r * H_;
        row.decay = decay_.data() + r * H_;
        row.x = xbc_.data() + r * CD_;
        row.B = row.x + E_;
        row.C = row.x + E_ + G_ * N_;
        row.D = w.D.data();
        row.ssm = states[r] + L_ * CD_ * K_ + l * E_ * N_;
        row.y = y_.data() + r * E_;
        mamba2_scan(row, h0, h1);
      }
    });

    // Gated RMSNorm: y * SiLU(z), normalised within each group of E/G channels.
    pool().parallel_for(n, ThreadPool::grain_for(E_ * 8, 1), [&](size_t r0, size_t r1, int) {
      const size_t gs = E_ / G_;
      for (size_t r = r0; r < r1; ++r) {
        float* z = proj_.data() + r * IN_;
        float* y = y_.data() + r * E_;
        silu_inplace(z, E_);
        for (size_t e = 0; e < E_; ++e) y[e] *= z[e];
        for (size_t g = 0; g < G_; ++g) rms_norm_row(y + g * gs, gs, w.gate_norm.data() + g * gs, cfg_.norm_eps, y + g * gs);
      }
    });

    matmul()(w.out_proj, {y_.data(), E_, n, residual(), D, or_null(w.out_b), true});
  }

  Mamba2Config cfg_;
  size_t E_, N_, K_, H_, P_, G_, CD_, IN_, L_;
  std::vector<FastLayer> layers_;
  // Activations of one pass, [kMaxRows][...]: sized at load, reused by every step.
  mutable std::vector<float> proj_, xbc_, dt_, decay_, y_;
};

}  // namespace

std::unique_ptr<CpuStepper> make_mamba2_cpu_fast(const Mamba2Weights& w, const LoadOptions& options) {
  const Mamba2Config& c = w.cfg;
  const size_t D = size_t(c.d_model), V = size_t(c.vocab_size), E = size_t(c.d_inner), H = size_t(c.n_heads);
  const size_t CD = size_t(c.conv_dim()), K = size_t(c.d_conv);
  if (w.layers.size() != size_t(c.n_layer))
    throw Error("Mamba-2 weights hold " + std::to_string(w.layers.size()) + " layers, config n_layer = " +
                std::to_string(c.n_layer));
  check_size(w.embeddings, V * D, "embeddings");
  check_size(w.norm_f, D, "norm_f");
  if (!w.lm_head.empty()) check_size(w.lm_head, V * D, "lm_head");
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const Mamba2LayerWeights& lw = w.layers[l];
    const std::string p = "layers." + std::to_string(l) + ".";
    check_size(lw.norm, D, p + "norm");
    check_size(lw.in_proj, size_t(c.in_proj_rows()) * D, p + "in_proj");
    check_size(lw.conv_w, CD * K, p + "conv_w");
    check_size(lw.conv_b, CD, p + "conv_b");
    check_size(lw.dt_bias, H, p + "dt_bias");
    check_size(lw.A_log, H, p + "A_log");
    check_size(lw.D, H, p + "D");
    check_size(lw.gate_norm, E, p + "gate_norm");
    check_size(lw.out_proj, D * E, p + "out_proj");
  }
  return std::make_unique<Mamba2FastStepper>(w, options);
}

}  // namespace vkssm

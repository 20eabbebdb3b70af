// Mamba-1 (and Falcon-Mamba) on the cpu backend: the reference's step (mamba1_cpu.cpp) for
// many rows at once (models/common/token_model_cpu_fast.h). Every projection is one product over
// all rows (each weight read once per pass), while the conv and the scan walk the rows in order,
// split across threads by channel: rows that share one state (a prompt) carry it from token to
// token exactly as consecutive steps would. Sums are fp32 (the reference's are double).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "engine/cpu/ssm_kernels.h"
#include "models/common/token_model_cpu_fast.h"
#include "models/mamba1/mamba1_model.h"

namespace vkssm {
namespace {

struct FastLayer {
  std::vector<float> norm;
  CpuMatrix in_proj, x_proj, dt_proj, out_proj;
  std::vector<float> in_b, out_b;  // empty when the checkpoint has none
  std::vector<float> conv_w, conv_b, dt_b, A, D;  // A = -exp(A_log)
};

const float* or_null(const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }

class Mamba1FastStepper final : public TokenModelCpuFast {
 public:
  Mamba1FastStepper(const Mamba1Weights& w, const LoadOptions& options)
      : TokenModelCpuFast(w, size_t(w.cfg.d_model), size_t(w.cfg.vocab_size), w.cfg.norm_eps, options),
        cfg_(w.cfg), E_(size_t(w.cfg.d_inner)), N_(size_t(w.cfg.d_state)), K_(size_t(w.cfg.d_conv)),
        R_(size_t(w.cfg.dt_rank)), L_(size_t(w.cfg.n_layer)) {
    const size_t D = d_model();
    for (const Mamba1LayerWeights& lw : w.layers) {
      FastLayer l;
      l.norm = lw.norm;
      l.in_proj = matrix(lw.in_proj, 2 * E_, D);
      l.x_proj = matrix(lw.x_proj, R_ + 2 * N_, E_);
      l.dt_proj = matrix(lw.dt_proj_w, E_, R_);
      l.out_proj = matrix(lw.out_proj, D, E_);
      l.in_b = lw.in_proj_b;
      l.out_b = lw.out_proj_b;
      l.conv_w = lw.conv_w;
      l.conv_b = lw.conv_b.empty() ? std::vector<float>(E_, 0.0f) : lw.conv_b;
      l.dt_b = lw.dt_proj_b;
      l.A.resize(lw.A_log.size());
      std::transform(lw.A_log.begin(), lw.A_log.end(), l.A.begin(), [](float a) { return -std::exp(a); });
      l.D = lw.D;
      layers_.push_back(std::move(l));
    }
    xz_.resize(kMaxRows * 2 * E_);
    xc_.resize(kMaxRows * E_);
    dbl_.resize(kMaxRows * (R_ + 2 * N_));
    dt_.resize(kMaxRows * E_);
    y_.resize(kMaxRows * E_);
  }

  size_t state_floats() const override { return L_ * E_ * (K_ + N_); }

 private:
  size_t layer_count() const override { return L_; }

  void mixer(size_t l, float* const* states, size_t n) const override {
    const FastLayer& w = layers_[l];
    const size_t D = d_model(), P = R_ + 2 * N_;  // x_proj rows: dt_in | B | C
    norm_rows(residual(), n, w.norm.data(), normed());
    matmul()(w.in_proj, {normed(), D, n, xz_.data(), 2 * E_, or_null(w.in_b), false});

    // Depthwise causal conv + SiLU, rows in order (a prompt's rows share the window).
    pool().parallel_for(E_, ThreadPool::grain_for(n * K_, 16), [&](size_t e0, size_t e1, int) {
      for (size_t r = 0; r < n; ++r)
        causal_conv_silu(states[r] + l * E_ * K_, xz_.data() + r * 2 * E_, w.conv_w.data(), w.conv_b.data(), K_, e0,
                         e1, xc_.data() + r * E_);
    });

    matmul()(w.x_proj, {xc_.data(), E_, n, dbl_.data(), P, nullptr, false});
    if (cfg_.dt_b_c_rms) {  // Falcon-Mamba: dt_in, B and C each RMS-normalised, no weight
      for (size_t r = 0; r < n; ++r) {
        float* d = dbl_.data() + r * P;
        rms_norm_row(d, R_, nullptr, cfg_.mixer_rms_eps, d);
        rms_norm_row(d + R_, N_, nullptr, cfg_.mixer_rms_eps, d + R_);
        rms_norm_row(d + R_ + N_, N_, nullptr, cfg_.mixer_rms_eps, d + R_ + N_);
      }
    }

    // dt_proj and the scan for a range of channels (dt_proj's row e is channel e's dt); per
    // channel and row: R multiply-adds and ~N exponentials. Ranges start on dt_proj's panels.
    pool().parallel_for(E_, ThreadPool::grain_for(n * (R_ + 8 * N_), std::lcm<size_t>(16, w.dt_proj.panel_rows())),
                        [&](size_t e0, size_t e1, int) {
      matmul().rows(w.dt_proj, e0, e1, {dbl_.data(), P, n, dt_.data(), E_, nullptr, false});
      for (size_t r = 0; r < n; ++r) {
        Mamba1ScanRow row;
        row.d_state = N_;
        row.dt_in = dt_.data() + r * E_;
        row.dt_bias = w.dt_b.data();
        row.A = w.A.data();
        row.xc = xc_.data() + r * E_;
        row.B = dbl_.data() + r * P + R_;
        row.C = dbl_.data() + r * P + R_ + N_;
        row.D = w.D.data();
        row.z = xz_.data() + r * 2 * E_ + E_;
        row.ssm = states[r] + L_ * E_ * K_ + l * E_ * N_;
        row.y = y_.data() + r * E_;
        mamba1_scan(row, e0, e1);
      }
    });

    matmul()(w.out_proj, {y_.data(), E_, n, residual(), D, or_null(w.out_b), true});
  }

  Mamba1Config cfg_;
  size_t E_, N_, K_, R_, L_;
  std::vector<FastLayer> layers_;
  // Activations of one pass, [kMaxRows][...]: sized at load, reused by every step.
  mutable std::vector<float> xz_, xc_, dbl_, dt_, y_;
};

}  // namespace

std::unique_ptr<CpuStepper> make_mamba1_cpu_fast(const Mamba1Weights& weights, const LoadOptions& options) {
  Mamba1CpuReference(weights).new_state();  // checks every tensor's size against the config, naming it
  return std::make_unique<Mamba1FastStepper>(weights, options);
}

}  // namespace vkssm

// S4DCpuReference: one frame through upstream's S4Model, written as the S4D recurrence with
// double accumulation. Plain loops on purpose: this is the oracle the backends are tested against.
#include <cmath>

#include "host/error.h"
#include "models/s4d/s4d_model.h"

namespace vkssm {

namespace {

void check_size(const std::vector<float>& v, int64_t want, const std::string& name, const std::string& source) {
  if (int64_t(v.size()) != want)
    throw Error("S4D weights " + source + ": " + name + " holds " + std::to_string(v.size()) +
                " values, the config needs " + std::to_string(want));
}

// nn.GELU() default: the exact form with erf, not the tanh approximation.
double gelu(double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); }

double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// nn.LayerNorm over H values: biased variance, eps inside the square root.
void layer_norm(const double* in, double* out, const std::vector<float>& weight, const std::vector<float>& bias,
                int64_t H, double eps) {
  double mean = 0;
  for (int64_t h = 0; h < H; ++h) mean += in[h];
  mean /= double(H);
  double var = 0;
  for (int64_t h = 0; h < H; ++h) var += (in[h] - mean) * (in[h] - mean);
  var /= double(H);
  const double inv = 1.0 / std::sqrt(var + eps);
  for (int64_t h = 0; h < H; ++h) out[h] = (in[h] - mean) * inv * weight[size_t(h)] + bias[size_t(h)];
}

}  // namespace

S4DCpuReference::S4DCpuReference(const S4DWeights& w) : w_(w) {
  const S4DConfig& c = w.cfg;
  const int64_t H = c.d_model, M = c.modes();
  check_size(w.encoder_w, H * c.d_input, "encoder.weight", w.source);
  check_size(w.encoder_b, H, "encoder.bias", w.source);
  check_size(w.decoder_w, c.d_output * H, "decoder.weight", w.source);
  check_size(w.decoder_b, c.d_output, "decoder.bias", w.source);
  if (int64_t(w.layers.size()) != c.n_layers)
    throw Error("S4D weights " + w.source + " hold " + std::to_string(w.layers.size()) +
                " layers, the config gives n_layers " + std::to_string(c.n_layers));
  dA_.resize(w.layers.size());
  dB_.resize(w.layers.size());
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const S4DLayerWeights& L = w.layers[i];
    const std::string p = "s4_layers." + std::to_string(i) + ".";
    check_size(L.log_dt, H, p + "kernel.log_dt", w.source);
    check_size(L.C, 2 * H * M, p + "kernel.C", w.source);
    check_size(L.log_A_real, H * M, p + "kernel.log_A_real", w.source);
    check_size(L.A_imag, H * M, p + "kernel.A_imag", w.source);
    check_size(L.D, H, p + "D", w.source);
    check_size(L.out_w, 2 * H * H, p + "output_linear.0.weight", w.source);
    check_size(L.out_b, 2 * H, p + "output_linear.0.bias", w.source);
    check_size(L.norm_w, H, "norms." + std::to_string(i) + ".weight", w.source);
    check_size(L.norm_b, H, "norms." + std::to_string(i) + ".bias", w.source);
    s4d_zoh(L, H, M, "S4D layer " + std::to_string(i) + " of " + w.source, dA_[i], dB_[i]);
  }
  x_.resize(size_t(H));
  z_.resize(size_t(H));
  y_.resize(size_t(H));
  a_.resize(size_t(2 * H));
}

size_t S4DCpuReference::state_floats() const {
  return size_t(w_.cfg.n_layers * w_.cfg.d_model * w_.cfg.modes() * 2);
}

void S4DCpuReference::step(float* state, const float* frame, float* out) const {
  const S4DConfig& c = w_.cfg;
  const int64_t H = c.d_model, M = c.modes();
  const double eps = c.layer_norm_eps;

  for (int64_t h = 0; h < H; ++h) {
    double acc = w_.encoder_b[size_t(h)];
    for (int64_t j = 0; j < c.d_input; ++j) acc += double(w_.encoder_w[size_t(h * c.d_input + j)]) * frame[j];
    x_[size_t(h)] = acc;
  }

  for (size_t i = 0; i < w_.layers.size(); ++i) {
    const S4DLayerWeights& L = w_.layers[i];
    if (c.prenorm) layer_norm(x_.data(), z_.data(), L.norm_w, L.norm_b, H, eps);
    else z_ = x_;

    float* s = state + i * size_t(H * M * 2);
    for (int64_t h = 0; h < H; ++h) {
      const double u = z_[size_t(h)];
      double y = double(L.D[size_t(h)]) * u;
      for (int64_t m = 0; m < M; ++m) {
        const size_t k = size_t(h * M + m);
        const std::complex<double> prev(s[2 * k], s[2 * k + 1]);
        const std::complex<double> next = dA_[i][k] * prev + dB_[i][k] * u;
        s[2 * k] = float(next.real());
        s[2 * k + 1] = float(next.imag());
        // 2·Re(Cc·s): the conjugate mode's contribution, which upstream folds into the factor 2.
        y += 2.0 * (double(L.C[2 * k]) * next.real() - double(L.C[2 * k + 1]) * next.imag());
      }
      y_[size_t(h)] = gelu(y);
    }

    for (int64_t r = 0; r < 2 * H; ++r) {
      double acc = L.out_b[size_t(r)];
      const float* row = L.out_w.data() + r * H;
      for (int64_t h = 0; h < H; ++h) acc += double(row[h]) * y_[size_t(h)];
      a_[size_t(r)] = acc;
    }
    for (int64_t h = 0; h < H; ++h) x_[size_t(h)] += a_[size_t(h)] * sigmoid(a_[size_t(H + h)]);
    if (!c.prenorm) {
      layer_norm(x_.data(), z_.data(), L.norm_w, L.norm_b, H, eps);
      x_ = z_;
    }
  }

  for (int64_t o = 0; o < c.d_output; ++o) {
    double acc = w_.decoder_b[size_t(o)];
    for (int64_t h = 0; h < H; ++h) acc += double(w_.decoder_w[size_t(o * H + h)]) * x_[size_t(h)];
    out[o] = float(acc);
  }
}

}  // namespace vkssm

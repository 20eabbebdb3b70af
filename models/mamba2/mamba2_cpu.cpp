// The Mamba-2 CPU reference: a plain, readable Mamba2.step in double accumulation (the tests'
// oracle). State and weights round to fp32 where the model keeps them; everything in between is
// double.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "host/error.h"
#include "models/mamba2/mamba2_model.h"

namespace vkssm {
namespace {

double silu(double x) { return x / (1.0 + std::exp(-x)); }
double softplus(double x) { return x > 20.0 ? x : std::log1p(std::exp(x)); }

// out[r] = sum_c m[r, c] * x[c] (+ bias[r])
void matvec(const std::vector<float>& m, const std::vector<float>& bias, const std::vector<double>& x, int64_t rows,
            std::vector<double>& out) {
  const int64_t cols = int64_t(x.size());
  out.assign(size_t(rows), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    double acc = bias.empty() ? 0.0 : bias[size_t(r)];
    const float* row = m.data() + r * cols;
    for (int64_t c = 0; c < cols; ++c) acc += double(row[c]) * x[size_t(c)];
    out[size_t(r)] = acc;
  }
}

std::vector<double> rms_norm(const std::vector<double>& x, const std::vector<float>& w, double eps) {
  double ss = 0.0;
  for (double v : x) ss += v * v;
  const double scale = 1.0 / std::sqrt(ss / double(x.size()) + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * scale * double(w[i]);
  return y;
}

}  // namespace

size_t Mamba2CpuReference::state_floats() const {
  const Mamba2Config& c = w_.cfg;
  return size_t(c.n_layer) * size_t(c.conv_dim() * c.d_conv + c.d_inner * c.d_state);
}

void Mamba2CpuReference::step(float* state, int32_t token, float* logits) const {
  const Mamba2Config& c = w_.cfg;
  const int64_t D = c.d_model, E = c.d_inner, N = c.d_state, K = c.d_conv, H = c.n_heads, P = c.head_dim;
  const int64_t G = c.n_groups, CD = c.conv_dim(), V = c.vocab_size;
  const int64_t heads_per_group = H / G, group_size = E / G;
  if (token < 0 || token >= V)
    throw Error("token " + std::to_string(token) + " is outside the vocabulary [0, " + std::to_string(V) + ")");
  float* conv_all = state;                                  // [L][CD][K]
  float* ssm_all = state + size_t(c.n_layer) * CD * K;      // [L][H][P][N]

  std::vector<double> h(static_cast<size_t>(D)), residual(static_cast<size_t>(D), 0.0);
  for (int64_t d = 0; d < D; ++d) h[size_t(d)] = w_.embeddings[size_t(token) * D + d];
  std::vector<double> zxbcdt, xbc(static_cast<size_t>(CD)), y(static_cast<size_t>(E)), out;
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const Mamba2LayerWeights& L = w_.layers[size_t(l)];
    for (int64_t d = 0; d < D; ++d) residual[size_t(d)] += h[size_t(d)];
    matvec(L.in_proj, L.in_proj_b, rms_norm(residual, L.norm, c.norm_eps), c.in_proj_rows(), zxbcdt);
    const double* z = zxbcdt.data();
    const double* xbc_in = zxbcdt.data() + E;
    const double* dt_in = zxbcdt.data() + E + CD;

    // Causal conv over the last K inputs of each of the x | B | C channels.
    float* conv = conv_all + size_t(l) * CD * K;
    for (int64_t ch = 0; ch < CD; ++ch) {
      float* s = conv + ch * K;
      for (int64_t k = 0; k + 1 < K; ++k) s[k] = s[k + 1];
      s[K - 1] = float(xbc_in[ch]);
      double acc = L.conv_b[size_t(ch)];
      for (int64_t k = 0; k < K; ++k) acc += double(s[k]) * L.conv_w[size_t(ch * K + k)];
      xbc[size_t(ch)] = silu(acc);
    }
    const double* x = xbc.data();
    const double* B = xbc.data() + E;
    const double* C = xbc.data() + E + G * N;

    float* ssm = ssm_all + size_t(l) * E * N;
    for (int64_t hd = 0; hd < H; ++hd) {
      double dt = softplus(dt_in[hd] + L.dt_bias[size_t(hd)]);
      dt = std::min(std::max(dt, double(c.dt_min)), double(c.dt_max));
      const double dA = std::exp(dt * -std::exp(double(L.A_log[size_t(hd)])));
      const int64_t g = hd / heads_per_group;
      for (int64_t p = 0; p < P; ++p) {
        const int64_t e = hd * P + p;
        float* s = ssm + e * N;
        double acc = 0.0;
        for (int64_t n = 0; n < N; ++n) {
          const double v = double(s[n]) * dA + dt * x[e] * B[g * N + n];
          s[n] = float(v);
          acc += v * C[g * N + n];
        }
        y[size_t(e)] = acc + double(L.D[size_t(hd)]) * x[e];
      }
    }
    // Gated RMSNorm: y * silu(z), normalised within each group of E/G channels.
    for (int64_t e = 0; e < E; ++e) y[size_t(e)] *= silu(z[e]);
    for (int64_t g = 0; g < G; ++g) {
      double ss = 0.0;
      for (int64_t i = 0; i < group_size; ++i) ss += y[size_t(g * group_size + i)] * y[size_t(g * group_size + i)];
      const double scale = 1.0 / std::sqrt(ss / double(group_size) + c.norm_eps);
      for (int64_t i = 0; i < group_size; ++i) {
        const size_t e = size_t(g * group_size + i);
        y[e] = y[e] * scale * double(L.gate_norm[e]);
      }
    }
    matvec(L.out_proj, L.out_proj_b, y, D, out);
    h = out;
  }
  for (int64_t d = 0; d < D; ++d) residual[size_t(d)] += h[size_t(d)];
  std::vector<double> logits_d;
  matvec(w_.head(), {}, rms_norm(residual, w_.norm_f, c.norm_eps), V, logits_d);
  for (int64_t v = 0; v < V; ++v) logits[v] = float(logits_d[size_t(v)]);
}

}  // namespace vkssm

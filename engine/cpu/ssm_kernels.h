#pragma once
// The cpu backend's element-wise and scan kernels (Highway, vectorized): what a Mamba or S4D
// step does between its matrix products. Single-threaded; callers split channels across threads.
#include <cstddef>

namespace vkssm {

// x = x * sigmoid(x), in place.
void silu_inplace(float* x, size_t n);

// One token of a depthwise causal conv for channels [c0, c1): each channel's window
// (window[c * K + k], newest input last) shifts left and takes x[c]; out[c] = SiLU(window · w[c]
// + bias[c]).
void causal_conv_silu(float* window, const float* x, const float* w, const float* bias, size_t K, size_t c0,
                      size_t c1, float* out);

// One token of Mamba-1's selective scan for channels [e0, e1) of one stream (all pointers are to
// that token's rows, indexed by channel e; A, ssm by e * d_state + n):
//   dt = softplus(dt_in + dt_bias); s = s * exp(dt * A) + dt * xc * B; y = (s·C + D * xc) * silu(z).
// `dt_in` is overwritten (with dt).
struct Mamba1ScanRow {
  size_t d_state = 0;
  float* dt_in = nullptr;         // [E] dt_proj output, bias not yet added
  const float* dt_bias = nullptr; // [E]
  const float* A = nullptr;       // [E][N] = -exp(A_log)
  const float* xc = nullptr;      // [E] conv output (after SiLU)
  const float* B = nullptr;       // [N]
  const float* C = nullptr;       // [N]
  const float* D = nullptr;       // [E]
  const float* z = nullptr;       // [E] gate
  float* ssm = nullptr;           // [E][N] the stream's state, updated
  float* y = nullptr;             // [E]
};
void mamba1_scan(const Mamba1ScanRow& row, size_t e0, size_t e1);

// One token of Mamba-2's scan for heads [h0, h1) of one stream (scalar dt and decay per head):
//   s[h][p][:] = s * decay[h] + dt[h] * x[h*P+p] * B[g][:]; y[h*P+p] = s·C[g] + D[h] * x[h*P+p],
// g = h / heads_per_group.
struct Mamba2ScanRow {
  size_t head_dim = 0, d_state = 0, heads_per_group = 1;
  const float* dt = nullptr;     // [H] after softplus and the clamp
  const float* decay = nullptr;  // [H] exp(dt * A)
  const float* x = nullptr;      // [E]
  const float* B = nullptr;      // [G][N]
  const float* C = nullptr;      // [G][N]
  const float* D = nullptr;      // [H]
  float* ssm = nullptr;          // [H][P][N] the stream's state, updated
  float* y = nullptr;            // [E]
};
void mamba2_scan(const Mamba2ScanRow& row, size_t h0, size_t h1);

// One frame of S4D's diagonal recurrence for channels [h0, h1) of one stream, on the complex
// state as the blob stores it ((re, im) pairs): per mode m of channel h
//   s = dA·s + dB·u;   y[h] = gelu(D[h]·u + 2·Re(Σ_m C·s))   (u = the channel's input)
// The complex products stay interleaved: with the load-time vectors below, dA·s is
// dA_re·s + dA_im·swap(s), swap exchanging each pair's re and im, and 2·Re(C·s) is the sum of
// C2·s. Every vector is [H][2M] floats.
struct S4DScanRow {
  size_t modes = 0;              // M
  const float* dA_re = nullptr;  // (re, re) of dA per mode
  const float* dA_im = nullptr;  // (-im, im) of dA per mode
  const float* dB = nullptr;     // (re, im) of dB per mode
  const float* C2 = nullptr;     // (2·re, -2·im) of C per mode
  const float* D = nullptr;      // [H]
  const float* u = nullptr;      // [H] the layer's input
  float* state = nullptr;        // [H][2M] the stream's state of this layer, updated
  float* y = nullptr;            // [H]
};
void s4d_scan(const S4DScanRow& row, size_t h0, size_t h1);

// S4D's GLU into the residual stream for one row: x[i] += a[i] * sigmoid(a[n + i]), i < n.
void glu_residual(float* x, const float* a, size_t n);

}  // namespace vkssm

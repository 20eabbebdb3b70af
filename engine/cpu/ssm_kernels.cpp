// Highway versions of ssm_kernels.h, dispatched at run time like matmul.cpp (see there why).
#include "engine/cpu/ssm_kernels.h"

#include <algorithm>
#include <cmath>

#include "engine/cpu/hwy_targets.h"
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "engine/cpu/ssm_kernels.cpp"
#include <hwy/foreach_target.h>  // re-includes this file once per target
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

HWY_BEFORE_NAMESPACE();
namespace vkssm {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using V = hn::Vec<DF>;

// Exp is valid up to +104; sigmoid and softplus clamp below that (their results are already
// exact in fp32 there).
HWY_INLINE V Silu(DF df, V x) {
  const V e = hn::Exp(df, hn::Min(hn::Neg(x), hn::Set(df, 80.0f)));
  return x / hn::Add(hn::Set(df, 1.0f), e);
}
// torch's softplus (threshold 20): x above 20, else log1p(exp(x)).
HWY_INLINE V Softplus(DF df, V x) {
  const V twenty = hn::Set(df, 20.0f);
  const V soft = hn::Log1p(df, hn::Exp(df, hn::Min(x, twenty)));
  return hn::IfThenElse(x > twenty, x, soft);
}
// exp(x) for x <= 0: the scan's decays exp(dt·A) (dt > 0, A = -exp(A_log) < 0), the most
// evaluated function of a Mamba-1 step (E·N per stream and layer). Cheaper than hn::Exp, which
// also covers overflow and splits its scaling in two: x is clamped at -87 (2^-126, the smallest
// normal scale; the decay of anything below is 0 to fp32's precision anyway), reduced to
// r = x - k·ln2 with |r| <= ln2/2 in two steps (k·ln2_hi is exact), exp(r) is the degree-6 Taylor
// polynomial (relative error below 2e-7 there), and 2^k is built in the exponent bits.
HWY_INLINE V ExpNonPositive(DF df, V x) {
  const hn::RebindToSigned<DF> di;
  x = hn::Max(x, hn::Set(df, -87.0f));
  const V k = hn::Round(hn::Mul(x, hn::Set(df, 1.44269504088896341f)));
  V r = hn::NegMulAdd(k, hn::Set(df, 0.693145751953125f), x);
  r = hn::NegMulAdd(k, hn::Set(df, 1.4286068202862268e-6f), r);
  V p = hn::Set(df, 1.0f / 720.0f);
  p = hn::MulAdd(p, r, hn::Set(df, 1.0f / 120.0f));
  p = hn::MulAdd(p, r, hn::Set(df, 1.0f / 24.0f));
  p = hn::MulAdd(p, r, hn::Set(df, 1.0f / 6.0f));
  p = hn::MulAdd(p, r, hn::Set(df, 0.5f));
  p = hn::MulAdd(p, r, hn::Set(df, 1.0f));
  p = hn::MulAdd(p, r, hn::Set(df, 1.0f));
  const auto bits = hn::ShiftLeft<23>(hn::Add(hn::ConvertTo(di, k), hn::Set(di, 127)));
  return hn::Mul(p, hn::BitCast(df, bits));
}
float ScalarSilu(float x) { return x / (1.0f + std::exp(-x)); }
float ScalarSoftplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }

void SiluInplace(float* x, size_t n) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(Silu(df, hn::LoadU(df, x + i)), df, x + i);
  for (; i < n; ++i) x[i] = ScalarSilu(x[i]);
}

// s[:] = s * decay + scale * B[:]; returns s·C (n values).
HWY_INLINE float UpdateState(float* s, const float* B, const float* C, size_t n, float decay, float scale) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  const V dv = hn::Set(df, decay), sv = hn::Set(df, scale);
  V acc = hn::Zero(df);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const V v = hn::MulAdd(hn::LoadU(df, s + i), dv, hn::Mul(sv, hn::LoadU(df, B + i)));
    hn::StoreU(v, df, s + i);
    acc = hn::MulAdd(v, hn::LoadU(df, C + i), acc);
  }
  float sum = hn::GetLane(hn::SumOfLanes(df, acc));
  for (; i < n; ++i) {
    s[i] = s[i] * decay + scale * B[i];
    sum += s[i] * C[i];
  }
  return sum;
}

void Mamba2Scan(const Mamba2ScanRow& a, size_t h0, size_t h1) {
  const size_t P = a.head_dim, N = a.d_state;
  for (size_t h = h0; h < h1; ++h) {
    const size_t g = h / a.heads_per_group;
    for (size_t p = 0; p < P; ++p) {
      const size_t e = h * P + p;
      a.y[e] = UpdateState(a.ssm + e * N, a.B + g * N, a.C + g * N, N, a.decay[h], a.dt[h] * a.x[e]) + a.D[h] * a.x[e];
    }
  }
}

void CausalConvSilu(float* window, const float* x, const float* w, const float* bias, size_t K, size_t c0,
                    size_t c1, float* out) {
  // Each tap is read once, before its slot is rewritten, and summed from the register: reading
  // the window back after the shift's scalar stores (as one vector load) stalls on every channel
  // (a store-to-load forward that fails), which made this loop a tenth of a batched step.
  for (size_t c = c0; c < c1; ++c) {
    float* win = window + c * K;
    const float* wc = w + c * K;
    float acc = bias[c];
    for (size_t k = 0; k + 1 < K; ++k) {
      const float v = win[k + 1];
      win[k] = v;
      acc = std::fma(v, wc[k], acc);
    }
    win[K - 1] = x[c];
    out[c] = std::fma(x[c], wc[K - 1], acc);
  }
  SiluInplace(out + c0, c1 - c0);
}

void Mamba1Scan(const Mamba1ScanRow& a, size_t e0, size_t e1) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  const size_t N = a.d_state;
  // dt for every channel of the range, vectorized over channels.
  size_t e = e0;
  for (; e + lanes <= e1; e += lanes) {
    const V x = hn::Add(hn::LoadU(df, a.dt_in + e), hn::LoadU(df, a.dt_bias + e));
    hn::StoreU(Softplus(df, x), df, a.dt_in + e);
  }
  for (; e < e1; ++e) a.dt_in[e] = ScalarSoftplus(a.dt_in[e] + a.dt_bias[e]);
  // The state update, vectorized over the d_state entries of a channel. (Reducing four channels'
  // sums together measured slower than a SumOfLanes each.)
  for (e = e0; e < e1; ++e) {
    const float dt = a.dt_in[e], dt_x = dt * a.xc[e];
    const V dtv = hn::Set(df, dt), dt_xv = hn::Set(df, dt_x);
    float* s = a.ssm + e * N;
    const float* A = a.A + e * N;
    V acc = hn::Zero(df);
    size_t n = 0;
    for (; n + lanes <= N; n += lanes) {
      const V decay = ExpNonPositive(df, hn::Mul(dtv, hn::LoadU(df, A + n)));
      const V sv = hn::MulAdd(hn::LoadU(df, s + n), decay, hn::Mul(dt_xv, hn::LoadU(df, a.B + n)));
      hn::StoreU(sv, df, s + n);
      acc = hn::MulAdd(sv, hn::LoadU(df, a.C + n), acc);
    }
    float sum = hn::GetLane(hn::SumOfLanes(df, acc));
    for (; n < N; ++n) {
      s[n] = s[n] * std::exp(dt * A[n]) + dt_x * a.B[n];
      sum += s[n] * a.C[n];
    }
    a.y[e] = sum + a.D[e] * a.xc[e];
  }
  // The gate, vectorized over channels.
  for (e = e0; e + lanes <= e1; e += lanes) {
    const V g = Silu(df, hn::LoadU(df, a.z + e));
    hn::StoreU(hn::Mul(hn::LoadU(df, a.y + e), g), df, a.y + e);
  }
  for (; e < e1; ++e) a.y[e] *= ScalarSilu(a.z[e]);
}

// nn.GELU()'s exact form, 0.5·v·(1 + erf(v/√2)). Highway has no erf, and the C library's, one
// call per channel, took more time than the S4D scan itself; this one is Abramowitz & Stegun
// 7.1.26 (absolute error below 1.5e-7): erf|x| = 1 - t·P(t)·exp(-x²), t = 1/(1 + 0.3275911·|x|).
HWY_INLINE V Gelu(DF df, V v) {
  const V x = hn::Mul(v, hn::Set(df, 0.70710678118654752f));
  const V t = hn::Div(hn::Set(df, 1.0f), hn::MulAdd(hn::Abs(x), hn::Set(df, 0.3275911f), hn::Set(df, 1.0f)));
  V p = hn::Set(df, 1.061405429f);
  p = hn::MulAdd(p, t, hn::Set(df, -1.453152027f));
  p = hn::MulAdd(p, t, hn::Set(df, 1.421413741f));
  p = hn::MulAdd(p, t, hn::Set(df, -0.284496736f));
  p = hn::MulAdd(p, t, hn::Set(df, 0.254829592f));
  p = hn::Mul(p, t);
  const V erf_abs = hn::NegMulAdd(p, ExpNonPositive(df, hn::Neg(hn::Mul(x, x))), hn::Set(df, 1.0f));
  const V erf = hn::CopySign(erf_abs, x);
  return hn::Mul(hn::Mul(hn::Set(df, 0.5f), v), hn::Add(hn::Set(df, 1.0f), erf));
}

// Gelu over y[0, n) in place; the last partial vector goes through a padded copy, so every value
// is computed by the same instructions wherever it falls (its channel range is a thread's chunk).
void GeluInplace(DF df, float* y, size_t n) {
  const size_t lanes = hn::Lanes(df);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(Gelu(df, hn::LoadU(df, y + i)), df, y + i);
  if (i == n) return;
  alignas(64) float pad[HWY_MAX_BYTES / sizeof(float)] = {};
  std::copy(y + i, y + n, pad);
  hn::Store(Gelu(df, hn::Load(df, pad)), df, pad);
  std::copy(pad, pad + (n - i), y + i);
}

void S4DScan(const S4DScanRow& a, size_t h0, size_t h1) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  const size_t W = 2 * a.modes;  // floats per channel; even, like the lane count, so the vector
                                 // loop never splits a (re, im) pair
  const size_t body = lanes >= 2 ? W - W % lanes : 0;  // a one-lane target has no pairs to swap
  for (size_t h = h0; h < h1; ++h) {
    const size_t o = h * W;
    const float* ar = a.dA_re + o;
    const float* ai = a.dA_im + o;
    const float* b = a.dB + o;
    const float* c = a.C2 + o;
    float* s = a.state + o;
    const float u = a.u[h];
    const V uv = hn::Set(df, u);
    V acc = hn::Zero(df);
    size_t i = 0;
    for (; i < body; i += lanes) {
      const V sv = hn::LoadU(df, s + i);
      V next = hn::Mul(hn::LoadU(df, b + i), uv);
      next = hn::MulAdd(hn::LoadU(df, ar + i), sv, next);
      next = hn::MulAdd(hn::LoadU(df, ai + i), hn::Reverse2(df, sv), next);
      hn::StoreU(next, df, s + i);
      acc = hn::MulAdd(hn::LoadU(df, c + i), next, acc);
    }
    float sum = hn::GetLane(hn::SumOfLanes(df, acc));
    for (; i < W; i += 2) {  // the same expressions, one pair at a time
      const float re = std::fma(ai[i], s[i + 1], std::fma(ar[i], s[i], b[i] * u));
      const float im = std::fma(ai[i + 1], s[i], std::fma(ar[i + 1], s[i + 1], b[i + 1] * u));
      s[i] = re, s[i + 1] = im;
      sum = std::fma(c[i], re, std::fma(c[i + 1], im, sum));
    }
    a.y[h] = std::fma(a.D[h], u, sum);
  }
  GeluInplace(df, a.y + h0, h1 - h0);
}

void GluResidual(float* x, const float* a, size_t n) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  const V one = hn::Set(df, 1.0f);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    // sigmoid(g) = 1 / (1 + exp(-g)), exp's argument clamped where the sigmoid is 0 in fp32 anyway
    const V e = hn::Exp(df, hn::Min(hn::Neg(hn::LoadU(df, a + n + i)), hn::Set(df, 80.0f)));
    hn::StoreU(hn::Add(hn::LoadU(df, x + i), hn::Div(hn::LoadU(df, a + i), hn::Add(one, e))), df, x + i);
  }
  for (; i < n; ++i) x[i] += a[i] / (1.0f + std::exp(-a[n + i]));
}

}  // namespace HWY_NAMESPACE
}  // namespace vkssm
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace vkssm {

HWY_EXPORT(SiluInplace);
HWY_EXPORT(Mamba1Scan);
HWY_EXPORT(Mamba2Scan);
HWY_EXPORT(CausalConvSilu);
HWY_EXPORT(S4DScan);
HWY_EXPORT(GluResidual);

void silu_inplace(float* x, size_t n) { HWY_DYNAMIC_DISPATCH(SiluInplace)(x, n); }
void mamba1_scan(const Mamba1ScanRow& row, size_t e0, size_t e1) { HWY_DYNAMIC_DISPATCH(Mamba1Scan)(row, e0, e1); }
void mamba2_scan(const Mamba2ScanRow& row, size_t h0, size_t h1) { HWY_DYNAMIC_DISPATCH(Mamba2Scan)(row, h0, h1); }
void s4d_scan(const S4DScanRow& row, size_t h0, size_t h1) { HWY_DYNAMIC_DISPATCH(S4DScan)(row, h0, h1); }
void glu_residual(float* x, const float* a, size_t n) { HWY_DYNAMIC_DISPATCH(GluResidual)(x, a, n); }
void causal_conv_silu(float* window, const float* x, const float* w, const float* bias, size_t K, size_t c0,
                      size_t c1, float* out) {
  HWY_DYNAMIC_DISPATCH(CausalConvSilu)(window, x, w, bias, K, c0, c1, out);
}

}  // namespace vkssm
#endif  // HWY_ONCE

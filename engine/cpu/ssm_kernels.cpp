// Highway versions of ssm_kernels.h, dispatched at run time like matmul.cpp (see there why).
#include "engine/cpu/ssm_kernels.h"

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
  for (size_t c = c0; c < c1; ++c) {
    float* win = window + c * K;
    for (size_t k = 0; k + 1 < K; ++k) win[k] = win[k + 1];
    win[K - 1] = x[c];
    float acc = bias[c];
    for (size_t k = 0; k < K; ++k) acc += win[k] * w[c * K + k];
    out[c] = acc;
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
  // The state update, vectorized over the d_state entries of a channel.
  for (e = e0; e < e1; ++e) {
    const float dt = a.dt_in[e], dt_x = dt * a.xc[e];
    const V dtv = hn::Set(df, dt), dt_xv = hn::Set(df, dt_x);
    float* s = a.ssm + e * N;
    const float* A = a.A + e * N;
    V acc = hn::Zero(df);
    size_t n = 0;
    for (; n + lanes <= N; n += lanes) {
      const V decay = hn::Exp(df, hn::Mul(dtv, hn::LoadU(df, A + n)));
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

}  // namespace HWY_NAMESPACE
}  // namespace vkssm
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace vkssm {

HWY_EXPORT(SiluInplace);
HWY_EXPORT(Mamba1Scan);
HWY_EXPORT(Mamba2Scan);
HWY_EXPORT(CausalConvSilu);

void silu_inplace(float* x, size_t n) { HWY_DYNAMIC_DISPATCH(SiluInplace)(x, n); }
void mamba1_scan(const Mamba1ScanRow& row, size_t e0, size_t e1) { HWY_DYNAMIC_DISPATCH(Mamba1Scan)(row, e0, e1); }
void mamba2_scan(const Mamba2ScanRow& row, size_t h0, size_t h1) { HWY_DYNAMIC_DISPATCH(Mamba2Scan)(row, h0, h1); }
void causal_conv_silu(float* window, const float* x, const float* w, const float* bias, size_t K, size_t c0,
                      size_t c1, float* out) {
  HWY_DYNAMIC_DISPATCH(CausalConvSilu)(window, x, w, bias, K, c0, c1, out);
}

}  // namespace vkssm
#endif  // HWY_ONCE

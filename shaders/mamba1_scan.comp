#version 450
// Mamba-1 step, dispatch (c): dt_proj + softplus, the selective state update, D skip and the
// SiLU(z) gate, for a chunk of channels per workgroup.
//
//   dt  = softplus(dt_proj_w[e] . dt_in + dt_proj_b[e])
//   s[e,n] = s[e,n] * exp(dt * A[e,n]) + dt * xc[e] * B[n]      (A = -exp(A_log), precomputed)
//   y[e] = (sum_n s[e,n] * C[n] + D[e] * xc[e]) * silu(z[e])
// dt_in | B | C are the sums of the NCHUNK x_proj partials written by mamba1_conv_x_proj.comp.
// Falcon-Mamba (DT_B_C_RMS): each of the three is first RMS-normalised without a weight,
// v * inversesqrt(mean(v^2) + MIXER_EPS). Every invocation computes the three scales itself from
// the shared sums (R + 2N values), which costs less than another barrier.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint E = 1;
layout(constant_id = 2) const uint N = 16;        // d_state
layout(constant_id = 3) const uint R = 1;         // dt_rank
layout(constant_id = 4) const uint CHUNK = 64;    // channels per workgroup
layout(constant_id = 5) const uint NCHUNK_IN = 1; // partials per stream from mamba1_conv_x_proj
layout(constant_id = 6) const uint CAPACITY = 1;
layout(constant_id = 7) const uint XZ_STRIDE = 2;
layout(constant_id = 8) const uint XC_STRIDE = 1;
layout(constant_id = 9) const uint Y_STRIDE = 1;
layout(constant_id = 10) const uint J = 1;        // R + 2N
layout(constant_id = 11) const bool DT_B_C_RMS = false;
layout(constant_id = 12) const float MIXER_EPS = 1e-6;
// CPU drivers: x_proj ran as a matvec.comp dispatch before this one (texel reads beat this
// shader's storage reads there), so partial rows are PARTIAL_STRIDE floats (NCHUNK_IN = 1).
layout(constant_id = 13) const uint PARTIAL_STRIDE = 1;  // floats between partial rows (NCHUNK_IN * J)

STEP_INPUT(0)
layout(std430, binding = 1) readonly buffer Partial { float partial[]; };  // [B][PARTIAL_STRIDE]: [NCHUNK_IN][J]
layout(std430, binding = 2) readonly buffer XZ { float xz[]; };
layout(std430, binding = 3) readonly buffer XC { float xc[]; };
#ifdef DT_TEXEL
// CPU drivers (built with DT_TEXEL): dt_proj's weights through a texel buffer, rows of R4 vec4s
// (R padded to a multiple of 8 with zeros, WeightUploader::flat_matrix), which llvmpipe reads as a
// vector gather where a storage read is a loop over the lanes.
layout(binding = 4) uniform samplerBuffer DtWT;  // [E][R4]
const uint R4 = (R + 7) / 8 * 2;
#else
WEIGHTS1(4, DtW)                                                        // [E][R]
#endif
layout(std430, binding = 5) readonly buffer DtB { float dt_b[]; };     // [E]
layout(std430, binding = 6) readonly buffer A { float A_neg[]; };      // [E][N] = -exp(A_log)
layout(std430, binding = 7) readonly buffer Dskip { float D_skip[]; }; // [E]
layout(std430, binding = 8) buffer SsmState { float ssm_state[]; };    // this layer's [slot][E][N]
// The same two buffers four floats at a time, read when N is a multiple of 4: on CPU drivers
// (llvmpipe) each storage access is a loop over the lanes, so a vec4 costs a quarter of four floats.
layout(std430, binding = 6) readonly buffer A4 { vec4 A_neg4[]; };
layout(std430, binding = 8) buffer SsmState4 { vec4 ssm_state4[]; };
layout(std430, binding = 9) writeonly buffer Yout { float y[]; };      // [B][Y_STRIDE]

#define LOCAL gl_WorkGroupSize.x
shared float dbc[J];  // dt_in | B | C of the current stream
const bool SMALL_STATE4 = N % 4 == 0 && N <= 16;  // B and C fit four vec4s each

// 1 / RMS of dbc[begin, begin + count), or 1 when the model does not normalise (x * 1.0 is
// exact, so plain Mamba-1 computes the same bits as without this).
float inverse_rms(uint begin, uint count) {
  if (!DT_B_C_RMS) return 1.0;
  float sum_sq = 0.0;
  for (uint i = begin; i < begin + count; ++i) sum_sq += dbc[i] * dbc[i];
  return inversesqrt(sum_sq / float(count) + MIXER_EPS);
}

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint e0 = gl_WorkGroupID.x * CHUNK;
  const uint batch = STEP_BATCH;

  for (uint b = 0; b < batch; ++b) {
    for (uint j = tid; j < J; j += LOCAL) {
      float s = 0.0;
      for (uint c = 0; c < NCHUNK_IN; ++c) s += partial[b * PARTIAL_STRIDE + c * J + j];
      dbc[j] = s;
    }
    barrier();
    const float dt_scale = inverse_rms(0, R), b_scale = inverse_rms(R, N), c_scale = inverse_rms(R + N, N);
    const uint slot = STEP_SLOT(b, CAPACITY);
    const bool fresh = STEP_FRESH(b, CAPACITY);
    // B and C scaled, read here where every lane is active (llvmpipe then reads shared memory
    // once for all lanes; inside the channel loop each read is a loop over the lanes).
    vec4 b4[4], c4[4];
#ifdef DT_TEXEL
    vec4 dt_in4[R4];  // dt_in scaled, zero past R
    for (uint q = 0; q < R4; ++q) {
      vec4 v = vec4(0.0);
      for (uint i = 0; i < 4; ++i)
        if (4 * q + i < R) v[i] = dbc[4 * q + i] * dt_scale;
      dt_in4[q] = v;
    }
#endif
    if (SMALL_STATE4)
      for (uint q = 0; q < 4; ++q) {
        const uint n = min(4 * q, N - 4);  // q < N / 4 is what the loop below reads
        b4[q] = vec4(dbc[R + n], dbc[R + n + 1], dbc[R + n + 2], dbc[R + n + 3]) * b_scale;
        c4[q] = vec4(dbc[R + N + n], dbc[R + N + n + 1], dbc[R + N + n + 2], dbc[R + N + n + 3]) * c_scale;
      }
    for (uint c = tid; c < CHUNK; c += LOCAL) {
      const uint e = e0 + c;
      if (e >= E) break;
      float dt = dt_b[e];
#ifdef DT_TEXEL
      vec4 dt4 = vec4(0.0);
      for (uint q = 0; q < R4; ++q) dt4 += texelFetch(DtWT, int(e * R4 + q)) * dt_in4[q];
      dt += dot(dt4, vec4(1.0));
#else
      for (uint r = 0; r < R; ++r) dt += LOAD1(DtW, e * R + r) * (dbc[r] * dt_scale);
#endif
      dt = softplus(dt);
      const float xv = xc[b * XC_STRIDE + e];
      const float dtx = dt * xv;
      const uint s0 = (slot * E + e) * N;
      float acc = 0.0;
      if (N % 4 == 0) {
        // The loop below four states at a time, the same operations in the same order.
        for (uint n = 0; n < N; n += 4) {
          const vec4 bn = SMALL_STATE4 ? b4[n / 4] : vec4(dbc[R + n], dbc[R + n + 1], dbc[R + n + 2], dbc[R + n + 3]) * b_scale;
          const vec4 cn = SMALL_STATE4 ? c4[n / 4]
                                       : vec4(dbc[R + N + n], dbc[R + N + n + 1], dbc[R + N + n + 2], dbc[R + N + n + 3]) * c_scale;
          const vec4 s = (fresh ? vec4(0.0) : ssm_state4[(s0 + n) / 4]) * exp(dt * A_neg4[(e * N + n) / 4]) + dtx * bn;
          ssm_state4[(s0 + n) / 4] = s;
          acc += s.x * cn.x;
          acc += s.y * cn.y;
          acc += s.z * cn.z;
          acc += s.w * cn.w;
        }
      } else {
        for (uint n = 0; n < N; ++n) {
          float s = (fresh ? 0.0 : ssm_state[s0 + n]) * exp(dt * A_neg[e * N + n]) + dtx * (dbc[R + n] * b_scale);
          ssm_state[s0 + n] = s;
          acc += s * (dbc[R + N + n] * c_scale);
        }
      }
      acc += D_skip[e] * xv;
      y[b * Y_STRIDE + e] = acc * silu(xz[b * XZ_STRIDE + E + e]);
    }
    barrier();
  }
}

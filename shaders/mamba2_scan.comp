#version 450
// Mamba-2 step: dt, the state update of every head, the D skip and the SiLU(z) gate.
//   dt[h]    = clamp(softplus(dt_raw[h] + dt_bias[h]), DT_MIN, DT_MAX)
//   s[h,p,n] = s[h,p,n] * exp(dt[h] * A[h]) + dt[h] * x[h,p] * B[g,n]        g = h / (H / G)
//   y[h,p]   = (sum_n s[h,p,n] * C[g,n] + D[h] * x[h,p]) * silu(z[h,p])
// One invocation per channel (h, p), for every row of the step in order; any d_state and head_dim.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint E = 1;           // H * P
layout(constant_id = 2) const uint N = 16;          // d_state
layout(constant_id = 3) const uint P = 1;           // head_dim
layout(constant_id = 4) const uint H = 1;           // heads
layout(constant_id = 5) const uint G = 1;           // groups
layout(constant_id = 6) const uint CAPACITY = 1;
layout(constant_id = 7) const uint ZX_STRIDE = 1;   // in_proj output row: z | xBC | dt
layout(constant_id = 8) const uint DT_OFFSET = 0;   // where dt starts in that row
layout(constant_id = 9) const uint XBC_STRIDE = 1;  // conv output row: x | B | C
layout(constant_id = 10) const uint Y_STRIDE = 1;
layout(constant_id = 11) const float DT_MIN = 0.0;
layout(constant_id = 12) const float DT_MAX = 1e30;

STEP_INPUT(0)
layout(std430, binding = 1) readonly buffer ZX { float zx[]; };
layout(std430, binding = 2) readonly buffer XBC { float xbc[]; };
layout(std430, binding = 3) readonly buffer DtBias { float dt_bias[]; };  // [H]
layout(std430, binding = 4) readonly buffer A { float A_neg[]; };         // [H] = -exp(A_log)
layout(std430, binding = 5) readonly buffer Dskip { float D_skip[]; };    // [H]
layout(std430, binding = 6) buffer SsmState { float ssm_state[]; };       // this layer's [slot][E][N]
layout(std430, binding = 7) writeonly buffer Yout { float y[]; };         // [B][Y_STRIDE]

void main() {
  const uint e = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x +
                 gl_LocalInvocationID.x;
  if (e >= E) return;
  const uint h = e / P;
  const uint g = h / (H / G);
  const uint batch = STEP_BATCH;
  for (uint b = 0; b < batch; ++b) {
    const uint slot = STEP_SLOT(b, CAPACITY);
    const bool fresh = STEP_FRESH(b, CAPACITY);
    const float dt = clamp(softplus(zx[b * ZX_STRIDE + DT_OFFSET + h] + dt_bias[h]), DT_MIN, DT_MAX);
    const float dA = exp(dt * A_neg[h]);
    const float x = xbc[b * XBC_STRIDE + e];
    const float dtx = dt * x;
    const uint bo = b * XBC_STRIDE + E + g * N;  // B of group g
    const uint co = bo + G * N;                  // C of group g
    const uint s0 = (slot * E + e) * N;
    float acc = 0.0;
    for (uint n = 0; n < N; ++n) {
      const float s = (fresh ? 0.0 : ssm_state[s0 + n]) * dA + dtx * xbc[bo + n];
      ssm_state[s0 + n] = s;
      acc += s * xbc[co + n];
    }
    y[b * Y_STRIDE + e] = (acc + D_skip[h] * x) * silu(zx[b * ZX_STRIDE + e]);
  }
}

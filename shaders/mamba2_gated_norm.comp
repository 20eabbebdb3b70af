#version 450
// Mamba-2 step: the second half of the gated RMSNorm (the gate, y *= silu(z), was applied by
// mamba2_scan.comp). In place: y[b, group g] = RMSNorm(y[b, group g]) * w, each group of E/G
// channels normalised on its own. One workgroup per group; LOCAL must be a power of two (the
// tree reduction).
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint E = 1;
layout(constant_id = 2) const uint G = 1;
layout(constant_id = 3) const uint STRIDE = 1;  // floats between rows of y
layout(constant_id = 4) const float EPS = 1e-5;

STEP_INPUT(0)
layout(std430, binding = 1) buffer Y { float y[]; };                   // [B][STRIDE]
layout(std430, binding = 2) readonly buffer W { float w[]; };          // [E]

#define LOCAL gl_WorkGroupSize.x
shared float red[LOCAL];

void main() {
  const uint g = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (g >= G) return;
  const uint tid = gl_LocalInvocationID.x;
  const uint gs = E / G, e0 = g * gs;
  const uint batch = STEP_BATCH;
  for (uint b = 0; b < batch; ++b) {
    float ss = 0.0;
    for (uint i = tid; i < gs; i += LOCAL) {
      const float v = y[b * STRIDE + e0 + i];
      ss += v * v;
    }
    red[tid] = ss;
    barrier();
    for (uint s = LOCAL / 2; s > 0; s >>= 1) {
      if (tid < s) red[tid] += red[tid + s];
      barrier();
    }
    const float scale = inversesqrt(red[0] / float(gs) + EPS);
    barrier();  // everyone has read red[0] before the next row overwrites it
    for (uint i = tid; i < gs; i += LOCAL) y[b * STRIDE + e0 + i] *= scale * w[e0 + i];
    barrier();
  }
}

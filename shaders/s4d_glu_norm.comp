#version 450
// S4D step: the block around the recurrence (GLU, residual, LayerNorm), for every row of the step:
//   GLU_RESIDUAL: x += a[:H] * sigmoid(a[H:])   (the output linear's GLU and the residual add)
//   NORM:         out = LayerNorm(x) * w + b     (post-norm: out = x, in place; pre-norm: the
//                                                 layer's input u)
//
// Two layouts. PER_ROW_INVOCATION: one invocation walks a whole row and the lanes of a workgroup
// take consecutive rows, with no shared memory and no barrier (CPU drivers such as lavapipe run
// barriers as coroutine switches, which cost more than the arithmetic, and S4D rows are short).
// Otherwise one workgroup per row, channels reduced in shared memory (wide rows on GPUs).
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint H = 1;
layout(constant_id = 2) const uint STRIDE = 8;      // floats between rows of x and out
layout(constant_id = 3) const uint A_STRIDE = 8;    // floats between rows of a
layout(constant_id = 4) const bool GLU_RESIDUAL = false;
layout(constant_id = 5) const bool NORM = true;
layout(constant_id = 6) const float EPS = 1e-5;
layout(constant_id = 7) const bool PER_ROW_INVOCATION = false;

STEP_INPUT(0)
layout(std430, binding = 1) buffer X { float x[]; };                // [B][STRIDE]
layout(std430, binding = 2) readonly buffer A { float a[]; };       // [B][A_STRIDE] (GLU_RESIDUAL)
layout(std430, binding = 3) readonly buffer W { float w[]; };       // [H] (NORM)
layout(std430, binding = 4) readonly buffer Bias { float bias[]; }; // [H] (NORM)
layout(std430, binding = 5) buffer Out { float out_v[]; };          // [B][STRIDE] (NORM)

#define LOCAL gl_WorkGroupSize.x
shared float red[LOCAL];

float row_sum(float v) {
  const uint tid = gl_LocalInvocationID.x;
  red[tid] = v;
  barrier();
  for (uint s = LOCAL / 2; s > 0; s >>= 1) {
    if (tid < s) red[tid] += red[tid + s];
    barrier();
  }
  const float total = red[0];
  barrier();
  return total;
}

// One invocation, one row: the same arithmetic in the same order as below with LOCAL = 1.
void whole_row(uint b) {
  const uint row = b * STRIDE;
  if (GLU_RESIDUAL)
    for (uint h = 0; h < H; ++h) x[row + h] += a[b * A_STRIDE + h] / (1.0 + exp(-a[b * A_STRIDE + H + h]));
  if (!NORM) return;
  float s = 0.0;
  for (uint h = 0; h < H; ++h) s += x[row + h];
  const float mean = s / float(H);
  float v = 0.0;
  for (uint h = 0; h < H; ++h) v += (x[row + h] - mean) * (x[row + h] - mean);
  const float inv = inversesqrt(v / float(H) + EPS);
  for (uint h = 0; h < H; ++h) out_v[row + h] = (x[row + h] - mean) * inv * w[h] + bias[h];
}

void main() {
  if (PER_ROW_INVOCATION) {
    const uint b = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * LOCAL + gl_LocalInvocationID.x;
    if (b < STEP_BATCH) whole_row(b);
    return;
  }
  const uint b = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  if (b >= STEP_BATCH) return;
  const uint tid = gl_LocalInvocationID.x;
  const uint row = b * STRIDE;
  if (GLU_RESIDUAL) {
    for (uint h = tid; h < H; h += LOCAL) {
      const float g = a[b * A_STRIDE + H + h];
      x[row + h] += a[b * A_STRIDE + h] / (1.0 + exp(-g));
    }
    barrier();
  }
  if (!NORM) return;
  float s = 0.0;
  for (uint h = tid; h < H; h += LOCAL) s += x[row + h];
  const float mean = row_sum(s) / float(H);
  float v = 0.0;
  for (uint h = tid; h < H; h += LOCAL) v += (x[row + h] - mean) * (x[row + h] - mean);
  const float inv = inversesqrt(row_sum(v) / float(H) + EPS);
  barrier();
  for (uint h = tid; h < H; h += LOCAL) out_v[row + h] = (x[row + h] - mean) * inv * w[h] + bias[h];
}

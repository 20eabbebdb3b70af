#version 450
// s4d_glu_norm.comp's work for CPU drivers, where one invocation takes a whole row (the lanes of a
// workgroup consecutive rows, no shared memory, no barrier):
//   GLU_RESIDUAL: x += a[:H] * sigmoid(a[H:])   (the output linear's GLU and the residual add)
//   NORM:         out = LayerNorm(x) * w + b     (post-norm: out is x; pre-norm: the layer's input u)
// Its inputs are read four channels at a time through texel views, which llvmpipe turns into
// vector gathers (a storage read at an address that is not a compile-time constant is a loop over
// the lanes there, with a branch per float). The row after the residual add is kept in the
// invocation's registers, so nothing is read back through a view of a buffer this dispatch wrote.
// H and both strides are multiples of 4 (engine: S4DGraph picks this variant only then).
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint H = 4;
layout(constant_id = 2) const uint STRIDE = 8;      // floats between rows of x and out
layout(constant_id = 3) const uint A_STRIDE = 8;    // floats between rows of a
layout(constant_id = 4) const bool GLU_RESIDUAL = false;
layout(constant_id = 5) const bool NORM = true;
layout(constant_id = 6) const float EPS = 1e-5;

STEP_INPUT(0)
layout(binding = 1) uniform samplerBuffer X;     // [B][STRIDE / 4] vec4s
layout(binding = 2) uniform samplerBuffer A;     // [B][A_STRIDE / 4] (GLU_RESIDUAL)
layout(binding = 3) uniform samplerBuffer W;     // [H / 4] (NORM)
layout(binding = 4) uniform samplerBuffer Bias;  // [H / 4] (NORM)
layout(std430, binding = 5) writeonly buffer Out { vec4 out4[]; };  // [B][STRIDE / 4]

const uint H4 = H / 4;

void main() {
  const uint b = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x +
                 gl_LocalInvocationID.x;
  if (b >= STEP_BATCH) return;
  const uint row = b * (STRIDE / 4), arow = b * (A_STRIDE / 4);
  vec4 xs[H4];
  vec4 sum = vec4(0.0);
  for (uint h = 0; h < H4; ++h) {
    xs[h] = texelFetch(X, int(row + h));
    if (GLU_RESIDUAL) {
      const vec4 gate = texelFetch(A, int(arow + H4 + h));
      xs[h] += texelFetch(A, int(arow + h)) / (1.0 + exp(-gate));
    }
    sum += xs[h];
  }
  if (!NORM) {
    for (uint h = 0; h < H4; ++h) out4[row + h] = xs[h];
    return;
  }
  const float mean = (sum.x + sum.y + sum.z + sum.w) / float(H);
  vec4 var = vec4(0.0);
  for (uint h = 0; h < H4; ++h) var += (xs[h] - mean) * (xs[h] - mean);
  const float inv = inversesqrt((var.x + var.y + var.z + var.w) / float(H) + EPS);
  for (uint h = 0; h < H4; ++h)
    out4[row + h] = (xs[h] - mean) * inv * texelFetch(W, int(h)) + texelFetch(Bias, int(h));
}

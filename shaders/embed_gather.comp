#version 450
// First dispatch of a step: the residual stream of stream b starts as its token's embedding row.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 1;         // d_model
layout(constant_id = 2) const uint ROW_STRIDE = 1;  // padded columns of the embedding matrix
layout(constant_id = 3) const uint R_STRIDE = 1;    // floats between streams in the residual

STEP_INPUT(0)
WEIGHTS1(1, Emb)                                              // [V][ROW_STRIDE]
layout(std430, binding = 2) writeonly buffer Resid { float r[]; };  // [B][R_STRIDE]

void main() {
  const uint k = gl_GlobalInvocationID.x;
  if (k >= D) return;
  const uint batch = STEP_BATCH;
  for (uint b = 0; b < batch; ++b) r[b * R_STRIDE + k] = LOAD1(Emb, STEP_TOKEN(b) * ROW_STRIDE + k);
}

#version 450
// First dispatch of a frame model's step (S4D): each row's input frame, from the step input into
// a zero-padded activation buffer the encoder's matvec reads.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint DIN = 1;       // floats per frame
layout(constant_id = 2) const uint STRIDE = 8;    // floats between rows of the output (>= DIN)
layout(constant_id = 3) const uint CAPACITY = 1;  // the step input's row stride

STEP_INPUT(0)
layout(std430, binding = 1) writeonly buffer Out { float x[]; };  // [B][STRIDE]

void main() {
  const uint k = gl_GlobalInvocationID.x;
  if (k >= STRIDE) return;
  const uint batch = STEP_BATCH;
  for (uint b = 0; b < batch; ++b) x[b * STRIDE + k] = k < DIN ? STEP_FRAME(b, k, CAPACITY, DIN) : 0.0;
}

#version 450
// Rollback ring: before a step changes them, copies the states of the step's slots into their
// ring entries (one dispatch per registered state buffer). A slot flagged fresh logically holds
// zeros, so zeros are saved.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint FLOATS = 1;    // floats per slot in this state buffer
layout(constant_id = 2) const uint CAPACITY = 1;

STEP_INPUT(0)
layout(std430, binding = 1) readonly buffer State { float state[]; };  // [CAPACITY][FLOATS]
layout(std430, binding = 2) writeonly buffer Ring { float ring[]; };   // [CAPACITY * K][FLOATS]

void main() {
  const uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
  if (i >= FLOATS) return;
  const uint batch = STEP_BATCH;
  for (uint b = 0; b < batch; ++b) {
    const uint slot = STEP_SLOT(b, CAPACITY);
    ring[STEP_RING(b, CAPACITY) * FLOATS + i] = STEP_FRESH(b, CAPACITY) ? 0.0 : state[slot * FLOATS + i];
  }
}

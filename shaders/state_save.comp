#version 450
// Rollback ring: before a step changes them, copies the states of the step's slots into their
// ring entries (one dispatch per part of each registered state buffer's ring: a ring larger than
// one binding is split into parts of ENTRIES entries, and each dispatch writes only the rows whose
// entry falls in its part). A slot flagged fresh logically holds zeros, so zeros are saved.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint FLOATS = 1;    // floats per slot in this state buffer
layout(constant_id = 2) const uint CAPACITY = 1;
layout(constant_id = 3) const uint FIRST_ENTRY = 0;  // the ring entry this part starts at
layout(constant_id = 4) const uint ENTRIES = 1;      // entries in this part

STEP_INPUT(0)
layout(std430, binding = 1) readonly buffer State { float state[]; };  // [CAPACITY][FLOATS]
layout(std430, binding = 2) writeonly buffer Ring { float ring[]; };   // [ENTRIES][FLOATS]

void main() {
  const uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
  if (i >= FLOATS) return;
  const uint batch = STEP_BATCH;
  for (uint b = 0; b < batch; ++b) {
    const uint entry = STEP_RING(b, CAPACITY) - FIRST_ENTRY;  // wraps past ENTRIES when before the part
    if (entry >= ENTRIES) continue;
    const uint slot = STEP_SLOT(b, CAPACITY);
    ring[entry * FLOATS + i] = STEP_FRESH(b, CAPACITY) ? 0.0 : state[slot * FLOATS + i];
  }
}

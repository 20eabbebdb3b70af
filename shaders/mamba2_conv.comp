#version 450
// Mamba-2 step: the causal conv1d over the x | B | C channels of in_proj's output, then SiLU.
// One invocation per channel, for every row of the step in order (a prefill step lists one slot in
// several rows: the same invocation carries that channel's conv state from row to row).
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint CD = 1;          // conv channels: E + 2 G N
layout(constant_id = 2) const uint K = 4;           // d_conv
layout(constant_id = 3) const uint CAPACITY = 1;    // the step input's row stride
layout(constant_id = 4) const uint IN_STRIDE = 1;   // floats between rows of in_proj's output
layout(constant_id = 5) const uint IN_OFFSET = 0;   // where xBC starts in a row (after z)
layout(constant_id = 6) const uint OUT_STRIDE = 1;  // floats between rows of xbc

STEP_INPUT(0)
layout(std430, binding = 1) readonly buffer In { float zx[]; };        // [B][IN_STRIDE]
layout(std430, binding = 2) buffer ConvState { float conv_state[]; };  // this layer's [slot][CD][K]
layout(std430, binding = 3) readonly buffer ConvW { float conv_w[]; }; // [CD][K]
layout(std430, binding = 4) readonly buffer ConvB { float conv_b[]; }; // [CD]
layout(std430, binding = 5) writeonly buffer Out { float xbc[]; };     // [B][OUT_STRIDE]

void main() {
  const uint ch = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x +
                  gl_LocalInvocationID.x;
  if (ch >= CD) return;
  const uint batch = STEP_BATCH;
  for (uint b = 0; b < batch; ++b) {
    const uint s = (STEP_SLOT(b, CAPACITY) * CD + ch) * K;
    const bool fresh = STEP_FRESH(b, CAPACITY);
    const float x_new = zx[b * IN_STRIDE + IN_OFFSET + ch];
    float acc = conv_b[ch];
    for (uint k = 0; k + 1 < K; ++k) {
      const float old = fresh ? 0.0 : conv_state[s + k + 1];
      conv_state[s + k] = old;
      acc += old * conv_w[ch * K + k];
    }
    conv_state[s + K - 1] = x_new;
    acc += x_new * conv_w[ch * K + K - 1];
    xbc[b * OUT_STRIDE + ch] = silu(acc);
  }
}

#version 450
// Mamba-1 step, dispatch (b): causal conv1d state update + SiLU, then x_proj as split-K partials.
//
// Workgroup w owns channels [w*CHUNK, (w+1)*CHUNK). For each stream it shifts those channels'
// conv state (newest input last), computes xc = silu(conv + bias), and multiplies its slice of
// x_proj by its slice of xc. The partial sums go to partial[b][w][j]; mamba1_scan.comp adds the
// NCHUNK partials. Channels are disjoint across workgroups, so no two workgroups touch the same
// state and no global synchronisation is needed inside the dispatch.
// x_proj and the chunk's xc are read four channels at a time (vec4), a quarter of the load
// instructions. (Measured on lavapipe, where each such load is a loop over the lanes: this loop was
// a quarter of a Mamba-1 step read a float at a time. CPU drivers now run x_proj as a matvec
// instead, XPROJ = false; this loop serves GPUs and the storage-buffer split.)
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint E = 1;        // d_inner
layout(constant_id = 2) const uint K = 4;        // d_conv
layout(constant_id = 3) const uint J = 1;        // dt_rank + 2 * d_state (x_proj rows)
layout(constant_id = 4) const uint CHUNK = 64;   // channels per workgroup (a multiple of 4)
layout(constant_id = 5) const uint NCHUNK = 1;   // ceil(E / CHUNK)
layout(constant_id = 6) const uint CAPACITY = 1; // state slots
layout(constant_id = 7) const uint XZ_STRIDE = 2;  // floats between streams in xz
layout(constant_id = 8) const uint XC_STRIDE = 1;  // floats between streams in xc
// false: only the conv (CPU drivers run x_proj as a matvec.comp dispatch after this one, whose
// texel reads beat this loop's storage reads there; partial is then not written).
layout(constant_id = 9) const bool XPROJ = true;

STEP_INPUT(0)
layout(std430, binding = 1) readonly buffer XZ { float xz[]; };        // [B][XZ_STRIDE]: x | z
layout(std430, binding = 2) buffer ConvState { float conv_state[]; };  // this layer's [slot][E][K]
layout(std430, binding = 3) readonly buffer ConvW { float conv_w[]; }; // [E][K]
// The same two buffers as vec4s, read when K == 4 (the usual d_conv): on CPU drivers (llvmpipe)
// each storage access is a loop over the lanes, so one vec4 costs a quarter of four floats.
layout(std430, binding = 2) buffer ConvState4 { vec4 conv_state4[]; };
layout(std430, binding = 3) readonly buffer ConvW4 { vec4 conv_w4[]; };
layout(std430, binding = 4) readonly buffer ConvB { float conv_b[]; }; // [E]
WEIGHTS4(5, XprojT)  // [E/4][J] of 4 channels each (transposed, E padded to a multiple of 8)
layout(std430, binding = 6) writeonly buffer XC { float xc_out[]; };   // [B][XC_STRIDE]
layout(std430, binding = 7) writeonly buffer Partial { float partial[]; };  // [B][NCHUNK][J]

#define LOCAL gl_WorkGroupSize.x
shared vec4 xc_s[CHUNK / 4];  // the chunk's xc, 0 past E

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint chunk = gl_WorkGroupID.x;
  const uint e0 = chunk * CHUNK;
  const uint batch = STEP_BATCH;

  for (uint b = 0; b < batch; ++b) {
    const uint slot = STEP_SLOT(b, CAPACITY);
    const bool fresh = STEP_FRESH(b, CAPACITY);
    for (uint c = tid; c < CHUNK; c += LOCAL) {
      const uint e = e0 + c;
      float v = 0.0;
      if (e < E) {
        const uint s = (slot * E + e) * K;
        const float x_new = xz[b * XZ_STRIDE + e];
        float acc = conv_b[e];
        if (K == 4) {
          // The loop below on one vec4 of state and one of weights, in the same order.
          const vec4 st = fresh ? vec4(0.0) : conv_state4[s / 4];
          const vec4 w = conv_w4[e];
          conv_state4[s / 4] = vec4(st.yzw, x_new);
          acc += st.y * w.x;
          acc += st.z * w.y;
          acc += st.w * w.z;
          acc += x_new * w.w;
        } else {
          for (uint k = 0; k + 1 < K; ++k) {
            const float old = fresh ? 0.0 : conv_state[s + k + 1];
            conv_state[s + k] = old;
            acc += old * conv_w[e * K + k];
          }
          conv_state[s + K - 1] = x_new;
          acc += x_new * conv_w[e * K + K - 1];
        }
        v = silu(acc);
        xc_out[b * XC_STRIDE + e] = v;
      }
      if (XPROJ) xc_s[c >> 2][c & 3u] = v;
    }
    if (!XPROJ) continue;
    barrier();
    const uint n4 = (min(CHUNK, E - e0) + 3) / 4;  // xc_s is 0 past E, and so is x_proj's padding
    for (uint j = tid; j < J; j += LOCAL) {
      vec4 acc4 = vec4(0.0);
      for (uint c4 = 0; c4 < n4; ++c4) acc4 += LOAD4(XprojT, (e0 / 4 + c4) * J + j) * xc_s[c4];
      const float acc = dot(acc4, vec4(1.0));
      partial[(b * NCHUNK + chunk) * J + j] = acc;
    }
    barrier();
  }
}

#version 450
// y[b] = W @ x[b] + bias for every stream b of the step, one stream per invocation: the variant of
// matvec.comp for frame models (S4D) on CPU drivers, whose steps carry many streams through small
// fp32 matrices.
//
// llvmpipe (lavapipe) runs a workgroup of 8 invocations as one SIMD vector; a texelFetch there is
// a vector gather (a storage-buffer read whose address is not a compile-time constant is a loop
// over the lanes with a branch per float). So the lanes take 8 streams and a workgroup takes
// ROWS_PER_GROUP rows: one fetch of W's vec4 (the same for every lane) serves 8 streams, or
// 8 * STREAMS_PER_LANE with that many streams per lane, and each stream's vec4 of x, fetched once,
// serves all the workgroup's rows. (matvec.comp's S4D split,
// one invocation per workgroup, leaves 7 of 8 lanes idle.) Each stream's sums are added in the
// same order whatever the batch, so N copies of one input give N identical outputs.
// The C++ side is engine/vulkan_matvec.h (MatvecPipeline picks this variant).
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ROWS = 1;            // output rows
layout(constant_id = 2) const uint COLS4 = 1;           // padded columns / 4 (row stride of W)
layout(constant_id = 3) const uint X_STRIDE4 = 1;       // vec4s between streams in x
layout(constant_id = 4) const uint Y_STRIDE = 1;        // floats between streams in y
layout(constant_id = 5) const bool HAS_BIAS = false;
layout(constant_id = 6) const uint ROWS_PER_GROUP = 8;  // rows of a workgroup, summed side by side
layout(constant_id = 7) const uint STREAMS_PER_LANE = 2;

STEP_INPUT(0)
layout(binding = 1) uniform samplerBuffer X;  // [B][X_STRIDE4] vec4s
layout(binding = 2) uniform samplerBuffer W;  // [ROWS][COLS4] vec4s
layout(std430, binding = 4) readonly buffer Bias { float bias[]; }; // [ROWS] (HAS_BIAS)
layout(std430, binding = 5) writeonly buffer Y { float y[]; };      // [B][Y_STRIDE]

#define LOCAL gl_WorkGroupSize.x
#define R ROWS_PER_GROUP
#define S STREAMS_PER_LANE

void main() {
  const uint lane = gl_LocalInvocationID.x;
  const uint row0 = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * R;
  if (row0 >= ROWS) return;  // uniform across the workgroup
  const uint batch = STEP_BATCH;
  for (uint b0 = 0; b0 < batch; b0 += LOCAL * S) {  // uniform: every lane stays active
    uint b[S];  // lanes past the batch redo its last stream, unstored
    for (uint j = 0; j < S; ++j) b[j] = min(b0 + j * LOCAL + lane, batch - 1);
    float acc[R][S];
    for (uint r = 0; r < R; ++r)
      for (uint j = 0; j < S; ++j) acc[r][j] = 0.0;
    for (uint k = 0; k < COLS4; ++k) {
      vec4 xv[S];
      for (uint j = 0; j < S; ++j) xv[j] = texelFetch(X, int(b[j] * X_STRIDE4 + k));
      for (uint r = 0; r < R; ++r) {
        const vec4 wv = texelFetch(W, int(min(row0 + r, ROWS - 1) * COLS4 + k));
        for (uint j = 0; j < S; ++j) acc[r][j] += dot(wv, xv[j]);
      }
    }
    for (uint j = 0; j < S; ++j)
      if (b0 + j * LOCAL + lane < batch)
        for (uint r = 0; r < R; ++r)
          if (row0 + r < ROWS) y[b[j] * Y_STRIDE + row0 + r] = acc[r][j] + (HAS_BIAS ? bias[row0 + r] : 0.0);
  }
}

#version 450
// First dispatch of a step: the residual stream of stream b starts as its token's embedding row.
// A table larger than one binding may hold (maxStorageBufferRange) is split into tiles of rows:
// one dispatch per tile, each binding its slice and writing the rows whose token falls in it.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 1;         // d_model
layout(constant_id = 2) const uint ROW_STRIDE = 1;  // padded columns of the embedding matrix
layout(constant_id = 3) const uint R_STRIDE = 1;    // floats between streams in the residual
layout(constant_id = 4) const uint ROW0 = 0;        // first token id of this tile
layout(constant_id = 5) const uint TILE_ROWS = 1;   // token ids in this tile

STEP_INPUT(0)
WEIGHTS1(1, Emb)                                              // [TILE_ROWS][ROW_STRIDE]
layout(std430, binding = 2) writeonly buffer Resid { float r[]; };  // [B][R_STRIDE]

void main() {
  const uint k = gl_GlobalInvocationID.x;
  if (k >= D) return;
  const uint batch = STEP_BATCH;
  for (uint b = 0; b < batch; ++b) {
    const uint t = STEP_TOKEN(b) - ROW0;  // wraps to a huge value below the tile
    if (t < TILE_ROWS) r[b * R_STRIDE + k] = LOAD1(Emb, t * ROW_STRIDE + k);
  }
}

#version 450
// First dispatch of a step: the residual stream of stream b starts as its token's embedding row.
// A table larger than one binding may hold (maxStorageBufferRange) is split into tiles of rows:
// one dispatch per tile, each binding its slice and writing the rows whose token falls in it.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint D = 1;         // d_model
layout(constant_id = 2) const uint ROW_STRIDE = 1;  // padded columns (or words, for blocks) per row
layout(constant_id = 3) const uint R_STRIDE = 1;    // floats between streams in the residual
layout(constant_id = 4) const uint ROW0 = 0;        // first token id of this tile
layout(constant_id = 5) const uint TILE_ROWS = 1;   // token ids in this tile

STEP_INPUT(0)
#if defined(WEIGHT_Q8) || defined(WEIGHT_Q4)
// The table in Q8_0 / Q4_0 blocks (host/quant_matrix.h): ROW_STRIDE words per row, the blocks'
// fp16 scales first (two per word, padded to a multiple of 4 words), then their quant bytes.
layout(std430, binding = 1) readonly buffer Emb_buf { uint Emb[]; };  // [TILE_ROWS][ROW_STRIDE]
const uint SCALE_WORDS = (D / 32 + 7) / 8 * 4;
float load_value(uint row, uint k) {
  const uint base = row * ROW_STRIDE, blk = k / 32u;
  const float d = unpackHalf2x16(Emb[base + blk / 2u])[blk & 1u];
#ifdef WEIGHT_Q8
  const uint w = Emb[base + SCALE_WORDS + k / 4u];
  return d * float(int(w << (24u - 8u * (k & 3u))) >> 24);
#else
  const uint byte = blk * 16u + (k & 15u);  // value j of a block: byte j % 16, high nibble for j >= 16
  const uint w = Emb[base + SCALE_WORDS + byte / 4u];
  return d * (float((w >> (8u * (byte & 3u) + ((k & 16u) != 0u ? 4u : 0u))) & 15u) - 8.0);
#endif
}
#else
WEIGHTS1(1, Emb)                                              // [TILE_ROWS][ROW_STRIDE]
#define load_value(row, k) LOAD1(Emb, (row) * ROW_STRIDE + (k))
#endif
layout(std430, binding = 2) writeonly buffer Resid { float r[]; };  // [B][R_STRIDE]

void main() {
  const uint k = gl_GlobalInvocationID.x;
  if (k >= D) return;
  const uint batch = STEP_BATCH;
  for (uint b = 0; b < batch; ++b) {
    const uint t = STEP_TOKEN(b) - ROW0;  // wraps to a huge value below the tile
    if (t < TILE_ROWS) r[b * R_STRIDE + k] = load_value(t, k);
  }
}

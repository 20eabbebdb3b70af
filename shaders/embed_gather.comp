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
layout(constant_id = 6) const bool BANDED = false;  // blocks in row bands (host/quant_matrix.h)

STEP_INPUT(0)
#include "quant_blocks.glsl"
#ifdef WEIGHT_BLOCKS
// The table in ggml blocks (host/quant_matrix.h): ROW_STRIDE words per row; Q8_0 / Q4_0 / Q6_K
// rows start with their blocks' fp16 scales (two per word, padded to a multiple of 4 words). On CPU
// drivers the table is in row bands (BANDED), where word() finds a row's words.
layout(std430, binding = 1) readonly buffer Emb_buf { uint Emb[]; };  // [TILE_ROWS][ROW_STRIDE]
#if defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K)
const uint SCALE_WORDS = 0;  // d and dmin stay in the blocks
#else
const uint SCALE_WORDS = (D / BLOCK_VALUES + 7) / 8 * 4;
#endif
const uint SCALE4 = SCALE_WORDS / 4u, QUANT4 = (ROW_STRIDE - SCALE_WORDS) / 4u;
// Word i of `row`'s quants (past its scale section).
uint word(uint row, uint i) {
  if (!BANDED) return Emb[row * ROW_STRIDE + i];
  const uint q = i - SCALE_WORDS;
  return Emb[banded_quant_texel(row, q / 4u, SCALE4, QUANT4) * 4u + (q & 3u)];
}
#if defined(WEIGHT_Q8_0) || defined(WEIGHT_Q4_0) || defined(WEIGHT_Q6_K)
// The fp16 scale of block `blk` of `row`.
float block_scale(uint row, uint blk) {
  if (!BANDED) return unpackHalf2x16(Emb[row * ROW_STRIDE + blk / 2u])[blk & 1u];
  const uint r = row % 16u;
  return unpackHalf2x16(Emb[banded_scale_texel(row, blk, SCALE4, QUANT4) * 4u + (r % 8u) / 2u])[r & 1u];
}
#endif
float load_value(uint row, uint k) {
  const uint blk = k / BLOCK_VALUES;
#if defined(WEIGHT_Q8_0) || defined(WEIGHT_Q4_0) || defined(WEIGHT_Q6_K)
  const float d = block_scale(row, blk);
#endif
#if defined(WEIGHT_Q8_0)
  return d * int8_of(word(row, SCALE_WORDS + k / 4u), k & 3u);
#elif defined(WEIGHT_Q4_0)
  const uint byte = blk * 16u + (k & 15u);  // value j of a block: byte j % 16, high nibble for j >= 16
  const uint w = word(row, SCALE_WORDS + byte / 4u);
  return d * (float((w >> (8u * (byte & 3u) + ((k & 16u) != 0u ? 4u : 0u))) & 15u) - 8.0);
#elif defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K)
  // Value v of a block: sub-block j = v / 32, byte 32 (j / 2) + v % 32 of qs (high nibble for odd
  // j), and (Q5_K) bit j of qh[v % 32] as 16.
  const uint v = k % 256u, j = v / 32u, l = v % 32u, byte = 32u * (j >> 1) + l;
#ifdef WEIGHT_Q4_K
  const uint qs = 0u;  // words of the block past its 4-word head
#else
  const uint qs = 8u;
#endif
  vec2 dm;
  uvec2 sm;
  uint rest;  // word 0 of the block past its head
  if (BANDED) {
    // The band's heads unpacked (host/quant_matrix.h): row r's d and dmin in word r, its pair's
    // 24-bit field in the pair's words r / 2 (bits 0-15) and 8 + r / 4 (16-23).
    const uint r = row % 16u, block = 4u * k_band_block(row, blk, QUANT4), pair = 4u * k_band_pair(row, blk, j / 2u, QUANT4);
    dm = unpackHalf2x16(Emb[block + r]);
    const uint field = k_band_field(Emb[pair + r / 2u], Emb[pair + 8u + r / 4u], r) >> (6u * (j & 1u));
    sm = uvec2(field & 63u, (field >> 12) & 63u);
    rest = 4u * k_band_quants(row, blk, QUANT4);
  } else {
    const uint b0 = row * ROW_STRIDE + 4u * BAND_STEP * blk;
    dm = unpackHalf2x16(Emb[b0]);
    sm = k_scale_min(uvec3(Emb[b0 + 1u], Emb[b0 + 2u], Emb[b0 + 3u]), j);
    rest = b0 + 4u;
  }
  uint q = (byte_of(Emb[rest + qs + byte / 4u], byte & 3u) >> (4u * (j & 1u))) & 15u;
#ifdef WEIGHT_Q5_K
  q |= ((byte_of(Emb[rest + l / 4u], l & 3u) >> j) & 1u) << 4;
#endif
  return dm.x * float(sm.x) * float(q) - dm.y * float(sm.y);
#else
  // Q6_K, value v of a block: half n = v / 128, quarter g, position l; see matvec.comp.
  const uint b0 = SCALE_WORDS + 52u * blk;
  const uint v = k % 256u, n = v / 128u, g = (v / 32u) & 3u, l = v % 32u;
  const uint lo_byte = 64u * n + 32u * (g & 1u) + l, hi_byte = 128u + 32u * n + l;
  const uint sc_byte = 192u + 8u * n + 2u * g + l / 16u;
  const uint lo = (byte_of(word(row, b0 + lo_byte / 4u), lo_byte & 3u) >> (4u * (g >> 1))) & 15u;
  const uint hi = (byte_of(word(row, b0 + hi_byte / 4u), hi_byte & 3u) >> (2u * g)) & 3u;
  return d * int8_of(word(row, b0 + sc_byte / 4u), sc_byte & 3u) * (float(lo | (hi << 4)) - 32.0);
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

// Helpers for weights kept in ggml blocks (the device layouts of host/quant_matrix.h), shared by
// matvec.comp and embed_gather.comp.
#if defined(WEIGHT_Q8_0) || defined(WEIGHT_Q4_0) || defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K) || \
    defined(WEIGHT_Q6_K)
#define WEIGHT_BLOCKS
#endif
#if defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K) || defined(WEIGHT_Q6_K)
#define BLOCK_VALUES 256u
#else
#define BLOCK_VALUES 32u
#endif

#if defined(WEIGHT_Q8_0)
#define BAND_STEP 16u  // texels of a row in one step of the row-band layout (host/quant_matrix.h)
#elif defined(WEIGHT_Q4_0)
#define BAND_STEP 8u
#elif defined(WEIGHT_Q4_K)
#define BAND_STEP 9u
#elif defined(WEIGHT_Q5_K)
#define BAND_STEP 11u
#else
#define BAND_STEP 13u
#endif

#ifdef WEIGHT_BLOCKS
// Row bands of 16 rows (host/quant_matrix.h), for rows of `scale4` texels of fp16 block scales and
// then `quant4` of quants. A band's scale section keeps them block by block: block b's 16 scales
// (the band's rows in order, two to a word) fill its texels 2b and 2b + 1, so a pass over the 16
// rows reads a unit's scales in two texels instead of sixteen.
// The texel holding the scale of block `blk` of `row`: component (row % 8) / 2, half row % 2.
uint banded_scale_texel(uint row, uint blk, uint scale4, uint quant4) {
  return (row / 16u) * 16u * (scale4 + quant4) + 2u * blk + (row % 16u) / 8u;
}
// Where texel q of `row`'s quants lies (Q8_0, Q4_0, Q6_K).
uint banded_quant_texel(uint row, uint q, uint scale4, uint quant4) {
  const uint step = q / BAND_STEP, first = step * BAND_STEP, width = min(BAND_STEP, quant4 - first);
  return (row / 16u) * 16u * (scale4 + quant4) + 16u * (scale4 + first) + (row % 16u) * width + (q - first);
}
#endif

#if defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K)
// Q4_K / Q5_K row bands (host/quant_matrix.h), rows of `quant4` texels (BAND_STEP a block). Block s
// of the band holding `row` starts at texel k_band_block(): the 16 rows' d and dmin words (row r's
// in component r % 4 of texel r / 4), then three texels per pair of sub-blocks
// (k_band_pair()), then each row's block less its head (k_band_quants()).
uint k_band_block(uint row, uint s, uint quant4) { return (row / 16u) * 16u * quant4 + 16u * BAND_STEP * s; }
uint k_band_pair(uint row, uint s, uint p, uint quant4) { return k_band_block(row, s, quant4) + 4u + 3u * p; }
uint k_band_quants(uint row, uint s, uint quant4) {
  return k_band_block(row, s, quant4) + 16u + (row % 16u) * (BAND_STEP - 1u);
}
// Row r's (r < 16) 24-bit field of a pair: bits 0-15 in half r % 2 of `lo_word` (word r / 2 of the
// pair's first two texels), bits 16-23 in byte r % 4 of `hi_word` (word r / 4 of the third).
uint k_band_field(uint lo_word, uint hi_word, uint r) {
  return ((lo_word >> (16u * (r & 1u))) & 0xFFFFu) | (((hi_word >> (8u * (r & 3u))) & 255u) << 16);
}
// A field's values as vec4(scale 2p, scale 2p + 1, min 2p, min 2p + 1), as k_scales_mins_pair().
vec4 k_field_values(uint field) { return vec4((uvec4(field) >> uvec4(0, 6, 12, 18)) & 63u); }
#endif

// Component i (0..3) of v. Selects rather than a variable component index, which llvmpipe would
// spill to memory per lane.
uint component(uvec4 v, uint i) { return i == 0u ? v.x : i == 1u ? v.y : i == 2u ? v.z : v.w; }

// Byte i (0..3) of w.
uint byte_of(uint w, uint i) { return (w >> (8u * i)) & 255u; }

// Sub-block j's (0..7) 6-bit scale (x) and min (y) in a Q4_K / Q5_K block, whose 12 packed bytes
// are `p` (bytes 0-3, 4-7, 8-11): sub-blocks 0-3 keep theirs in the low 6 bits of bytes j and
// j + 4; sub-blocks 4-7 theirs in the nibbles of byte j + 4 with the top 2 bits of bytes j - 4 and j.
uvec2 k_scale_min(uvec3 p, uint j) {
  const uint i = j & 3u, a = byte_of(p.x, i), b = byte_of(p.y, i), c = byte_of(p.z, i);
  return j < 4u ? uvec2(a & 63u, b & 63u) : uvec2((c & 15u) | ((a >> 6) << 4), (c >> 4) | ((b >> 6) << 4));
}

// k_scale_min of sub-blocks j and j + 1 (j even) at once, as vec4(scale j, scale j + 1, min j,
// min j + 1): their bytes are side by side, so one word holds all four as they are unpacked.
vec4 k_scales_mins_pair(uvec3 p, uint j) {
  const uint sh = 8u * (j & 3u);
  const uint a = (p.x >> sh) & 0xFFFFu, b = (p.y >> sh) & 0xFFFFu, c = (p.z >> sh) & 0xFFFFu;
  const uint ab = a | (b << 16);  // bytes: a[i], a[i + 1], b[i], b[i + 1]
  const uint v = j < 4u ? ab & 0x3F3F3F3Fu : (c & 0x0F0Fu) | ((c & 0xF0F0u) << 12) | ((ab >> 2) & 0x30303030u);
  return vec4((uvec4(v) >> uvec4(0, 8, 16, 24)) & 0xFFu);
}

// Signed byte i (0..3) of w.
float int8_of(uint w, uint i) { return float(int(w << (24u - 8u * i)) >> 24); }

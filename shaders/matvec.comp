#version 450
// y[b] (+)= scale_b * (W @ (x[b] * norm_w)) + bias   for every stream b of the step.
//
// One kernel for every projection that reads a big matrix: in_proj (RMSNorm fused in), out_proj
// (residual add fused in: y is the residual stream, ACCUM), lm_head (final RMSNorm fused in).
// Each workgroup owns 4 * ROW_GROUPS output rows and computes them for all B streams, so each
// weight is read once per step however many streams there are.
// LOCAL threads split a row's columns and are reduced with subgroup adds (at most 32 subgroups;
// a workgroup of one subgroup needs no shared memory or barrier for it).
// The split comes from engine/vk/device_tuning.cpp: GPUs 64 threads; CPU drivers (lavapipe) 8
// threads reading through texel buffers (WEIGHT_TEXEL), whose texelFetch llvmpipe turns into
// vector gathers (a storage or shared read whose address differs across lanes, and a subgroup
// add, are loops over the lanes there); S4D on CPU drivers LOCAL = 1, where one invocation walks
// whole rows with no reduction. The C++ side (spec constants, bindings) is engine/vulkan_matvec.h.
// Built with WEIGHT_Q8_0 / _Q4_0 / _Q4_K / _Q5_K / _Q6_K, W is in blocks and is dequantised as it
// is read (fp32 sums).
// Built with SHARED_REDUCTION (devices without subgroup arithmetic, see device_profiles.cpp), the
// threads' sums go through shared memory instead, with no subgroup capability in the module
// (LOCAL <= 32 then).
#ifndef SHARED_REDUCTION
#extension GL_KHR_shader_subgroup_arithmetic : enable
#extension GL_KHR_shader_subgroup_basic : enable
#endif
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint ROWS = 1;        // output rows
layout(constant_id = 2) const uint COLS = 4;        // real input columns (for the RMS mean)
layout(constant_id = 3) const uint COLS4 = 1;       // padded columns / 4 (row stride of W and x)
layout(constant_id = 4) const uint Y_STRIDE = 1;    // floats between streams in y
layout(constant_id = 5) const uint ROW_GROUPS = 1;  // rows per workgroup = 4 * ROW_GROUPS
layout(constant_id = 6) const bool NORM = false;    // apply RMSNorm(x; norm_w) first
layout(constant_id = 7) const bool ACCUM = false;   // y += result (residual add)
layout(constant_id = 8) const bool HAS_BIAS = false;
layout(constant_id = 9) const float EPS = 1e-5;
layout(constant_id = 10) const uint X_STRIDE4 = 1;  // vec4s between streams in x (COLS4 or more)
layout(constant_id = 11) const bool LANE_ROWS = false;  // each thread takes whole rows (pass_rows)
// Which passes the variant holds (see main): 0 all; 1 the one-stream ones, for steps of one row;
// 2 the batched ones, for steps of several rows (these also take a pass's single leftover stream).
layout(constant_id = 12) const uint ROW_PASSES = 0;

STEP_INPUT(0)
#ifdef WEIGHT_TEXEL
layout(binding = 1) uniform samplerBuffer X;      // [B][X_STRIDE4]
layout(binding = 3) uniform samplerBuffer NormW;  // [COLS4] (NORM only)
#define LOAD_X(i4) texelFetch(X, int(i4))
#define LOAD_NORM(i4) texelFetch(NormW, int(i4))
#else
layout(std430, binding = 1) readonly buffer X { vec4 x[]; };
layout(std430, binding = 3) readonly buffer NormW { vec4 norm_w[]; };
#define LOAD_X(i4) x[i4]
#define LOAD_NORM(i4) norm_w[i4]
#endif
#include "quant_blocks.glsl"
#ifdef WEIGHT_BLOCKS
// W in ggml blocks, repacked into words at upload (host/quant_matrix.h). Read 16 bytes at a time,
// so no 8/16-bit storage is needed. A thread takes a 32-value "unit" (a Q8_0 / Q4_0 block, a
// K-quant sub-block) so a unit's scales are fetched once.
#ifdef WEIGHT_TEXEL
layout(binding = 2) uniform usamplerBuffer W;                       // RGBA32UI view
#define LOADQ(i4) texelFetch(W, int(i4))
#else
layout(std430, binding = 2) readonly buffer W_buf { uvec4 W[]; };
#define LOADQ(i4) W[i4]
#endif
const uint NB = COLS / BLOCK_VALUES;   // blocks per row (COLS is a multiple of the block size here)
const uint SCALE4 = (NB + 7) / 8;      // uvec4s of fp16 scales per row (Q8_0, Q4_0, Q6_K)
// A thread takes a 32-value "unit" at a time, in UNIT_HALVES halves with factors of their own, so
// a unit's scales are fetched once. Q8_0 / Q4_0: a block; Q6_K: a sub-block; Q4_K / Q5_K: one
// quant texel of a pair of sub-blocks 2p, 2p + 1, which share their quant bytes: its 16 low
// nibbles are values of sub-block 2p, its 16 high nibbles the same values of 2p + 1. So every quant
// texel read is used whole (lavapipe: a texel read costs about 40 instructions whatever it brings).
#if defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K)
#define UNIT_HALVES 2
#else
#define UNIT_HALVES 1
#endif
#define UNIT_X4 8                      // vec4s of x a unit multiplies
#define HALF_X4 (UNIT_X4 / UNIT_HALVES)
const uint UNITS = COLS / 32;
#if defined(WEIGHT_Q8_0)
const uint QUANT4 = 2 * NB;            // uvec4s of quants per row: 2 per block
#elif defined(WEIGHT_Q4_0)
const uint QUANT4 = NB;
#elif defined(WEIGHT_Q4_K)
const uint QUANT4 = 9 * NB;            // whole 144-byte blocks
#elif defined(WEIGHT_Q5_K)
const uint QUANT4 = 11 * NB;           // whole 176-byte blocks
#else
const uint QUANT4 = 13 * NB;           // Q6_K: 208 bytes a block once d is in the scale section
#endif
#if defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K)
const uint SCALES4 = 0;                // d and dmin stay in the blocks
#else
const uint SCALES4 = SCALE4;
#endif
const uint ROW4 = SCALES4 + QUANT4;    // uvec4s per row
#ifdef WEIGHT_TEXEL
// Texel reads come from CPU drivers, where W is uploaded in row bands (host/quant_matrix.h).
uint quant_texel(uint row, uint q) { return banded_quant_texel(row, q, SCALES4, QUANT4); }
#else
uint quant_texel(uint row, uint q) { return row * ROW4 + SCALES4 + q; }
#endif

#if defined(WEIGHT_Q8_0) || defined(WEIGHT_Q4_0) || defined(WEIGHT_Q6_K)
#define BLOCK_SCALES  // fp16 block scales in a section of their own
#endif
// The block whose scale unit u uses (BLOCK_SCALES).
uint unit_block(uint u) { return u / (BLOCK_VALUES / 32u); }

// The half of word `w` that holds a scale: the high one when `high`.
float scale_half(uint w, bool high) { return unpackHalf2x16(high ? w >> 16 : w).x; }

// The fp16 scale of block `blk` of `row`.
float block_scale(uint row, uint blk) {
#ifdef WEIGHT_TEXEL
  const uvec4 sv = LOADQ(banded_scale_texel(row, blk, SCALES4, QUANT4));  // 8 rows' scales of blk
  const uint sel = (row >> 1) & 3u, half_of = row & 1u;
#else
  const uvec4 sv = LOADQ(row * ROW4 + blk / 8u);  // 8 blocks' scales of row
  const uint sel = (blk >> 1) & 3u, half_of = blk & 1u;
#endif
  return scale_half(component(sv, sel), half_of != 0u);
}

// Quants are read as f = 1 + q / 2^n: q's n bits (a byte or a nibble of `word`, one per component)
// are moved to the top of the mantissa of 1.0 and combined with its bits by one shift and one
// and-xor (an exact float, no int-to-float conversion: on llvmpipe, which has no fused
// multiply-add for shaders, a weight then costs 4 instructions instead of 5). The format's scale,
// offset and the 1.0 go into the half's factors D and M (unit_load): q = 2^n f - 2^n.
// Shifts per component, for a field at bit 8c (LO) or 8c + 4 (HI), up to bit 22.
const uvec4 SHL_BYTE = uvec4(15, 7, 0, 0), SHR_BYTE = uvec4(0, 0, 1, 9);    // 8 bits, and HI nibbles
const uvec4 SHL_LO4 = uvec4(19, 11, 3, 0), SHR_LO4 = uvec4(0, 0, 0, 5);     // LO nibbles
const uint ONE_BITS = 0x3F800000u;  // 1.0
const uvec4 BYTE_SHIFTS = uvec4(0, 8, 16, 24);
vec4 mantissa_values(uint word, uvec4 shl, uvec4 shr, uint field_mask, uint xor_bits) {
  return uintBitsToFloat((((uvec4(word) << shl) >> shr) & field_mask) ^ xor_bits);
}

// Unit u of a row as read: its texels and each half's factors D and M. Its weights, in x's order,
// are D * f - M with f = unit_w(unit, i), i = 0..UNIT_X4-1 (half i / 8): q = 2^n f - 2^n folded
// into dequantize_row()'s weight, so Q8_0 (q + 128 as a byte, n = 8): D = 256 d, M = 384 d;
// Q4_0 (n = 4): 16 d, 24 d; Q4_K: 16 d scale, 16 d scale + dmin min; Q5_K (n = 5): 32 d scale,
// 32 d scale + dmin min; Q6_K: unit_w gives the weights, D = 1, M = 0. A half's dot with x is
// then D * (f . x) - M * sum(x): the offsets cost one product per half, not one per weight.
struct Unit {
  uvec4 a, b;  // the two texels of quants (Q4_0, Q4_K, Q5_K: one, in a); Q6_K: the low 4 bits
  vec2 d, m;   // D and M of each half
#ifdef WEIGHT_Q5_K
  uvec4 h0;      // qh shifted so that bit 8c of a word is the first half's fifth bit, 8c + 1 the second's
#endif
#ifdef WEIGHT_Q6_K
  uvec4 h0, h1;  // the top 2 bits
  uvec4 shh;     // shifts of those bits
  uvec4 shl;     // shifts of the low 4 bits
  float d6, db6; // the two 16-value halves' scales
#endif
};

#if defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K)
// Texel q of block s of `row` past its head (Q5_K: qh in 0-1, then qs; Q4_K: qs).
uint k_quants(uint row, uint s, uint q) {
#ifdef WEIGHT_TEXEL
  return k_band_quants(row, s, QUANT4) + q;  // row bands (host/quant_matrix.h)
#else
  return quant_texel(row, BAND_STEP * s) + 1u + q;  // whole blocks of BAND_STEP texels
#endif
}

// Unit u of a Q4_K / Q5_K row, given its block's d and dmin (`dm`) and its pair's scales and mins
// (`sm`, as k_scales_mins_pair()). Texel t of pair p of block s: values 16 t.. of sub-blocks 2p
// (low nibbles of qs bytes 32 p + 16 t..) and 2p + 1 (their high nibbles); Q5_K adds bit 2p
// (2p + 1) of qh[value] as 16. Weight = d * scale * q - dmin * min, as dequantize_row().
Unit k_unit(uint row, uint u, vec2 dm, vec4 sm) {
  Unit un;
  const uint s = u / 8u, p = (u >> 1) & 3u, t = u & 1u;
#ifdef WEIGHT_Q4_K
  un.a = LOADQ(k_quants(row, s, 2u * p + t));
  const float n2 = 16.0;
#else
  un.h0 = LOADQ(k_quants(row, s, t)) >> (2u * p);
  un.a = LOADQ(k_quants(row, s, 2u + 2u * p + t));
  const float n2 = 32.0;
#endif
  un.b = un.a;
  un.d = n2 * dm.x * sm.xy;
  un.m = un.d + dm.y * sm.zw;
  return un;
}

// Block s's d and dmin, and pair p's scales and mins, of `row` (k_unit's dm and sm).
void k_head(uint row, uint s, uint p, out vec2 dm, out vec4 sm) {
#ifdef WEIGHT_TEXEL
  const uint r = row % 16u, pair = k_band_pair(row, s, p, QUANT4);
  dm = unpackHalf2x16(component(LOADQ(k_band_block(row, s, QUANT4) + r / 4u), r % 4u));
  const uint lo = component(LOADQ(pair + r / 8u), (r / 2u) % 4u), hi = component(LOADQ(pair + 2u), r / 4u);
  sm = k_field_values(k_band_field(lo, hi, r));
#else
  const uvec4 head = LOADQ(quant_texel(row, BAND_STEP * s));
  dm = unpackHalf2x16(head.x);
  sm = k_scales_mins_pair(head.yzw, 2u * p);
#endif
}
#else
// `d`: the scale of the unit's block (BLOCK_SCALES; block_scale(row, unit_block(u))).
Unit unit_load_scaled(uint row, uint u, float d) {
  Unit un;
  un.d = vec2(1.0, 0.0);
  un.m = vec2(0.0);
#if defined(WEIGHT_Q8_0)
  un.a = LOADQ(quant_texel(row, 2u * u));
  un.b = LOADQ(quant_texel(row, 2u * u + 1u));
  un.d.x = 256.0 * d;
  un.m.x = 384.0 * d;
#elif defined(WEIGHT_Q4_0)
  un.a = LOADQ(quant_texel(row, u));
  un.b = un.a;
  un.d.x = 16.0 * d;
  un.m.x = 24.0 * d;
#else
  // Q6_K. Sub-block j of block s covers values 32 j.. : half n = j / 4 of the block, quarter g = j % 4
  // of it. Its low 4 bits are ql[64 n + 32 (g & 1) + l] (high nibble for g >= 2), its top 2 bits
  // bits 2g of qh[32 n + l], and its int8 scales sc[8 n + 2 g] (l < 16) and sc[8 n + 2 g + 1].
  // Weight = d * scale * (q - 32), as dequantize_row().
  const uint s = u / 8u, j = u & 7u, n = j >> 2, g = j & 3u;
  const uint blk = quant_texel(row, 13u * s);
  un.a = LOADQ(blk + 4u * n + 2u * (g & 1u));
  un.b = LOADQ(blk + 4u * n + 2u * (g & 1u) + 1u);
  un.h0 = LOADQ(blk + 8u + 2u * n);
  un.h1 = LOADQ(blk + 9u + 2u * n);
  const uvec4 sv = LOADQ(blk + 12u);
  const uint sw = n == 0u ? ((g & 2u) == 0u ? sv.x : sv.y) : ((g & 2u) == 0u ? sv.z : sv.w);
  un.d6 = d * int8_of(sw, 2u * (g & 1u));
  un.db6 = d * int8_of(sw, 2u * (g & 1u) + 1u);
  un.shl = BYTE_SHIFTS + 4u * (g >> 1);
  un.shh = BYTE_SHIFTS + 2u * g;
#endif
  return un;
}
#endif

Unit unit_load(uint row, uint u) {
#ifdef BLOCK_SCALES
  return unit_load_scaled(row, u, block_scale(row, unit_block(u)));
#else
  vec2 dm;
  vec4 sm;
  k_head(row, u / 8u, (u >> 1) & 3u, dm, sm);
  return k_unit(row, u, dm, sm);
#endif
}

#ifdef WEIGHT_TEXEL
// What the 16 rows of a band (host/quant_matrix.h) share for unit u, read once for all of them
// (band_heads) and taken apart row by row (band_unit): the fp16 scales of the unit's block (Q8_0,
// Q4_0, Q6_K: two texels instead of one a row) or the d, dmin, scales and mins of its block and
// pair of sub-blocks (Q4_K, Q5_K: seven texels instead of one a row, and no unpacking of the
// 6-bit values).
struct BandHeads {
#ifdef BLOCK_SCALES
  uvec4 sc[2];    // the rows' scales of the unit's block, two to a word
#else
  uvec4 dm[4];    // the rows' d and dmin words
  uvec4 pair[3];  // the rows' fields of the unit's pair (k_band_field)
#endif
};
BandHeads band_heads(uint row0, uint u) {
  BandHeads h;
#ifdef BLOCK_SCALES
  const uint t = banded_scale_texel(row0, unit_block(u), SCALES4, QUANT4);
  for (uint i = 0; i < 2; ++i) h.sc[i] = LOADQ(t + i);
#else
  const uint s = u / 8u, block = k_band_block(row0, s, QUANT4), pair = k_band_pair(row0, s, (u >> 1) & 3u, QUANT4);
  for (uint i = 0; i < 4; ++i) h.dm[i] = LOADQ(block + i);
  for (uint i = 0; i < 3; ++i) h.pair[i] = LOADQ(pair + i);
#endif
  return h;
}
// Unit u of `row`, row r (a constant once loops are unrolled) of the band band_heads() read.
Unit band_unit(BandHeads h, uint row, uint r, uint u) {
#ifdef BLOCK_SCALES
  return unit_load_scaled(row, u, scale_half(h.sc[r / 8u][(r % 8u) / 2u], (r & 1u) != 0u));
#else
  const uint field = k_band_field(h.pair[r / 8u][(r / 2u) % 4u], h.pair[2][r / 4u], r);
  return k_unit(row, u, unpackHalf2x16(h.dm[r / 4u][r % 4u]), k_field_values(field));
#endif
}
#endif

// f for x's vec4 i of the unit (i a constant once loops are unrolled): the four values it multiplies.
vec4 unit_w(Unit un, uint i) {
  const uint c = i & 3u;
#if defined(WEIGHT_Q8_0)
  // four int8 per word; flipping bit 7 makes q + 128
  return mantissa_values(i < 4u ? un.a[c] : un.b[c], SHL_BYTE, SHR_BYTE, 0x007F8000u, ONE_BITS | 0x00400000u);
#elif defined(WEIGHT_Q4_0)
  // byte b of the block: value b in its low nibble, value b + 16 in its high nibble
  return i < 4u ? mantissa_values(un.a[c], SHL_LO4, SHR_LO4, 0x00780000u, ONE_BITS)
                : mantissa_values(un.a[c], SHL_BYTE, SHR_BYTE, 0x00780000u, ONE_BITS);
#elif defined(WEIGHT_Q4_K)
  // first half: the texel's low nibbles; second half: its high nibbles
  return i < 4u ? mantissa_values(un.a[c], SHL_LO4, SHR_LO4, 0x00780000u, ONE_BITS)
                : mantissa_values(un.a[c], SHL_BYTE, SHR_BYTE, 0x00780000u, ONE_BITS);
#elif defined(WEIGHT_Q5_K)
  // as Q4_K, one bit lower, with qh's bit as the fifth (bit 22)
  const uint word = un.a[c], hw = un.h0[c];
  const uvec4 low = i < 4u ? ((uvec4(word) << (SHL_LO4 - uvec4(1, 1, 1, 0))) >> (SHR_LO4 + uvec4(0, 0, 0, 1)))
                           : ((uvec4(word) << (SHL_BYTE - uvec4(1, 1, 0, 0))) >> (SHR_BYTE + uvec4(0, 0, 1, 1)));
  const uvec4 high = i < 4u ? ((uvec4(hw) << uvec4(22, 14, 6, 0)) >> uvec4(0, 0, 0, 2))
                            : ((uvec4(hw) << uvec4(21, 13, 5, 0)) >> uvec4(0, 0, 0, 3));
  return uintBitsToFloat((low & 0x003C0000u) | (high & 0x00400000u) | ONE_BITS);
#else
  const uint word = i < 4u ? un.a[c] : un.b[c];
  const uvec4 v = ((uvec4(word) >> un.shl) & 15u) | (((uvec4(i < 4u ? un.h0[c] : un.h1[c]) >> un.shh) & 3u) << 4);
  return (i < 4u ? un.d6 : un.db6) * (vec4(v) - 32.0);
#endif
}
#else
WEIGHTS4(2, W)                                                      // [ROWS][COLS4]
#endif
layout(std430, binding = 4) readonly buffer Bias { float bias[]; };    // [ROWS] (HAS_BIAS only)
layout(std430, binding = 5) buffer Y { float y[]; };                // [B][Y_STRIDE]

#define LOCAL gl_WorkGroupSize.x
#define TB 4  // streams per pass: 4 rows x 4 streams accumulators

shared float red[TB * 4 * 32];  // per-subgroup (or, SHARED_REDUCTION, per-thread) partial sums
shared float scale_s[TB];  // workgroups of several subgroups pass the RMSNorm scales through here
float scale_r[TB];         // this pass's RMSNorm scales, in every thread

// True when the workgroup is one subgroup (CPU drivers: 8 threads, one SIMD vector): sums are then
// subgroup adds valid in every thread, with no shared memory and no barrier. On llvmpipe each read
// of `red` is a loop over the lanes; reading it back cost about a sixth of a Mamba-1 step there.
bool one_subgroup() {
#ifdef SHARED_REDUCTION
  return LOCAL == 1;
#else
  return LOCAL == 1 || gl_NumSubgroups == 1u;
#endif
}

// Sum of v over a workgroup of one subgroup (one_subgroup()), valid in every thread.
float subgroup_sum(float v) {
#ifdef SHARED_REDUCTION
  return v;  // LOCAL == 1
#else
  return LOCAL == 1 ? v : subgroupAdd(v);
#endif
}

// Sum of v over the workgroup, valid in invocation 0. `slot` separates concurrent reductions.
float workgroup_sum(float v, uint slot) {
  if (LOCAL == 1) return v;
#ifdef SHARED_REDUCTION
  red[slot * 32 + gl_LocalInvocationID.x] = v;
#else
  float s = subgroupAdd(v);
  if (subgroupElect()) red[slot * 32 + gl_SubgroupID] = s;
#endif
  return 0.0;  // completed by finish_sum after a barrier
}
float finish_sum(uint slot) {
  float s = 0.0;
#ifdef SHARED_REDUCTION
  for (uint i = 0; i < LOCAL; ++i) s += red[slot * 32 + i];
#else
  for (uint i = 0; i < gl_NumSubgroups; ++i) s += red[slot * 32 + i];
#endif
  return s;
}


// y[b0 + j][row] (+)= value, for one output of the pass.
void store(uint row, uint b, uint j, float v) {
  if (NORM) v *= scale_r[j];
  if (HAS_BIAS) v += bias[row];
  const uint o = b * Y_STRIDE + row;
  y[o] = ACCUM ? y[o] + v : v;
}

#ifdef WEIGHT_BLOCKS
// The vec4 of x that unit u's vec4 i multiplies (i a constant once loops are unrolled).
uint unit_x4(uint u, uint i) {
#if defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K)
  // texel t of pair p of block s: values 16 t.. of sub-blocks 2p, then 2p + 1 (32 values on)
  return (u / 8u) * 64u + ((u >> 1) & 3u) * 16u + (u & 1u) * 4u + (i < 4u ? i : i + 4u);
#else
  return u * UNIT_X4 + i;
#endif
}

// x[b0] times the norm weights over unit u's columns: what unit_sum multiplies; returns the sum of
// each half.
vec2 unit_x(uint b0, uint u, out vec4 xv[UNIT_X4]) {
  vec4 xs[2] = vec4[2](vec4(0.0), vec4(0.0));
  for (uint i = 0; i < UNIT_X4; ++i) {
    const uint k = unit_x4(u, i);
    xv[i] = LOAD_X(b0 * X_STRIDE4 + k) * (NORM ? LOAD_NORM(k) : vec4(1.0));
    xs[i / HALF_X4] += xv[i];
  }
  return vec2(dot(xs[0], vec4(1.0)), dot(xs[1], vec4(1.0)));
}

// A unit's dot with x from its halves' D and M (Unit), f . x (as vec4s `s`) and sum(x): every pass
// folds a unit this way, so prefill and steps leave the same state bit for bit.
float unit_value(vec2 d, vec2 m, vec4 s[2], vec2 xsum) {
  float v = d.x * dot(s[0], vec4(1.0)) - m.x * xsum.x;
  if (UNIT_HALVES == 2) v += d.y * dot(s[1], vec4(1.0)) - m.y * xsum.y;
  return v;
}

// A unit times xv, folded to one float: the single-stream passes add these per row.
float unit_sum(Unit un, vec4 xv[UNIT_X4], vec2 xsum) {
  // Each value is used as soon as it is decoded: decoding all 32 first kept them on the stack
  // (llvmpipe). The products and sums are pass_multi's, in its order.
  vec4 s[2] = vec4[2](vec4(0.0), vec4(0.0));
  for (uint i = 0; i < UNIT_X4; ++i) s[i / HALF_X4] += unit_w(un, i) * xv[i];
  return unit_value(un.d, un.m, s, xsum);
}
#endif

// Stores the 16 rows' sums of stream b0 + j from row0 on, valid in every thread: threads 0-7
// store a row each, twice (on CPU drivers a store is a loop over the lanes).
void store16(uint row0, uint b0, uint j, float sums[16], uint tid) {
  for (uint h = 0; h < 16; h += 8) {
    float v = sums[h];
    for (uint r = 1; r < 8; ++r) v = tid == r ? sums[h + r] : v;
    if (tid < 8 && row0 + h + tid < ROWS) store(row0 + h + tid, b0 + j, j, v);
  }
}

#if defined(WEIGHT_BLOCKS) && defined(WEIGHT_TEXEL)
const bool BLOCKS16 = LOCAL >= 8;
#else
const bool BLOCKS16 = false;
#endif
// One stream, blocks, CPU drivers (texel reads, a workgroup of one subgroup of at least 8): as
// pass_single, but 16 rows per group, so each x read (with its norm weight) serves 16 rows instead
// of 4. On llvmpipe a texel read costs about 40 instructions whatever it brings, and at 4 rows the
// reads of x outnumbered those of the blocks (q8_0, 130m shape, lavapipe: 67 ms per step at 8
// rows, 55 at 16). Each row's sum is pass_single's, in the same order.
void pass_single_blocks16(uint b0, uint wg, uint tid) {
#if defined(WEIGHT_BLOCKS) && defined(WEIGHT_TEXEL)
  for (uint g = 0; g < ROW_GROUPS; g += 4) {
    const uint row0 = (wg * ROW_GROUPS + g) * 4;
    if (row0 >= ROWS) break;  // uniform across the workgroup
    uint rows[16];
    for (uint r = 0; r < 16; ++r) rows[r] = min(row0 + r, ROWS - 1);  // clamp: never read past W
    float acc1[16];
    for (uint r = 0; r < 16; ++r) acc1[r] = 0.0;
    for (uint u = tid; u < UNITS; u += LOCAL) {
      vec4 xv[UNIT_X4];
      const vec2 xsum = unit_x(b0, u, xv);
      const BandHeads heads = band_heads(row0, u);
      for (uint r = 0; r < 16; ++r) acc1[r] += unit_sum(band_unit(heads, rows[r], r, u), xv, xsum);
    }
    float sums[16];
    for (uint r = 0; r < 16; ++r) sums[r] = subgroup_sum(dot(vec4(acc1[r], 0.0, 0.0, 0.0), vec4(1.0)));
    store16(row0, b0, 0, sums, tid);
  }
#endif
}

// Several streams, blocks, CPU drivers: as pass_multi, but 16 rows per group, so each read of the
// streams' x (and norm weights) serves 16 rows, not 4: at 4 rows those reads outnumbered the
// blocks' (16 streams of the 130m shape ran slower in q8_0 than in fp32 on lavapipe). Each (row,
// stream) sum is pass_single's, in the same order.
void pass_multi_blocks16(uint b0, uint nb, uint wg, uint tid) {
#if defined(WEIGHT_BLOCKS) && defined(WEIGHT_TEXEL)
  for (uint g = 0; g < ROW_GROUPS; g += 4) {
    const uint row0 = (wg * ROW_GROUPS + g) * 4;
    if (row0 >= ROWS) break;  // uniform across the workgroup
    float acc[16][TB];
    for (uint r = 0; r < 16; ++r)
      for (uint j = 0; j < TB; ++j) acc[r][j] = 0.0;
    for (uint u = tid; u < UNITS; u += LOCAL) {
      vec4 xv[TB][UNIT_X4];
      vec2 xsum[TB];
      for (uint j = 0; j < TB; ++j)
        if (j < nb) xsum[j] = unit_x(b0 + j, u, xv[j]);  // nb is uniform
      const BandHeads heads = band_heads(row0, u);
      for (uint r = 0; r < 16; ++r) {
        const Unit un = band_unit(heads, min(row0 + r, ROWS - 1), r, u);  // clamp: never read past W
        vec4 w[UNIT_X4];
        for (uint i = 0; i < UNIT_X4; ++i) w[i] = unit_w(un, i);
        for (uint j = 0; j < TB; ++j) {
          if (j >= nb) break;
          vec4 sj[2] = vec4[2](vec4(0.0), vec4(0.0));
          for (uint i = 0; i < UNIT_X4; ++i) sj[i / HALF_X4] += w[i] * xv[j][i];
          acc[r][j] += unit_value(un.d, un.m, sj, xsum[j]);
        }
      }
    }
    for (uint j = 0; j < TB; ++j) {
      if (j >= nb) break;  // nb is uniform
      float sums[16];
      for (uint r = 0; r < 16; ++r) sums[r] = subgroup_sum(dot(vec4(acc[r][j], 0.0, 0.0, 0.0), vec4(1.0)));
      store16(row0, b0, j, sums, tid);
    }
  }
#endif
}

#ifdef WEIGHT_BLOCKS
const bool ROWS_PER_THREAD = false;
#else
const bool ROWS_PER_THREAD = LANE_ROWS;
#endif
// Short rows (LANE_ROWS, fp32/fp16 only: a few vec4s, as in small models, on CPU drivers): each
// thread takes whole rows, for every stream of the pass, so there is no cross-lane sum and no lane
// idles over a row's last vec4s; the x reads are the same for every lane. (Measured on lavapipe
// when Mamba-1's dt_proj, 48 columns in the 130m shape, was such a matvec: its time went from 1.8x
// to 1.1x that of x_proj.) One order of sums for any number of streams, so prefill and steps agree
// bit for bit.
void pass_rows(uint b0, uint nb, uint wg, uint tid) {
#ifndef WEIGHT_BLOCKS
  const uint end = min((wg + 1) * ROW_GROUPS * 4, ROWS);
  for (uint row0 = wg * ROW_GROUPS * 4; row0 < end; row0 += LOCAL) {  // uniform across the workgroup
    const uint row = min(row0 + tid, ROWS - 1);  // clamp: never read past W
    vec4 acc[TB];
    for (uint j = 0; j < TB; ++j) acc[j] = vec4(0.0);
    for (uint k = 0; k < COLS4; ++k) {
      const vec4 wv = LOAD4(W, row * COLS4 + k), nw = NORM ? LOAD_NORM(k) : vec4(1.0);
      for (uint j = 0; j < TB; ++j)
        if (j < nb) acc[j] += wv * (LOAD_X((b0 + j) * X_STRIDE4 + k) * nw);  // nb is uniform
    }
    if (row0 + tid < end)
      for (uint j = 0; j < TB; ++j)
        if (j < nb) store(row0 + tid, b0 + j, j, dot(acc[j], vec4(1.0)));
  }
#endif
}

// One stream: the common decode case, with a quarter of the accumulators of pass_multi.
void pass_single(uint b0, uint wg, uint tid) {
  for (uint g = 0; g < ROW_GROUPS; ++g) {
    const uint row0 = (wg * ROW_GROUPS + g) * 4;
    if (row0 >= ROWS) break;  // uniform across the workgroup
    vec4 acc[4] = vec4[4](vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    uint rows[4];
    for (uint r = 0; r < 4; ++r) rows[r] = min(row0 + r, ROWS - 1);  // clamp: never read past W
#ifdef WEIGHT_BLOCKS
    // Scalar sums per row: a unit's 32 products are added in a vec4 and folded at once, which keeps
    // fewer registers live than vec4 accumulators (llvmpipe spills otherwise).
    float acc1[4] = float[4](0.0, 0.0, 0.0, 0.0);
    for (uint u = tid; u < UNITS; u += LOCAL) {
      vec4 xv[UNIT_X4];
      const vec2 xsum = unit_x(b0, u, xv);
      for (uint r = 0; r < 4; ++r) acc1[r] += unit_sum(unit_load(rows[r], u), xv, xsum);
    }
    for (uint r = 0; r < 4; ++r) acc[r] = vec4(acc1[r], 0.0, 0.0, 0.0);
#else
    for (uint k = tid; k < COLS4; k += LOCAL) {
      const vec4 xv = LOAD_X(b0 * X_STRIDE4 + k) * (NORM ? LOAD_NORM(k) : vec4(1.0));
      for (uint r = 0; r < 4; ++r) acc[r] += LOAD4(W, rows[r] * COLS4 + k) * xv;
    }
#endif
    float sums[4];
    if (one_subgroup()) {
      for (uint r = 0; r < 4; ++r) sums[r] = subgroup_sum(dot(acc[r], vec4(1.0)));
    } else {
      for (uint r = 0; r < 4; ++r) workgroup_sum(dot(acc[r], vec4(1.0)), r);
      barrier();
      for (uint r = 0; r < 4; ++r) sums[r] = tid == 0 ? finish_sum(r) : 0.0;
    }
    if (one_subgroup() && LOCAL >= 4) {
      // Every thread holds the sums: threads 0-3 store a row each (one store instead of four on
      // CPU drivers, where a store is a loop over the lanes).
      const float v = tid == 0 ? sums[0] : tid == 1 ? sums[1] : tid == 2 ? sums[2] : sums[3];
      if (tid < 4 && row0 + tid < ROWS) store(row0 + tid, b0, 0, v);
    } else if (tid == 0) {
      for (uint r = 0; r < 4; ++r)
        if (row0 + r < ROWS) store(row0 + r, b0, 0, sums[r]);
    }
    if (!one_subgroup()) barrier();  // `red` is reused by the next row group
  }
}

// Up to TB streams at once: each weight read serves all of them.
void pass_multi(uint b0, uint nb, uint wg, uint tid) {
  for (uint g = 0; g < ROW_GROUPS; ++g) {
    const uint row0 = (wg * ROW_GROUPS + g) * 4;
    if (row0 >= ROWS) break;  // uniform across the workgroup
    uint rows[4];
    for (uint r = 0; r < 4; ++r) rows[r] = min(row0 + r, ROWS - 1);  // clamp: never read past W

    vec4 acc[4][TB];
    for (uint r = 0; r < 4; ++r)
      for (uint j = 0; j < TB; ++j) acc[r][j] = vec4(0.0);

#ifdef WEIGHT_BLOCKS
    for (uint u = tid; u < UNITS; u += LOCAL) {
      // The unit's weights are decoded once per row and serve all TB streams.
      vec4 w[4][UNIT_X4];
      vec2 d[4], m[4];
      for (uint r = 0; r < 4; ++r) {
        const Unit un = unit_load(rows[r], u);
        for (uint i = 0; i < UNIT_X4; ++i) w[r][i] = unit_w(un, i);
        d[r] = un.d;
        m[r] = un.m;
      }
      for (uint j = 0; j < TB; ++j) {
        // Streams past nb read stream b0's input again (always in bounds); their sums are dropped.
        vec4 xv[UNIT_X4];
        const vec2 xsum = unit_x(b0 + (j < nb ? j : 0), u, xv);
        vec4 s[4][2];
        for (uint r = 0; r < 4; ++r) s[r] = vec4[2](vec4(0.0), vec4(0.0));
        for (uint i = 0; i < UNIT_X4; ++i)
          for (uint r = 0; r < 4; ++r) s[r][i / HALF_X4] += w[r][i] * xv[i];
        // The same sums as pass_single's (a unit folded at once), so a prompt's prefill leaves
        // the very state its steps would.
        for (uint r = 0; r < 4; ++r) acc[r][j].x += unit_value(d[r], m[r], s[r], xsum);
      }
    }
#else
    for (uint k = tid; k < COLS4; k += LOCAL) {
      vec4 xv[TB];
      const vec4 nw = NORM ? LOAD_NORM(k) : vec4(1.0);
      // Streams past nb read stream b0's input again (always in bounds); their sums are dropped.
      for (uint j = 0; j < TB; ++j) xv[j] = LOAD_X((b0 + (j < nb ? j : 0)) * X_STRIDE4 + k) * nw;
      for (uint r = 0; r < 4; ++r) {
        const vec4 wv = LOAD4(W, rows[r] * COLS4 + k);
        for (uint j = 0; j < TB; ++j) acc[r][j] += wv * xv[j];
      }
    }
#endif

    float sums[4][TB];
    if (one_subgroup()) {
      for (uint r = 0; r < 4; ++r)
        for (uint j = 0; j < TB; ++j) sums[r][j] = subgroup_sum(dot(acc[r][j], vec4(1.0)));
    } else {
      for (uint r = 0; r < 4; ++r)
        for (uint j = 0; j < TB; ++j)
          if (j < nb) workgroup_sum(dot(acc[r][j], vec4(1.0)), r * TB + j);  // nb is uniform
      barrier();
      for (uint r = 0; r < 4; ++r)
        for (uint j = 0; j < TB; ++j) sums[r][j] = (tid == 0 && j < nb) ? finish_sum(r * TB + j) : 0.0;
    }

    if (tid == 0)
      for (uint r = 0; r < 4; ++r)
        for (uint j = 0; j < TB; ++j)
          if (row0 + r < ROWS && j < nb) store(row0 + r, b0 + j, j, sums[r][j]);
    if (!one_subgroup()) barrier();  // `red` is reused by the next row group
  }
}

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint wg = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  // CPU drivers run the branches a workgroup does not take too, masked (llvmpipe: every path
  // once, stores disabled), so the passes for several streams cost a one-stream step about a
  // fifth of its time there (docs/ARCHITECTURE.md). There the model runs its one-row steps with a
  // variant that holds the one-stream passes alone (ROW_PASSES 1) and the others with one that
  // holds the batched passes alone (2), which give the same sums (engine/vulkan_matvec.h).
  const bool ONE_ROW = ROW_PASSES == 1u, SEVERAL_ROWS = ROW_PASSES == 2u;
  const uint batch = ONE_ROW ? 1u : STEP_BATCH;

  for (uint b0 = 0; b0 < batch; b0 += TB) {
    const uint nb = min(TB, batch - b0);

    // RMSNorm scale of each stream in this pass.
    if (NORM) {
      float ss[TB];
      for (uint j = 0; j < TB; ++j) {
        ss[j] = 0.0;
        if (j < nb)
          for (uint k = tid; k < COLS4; k += LOCAL) {
            vec4 v = LOAD_X((b0 + j) * X_STRIDE4 + k);
            ss[j] += dot(v, v);
          }
      }
      if (one_subgroup()) {
        for (uint j = 0; j < TB; ++j)
          if (j < nb) scale_r[j] = inversesqrt(subgroup_sum(ss[j]) / float(COLS) + EPS);
      } else {
        for (uint j = 0; j < TB; ++j) workgroup_sum(ss[j], j);
        barrier();
        if (tid == 0)
          for (uint j = 0; j < TB; ++j) scale_s[j] = inversesqrt(finish_sum(j) / float(COLS) + EPS);
        barrier();
        for (uint j = 0; j < TB; ++j) scale_r[j] = scale_s[j];
      }
    }

    if (ROWS_PER_THREAD) pass_rows(b0, nb, wg, tid);
    else if (!SEVERAL_ROWS && nb == 1 && BLOCKS16 && one_subgroup() && ROW_GROUPS % 4 == 0)
      pass_single_blocks16(b0, wg, tid);
    else if (!SEVERAL_ROWS && nb == 1) pass_single(b0, wg, tid);
    else if (ONE_ROW) return;  // not reached: nb is 1
    else if (BLOCKS16 && one_subgroup() && ROW_GROUPS % 4 == 0) pass_multi_blocks16(b0, nb, wg, tid);
    else pass_multi(b0, nb, wg, tid);
    if (!one_subgroup()) barrier();  // scale_s and `red` are reused by the next pass
  }
}

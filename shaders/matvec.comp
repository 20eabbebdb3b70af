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
#define UNIT_X4 8                      // vec4s of x a unit multiplies
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
uint scale_texel(uint row, uint t) { return banded_scale_texel(row, t, SCALES4, QUANT4); }
uint quant_texel(uint row, uint q) { return banded_quant_texel(row, q, SCALES4, QUANT4); }
#else
uint scale_texel(uint row, uint t) { return row * ROW4 + t; }
uint quant_texel(uint row, uint q) { return row * ROW4 + SCALES4 + q; }
#endif
const uvec4 BYTE_SHIFTS = uvec4(0, 8, 16, 24);

// The fp16 scale of block `blk` from the scale section of `row`.
float block_scale(uint row, uint blk) {
  // Selects rather than a variable component index, which llvmpipe would spill to memory per lane.
  const uvec4 sv = LOADQ(scale_texel(row, blk / 8u));
  const uint sel = (blk >> 1) & 3u;
  const uint sw = sel == 0u ? sv.x : sel == 1u ? sv.y : sel == 2u ? sv.z : sv.w;
  return unpackHalf2x16((blk & 1u) != 0u ? sw >> 16 : sw).x;
}

// Unit u of a row as read: its texels and factors. Its weights, in x's order, are d * w - m with
// w = unit_w(unit, i) for i = 0..7 (Q8_0: the quants and the block scale, m = 0; Q4_0: the nibbles,
// d and 8 d; Q4_K / Q5_K: the quants, d * scale and dmin * min, as dequantize_row(); Q6_K: the
// weights, 1 and 0). A unit's dot with x is then d * (w . x) - m * sum(x): the offsets cost one
// product per unit, not one per weight.
struct Unit {
  uvec4 a, b;  // the two texels of quants (Q4_0: one, in a); Q6_K: the low 4 bits
  float d, m;
#if defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K)
  uvec4 sh;    // nibble shifts: low nibbles for even sub-blocks, high for odd
#endif
#if defined(WEIGHT_Q5_K) || defined(WEIGHT_Q6_K)
  uvec4 h0, h1;  // Q5_K: qh; Q6_K: the top 2 bits
  uvec4 shh;     // shifts of those bits
#endif
#ifdef WEIGHT_Q6_K
  uvec4 shl;     // shifts of the low 4 bits
  float db;      // the second half's scale (d is the first half's)
#endif
};

Unit unit_load(uint row, uint u) {
  Unit un;
  un.m = 0.0;
#if defined(WEIGHT_Q8_0)
  un.a = LOADQ(quant_texel(row, 2u * u));
  un.b = LOADQ(quant_texel(row, 2u * u + 1u));
  un.d = block_scale(row, u);
#elif defined(WEIGHT_Q4_0)
  un.a = LOADQ(quant_texel(row, u));
  un.b = un.a;
  un.d = block_scale(row, u);
  un.m = 8.0 * un.d;
#elif defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K)
  // Sub-block j of block s: qs bytes 32 * (j / 2) on, low nibbles for even j, high for odd j;
  // Q5_K adds bit j of qh[value] as 16. Weight = d * scale * q - dmin * min, as dequantize_row().
  const uint s = u / 8u, j = u & 7u;
  // Texels of block s (banded layouts keep a block's texels together).
#ifdef WEIGHT_Q4_K
  const uint blk = quant_texel(row, 9u * s), qs = blk + 1u;
#else
  const uint blk = quant_texel(row, 11u * s), qs = blk + 3u;
  un.h0 = LOADQ(blk + 1u);
  un.h1 = LOADQ(blk + 2u);
  un.shh = BYTE_SHIFTS + j;
#endif
  const uvec4 head = LOADQ(blk);
  const vec2 dm = unpackHalf2x16(head.x);
  const uvec2 sm = k_scale_min(head.yzw, j);
  un.d = dm.x * float(sm.x);
  un.m = dm.y * float(sm.y);
  un.a = LOADQ(qs + 2u * (j >> 1));
  un.b = LOADQ(qs + 2u * (j >> 1) + 1u);
  un.sh = BYTE_SHIFTS + 4u * (j & 1u);
#else
  // Q6_K. Sub-block j of block s covers values 32 j.. : half n = j / 4 of the block, quarter g = j % 4
  // of it. Its low 4 bits are ql[64 n + 32 (g & 1) + l] (high nibble for g >= 2), its top 2 bits
  // bits 2g of qh[32 n + l], and its int8 scales sc[8 n + 2 g] (l < 16) and sc[8 n + 2 g + 1].
  // Weight = d * scale * (q - 32), as dequantize_row().
  const uint s = u / 8u, j = u & 7u, n = j >> 2, g = j & 3u;
  const uint blk = quant_texel(row, 13u * s);
  const float d = block_scale(row, s);
  un.a = LOADQ(blk + 4u * n + 2u * (g & 1u));
  un.b = LOADQ(blk + 4u * n + 2u * (g & 1u) + 1u);
  un.h0 = LOADQ(blk + 8u + 2u * n);
  un.h1 = LOADQ(blk + 9u + 2u * n);
  const uvec4 sv = LOADQ(blk + 12u);
  const uint sw = n == 0u ? ((g & 2u) == 0u ? sv.x : sv.y) : ((g & 2u) == 0u ? sv.z : sv.w);
  un.d = d * int8_of(sw, 2u * (g & 1u));
  un.db = d * int8_of(sw, 2u * (g & 1u) + 1u);
  un.shl = BYTE_SHIFTS + 4u * (g >> 1);
  un.shh = BYTE_SHIFTS + 2u * g;
#endif
  return un;
}

// w[i] of the unit (i a constant once loops are unrolled): the four values x's vec4 i multiplies.
vec4 unit_w(Unit un, uint i) {
  const uint c = i & 3u;
  const uint word = i < 4u ? un.a[c] : un.b[c];
#if defined(WEIGHT_Q8_0)
  // four int8 per word, sign-extended by shifting each byte to the top and back
  return vec4(ivec4(uvec4(word) << uvec4(24, 16, 8, 0)) >> 24);
#elif defined(WEIGHT_Q4_0)
  // byte b of the block: value b in its low nibble, value b + 16 in its high nibble
  return vec4((uvec4(word) >> (i < 4u ? BYTE_SHIFTS : BYTE_SHIFTS + 4u)) & 15u);
#elif defined(WEIGHT_Q4_K) || defined(WEIGHT_Q5_K)
  uvec4 v = (uvec4(word) >> un.sh) & 15u;
#ifdef WEIGHT_Q5_K
  v |= ((uvec4(i < 4u ? un.h0[c] : un.h1[c]) >> un.shh) & 1u) << 4;
#endif
  return vec4(v);
#else
  const uvec4 v = ((uvec4(word) >> un.shl) & 15u) | (((uvec4(i < 4u ? un.h0[c] : un.h1[c]) >> un.shh) & 3u) << 4);
  return (i < 4u ? un.d : un.db) * (vec4(v) - 32.0);
#endif
}

// The unit's factors as unit_value() takes them (Q6_K's weights come out whole: 1 and 0).
float unit_d(Unit un) {
#ifdef WEIGHT_Q6_K
  return 1.0;
#else
  return un.d;
#endif
}
float unit_m(Unit un) {
#ifdef WEIGHT_Q6_K
  return 0.0;
#else
  return un.m;
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
// x[b0] times the norm weights over unit u's columns: what unit_sum multiplies; returns their sum.
float unit_x(uint b0, uint u, out vec4 xv[UNIT_X4]) {
  vec4 xs = vec4(0.0);
  for (uint i = 0; i < UNIT_X4; ++i) {
    const uint k = u * UNIT_X4 + i;
    xv[i] = LOAD_X(b0 * X_STRIDE4 + k) * (NORM ? LOAD_NORM(k) : vec4(1.0));
    xs += xv[i];
  }
  return dot(xs, vec4(1.0));
}

// A unit's dot with x from its d and m (unit_d, unit_m), w . x (as a vec4 `s`) and sum(x): every pass
// folds a unit this way, so prefill and steps leave the same state bit for bit.
float unit_value(float d, float m, vec4 s, float xsum) { return d * dot(s, vec4(1.0)) - m * xsum; }

// Unit u of `row` times xv, folded to one float: the single-stream passes add these per row.
float unit_sum(uint row, uint u, vec4 xv[UNIT_X4], float xsum) {
  const Unit un = unit_load(row, u);
  // Each value is used as soon as it is decoded: decoding all 32 first kept them on the stack
  // (llvmpipe). The products and sums are pass_multi's, in its order.
  vec4 s = vec4(0.0);
  for (uint i = 0; i < UNIT_X4; ++i) s += unit_w(un, i) * xv[i];
  return unit_value(unit_d(un), unit_m(un), s, xsum);
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
      const float xsum = unit_x(b0, u, xv);
      for (uint r = 0; r < 16; ++r) acc1[r] += unit_sum(rows[r], u, xv, xsum);
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
      float xsum[TB];
      for (uint j = 0; j < TB; ++j)
        if (j < nb) xsum[j] = unit_x(b0 + j, u, xv[j]);  // nb is uniform
      for (uint r = 0; r < 16; ++r) {
        const Unit un = unit_load(min(row0 + r, ROWS - 1), u);  // clamp: never read past W
        vec4 w[UNIT_X4];
        for (uint i = 0; i < UNIT_X4; ++i) w[i] = unit_w(un, i);
        for (uint j = 0; j < TB; ++j) {
          if (j >= nb) break;
          vec4 sj = vec4(0.0);
          for (uint i = 0; i < UNIT_X4; ++i) sj += w[i] * xv[j][i];
          acc[r][j] += unit_value(unit_d(un), unit_m(un), sj, xsum[j]);
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
      const float xsum = unit_x(b0, u, xv);
      for (uint r = 0; r < 4; ++r) acc1[r] += unit_sum(rows[r], u, xv, xsum);
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
      float d[4], m[4];
      for (uint r = 0; r < 4; ++r) {
        const Unit un = unit_load(rows[r], u);
        for (uint i = 0; i < UNIT_X4; ++i) w[r][i] = unit_w(un, i);
        d[r] = unit_d(un);
        m[r] = unit_m(un);
      }
      for (uint j = 0; j < TB; ++j) {
        // Streams past nb read stream b0's input again (always in bounds); their sums are dropped.
        vec4 xv[UNIT_X4];
        const float xsum = unit_x(b0 + (j < nb ? j : 0), u, xv);
        vec4 s[4] = vec4[4](vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
        for (uint i = 0; i < UNIT_X4; ++i)
          for (uint r = 0; r < 4; ++r) s[r] += w[r][i] * xv[i];
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
  const uint batch = STEP_BATCH;

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
        for (uint j = 0; j < TB; ++j) scale_r[j] = inversesqrt(subgroup_sum(ss[j]) / float(COLS) + EPS);
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
    else if (nb == 1 && BLOCKS16 && one_subgroup() && ROW_GROUPS % 4 == 0) pass_single_blocks16(b0, wg, tid);
    else if (nb == 1) pass_single(b0, wg, tid);
    else if (BLOCKS16 && one_subgroup() && ROW_GROUPS % 4 == 0) pass_multi_blocks16(b0, nb, wg, tid);
    else pass_multi(b0, nb, wg, tid);
    if (!one_subgroup()) barrier();  // scale_s and `red` are reused by the next pass
  }
}

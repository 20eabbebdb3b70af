#include "host/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "host/dtype.h"
#include "host/error.h"

namespace vkssm {
namespace {

uint16_t load_u16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
uint32_t load_u32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
float f16_at(const uint8_t* p) { return half_to_float(load_u16(p)); }
void store_f16(uint8_t* p, float v) {
  const uint16_t h = float_to_half(v);
  p[0] = uint8_t(h & 0xff);
  p[1] = uint8_t(h >> 8);
}

// Q8_0: fp16 d, 32 × int8 q; value = d·q.
void dequantize_q8_0(const uint8_t* p, float* out, size_t blocks) {
  for (size_t b = 0; b < blocks; ++b, p += 34, out += 32) {
    const float d = f16_at(p);
    for (int j = 0; j < 32; ++j) out[j] = float(int8_t(p[2 + j])) * d;
  }
}

// Q4_0 / Q4_1: fp16 d (and fp16 m), 16 bytes of nibbles: low nibbles are values 0..15, high
// nibbles 16..31; value = d·(q − 8), or d·q + m.
void dequantize_q4(const uint8_t* p, float* out, size_t blocks, bool has_m) {
  const size_t block_bytes = has_m ? 20 : 18;
  for (size_t b = 0; b < blocks; ++b, p += block_bytes, out += 32) {
    const float d = f16_at(p), m = has_m ? f16_at(p + 2) : 0.0f;
    const uint8_t* qs = p + (has_m ? 4 : 2);
    const int offset = has_m ? 0 : 8;
    for (int j = 0; j < 16; ++j) {
      // No "+ m" for Q4_0: adding +0 would turn ggml's −0 (q = 8 with d < 0) into +0.
      const float lo = float(int(qs[j] & 0x0f) - offset) * d, hi = float(int(qs[j] >> 4) - offset) * d;
      out[j] = has_m ? lo + m : lo;
      out[j + 16] = has_m ? hi + m : hi;
    }
  }
}

// Q5_0 / Q5_1: fp16 d (and fp16 m), a u32 of fifth bits, 16 bytes of nibbles as Q4;
// value = d·(q − 16), or d·q + m.
void dequantize_q5(const uint8_t* p, float* out, size_t blocks, bool has_m) {
  const size_t block_bytes = has_m ? 24 : 22;
  for (size_t b = 0; b < blocks; ++b, p += block_bytes, out += 32) {
    const float d = f16_at(p), m = has_m ? f16_at(p + 2) : 0.0f;
    const uint8_t* qh_at = p + (has_m ? 4 : 2);
    const uint32_t qh = load_u32(qh_at);
    const uint8_t* qs = qh_at + 4;
    const int offset = has_m ? 0 : 16;
    for (int j = 0; j < 16; ++j) {
      const int lo = (qs[j] & 0x0f) | int(((qh >> j) & 1) << 4);
      const int hi = (qs[j] >> 4) | int(((qh >> (j + 16)) & 1) << 4);
      out[j] = has_m ? float(lo) * d + m : float(lo - offset) * d;  // as Q4: keeps ggml's −0
      out[j + 16] = has_m ? float(hi) * d + m : float(hi - offset) * d;
    }
  }
}

// As quantize_row_q8_0_ref: d = max|x| / 127, q = round(x / d).
void quantize_q8_0(const float* x, uint8_t* p, size_t blocks) {
  for (size_t b = 0; b < blocks; ++b, x += 32, p += 34) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(p, d);
    for (int j = 0; j < 32; ++j) p[2 + j] = uint8_t(int8_t(std::roundf(x[j] * id)));
  }
}

// As quantize_row_q4_0_ref: d = (the value of largest magnitude) / −8, q = min(15, trunc(x/d + 8.5)).
void quantize_q4_0(const float* x, uint8_t* p, size_t blocks) {
  for (size_t b = 0; b < blocks; ++b, x += 32, p += 18) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(p, d);
    for (int j = 0; j < 16; ++j) {
      const int lo = std::min(15, int(int8_t(x[j] * id + 8.5f)));
      const int hi = std::min(15, int(int8_t(x[j + 16] * id + 8.5f)));
      p[2 + j] = uint8_t(lo | (hi << 4));
    }
  }
}

// As quantize_row_q4_1_ref: d = (max − min) / 15, m = min, q = min(15, trunc((x − min)/d + 0.5)).
void quantize_q4_1(const float* x, uint8_t* p, size_t blocks) {
  for (size_t b = 0; b < blocks; ++b, x += 32, p += 20) {
    float min = std::numeric_limits<float>::max(), max = -std::numeric_limits<float>::max();
    for (int j = 0; j < 32; ++j) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(p, d);
    store_f16(p + 2, min);
    for (int j = 0; j < 16; ++j) {
      const int lo = std::min(15, int(int8_t((x[j] - min) * id + 0.5f)));
      const int hi = std::min(15, int(int8_t((x[j + 16] - min) * id + 0.5f)));
      p[4 + j] = uint8_t(lo | (hi << 4));
    }
  }
}

void store_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}

// As quantize_row_q5_0_ref / q5_1_ref: Q4's rules with 5 bits (d = max / −16, or (max − min) / 31),
// the fifth bits gathered into a u32.
void quantize_q5(const float* x, uint8_t* p, size_t blocks, bool has_m) {
  const size_t block_bytes = has_m ? 24 : 22;
  for (size_t b = 0; b < blocks; ++b, x += 32, p += block_bytes) {
    float d, min = 0.0f;
    if (has_m) {
      float max = -std::numeric_limits<float>::max();
      min = std::numeric_limits<float>::max();
      for (int j = 0; j < 32; ++j) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
      }
      d = (max - min) / 31.0f;
    } else {
      float amax = 0.0f, max = 0.0f;
      for (int j = 0; j < 32; ++j) {
        if (amax < std::fabs(x[j])) {
          amax = std::fabs(x[j]);
          max = x[j];
        }
      }
      d = max / -16.0f;
    }
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    store_f16(p, d);
    if (has_m) store_f16(p + 2, min);
    uint8_t* qs = p + (has_m ? 8 : 6);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      int lo, hi;
      if (has_m) {
        lo = uint8_t((x[j] - min) * id + 0.5f);
        hi = uint8_t((x[j + 16] - min) * id + 0.5f);
      } else {
        lo = std::min(31, int(int8_t(x[j] * id + 16.5f)));
        hi = std::min(31, int(int8_t(x[j + 16] * id + 16.5f)));
      }
      qs[j] = uint8_t((lo & 0x0f) | ((hi & 0x0f) << 4));
      qh |= uint32_t((lo & 0x10) >> 4) << j;
      qh |= uint32_t((hi & 0x10) >> 4) << (j + 16);
    }
    store_u32(p + (has_m ? 4 : 2), qh);
  }
}

// ---- K-quants: super-blocks of 256 values in sub-blocks of 16 or 32, each sub-block with its own
// scale (and min) quantized against the super-block's fp16 d (and dmin). The quantizers mirror
// ggml-quants.c's reference ones operation for operation (same float expressions in the same
// order, no fused multiply-add: host/CMakeLists.txt compiles this file with -ffp-contract=off),
// because one ulp of difference in a search can pick another scale and change the bytes.

constexpr int kQK = 256;

// ggml's nearest_int: round half to even through the 1.5·2^23 magic constant, valid for
// |v| ≤ 2^22 (ggml asserts that range; the quantizers never leave it for finite input).
int nearest_int(float v) {
  const float biased = v + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &biased, 4);
  return (bits & 0x007fffff) - 0x00400000;
}

// Affine quantization of n values to 0..nmax with scale and min (make_qkx2_quants): a first
// guess from the range, then nstep + 1 trial scales around it, each refined by weighted least
// squares; keeps the one with the smallest weighted error (absolute when use_mad). Returns the
// scale and writes −min (≥ 0) to *neg_min.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                       float* neg_min, uint8_t* Laux, float rmin, float rdelta, int nstep,
                       bool use_mad) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *neg_min = -min;
    return 0.0f;
  }
  float iscale = float(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = uint8_t(std::max(0, std::min(nmax, l)));
    float diff = scale * float(L[i]) + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * float(is) + float(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = uint8_t(l);
      const float w = weights[i];
      sum_l += w * float(l);
      sum_l2 += w * float(l) * float(l);
      sum_xl += w * float(l) * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * float(Laux[i]) + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *neg_min = -min;
  return scale;
}

constexpr float kGroupMaxEps = 1e-15f;  // ggml's GROUP_MAX_EPS: below this a group counts as zero

// Symmetric quantization of n values to −nmax..nmax−1 weighted by x² (make_qx_quants with
// rmse_type 1 and no importance weights): 19 trial scales around −nmax / (value of largest
// magnitude), keeping the best least-squares fit. L gets the levels offset by nmax.
float make_qx_quants_rmse1(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  float iscale = float(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = int8_t(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(float(nmax) + 0.1f * float(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * float(l);
      suml2 += w * float(l) * float(l);
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = int8_t(nmax + std::max(-nmax, std::min(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Symmetric quantization for Q3_K (make_q3_quants with do_rmse): levels from −nmax / max, then
// up to five passes that move single levels while that improves the x²-weighted fit.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  const float iscale = float(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = int8_t(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * float(L[i]);
      if (slx > 0) {
        float sl2 = suml2 - w * float(L[i]) * float(L[i]);
        int new_l = nearest_int(x[i] * sl2 / slx);
        new_l = std::max(-nmax, std::min(nmax - 1, new_l));
        if (new_l != L[i]) {
          slx += w * x[i] * float(new_l);
          sl2 += w * float(new_l) * float(new_l);
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = int8_t(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Q3_K's 16 six-bit scales in 12 bytes: low nibbles in bytes 0..7 (sub-blocks 0..7 low, 8..15
// high), the top 2 bits in bytes 8..11 (sub-block j: byte 8 + j%4, bits 2·(j/4)); stored + 32.
int q3_k_scale(const uint8_t* s, int j) {
  const int low = j < 8 ? (s[j] & 0xf) : (s[j - 8] >> 4);
  const int high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (low | (high << 4)) - 32;
}

// Q2_K: 16 × u8 scales (low nibble scale, high nibble min), 64 bytes of 2-bit levels, fp16 d,
// fp16 dmin. Value i of 256: level at byte 32·(i/128) + i%32, bits 2·((i/32)%4);
// value = d·scale·q − dmin·min.
void dequantize_q2_k(const uint8_t* p, float* out, size_t blocks) {
  for (size_t b = 0; b < blocks; ++b, p += 84, out += kQK) {
    const uint8_t* scales = p;
    const uint8_t* qs = p + 16;
    const float d = f16_at(p + 80), dmin = f16_at(p + 82);
    for (int i = 0; i < kQK; ++i) {
      const uint8_t sc = scales[i / 16];
      const float dl = d * float(sc & 0xf), ml = dmin * float(sc >> 4);
      const int q = (qs[32 * (i / 128) + i % 32] >> (2 * ((i / 32) % 4))) & 3;
      out[i] = dl * float(q) - ml;
    }
  }
}

// Q3_K: 32 bytes of high bits (value i: byte i%32, bit i/32), 64 bytes of 2-bit levels (as Q2_K),
// 12 bytes of scales, fp16 d; value = d·scale·(q − (high bit ? 0 : 4)).
void dequantize_q3_k(const uint8_t* p, float* out, size_t blocks) {
  for (size_t b = 0; b < blocks; ++b, p += 110, out += kQK) {
    const uint8_t* hmask = p;
    const uint8_t* qs = p + 32;
    const uint8_t* scales = p + 96;
    const float d = f16_at(p + 108);
    for (int i = 0; i < kQK; ++i) {
      const float dl = d * float(q3_k_scale(scales, i / 16));
      const int q = (qs[32 * (i / 128) + i % 32] >> (2 * ((i / 32) % 4))) & 3;
      const int hi = (hmask[i % 32] >> (i / 32)) & 1;
      out[i] = dl * float(q - (hi ? 0 : 4));
    }
  }
}

// Q4_K: fp16 d, fp16 dmin, 12 bytes of scales/mins, 128 bytes of nibbles: value i lies in byte
// 32·(i/64) + i%32, low nibble when (i/32) is even; value = d·scale·q − dmin·min.
void dequantize_q4_k(const uint8_t* p, float* out, size_t blocks) {
  for (size_t b = 0; b < blocks; ++b, p += 144, out += kQK) {
    const float d = f16_at(p), dmin = f16_at(p + 2);
    const uint8_t* scales = p + 4;
    const uint8_t* qs = p + 16;
    for (int s = 0; s < 8; ++s) {
      uint8_t sc, m;
      scale_min_k4(s, scales, &sc, &m);
      const float d1 = d * float(sc), m1 = dmin * float(m);
      for (int l = 0; l < 32; ++l) {
        const uint8_t byte = qs[32 * (s / 2) + l];
        const int q = (s % 2) ? (byte >> 4) : (byte & 0xf);
        out[32 * s + l] = d1 * float(q) - m1;
      }
    }
  }
}

// Q5_K: Q4_K plus 32 bytes of fifth bits before the nibbles (value i: byte i%32, bit i/32).
void dequantize_q5_k(const uint8_t* p, float* out, size_t blocks) {
  for (size_t b = 0; b < blocks; ++b, p += 176, out += kQK) {
    const float d = f16_at(p), dmin = f16_at(p + 2);
    const uint8_t* scales = p + 4;
    const uint8_t* qh = p + 16;
    const uint8_t* qs = p + 48;
    for (int s = 0; s < 8; ++s) {
      uint8_t sc, m;
      scale_min_k4(s, scales, &sc, &m);
      const float d1 = d * float(sc), m1 = dmin * float(m);
      for (int l = 0; l < 32; ++l) {
        const uint8_t byte = qs[32 * (s / 2) + l];
        const int q = ((s % 2) ? (byte >> 4) : (byte & 0xf)) + (((qh[l] >> s) & 1) ? 16 : 0);
        out[32 * s + l] = d1 * float(q) - m1;
      }
    }
  }
}

// Q6_K: 128 bytes of low nibbles, 64 bytes of 2-bit highs, 16 × int8 scales, fp16 d. Per half
// h of 128 values, value j (0..127) of the half: low nibble in byte 64h + j%64 (high nibble when
// j ≥ 64), top bits in byte 32h + j%32 at bits 2·(j/32); value = d·scale·(q − 32).
void dequantize_q6_k(const uint8_t* p, float* out, size_t blocks) {
  for (size_t b = 0; b < blocks; ++b, p += 210, out += kQK) {
    const uint8_t* ql = p;
    const uint8_t* qh = p + 128;
    const auto* scales = reinterpret_cast<const int8_t*>(p + 192);
    const float d = f16_at(p + 208);
    for (int i = 0; i < kQK; ++i) {
      const int h = i / 128, j = i % 128;
      const uint8_t lo_byte = ql[64 * h + j % 64];
      const int lo = j < 64 ? (lo_byte & 0xf) : (lo_byte >> 4);
      const int hi = (qh[32 * h + j % 32] >> (2 * (j / 32))) & 3;
      out[i] = d * float(scales[i / 16]) * float((lo | (hi << 4)) - 32);
    }
  }
}

// IQ4_NL: fp16 d, 16 bytes of nibbles (low: values 0..15, high: 16..31) indexing a fixed
// non-uniform table (ggml's kvalues_iq4nl); value = d·table[q].
void dequantize_iq4_nl(const uint8_t* p, float* out, size_t blocks) {
  static const int8_t kTable[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                    1,    13,   25,  38,  53,  69,  89,  113};
  for (size_t b = 0; b < blocks; ++b, p += 18, out += 32) {
    const float d = f16_at(p);
    for (int j = 0; j < 16; ++j) {
      out[j] = d * float(kTable[p[2 + j] & 0xf]);
      out[j + 16] = d * float(kTable[p[2 + j] >> 4]);
    }
  }
}

// Packs 2-bit levels L[0..255] as Q2_K / Q3_K store them.
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < kQK; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] = uint8_t(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

// As quantize_row_q2_K_ref.
void quantize_q2_k(const float* x, uint8_t* p, size_t blocks) {
  uint8_t L[kQK], Laux[16];
  float weights[16], mins[16], scales[16];
  const float q4scale = 15.0f;
  for (size_t b = 0; b < blocks; ++b, x += kQK, p += 84) {
    uint8_t* y_scales = p;
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f,
                                   0.1f, 15, true);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
      const float iscale = q4scale / max_scale;
      for (int j = 0; j < 16; ++j) y_scales[j] = uint8_t(nearest_int(iscale * scales[j]));
      store_f16(p + 80, max_scale / q4scale);
    } else {
      for (int j = 0; j < 16; ++j) y_scales[j] = 0;
      store_f16(p + 80, 0.0f);
    }
    if (max_min > 0) {
      const float iscale = q4scale / max_min;
      for (int j = 0; j < 16; ++j) y_scales[j] |= uint8_t(nearest_int(iscale * mins[j]) << 4);
      store_f16(p + 82, max_min / q4scale);
    } else {
      store_f16(p + 82, 0.0f);
    }
    const float d_all = f16_at(p + 80), dmin_all = f16_at(p + 82);
    for (int j = 0; j < 16; ++j) {
      const float d = d_all * float(y_scales[j] & 0xf);
      if (d == 0.0f) continue;
      const float dm = dmin_all * float(y_scales[j] >> 4);
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int((x[16 * j + ii] + dm) / d);
        L[16 * j + ii] = uint8_t(std::max(0, std::min(3, l)));
      }
    }
    pack_2bit(L, p + 16);
  }
}

// As quantize_row_q3_K_ref.
void quantize_q3_k(const float* x, uint8_t* p, size_t blocks) {
  int8_t L[kQK];
  float scales[16];
  for (size_t b = 0; b < blocks; ++b, x += kQK, p += 110) {
    uint8_t* hmask = p;
    uint8_t* y_scales = p + 96;
    float max_scale = 0, amax = 0;
    for (int j = 0; j < 16; ++j) {
      scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
      const float scale = std::fabs(scales[j]);
      if (scale > amax) {
        amax = scale;
        max_scale = scales[j];
      }
    }
    std::memset(y_scales, 0, 12);
    if (max_scale != 0.0f) {
      const float iscale = -32.0f / max_scale;
      for (int j = 0; j < 16; ++j) {
        int8_t l = int8_t(nearest_int(iscale * scales[j]));
        l = int8_t(std::max(-32, std::min(31, int(l))) + 32);
        if (j < 8)
          y_scales[j] = uint8_t(l & 0xf);
        else
          y_scales[j - 8] |= uint8_t((l & 0xf) << 4);
        l = int8_t(l >> 4);
        y_scales[j % 4 + 8] |= uint8_t(l << (2 * (j / 4)));
      }
      store_f16(p + 108, 1 / iscale);
    } else {
      store_f16(p + 108, 0.0f);
    }
    const float d_all = f16_at(p + 108);
    for (int j = 0; j < 16; ++j) {
      const float d = d_all * float(q3_k_scale(y_scales, j));
      if (d == 0.0f) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int(x[16 * j + ii] / d);
        L[16 * j + ii] = int8_t(std::max(-4, std::min(3, l)) + 4);
      }
    }
    std::memset(hmask, 0, 32);
    for (int j = 0; j < kQK; ++j) {
      if (L[j] > 3) {
        hmask[j % 32] |= uint8_t(1u << (j / 32));
        L[j] = int8_t(L[j] - 4);
      }
    }
    pack_2bit(reinterpret_cast<const uint8_t*>(L), p + 32);
  }
}

// Q4_K / Q5_K share everything up to the packing (quantize_row_q4_K_ref, quantize_row_q5_K_ref):
// per 32-value sub-block an affine fit weighted by rms + |x|, then the scales and mins quantized
// to 6 bits against the largest of each, then every level recomputed from the stored scales.
// Writes d, dmin and the 12 scale bytes at p and the levels (0..nmax) to L.
void quantize_k_affine(const float* x, uint8_t* p, uint8_t* L, int nmax, float rmin, int nstep) {
  uint8_t Laux[32];
  float weights[32], mins[8], scales[8];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin,
                                 0.1f, nstep, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  uint8_t* y_scales = p + 4;
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  for (int j = 0; j < 8; ++j) {
    const uint8_t ls = std::min<uint8_t>(63, uint8_t(nearest_int(inv_scale * scales[j])));
    const uint8_t lm = std::min<uint8_t>(63, uint8_t(nearest_int(inv_min * mins[j])));
    if (j < 4) {
      y_scales[j] = ls;
      y_scales[j + 4] = lm;
    } else {
      y_scales[j + 4] = uint8_t((ls & 0xf) | ((lm & 0xf) << 4));
      y_scales[j - 4] |= uint8_t((ls >> 4) << 6);
      y_scales[j] |= uint8_t((lm >> 4) << 6);
    }
  }
  store_f16(p, max_scale / 63.0f);
  store_f16(p + 2, max_min / 63.0f);
  const float d_all = f16_at(p), dmin_all = f16_at(p + 2);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    scale_min_k4(j, y_scales, &sc, &m);
    const float d = d_all * float(sc);
    if (d == 0.0f) continue;
    const float dm = dmin_all * float(m);
    for (int ii = 0; ii < 32; ++ii) {
      const int l = nearest_int((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = uint8_t(std::max(0, std::min(nmax, l)));
    }
  }
}

// As quantize_row_q4_K_ref.
void quantize_q4_k(const float* x, uint8_t* p, size_t blocks) {
  uint8_t L[kQK];
  for (size_t b = 0; b < blocks; ++b, x += kQK, p += 144) {
    quantize_k_affine(x, p, L, 15, -1.0f, 20);
    uint8_t* qs = p + 16;
    for (int j = 0; j < kQK; j += 64, qs += 32)
      for (int l = 0; l < 32; ++l) qs[l] = uint8_t(L[j + l] | (L[j + l + 32] << 4));
  }
}

// As quantize_row_q5_K_ref.
void quantize_q5_k(const float* x, uint8_t* p, size_t blocks) {
  uint8_t L[kQK];
  for (size_t b = 0; b < blocks; ++b, x += kQK, p += 176) {
    quantize_k_affine(x, p, L, 31, -0.5f, 15);
    uint8_t* qh = p + 16;
    uint8_t* qs = p + 48;
    std::memset(qh, 0, 32);
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < kQK; n += 64, qs += 32) {
      for (int j = 0; j < 32; ++j) {
        int l1 = L[n + j], l2 = L[n + j + 32];
        if (l1 > 15) {
          l1 -= 16;
          qh[j] |= m1;
        }
        if (l2 > 15) {
          l2 -= 16;
          qh[j] |= m2;
        }
        qs[j] = uint8_t(l1 | (l2 << 4));
      }
      m1 = uint8_t(m1 << 2);
      m2 = uint8_t(m2 << 2);
    }
  }
}

// As quantize_row_q6_K_ref.
void quantize_q6_k(const float* x, uint8_t* p, size_t blocks) {
  int8_t L[kQK];
  float scales[16];
  for (size_t b = 0; b < blocks; ++b, x += kQK, p += 210) {
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < 16; ++ib) {
      const float scale = make_qx_quants_rmse1(16, 32, x + 16 * ib, L + 16 * ib);
      scales[ib] = scale;
      const float abs_scale = std::fabs(scale);
      if (abs_scale > max_abs_scale) {
        max_abs_scale = abs_scale;
        max_scale = scale;
      }
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(p, 0, 210);
      continue;
    }
    auto* y_scales = reinterpret_cast<int8_t*>(p + 192);
    const float iscale = -128.0f / max_scale;
    store_f16(p + 208, 1 / iscale);
    for (int ib = 0; ib < 16; ++ib) y_scales[ib] = int8_t(std::min(127, nearest_int(iscale * scales[ib])));
    const float d_all = f16_at(p + 208);
    for (int j = 0; j < 16; ++j) {
      const float d = d_all * float(y_scales[j]);
      if (d == 0.0f) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int(x[16 * j + ii] / d);
        L[16 * j + ii] = int8_t(std::max(-32, std::min(31, l)) + 32);
      }
    }
    uint8_t* ql = p;
    uint8_t* qh = p + 128;
    for (int j = 0; j < kQK; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t q1 = L[j + l] & 0xf, q2 = L[j + l + 32] & 0xf;
        const uint8_t q3 = L[j + l + 64] & 0xf, q4 = L[j + l + 96] & 0xf;
        ql[l] = uint8_t(q1 | (q3 << 4));
        ql[l + 32] = uint8_t(q2 | (q4 << 4));
        qh[l] = uint8_t((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                        ((L[j + l + 96] >> 4) << 6));
      }
    }
  }
}

const QuantTraits kTraits[] = {
    {"Q4_0", 32, 18}, {"Q4_1", 32, 20}, {"Q5_0", 32, 22}, {"Q5_1", 32, 24},
    {"Q8_0", 32, 34}, {"Q2_K", 256, 84}, {"Q3_K", 256, 110}, {"Q4_K", 256, 144},
    {"Q5_K", 256, 176}, {"Q6_K", 256, 210}, {"IQ4_NL", 32, 18},
};

int trait_index(uint32_t type) {
  switch (type) {
    case 2: return 0;
    case 3: return 1;
    case 6: return 2;
    case 7: return 3;
    case 8: return 4;
    case 10: return 5;
    case 11: return 6;
    case 12: return 7;
    case 13: return 8;
    case 14: return 9;
    case 20: return 10;
    default: return -1;
  }
}

size_t whole_blocks(QuantType type, size_t n) {
  const QuantTraits& t = quant_traits(type);
  if (n % t.block_elems != 0)
    throw Error(std::string(t.name) + " rows hold a multiple of " + std::to_string(t.block_elems) +
                " values; this row has " + std::to_string(n));
  return n / t.block_elems;
}

}  // namespace

// Q4_K / Q5_K pack 8 six-bit scales and 8 six-bit mins into 12 bytes: sub-blocks 0..3 keep theirs
// in the low 6 bits of bytes 0..3 (scales) and 4..7 (mins); sub-blocks 4..7 keep their low 4 bits
// in the nibbles of bytes 8..11 and their top 2 bits in the top bits of bytes 0..7.
void scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = uint8_t((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
    *m = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

bool is_quant_type(uint32_t ggml_type) { return trait_index(ggml_type) >= 0; }

const QuantTraits& quant_traits(QuantType type) {
  const int i = trait_index(uint32_t(type));
  if (i < 0) throw Error("ggml type " + std::to_string(uint32_t(type)) + " is not a block format");
  return kTraits[i];
}

size_t quant_row_bytes(QuantType type, size_t n) {
  return whole_blocks(type, n) * quant_traits(type).block_bytes;
}

void dequantize_row(QuantType type, const void* blocks, float* out, size_t n) {
  const size_t count = whole_blocks(type, n);
  const auto* p = static_cast<const uint8_t*>(blocks);
  switch (type) {
    case QuantType::Q8_0: return dequantize_q8_0(p, out, count);
    case QuantType::Q4_0: return dequantize_q4(p, out, count, false);
    case QuantType::Q4_1: return dequantize_q4(p, out, count, true);
    case QuantType::Q5_0: return dequantize_q5(p, out, count, false);
    case QuantType::Q5_1: return dequantize_q5(p, out, count, true);
    case QuantType::Q2_K: return dequantize_q2_k(p, out, count);
    case QuantType::Q3_K: return dequantize_q3_k(p, out, count);
    case QuantType::Q4_K: return dequantize_q4_k(p, out, count);
    case QuantType::Q5_K: return dequantize_q5_k(p, out, count);
    case QuantType::Q6_K: return dequantize_q6_k(p, out, count);
    case QuantType::IQ4_NL: return dequantize_iq4_nl(p, out, count);
  }
  throw Error("ggml type " + std::to_string(uint32_t(type)) + " is not a block format");
}

bool can_quantize(QuantType type) { return is_quant_type(uint32_t(type)) && type != QuantType::IQ4_NL; }

void quantize_row(QuantType type, const float* in, void* blocks, size_t n) {
  const size_t count = whole_blocks(type, n);
  auto* p = static_cast<uint8_t*>(blocks);
  switch (type) {
    case QuantType::Q8_0: return quantize_q8_0(in, p, count);
    case QuantType::Q4_0: return quantize_q4_0(in, p, count);
    case QuantType::Q4_1: return quantize_q4_1(in, p, count);
    case QuantType::Q5_0: return quantize_q5(in, p, count, false);
    case QuantType::Q5_1: return quantize_q5(in, p, count, true);
    case QuantType::Q2_K: return quantize_q2_k(in, p, count);
    case QuantType::Q3_K: return quantize_q3_k(in, p, count);
    case QuantType::Q4_K: return quantize_q4_k(in, p, count);
    case QuantType::Q5_K: return quantize_q5_k(in, p, count);
    case QuantType::Q6_K: return quantize_q6_k(in, p, count);
    default:
      throw Error(std::string("quantizing to ") + quant_traits(type).name + " is not supported");
  }
}

}  // namespace vkssm

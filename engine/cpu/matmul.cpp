// The cpu backend's matrix products (matmul.h) in Google Highway. Dynamic dispatch (foreach_target +
// HWY_DYNAMIC_DISPATCH) rather than one static target: Debian builds for the baseline ISA (SSE2
// on x86-64), so a static target would leave AVX2/AVX-512 unused unless vkssm were built with
// -march flags, and then the binary would not run on older CPUs. Each kernel is compiled for
// every target in hwy_targets.h's set and the best one the CPU has is picked on the first call.
#include "engine/cpu/matmul.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "engine/cpu/simd_target.h"
#include "host/dtype.h"

#include "engine/cpu/hwy_targets.h"
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "engine/cpu/matmul.cpp"
#include <hwy/foreach_target.h>  // re-includes this file once per target
#include <hwy/highway.h>

#ifndef VKSSM_MATMUL_I8_LAYOUT
#define VKSSM_MATMUL_I8_LAYOUT
namespace vkssm {
// I8Blocks layout (matmul.h): a block of `block_cols` columns of a panel `width` rows wide is
// `width` fp32 scales, with `offsets` then `width` fp32 offsets, and then block_cols * width int8
// values, rounded up to whole floats. Blocks are `block` (32 or 16) columns; a row's last one may
// be shorter. block 0: not I8Blocks.
struct I8Layout {
  size_t block = 0;
  bool offsets = false;
  size_t block_floats(size_t width, size_t block_cols) const {
    return values_at(width) + (block_cols * width + 3) / 4;
  }
  size_t values_at(size_t width) const { return width * (offsets ? 2 : 1); }  // floats before the int8s
  size_t panel_floats(size_t width, size_t cols) const {
    return cols / block * block_floats(width, block) + (cols % block ? block_floats(width, cols % block) : 0);
  }
};
}  // namespace vkssm
#endif

HWY_BEFORE_NAMESPACE();
namespace vkssm {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using V = hn::Vec<DF>;

// The register tile: kVecs vectors of a panel's rows x kStreams rows of X, that many
// accumulators plus the kVecs weight vectors and one broadcast X value live at once. AVX2 and
// SSE4 have 16 vector registers (3 x 4 + 3 + 1 fits), AVX-512 and NEON 32 (4 x 4).
#if HWY_ARCH_X86 && HWY_TARGET > HWY_AVX3
constexpr size_t kVecs = 3;
#else
constexpr size_t kVecs = 4;
#endif
constexpr size_t kStreams = 4;
// The widest panel of any target, for the stack tile a kernel stores its accumulators to.
constexpr size_t kMaxPanel = kVecs * (HWY_MAX_BYTES / sizeof(float));

size_t Lanes() { return hn::Lanes(DF()); }
size_t PanelRows() { return kVecs * Lanes(); }

HWY_INLINE V LoadW(DF df, const float* p) { return hn::LoadU(df, p); }
HWY_INLINE V LoadW(DF df, const uint16_t* p) {
  const hn::Rebind<hwy::float16_t, DF> dh;
  return hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(p)));
}

// out[s][j] = sum over c of panel[c][j] * X[s][c], for the panel's R vectors of rows j and S
// rows of X; the panel is `width` values per column. Each sum runs over c in order.
template <size_t R, size_t S, class WT>
HWY_INLINE void PanelTile(const WT* panel, size_t width, size_t cols, const float* x, size_t x_stride,
                          float* out) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  V acc[R][S];
  for (size_t r = 0; r < R; ++r)
    for (size_t s = 0; s < S; ++s) acc[r][s] = hn::Zero(df);
  for (size_t c = 0; c < cols; ++c) {
    const WT* column = panel + c * width;
    V wv[R];
    for (size_t r = 0; r < R; ++r) wv[r] = LoadW(df, column + r * lanes);
    for (size_t s = 0; s < S; ++s) {
      const V xv = hn::Set(df, x[s * x_stride + c]);
      for (size_t r = 0; r < R; ++r) acc[r][s] = hn::MulAdd(wv[r], xv, acc[r][s]);
    }
  }
  for (size_t s = 0; s < S; ++s)
    for (size_t r = 0; r < R; ++r) hn::StoreU(acc[r][s], df, out + s * kMaxPanel + r * lanes);
}

// The same for an I8Blocks panel (I8Layout). Each weight is widened to q * scale (- offset), the
// exact fp32 value the F32 storage would hold (q * scale is exact, so fused or not the result is
// one rounding of the same value), and summed in the same order: the results are the same bits.
template <size_t R, size_t S>
HWY_INLINE void PanelTileI8(const float* panel, size_t width, size_t cols, const I8Layout& layout, const float* x,
                            size_t x_stride, float* out) {
  const DF df;
  const hn::Rebind<int32_t, DF> di;
  const hn::Rebind<int8_t, DF> d8;
  const size_t lanes = hn::Lanes(df);
  V acc[R][S];
  for (size_t r = 0; r < R; ++r)
    for (size_t s = 0; s < S; ++s) acc[r][s] = hn::Zero(df);
  const size_t block_size = layout.block;
  for (size_t c0 = 0; c0 < cols; c0 += block_size) {
    const float* block = panel + (c0 / block_size) * layout.block_floats(width, block_size);
    const float* offsets = block + width;
    const int8_t* q = reinterpret_cast<const int8_t*>(block + layout.values_at(width));
    V scale[R], offset[R];
    for (size_t r = 0; r < R; ++r) {
      scale[r] = hn::LoadU(df, block + r * lanes);
      offset[r] = layout.offsets ? hn::LoadU(df, offsets + r * lanes) : hn::Zero(df);
    }
    const size_t block_cols = std::min(block_size, cols - c0);
    for (size_t c = 0; c < block_cols; ++c) {
      V wv[R];
      for (size_t r = 0; r < R; ++r) {
        const V qv = hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, q + c * width + r * lanes)));
        wv[r] = layout.offsets ? hn::MulSub(qv, scale[r], offset[r]) : hn::Mul(qv, scale[r]);
      }
      for (size_t s = 0; s < S; ++s) {
        const V xv = hn::Set(df, x[s * x_stride + c0 + c]);
        for (size_t r = 0; r < R; ++r) acc[r][s] = hn::MulAdd(wv[r], xv, acc[r][s]);
      }
    }
  }
  for (size_t s = 0; s < S; ++s)
    for (size_t r = 0; r < R; ++r) hn::StoreU(acc[r][s], df, out + s * kMaxPanel + r * lanes);
}

// Y rows [row0 + j0, row0 + j1) of X rows [i, i + S) from a stored tile (bias, accumulate).
HWY_INLINE void Finish(const float* out, size_t S, size_t i, size_t row0, size_t j0, size_t j1, const MatmulIo& io) {
  for (size_t s = 0; s < S; ++s) {
    float* y = io.y + (i + s) * io.y_stride + row0;
    for (size_t j = j0; j < j1; ++j) {
      float sum = out[s * kMaxPanel + j];
      if (io.bias) sum += io.bias[row0 + j];
      y[j] = io.accumulate ? y[j] + sum : sum;
    }
  }
}

// The tile of R vectors x S rows of X for a panel of storage WT (float, or uint16_t = fp16);
// i8.block != 0: float panels in that I8Blocks layout.
template <size_t R, size_t S, class WT>
HWY_INLINE void AnyTile(const WT* panel, size_t width, size_t cols, const float* x, size_t x_stride, float* out,
                        const I8Layout& i8) {
  if constexpr (std::is_same_v<WT, float>) {
    if (i8.block) return PanelTileI8<R, S>(panel, width, cols, i8, x, x_stride, out);
  }
  PanelTile<R, S>(panel, width, cols, x, x_stride, out);
}

// One panel (R vectors of rows, starting at row row0) against every row of X; writes the panel's
// rows [j0, j1). The first group of X rows reads the panel from memory, the others from cache.
template <size_t R, class WT>
void Panel(const WT* panel, size_t cols, size_t row0, size_t j0, size_t j1, const MatmulIo& io, const I8Layout& i8) {
  HWY_ALIGN float out[kStreams * kMaxPanel];
  const size_t width = R * Lanes();
  size_t i = 0;
  for (; i + kStreams <= io.n; i += kStreams) {
    AnyTile<R, kStreams>(panel, width, cols, io.x + i * io.x_stride, io.x_stride, out, i8);
    Finish(out, kStreams, i, row0, j0, j1, io);
  }
  const float* x = io.x + i * io.x_stride;
  switch (io.n - i) {
    case 0: return;
    case 1: AnyTile<R, 1>(panel, width, cols, x, io.x_stride, out, i8); break;
    case 2: AnyTile<R, 2>(panel, width, cols, x, io.x_stride, out, i8); break;
    default: AnyTile<R, 3>(panel, width, cols, x, io.x_stride, out, i8); break;
  }
  Finish(out, io.n - i, i, row0, j0, j1, io);
}

template <class WT>
void PanelOfWidth(const WT* panel, size_t vecs, size_t cols, size_t row0, size_t j0, size_t j1, const MatmulIo& io,
                  const I8Layout& i8) {
  static_assert(kStreams == 4 && kVecs <= 4, "the switches below cover these sizes");
  switch (vecs) {
    case 1: return Panel<1>(panel, cols, row0, j0, j1, io, i8);
    case 2: return Panel<2>(panel, cols, row0, j0, j1, io, i8);
    case 3: return Panel<3>(panel, cols, row0, j0, j1, io, i8);
    default:
      if constexpr (kVecs >= 4) return Panel<kVecs>(panel, cols, row0, j0, j1, io, i8);
  }
}

// Rows [r0, r1) of the packed matrix `w` (rows x cols); i8: I8Blocks panels' layout.
template <class WT>
void RowsOf(const WT* w, size_t rows, size_t cols, size_t r0, size_t r1, const MatmulIo& io, const I8Layout& i8) {
  const size_t lanes = Lanes(), P = PanelRows(), full = rows / P;
  const size_t panel_size = i8.block ? i8.panel_floats(P, cols) : P * cols;
  for (size_t base = r0 / P * P; base < r1; base += P) {
    const size_t in_panel = std::min(P, rows - base);
    const size_t vecs = base / P < full ? kVecs : (in_panel + lanes - 1) / lanes;
    const size_t j0 = std::max(r0, base) - base, j1 = std::min(r1, base + in_panel) - base;
    PanelOfWidth(w + base / P * panel_size, vecs, cols, base, j0, j1, io, i8);
  }
}

void RowsF32(const float* w, size_t rows, size_t cols, size_t r0, size_t r1, const MatmulIo& io) {
  RowsOf(w, rows, cols, r0, r1, io, I8Layout{});
}
// fp16 weights are widened in registers for every group of X rows: measured faster at 16 streams
// than widening each panel once into a scratch copy (which does not stay in L1) and reading that.
void RowsF16(const uint16_t* w, size_t rows, size_t cols, size_t r0, size_t r1, const MatmulIo& io) {
  RowsOf(w, rows, cols, r0, r1, io, I8Layout{});
}
void RowsI8(const float* w, size_t rows, size_t cols, const I8Layout& layout, size_t r0, size_t r1,
            const MatmulIo& io) {
  RowsOf(w, rows, cols, r0, r1, io, layout);
}

}  // namespace HWY_NAMESPACE
}  // namespace vkssm
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace vkssm {

HWY_EXPORT(RowsF32);
HWY_EXPORT(RowsF16);
HWY_EXPORT(RowsI8);
HWY_EXPORT(Lanes);
HWY_EXPORT(PanelRows);


std::string cpu_backend_device_name(const ThreadPool& pool) {
  return "host CPU (cpu: " + std::to_string(pool.size()) + " threads, " + simd_target_name() + ")";
}

namespace {

// Where W[r][c] lives in the packed form (matmul.h): panel p = r / P starts at p*P*cols and holds
// `width` values per column (P, or the last panel's rows rounded up to a vector).
struct PanelLayout {
  size_t rows, cols, P, lanes;
  size_t width(size_t r) const {
    const size_t base = r / P * P;
    return base + P <= rows ? P : (rows - base + lanes - 1) / lanes * lanes;
  }
  size_t size() const { return rows == 0 ? 0 : (rows - 1) / P * P * cols + width(rows - 1) * cols; }
  size_t index(size_t r, size_t c) const { return r / P * P * cols + c * width(r) + r % P; }
};

PanelLayout layout_of(size_t rows, size_t cols) {
  choose_simd_target();
  return {rows, cols, HWY_DYNAMIC_DISPATCH(PanelRows)(), HWY_DYNAMIC_DISPATCH(Lanes)()};
}

// The scale and int8 values of n <= 32 values that are exactly scale * q with |q| <= 127, or
// false. Values dequantized from ggml blocks are: the largest of a Q8_0 block is 127 times its
// scale, of a Q4_0 block 8 times or less, of Q5_0 16, of a Q6_K sub-block of 16 values 32, of Q3_K
// 4 (the product rounded to fp32 as the kernel rounds it). So 127 is tried, then every top from
// 32 down, and each candidate is checked value by value: a block is only ever stored exactly.
bool int8_block(const float* v, size_t n, float& scale, int8_t* q) {
  float amax = 0.0f;
  for (size_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(v[i]));
  if (!(amax <= std::numeric_limits<float>::max())) return false;  // inf or NaN
  if (amax == 0.0f) {
    scale = 0.0f;
    std::fill(q, q + n, int8_t(0));
    return true;
  }
  for (int t = 33; t >= 1; --t) {
    const float s = amax / (t == 33 ? 127.0f : float(t));
    size_t i = 0;
    for (; i < n; ++i) {
      const float k = std::nearbyint(v[i] / s);
      if (std::fabs(k) > 127.0f || k * s != v[i]) break;
      q[i] = int8_t(k);
    }
    if (i == n) {
      scale = s;
      return true;
    }
  }
  return false;
}

// The scale, offset and int8 values of n <= 32 values that are exactly q * scale - offset with q
// in [0, 127] and q * scale exact (so a fused multiply-subtract rounds to the same value), or
// false. Q4_K, Q5_K (32 values) and Q2_K (16) dequantize as d * sc * q - dmin * m with q from 0 to
// 15, 31 or 3: the smallest value is taken as q = 0, and the scale is found from the largest for
// each top q, 15, 31 and 3 first; each candidate is checked value by value.
bool affine_int8_block(const float* v, size_t n, float& scale, float& offset, int8_t* q) {
  float lo = v[0], hi = v[0];
  for (size_t i = 1; i < n; ++i) lo = std::min(lo, v[i]), hi = std::max(hi, v[i]);
  if (!(std::fabs(lo) <= std::numeric_limits<float>::max() && std::fabs(hi) <= std::numeric_limits<float>::max()))
    return false;  // inf or NaN
  offset = -lo;
  if (lo == hi) {
    scale = 0.0f;
    std::fill(q, q + n, int8_t(0));
    return true;
  }
  auto fits = [&](float s) {
    for (size_t i = 0; i < n; ++i) {
      const float k = std::nearbyint(float((double(v[i]) + offset) / s));
      if (!(k >= 0.0f && k <= 127.0f) || std::fma(k, s, -(k * s)) != 0.0f || std::fma(k, s, -offset) != v[i])
        return false;
      q[i] = int8_t(k);
    }
    return true;
  };
  for (int t = 0; t < 31 + 3; ++t) {
    const int top = t < 3 ? (t == 0 ? 15 : t == 1 ? 31 : 3) : 34 - t;  // 15, 31, 3, then 31 ... 1
    const float s = float((double(hi) - double(lo)) / top);
    for (float candidate : {s, std::nextafter(s, 0.0f), std::nextafter(s, 2.0f * s)}) {
      if (fits(candidate)) {
        scale = candidate;
        return true;
      }
    }
  }
  return false;
}

// `m` packed as I8Blocks panels (matmul.h) in `layout`, or empty where some block is not exact.
std::vector<float> pack_i8_blocks(const std::vector<float>& m, size_t rows, size_t cols, const PanelLayout& at,
                                  const I8Layout& layout) {
  std::vector<float> packed;
  const size_t block_size = layout.block;
  for (size_t base = 0; base < rows; base += at.P) {
    const size_t width = at.width(base), in_panel = std::min(at.P, rows - base);
    const size_t start = packed.size();
    packed.resize(start + layout.panel_floats(width, cols), 0.0f);
    for (size_t c0 = 0; c0 < cols; c0 += block_size) {
      float* block = packed.data() + start + c0 / block_size * layout.block_floats(width, block_size);
      float* offsets = block + width;
      int8_t* values = reinterpret_cast<int8_t*>(block + layout.values_at(width));
      const size_t n = std::min(block_size, cols - c0);
      int8_t q[32];
      for (size_t j = 0; j < in_panel; ++j) {
        const float* v = m.data() + (base + j) * cols + c0;
        if (!(layout.offsets ? affine_int8_block(v, n, block[j], offsets[j], q) : int8_block(v, n, block[j], q)))
          return {};
        for (size_t c = 0; c < n; ++c) values[c * width + j] = q[c];
      }
    }
  }
  return packed;
}

}  // namespace

CpuMatrix::CpuMatrix(const std::vector<float>& m, size_t rows, size_t cols, CpuMatrixStorage storage)
    : rows_(rows), cols_(cols), storage_(storage) {
  const PanelLayout at = layout_of(rows, cols);
  panel_ = at.P;
  if (storage_ == CpuMatrixStorage::I8Blocks) {
    // Blocks of 32 columns (Q8_0, Q4_0, Q5_0), else of 16 (Q6_K, Q3_K); then with offsets, of 32
    // (Q4_K, Q5_K), else of 16 (Q2_K).
    for (const I8Layout layout : {I8Layout{32, false}, I8Layout{16, false}, I8Layout{32, true}, I8Layout{16, true}}) {
      full_ = pack_i8_blocks(m, rows, cols, at, layout);
      i8_block_ = layout.block, i8_offsets_ = layout.offsets;
      if (!full_.empty() || rows * cols == 0) return;
    }
    storage_ = CpuMatrixStorage::F32;  // not exact as int8 blocks
    i8_block_ = 0, i8_offsets_ = false;
  }
  auto pack = [&](auto& packed, auto convert) {
    packed.assign(at.size(), convert(0.0f));
    for (size_t r = 0; r < rows; ++r)
      for (size_t c = 0; c < cols; ++c) packed[at.index(r, c)] = convert(m[r * cols + c]);
  };
  if (f16()) pack(half_, float_to_half);
  else pack(full_, [](float v) { return v; });
}

void CpuMatrix::copy_row(size_t r, float* out) const {
  const PanelLayout at = layout_of(rows_, cols_);
  if (storage_ == CpuMatrixStorage::I8Blocks) {
    const I8Layout layout{i8_block_, i8_offsets_};
    const size_t width = at.width(r), j = r % at.P;
    const float* panel = full_.data() + r / at.P * layout.panel_floats(at.P, cols_);
    const size_t block_floats = layout.block_floats(width, i8_block_);
    for (size_t c = 0; c < cols_; ++c) {
      const float* block = panel + c / i8_block_ * block_floats;
      const float offset = i8_offsets_ ? block[width + j] : 0.0f;
      const int8_t* values = reinterpret_cast<const int8_t*>(block + layout.values_at(width));
      out[c] = std::fma(float(values[c % i8_block_ * width + j]), block[j], -offset);
    }
    return;
  }
  for (size_t c = 0; c < cols_; ++c) {
    const size_t i = at.index(r, c);
    out[c] = f16() ? half_to_float(half_[i]) : full_[i];
  }
}

size_t Matmul::row_align() {
  choose_simd_target();
  return HWY_DYNAMIC_DISPATCH(PanelRows)();
}

void Matmul::rows(const CpuMatrix& w, size_t r0, size_t r1, const MatmulIo& io) const {
  if (w.f16()) {
    HWY_DYNAMIC_DISPATCH(RowsF16)(w.f16_data(), w.rows(), w.cols(), r0, r1, io);
  } else if (w.storage() == CpuMatrixStorage::I8Blocks) {
    HWY_DYNAMIC_DISPATCH(RowsI8)(w.f32_data(), w.rows(), w.cols(), I8Layout{w.i8_block(), w.i8_offsets()}, r0, r1, io);
  } else {
    HWY_DYNAMIC_DISPATCH(RowsF32)(w.f32_data(), w.rows(), w.cols(), r0, r1, io);
  }
}

void Matmul::operator()(const CpuMatrix& w, const MatmulIo& io) const {
  pool_.parallel_for(w.rows(), ThreadPool::grain_for(w.cols() * io.n, w.panel_rows()),
                     [&](size_t r0, size_t r1, int) { rows(w, r0, r1, io); });
}

}  // namespace vkssm
#endif  // HWY_ONCE

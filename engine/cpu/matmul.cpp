// The cpu backend's matrix products (matmul.h) in Google Highway. Dynamic dispatch (foreach_target +
// HWY_DYNAMIC_DISPATCH) rather than one static target: Debian builds for the baseline ISA (SSE2
// on x86-64), so a static target would leave AVX2/AVX-512 unused unless vkssm were built with
// -march flags, and then the binary would not run on older CPUs. Each kernel is compiled for
// every target in hwy_targets.h's set and the best one the CPU has is picked on the first call.
#include "engine/cpu/matmul.h"

#include <algorithm>
#include <cmath>

#include "engine/cpu/simd_target.h"
#include "host/dtype.h"

#include "engine/cpu/hwy_targets.h"
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "engine/cpu/matmul.cpp"
#include <hwy/foreach_target.h>  // re-includes this file once per target
#include <hwy/highway.h>

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

// One panel (R vectors of rows, starting at row row0) against every row of X; writes the panel's
// rows [j0, j1). The first group of X rows reads the panel from memory, the others from cache.
template <size_t R, class WT>
void Panel(const WT* panel, size_t cols, size_t row0, size_t j0, size_t j1, const MatmulIo& io) {
  HWY_ALIGN float out[kStreams * kMaxPanel];
  const size_t width = R * Lanes();
  size_t i = 0;
  for (; i + kStreams <= io.n; i += kStreams) {
    PanelTile<R, kStreams>(panel, width, cols, io.x + i * io.x_stride, io.x_stride, out);
    Finish(out, kStreams, i, row0, j0, j1, io);
  }
  const float* x = io.x + i * io.x_stride;
  switch (io.n - i) {
    case 0: return;
    case 1: PanelTile<R, 1>(panel, width, cols, x, io.x_stride, out); break;
    case 2: PanelTile<R, 2>(panel, width, cols, x, io.x_stride, out); break;
    default: PanelTile<R, 3>(panel, width, cols, x, io.x_stride, out); break;
  }
  Finish(out, io.n - i, i, row0, j0, j1, io);
}

template <class WT>
void PanelOfWidth(const WT* panel, size_t vecs, size_t cols, size_t row0, size_t j0, size_t j1, const MatmulIo& io) {
  static_assert(kStreams == 4 && kVecs <= 4, "the switches below cover these sizes");
  switch (vecs) {
    case 1: return Panel<1>(panel, cols, row0, j0, j1, io);
    case 2: return Panel<2>(panel, cols, row0, j0, j1, io);
    case 3: return Panel<3>(panel, cols, row0, j0, j1, io);
    default:
      if constexpr (kVecs >= 4) return Panel<kVecs>(panel, cols, row0, j0, j1, io);
  }
}

// Rows [r0, r1) of the packed matrix `w` (rows x cols).
template <class WT>
void RowsOf(const WT* w, size_t rows, size_t cols, size_t r0, size_t r1, const MatmulIo& io) {
  const size_t lanes = Lanes(), P = PanelRows(), full = rows / P;
  for (size_t base = r0 / P * P; base < r1; base += P) {
    const size_t in_panel = std::min(P, rows - base);
    const size_t vecs = base / P < full ? kVecs : (in_panel + lanes - 1) / lanes;
    const size_t j0 = std::max(r0, base) - base, j1 = std::min(r1, base + in_panel) - base;
    PanelOfWidth(w + base * cols, vecs, cols, base, j0, j1, io);
  }
}

// fp16 weights are widened in registers for every group of X rows: measured faster at 16 streams
// than widening each panel once into a scratch copy (which does not stay in L1) and reading that.
void RowsF32(const float* w, size_t rows, size_t cols, size_t r0, size_t r1, const MatmulIo& io) {
  RowsOf(w, rows, cols, r0, r1, io);
}
void RowsF16(const uint16_t* w, size_t rows, size_t cols, size_t r0, size_t r1, const MatmulIo& io) {
  RowsOf(w, rows, cols, r0, r1, io);
}

}  // namespace HWY_NAMESPACE
}  // namespace vkssm
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace vkssm {

HWY_EXPORT(RowsF32);
HWY_EXPORT(RowsF16);
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

}  // namespace

CpuMatrix::CpuMatrix(const std::vector<float>& m, size_t rows, size_t cols, bool f16)
    : rows_(rows), cols_(cols) {
  const PanelLayout at = layout_of(rows, cols);
  panel_ = at.P;
  auto pack = [&](auto& packed, auto convert) {
    packed.assign(at.size(), convert(0.0f));
    for (size_t r = 0; r < rows; ++r)
      for (size_t c = 0; c < cols; ++c) packed[at.index(r, c)] = convert(m[r * cols + c]);
  };
  if (f16) pack(half_, float_to_half);
  else pack(full_, [](float v) { return v; });
}

void CpuMatrix::copy_row(size_t r, float* out) const {
  const PanelLayout at = layout_of(rows_, cols_);
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
  } else {
    HWY_DYNAMIC_DISPATCH(RowsF32)(w.f32_data(), w.rows(), w.cols(), r0, r1, io);
  }
}

void Matmul::operator()(const CpuMatrix& w, const MatmulIo& io) const {
  pool_.parallel_for(w.rows(), ThreadPool::grain_for(w.cols() * io.n, row_align()),
                     [&](size_t r0, size_t r1, int) { rows(w, r0, r1, io); });
}

}  // namespace vkssm
#endif  // HWY_ONCE

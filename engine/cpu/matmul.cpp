// The cpu backend's matrix products (matmul.h) in Google Highway. Dynamic dispatch (foreach_target +
// HWY_DYNAMIC_DISPATCH) rather than one static target: Debian builds for the baseline ISA (SSE2
// on x86-64), so a static target would leave AVX2/AVX-512 unused unless vkssm were built with
// -march flags, and then the binary would not run on older CPUs. Each kernel is compiled for
// every target in hwy_targets.h's set and the best one the CPU has is picked on the first call.
#include "engine/cpu/matmul.h"

#include <algorithm>
#include <cmath>

#include "host/dtype.h"

#include "engine/cpu/hwy_targets.h"
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "engine/cpu/matmul.cpp"
#include <hwy/foreach_target.h>  // re-includes this file once per target
#include <hwy/cache_control.h>
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace vkssm {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using V = hn::Vec<DF>;

// Register tiles. With several rows of X: kRows weight rows x kStreams rows of X, that many
// accumulators plus the weight vectors and one X vector live at once; AVX2 and SSE4 have 16
// vector registers (3x4 fits; measured faster than 4x2 at 16 streams), AVX-512 and NEON 32 (4x4
// fits). With one row of X the product is bound by reading W: kSoloRows rows stream at once.
#if HWY_ARCH_X86 && HWY_TARGET > HWY_AVX3
constexpr size_t kRows = 3;
#else
constexpr size_t kRows = 4;
#endif
constexpr size_t kStreams = 4;
constexpr size_t kSoloRows = 8;
// Row blocks handed to threads are multiples of this, so tiles never straddle two threads.
constexpr size_t kRowAlign = 24;

HWY_INLINE V LoadW(DF df, const float* p) { return hn::LoadU(df, p); }
HWY_INLINE V LoadW(DF df, const uint16_t* p) {
  const hn::Rebind<hwy::float16_t, DF> dh;
  return hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(p)));
}
HWY_INLINE float ScalarW(const float* p) { return *p; }
HWY_INLINE float ScalarW(const uint16_t* p) { return half_to_float(*p); }

// Y[s][r] (+)= W[r]·X[s] (+ bias[r]) for r < R, s < S; W rows are `cols` apart. kPrefetch: also
// prefetch the next R rows of W, so that they arrive from memory while this block computes
// (the first tile of a block does it; the block's other tiles read W from L1).
template <size_t R, size_t S, bool kPrefetch, class WT>
HWY_INLINE void Tile(const WT* w, size_t cols, const float* x, size_t x_stride, float* y, size_t y_stride,
                     const float* bias, bool accumulate) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  V acc[R][S];
  for (size_t r = 0; r < R; ++r)
    for (size_t s = 0; s < S; ++s) acc[r][s] = hn::Zero(df);
  size_t c = 0;
  for (; c + lanes <= cols; c += lanes) {
    V wv[R];
    for (size_t r = 0; r < R; ++r) wv[r] = LoadW(df, w + r * cols + c);
    // Past the matrix's end on its last block: prefetches never fault. One per 64-byte line:
    // a second one to the same line only takes a load slot from the reads that set the pace.
    if constexpr (kPrefetch)
      if ((c * sizeof(WT)) % 64 == 0)
        for (size_t r = 0; r < R; ++r) hwy::Prefetch(w + (R + r) * cols + c);
    for (size_t s = 0; s < S; ++s) {
      const V xv = hn::LoadU(df, x + s * x_stride + c);
      for (size_t r = 0; r < R; ++r) acc[r][s] = hn::MulAdd(wv[r], xv, acc[r][s]);
    }
  }
  for (size_t r = 0; r < R; ++r) {
    for (size_t s = 0; s < S; ++s) {
      float sum = hn::GetLane(hn::SumOfLanes(df, acc[r][s]));
      // std::fma: C++ lets the compiler contract a*b+c or not per instantiation, which would make
      // a stream's result depend on the tile it lands in (its batch).
      for (size_t t = c; t < cols; ++t) sum = std::fma(ScalarW(w + r * cols + t), x[s * x_stride + t], sum);
      if (bias) sum += bias[r];
      float& out = y[s * y_stride + r];
      out = accumulate ? out + sum : sum;
    }
  }
}

// R rows of W (starting at row `row`) against every row of X.
template <size_t R, class WT>
HWY_INLINE void Block(const WT* w, size_t cols, size_t row, const MatmulIo& io) {
  const float* bias = io.bias ? io.bias + row : nullptr;
  float* y = io.y + row;
  size_t i = 0;
  for (; i + kStreams <= io.n; i += kStreams) {
    if (i == 0)
      Tile<R, kStreams, true>(w, cols, io.x, io.x_stride, y, io.y_stride, bias, io.accumulate);
    else
      Tile<R, kStreams, false>(w, cols, io.x + i * io.x_stride, io.x_stride, y + i * io.y_stride, io.y_stride,
                               bias, io.accumulate);
  }
  for (; i < io.n; ++i) {
    if (i == 0)
      Tile<R, 1, true>(w, cols, io.x, io.x_stride, y, io.y_stride, bias, io.accumulate);
    else
      Tile<R, 1, false>(w, cols, io.x + i * io.x_stride, io.x_stride, y + i * io.y_stride, io.y_stride, bias,
                        io.accumulate);
  }
}

template <size_t R>
void RowsF32With(const float* w, size_t cols, size_t r0, size_t r1, const MatmulIo& io) {
  size_t r = r0;
  for (; r + R <= r1; r += R) Block<R>(w + r * cols, cols, r, io);
  for (; r < r1; ++r) Block<1>(w + r * cols, cols, r, io);
}

void RowsF32(const float* w, size_t cols, size_t r0, size_t r1, const MatmulIo& io) {
  if (io.n < kStreams) RowsF32With<kSoloRows>(w, cols, r0, r1, io);
  else RowsF32With<kRows>(w, cols, r0, r1, io);
}

// Widens `count` fp16 values to fp32.
void Widen(const uint16_t* h, size_t count, float* out) {
  const DF df;
  const size_t lanes = hn::Lanes(df);
  size_t i = 0;
  for (; i + lanes <= count; i += lanes) hn::StoreU(LoadW(df, h + i), df, out + i);
  for (; i < count; ++i) out[i] = half_to_float(h[i]);
}

// fp16 weights: with fewer rows of X than one tile holds, the conversion happens in registers;
// with more, a block of rows is widened once into `tile` (kRows*cols floats, L1-sized) and reused
// for all of them.
void RowsF16(const uint16_t* w, size_t cols, size_t r0, size_t r1, const MatmulIo& io, float* tile) {
  size_t r = r0;
  if (io.n < kStreams) {
    for (; r + kSoloRows <= r1; r += kSoloRows) Block<kSoloRows>(w + r * cols, cols, r, io);
  } else {
    for (; r + kRows <= r1; r += kRows) {
      Widen(w + r * cols, kRows * cols, tile);
      Block<kRows>(static_cast<const float*>(tile), cols, r, io);
    }
  }
  for (; r < r1; ++r) Block<1>(w + r * cols, cols, r, io);
}

// Scratch rows per thread and the row alignment, as the dispatcher sees them.
size_t TileRows() { return std::max(kRows, kSoloRows); }
size_t RowAlign() { return kRowAlign; }
const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace vkssm
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace vkssm {

HWY_EXPORT(RowsF32);
HWY_EXPORT(RowsF16);
HWY_EXPORT(TileRows);
HWY_EXPORT(RowAlign);
HWY_EXPORT(TargetName);

const char* simd_target_name() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }


std::string cpu_backend_device_name(const ThreadPool& pool) {
  return "host CPU (cpu: " + std::to_string(pool.size()) + " threads, " + simd_target_name() + ")";
}

CpuMatrix::CpuMatrix(const std::vector<float>& m, size_t rows, size_t cols, bool f16) : rows_(rows), cols_(cols) {
  if (f16) {
    half_.resize(m.size());
    std::transform(m.begin(), m.end(), half_.begin(), float_to_half);
  } else {
    full_ = m;
  }
}

void CpuMatrix::copy_row(size_t r, float* out) const {
  if (f16()) {
    const uint16_t* h = half_.data() + r * cols_;
    std::transform(h, h + cols_, out, half_to_float);
  } else {
    std::copy_n(full_.data() + r * cols_, cols_, out);
  }
}

Matmul::Matmul(ThreadPool& pool, size_t max_cols)
    : pool_(pool), max_cols_(max_cols),
      tiles_(size_t(pool.size()) * HWY_DYNAMIC_DISPATCH(TileRows)() * max_cols) {}

void Matmul::rows(const CpuMatrix& w, size_t r0, size_t r1, const MatmulIo& io, int thread) const {
  if (w.f16()) {
    float* tile = tiles_.data() + size_t(thread) * (tiles_.size() / size_t(pool_.size()));
    HWY_DYNAMIC_DISPATCH(RowsF16)(w.f16_data(), w.cols(), r0, r1, io, tile);
  } else {
    HWY_DYNAMIC_DISPATCH(RowsF32)(w.f32_data(), w.cols(), r0, r1, io);
  }
}

void Matmul::operator()(const CpuMatrix& w, const MatmulIo& io) const {
  pool_.parallel_for(w.rows(), ThreadPool::grain_for(w.cols() * io.n, HWY_DYNAMIC_DISPATCH(RowAlign)()),
                     [&](size_t r0, size_t r1, int thread) { rows(w, r0, r1, io, thread); });
}

}  // namespace vkssm
#endif  // HWY_ONCE

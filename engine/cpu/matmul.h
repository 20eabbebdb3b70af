#pragma once
// The cpu backend's matrix products: Y[i][r] = sum_c X[i][c] * W[r][c] (+ bias[r]) for the
// n rows of X (the streams of a batched step, or the tokens of a prompt). Each thread takes a
// block of W's rows and computes them for every row of X, so a weight is read from memory once
// per call whatever n is.
//
// W is stored in panels (packed once at load): a panel holds a few vectors' worth of rows
// (24 with AVX2) column by column, so W[r][c] for the panel's rows is one contiguous run per c.
// The kernel then works like a GEMM micro-kernel: for each c it loads the panel's weights as
// whole vectors, broadcasts X[i][c] of a few rows of X, and multiply-adds into a register tile
// of accumulators (24 rows x 4 rows of X). Against row-major W with a dot product per row this
// needs no horizontal sums, reads W as one sequential stream, and issues fewer loads per
// multiply-add; each output is still a plain sum over c in order, so a stream's result does not
// depend on how many others share the step.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/cpu/simd_target.h"
#include "engine/cpu/thread_pool.h"

namespace vkssm {

// How a CpuMatrix holds its values (kernels always compute in fp32).
enum class CpuMatrixStorage {
  F32,
  F16,  // rounded to nearest even
  // Blocks of 32 (else 16) columns of a row as an fp32 scale times int8 values (else int8 values
  // times a scale less an offset): taken only where that is exact, as it is for values
  // dequantized from Q8_0, Q4_0, Q5_0 (32), Q6_K, Q3_K (16), Q4_K, Q5_K (32 with offsets) or
  // Q2_K (16 with offsets) blocks (`--weights q8_0`, or a GGUF file's), so the products equal the
  // F32 ones bit for bit with a quarter to a third of the bytes.
  I8Blocks,
};

// A weight matrix [rows][cols] in panels of panel_rows() rows: panel p holds rows
// [p*P, p*P + P) as P values per column, column after column, from element p*P*cols on (fp32,
// fp16). The last panel, when rows is not a multiple of P, is only as wide as its rows rounded up
// to a vector (zeros after them). I8Blocks panels hold, per block of i8_block() columns, the
// panel's `width` scales as fp32 (then, with i8_offsets(), its `width` offsets) and then the
// block's int8 values column by column, `width` per column.
class CpuMatrix {
 public:
  CpuMatrix() = default;
  // Copies `m` (rows*cols values) in `storage`; I8Blocks falls back to F32 where it is not exact.
  CpuMatrix(const std::vector<float>& m, size_t rows, size_t cols, CpuMatrixStorage storage);

  size_t rows() const { return rows_; }
  size_t cols() const { return cols_; }
  size_t panel_rows() const { return panel_; }
  CpuMatrixStorage storage() const { return storage_; }
  size_t i8_block() const { return i8_block_; }      // I8Blocks: columns per block (32 or 16)
  bool i8_offsets() const { return i8_offsets_; }    // I8Blocks: q * scale - offset, not q * scale
  bool f16() const { return storage_ == CpuMatrixStorage::F16; }
  // Bytes held (and read by a product), the last panel's padding included.
  uint64_t bytes() const { return f16() ? half_.size() * 2 : full_.size() * 4; }
  const float* f32_data() const { return full_.data(); }  // F32 values, or I8Blocks' blocks
  const uint16_t* f16_data() const { return half_.data(); }
  // bytes() less the same matrix as plain fp32 (negative for fp16; the panel padding adds).
  int64_t bytes_over_f32() const { return int64_t(bytes()) - int64_t(rows_ * cols_ * 4); }
  // Row r in fp32 (the embedding gather).
  void copy_row(size_t r, float* out) const;

 private:
  size_t rows_ = 0, cols_ = 0, panel_ = 0;
  CpuMatrixStorage storage_ = CpuMatrixStorage::F32;
  size_t i8_block_ = 0;
  bool i8_offsets_ = false;
  std::vector<float> full_;
  std::vector<uint16_t> half_;
};

// Makes a stepper's weight matrices, all in one storage, and counts the bytes they take, for
// CpuStepper::weight_bytes() and weight_type().
class CpuMatrixStore {
 public:
  // f16: every matrix as fp16; else as int8 blocks where that is exact, fp32 otherwise.
  explicit CpuMatrixStore(bool f16) : f16_(f16) {}
  CpuMatrix make(const std::vector<float>& m, size_t rows, size_t cols) {
    CpuMatrix made(m, rows, cols, f16_ ? CpuMatrixStorage::F16 : CpuMatrixStorage::I8Blocks);
    bytes_over_f32_ += made.bytes_over_f32();
    return made;
  }
  uint64_t weight_bytes(uint64_t f32_bytes) const { return uint64_t(int64_t(f32_bytes) + bytes_over_f32_); }
  std::string weight_type() const { return f16_ ? "f16" : ""; }

 private:
  bool f16_;
  int64_t bytes_over_f32_ = 0;  // the matrices made so far, less the same as fp32
};

// What a product writes: Y[i * y_stride + r] for i < n, r in the rows computed.
struct MatmulIo {
  const float* x = nullptr;  // X[i * x_stride + c], c < W.cols()
  size_t x_stride = 0;
  size_t n = 0;
  float* y = nullptr;
  size_t y_stride = 0;
  const float* bias = nullptr;  // [W.rows()] or null
  bool accumulate = false;      // Y += W·x instead of Y = W·x
};

// Runs products on a pool; no allocation per call (fp16 weights are widened in registers).
class Matmul {
 public:
  explicit Matmul(ThreadPool& pool) : pool_(pool) {}
  ThreadPool& pool() const { return pool_; }

  // The whole product, W's rows split across the pool's threads.
  void operator()(const CpuMatrix& w, const MatmulIo& io) const;
  // Rows [r0, r1) only, on the calling thread (inside a parallel_for of the same pool).
  // Any range is right; one that starts and ends on multiples of row_align() (or at the end)
  // computes no panel twice.
  void rows(const CpuMatrix& w, size_t r0, size_t r1, const MatmulIo& io) const;
  // The panel height of every CpuMatrix on this CPU.
  static size_t row_align();

 private:
  ThreadPool& pool_;
};

// What ModelInfo::device_name says for a fast stepper on `pool`: "host CPU (cpu: 2 threads, AVX2)".
std::string cpu_backend_device_name(const ThreadPool& pool);

}  // namespace vkssm

#pragma once
// The cpu backend's matrix products: Y[i][r] = sum_c X[i][c] * W[r][c] (+ bias[r]) for the
// n rows of X (the streams of a batched step, or the tokens of a prompt). Each thread takes a
// block of W's rows and computes them for every row of X, so a weight is read from memory once
// per call whatever n is; inside, register tiles of a few weight rows x a few rows of X reuse
// each loaded vector several times.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/cpu/thread_pool.h"

namespace vkssm {

// A weight matrix [rows][cols], row-major, held in fp32 or fp16 (kernels compute in fp32).
class CpuMatrix {
 public:
  CpuMatrix() = default;
  // Copies `m` (rows*cols values), converting to fp16 (round to nearest even) when `f16`.
  CpuMatrix(const std::vector<float>& m, size_t rows, size_t cols, bool f16);

  size_t rows() const { return rows_; }
  size_t cols() const { return cols_; }
  bool f16() const { return !half_.empty(); }
  uint64_t bytes() const { return f16() ? half_.size() * 2 : full_.size() * 4; }
  const float* f32_data() const { return full_.data(); }
  const uint16_t* f16_data() const { return half_.data(); }
  // Row r in fp32 (the embedding gather).
  void copy_row(size_t r, float* out) const;

 private:
  size_t rows_ = 0, cols_ = 0;
  std::vector<float> full_;
  std::vector<uint16_t> half_;
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

// Runs products on a pool. Holds each thread's scratch (an fp16 tile widened once to fp32 and
// reused for every row of X), sized at construction: no allocation per call.
class Matmul {
 public:
  Matmul(ThreadPool& pool, size_t max_cols);
  ThreadPool& pool() const { return pool_; }

  // The whole product, W's rows split across the pool's threads.
  void operator()(const CpuMatrix& w, const MatmulIo& io) const;
  // Rows [r0, r1) only, on the calling thread `thread` (inside a parallel_for of the same pool).
  void rows(const CpuMatrix& w, size_t r0, size_t r1, const MatmulIo& io, int thread) const;

 private:
  ThreadPool& pool_;
  size_t max_cols_;
  mutable std::vector<float> tiles_;  // [threads][kTileRows][max_cols]
};

// The instruction set the kernels run with on this CPU ("AVX2", "AVX3", "NEON", ...).
const char* simd_target_name();
// What ModelInfo::device_name says for a fast stepper on `pool`: "host CPU (cpu: 2 threads, AVX2)".
std::string cpu_backend_device_name(const ThreadPool& pool);

}  // namespace vkssm

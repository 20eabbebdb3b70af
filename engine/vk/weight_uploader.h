#pragma once
// Puts an architecture's weights on the device in the layouts the shaders read, counting the
// bytes one step reads (ModelInfo::weight_bytes) as it goes. Matrices can be stored as fp16
// (packed two per uint, see shaders/common.glsl) or in Q8_0 / Q4_0 / Q4_K / Q5_K / Q6_K blocks
// (host/quant_matrix.h has the layouts); small vectors always stay fp32. It records how each
// tensor is stored.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <volk.h>

#include "engine/vk/gpu_buffer.h"
#include "engine/vk/vk_handle.h"
#include "engine/vkssm.hpp"
#include "host/quant.h"
#include "host/quant_matrix.h"

namespace vkssm {

// How one matrix is stored: the uploader's fp32/fp16 type, or blocks.
enum class MatrixFormat { F32, F16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K };

// The block type of a format; nullopt for F32 and F16.
std::optional<QuantType> block_type_of(MatrixFormat f);
inline bool is_blocks(MatrixFormat f) { return block_type_of(f).has_value(); }
// "f32", "f16", "q8_0", ... as ModelInfo::tensors names storage types.
const char* matrix_format_name(MatrixFormat f);

class VulkanContext;

class WeightUploader {
 public:
  // `quant`: matrices go into the blocks row_block_type() picks for their row length; the others,
  // and everything flat(), stay in the fp32/fp16 type `f16` says.
  WeightUploader(VulkanContext& ctx, bool f16, std::optional<QuantType> quant = std::nullopt)
      : ctx_(ctx), f16_(f16), quant_(quant) {}
  WeightUploader(const WeightUploader&) = delete;
  WeightUploader& operator=(const WeightUploader&) = delete;

  bool f16() const { return f16_; }
  // Matrices in blocks are uploaded in row bands (host/quant_matrix.h), the layout matvec.comp's
  // texel variants read: set from Tuning::texel before the first matrix().
  void band_block_rows(bool on) { banded_ = on; }
  bool banded() const { return banded_; }
  std::optional<QuantType> quant() const { return quant_; }
  // Matrices found in `t` (by their values' data()) whose blocks have a device layout are uploaded
  // as those blocks, repacked, whatever the uploader's types. `t` must outlive the uploads.
  void keep_file_blocks(const FileBlockTable* t) { file_blocks_ = t; }
  // How matrix() stores a matrix with rows of `cols` values (file blocks aside), and the bytes of
  // one such row.
  MatrixFormat format_of(int64_t cols) const;
  uint64_t row_bytes(int64_t cols) const;
  // How matrix() stored the matrix `b` (the uploader's fp32/fp16 type for other buffers), and the
  // bytes of one of its rows of `cols` values.
  MatrixFormat format_of(const GpuBuffer& b) const;
  uint64_t row_bytes(const GpuBuffer& b, int64_t cols) const;
  // The requested block type (e.g. "q4_k") when any matrix went into it; else the first block
  // type a matrix went into (a K-quant's Q8_0 fallback, a GGUF file's own blocks); else "f16" or
  // "f32".
  std::string weight_type() const;
  const std::vector<TensorStorage>& tensors() const { return tensors_; }
  uint64_t bytes() const { return bytes_; }
  // Excludes `n` bytes from the per-step count (e.g. an embedding table a step reads one row of).
  void discount(uint64_t n) { bytes_ -= n; }

  // A matrix [rows, cols] (row-major) in format_of(cols): fp32/fp16 rows padded to a multiple of
  // 8 columns, or rows of blocks.
  GpuBuffer matrix(const std::vector<float>& m, int64_t rows, int64_t cols, const std::string& what);
  // A matrix [rows, cols] in the fp32/fp16 type whatever the block type, rows padded to a multiple
  // of 8 columns: matrix()'s layout for small matrices that are never quantized (Mamba-1's
  // dt_proj where the scan reads it through texels).
  GpuBuffer flat_matrix(const std::vector<float>& m, int64_t rows, int64_t cols, const std::string& what);
  // A flat array in the weight storage type.
  GpuBuffer flat(const std::vector<float>& v, const std::string& what);
  // A flat fp32 array, zero-padded to `padded` floats when that is larger.
  GpuBuffer floats(const std::vector<float>& v, const std::string& what, size_t padded = 0);
  // A zeroed device buffer (activations); not counted as weights.
  GpuBuffer zeros(uint64_t bytes, const std::string& what);
  // An RGBA texel view of `b` (fp16 texels for weights stored as fp16), owned by the uploader;
  // asking twice for the same buffer, format and range returns the same view. `offset` and
  // `bytes` (0: to the end) select a range; a view longer than maxTexelBufferElements throws.
  // `blocks`: a matrix in blocks, viewed as RGBA32UI texels (16 bytes of the layout each).
  VkBufferView view(const GpuBuffer& b, bool weights, uint64_t offset = 0, uint64_t bytes = 0, bool blocks = false);
  // A small zeroed buffer bound where a shader's optional input is unused (no bias, no norm).
  const GpuBuffer& placeholder();

 private:
  struct View {
    VkBuffer buffer;
    VkFormat format;
    uint64_t offset, bytes;
    DeviceHandle<VkBufferView> view;
  };
  GpuBuffer words(const std::vector<uint32_t>& w, const std::string& what, const char* type);
  // A matrix in the device layout of `type` blocks, banded when banded_.
  GpuBuffer blocks(QuantType type, const std::vector<uint32_t>& w, int64_t rows, int64_t cols, const std::string& what);
  // matrix()'s upload; `format` (format_of(cols) on entry) becomes the file blocks' when it takes them.
  GpuBuffer upload_matrix(const std::vector<float>& m, int64_t rows, int64_t cols, const std::string& what,
                          MatrixFormat& format);
  // A device buffer holding `bytes` of `data`: created and uploaded, and listed in the context's
  // shared weights; or, while the context replays them (a later shard), an alias of the next one.
  GpuBuffer device_weights(const void* data, uint64_t bytes, const std::string& what);
  void record(const std::string& what, const char* type, uint64_t bytes);

  VulkanContext& ctx_;
  bool f16_;
  bool banded_ = false;
  std::optional<QuantType> quant_;
  const FileBlockTable* file_blocks_ = nullptr;
  std::vector<std::pair<VkBuffer, MatrixFormat>> formats_;  // every matrix() buffer
  uint64_t bytes_ = 0;
  std::vector<TensorStorage> tensors_;
  GpuBuffer placeholder_;
  std::vector<View> views_;  // after placeholder_: destroyed before it
};

// Rounds n up to a multiple of 8 (matrix row padding, activation strides).
inline uint32_t pad8(int64_t n) { return uint32_t((n + 7) / 8 * 8); }

}  // namespace vkssm

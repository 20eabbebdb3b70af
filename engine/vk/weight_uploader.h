#pragma once
// Puts an architecture's weights on the device in the layouts the shaders read, counting the
// bytes one step reads (ModelInfo::weight_bytes) as it goes. Matrices can be stored as fp16
// (packed two per uint, see shaders/common.glsl); small vectors always stay fp32.
#include <cstdint>
#include <string>
#include <vector>

#include <volk.h>

#include "engine/vk/gpu_buffer.h"
#include "engine/vk/vk_handle.h"

namespace vkssm {

class VulkanContext;

class WeightUploader {
 public:
  WeightUploader(VulkanContext& ctx, bool f16) : ctx_(ctx), f16_(f16) {}
  WeightUploader(const WeightUploader&) = delete;
  WeightUploader& operator=(const WeightUploader&) = delete;

  bool f16() const { return f16_; }
  uint64_t bytes() const { return bytes_; }
  // Excludes `n` bytes from the per-step count (e.g. an embedding table a step reads one row of).
  void discount(uint64_t n) { bytes_ -= n; }

  // A matrix [rows, cols] (row-major) with each row padded to a multiple of 8 columns, in the
  // weight storage type (fp32 or fp16).
  GpuBuffer matrix(const std::vector<float>& m, int64_t rows, int64_t cols, const std::string& what);
  // A flat array in the weight storage type.
  GpuBuffer flat(const std::vector<float>& v, const std::string& what);
  // A flat fp32 array, zero-padded to `padded` floats when that is larger.
  GpuBuffer floats(const std::vector<float>& v, const std::string& what, size_t padded = 0);
  // A zeroed device buffer (activations); not counted as weights.
  GpuBuffer zeros(uint64_t bytes, const std::string& what);
  // An RGBA texel view of `b` (fp16 texels for weights stored as fp16), owned by the uploader;
  // asking twice for the same buffer, format and range returns the same view. `offset` and
  // `bytes` (0: to the end) select a range; a view longer than maxTexelBufferElements throws.
  VkBufferView view(const GpuBuffer& b, bool weights, uint64_t offset = 0, uint64_t bytes = 0);
  // A small zeroed buffer bound where a shader's optional input is unused (no bias, no norm).
  const GpuBuffer& placeholder();

 private:
  struct View {
    VkBuffer buffer;
    VkFormat format;
    uint64_t offset, bytes;
    DeviceHandle<VkBufferView> view;
  };
  VulkanContext& ctx_;
  bool f16_;
  uint64_t bytes_ = 0;
  GpuBuffer placeholder_;
  std::vector<View> views_;  // after placeholder_: destroyed before it
};

// Rounds n up to a multiple of 8 (matrix row padding, activation strides).
inline uint32_t pad8(int64_t n) { return uint32_t((n + 7) / 8 * 8); }

}  // namespace vkssm

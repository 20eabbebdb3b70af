#include "engine/vk/weight_uploader.h"

#include <algorithm>

#include "engine/vk/vk_check.h"
#include "engine/vk/vulkan_context.h"
#include "host/dtype.h"

namespace vkssm {

WeightUploader::~WeightUploader() {
  for (VkBufferView v : views_) vkDestroyBufferView(ctx_.device(), v, nullptr);
}

GpuBuffer WeightUploader::matrix(const std::vector<float>& m, int64_t rows, int64_t cols, const std::string& what) {
  const uint32_t stride = pad8(cols);
  std::vector<float> padded(size_t(rows) * stride, 0.0f);
  for (int64_t r = 0; r < rows; ++r) std::copy_n(m.data() + r * cols, cols, padded.data() + r * stride);
  return flat(padded, what);
}

GpuBuffer WeightUploader::flat(const std::vector<float>& v, const std::string& what) {
  if (!f16_) return floats(v, what);
  std::vector<uint16_t> h(v.size() + (v.size() & 1), 0);
  for (size_t i = 0; i < v.size(); ++i) h[i] = float_to_half(v[i]);
  GpuBuffer b(ctx_, h.size() * 2, GpuBuffer::Kind::DeviceLocal, what);
  b.upload(h.data(), h.size() * 2);
  bytes_ += h.size() * 2;
  return b;
}

GpuBuffer WeightUploader::floats(const std::vector<float>& v, const std::string& what, size_t padded) {
  std::vector<float> data(v);
  if (padded > data.size()) data.resize(padded, 0.0f);
  if (data.empty()) data.push_back(0.0f);  // Vulkan buffers cannot be empty
  GpuBuffer b(ctx_, data.size() * 4, GpuBuffer::Kind::DeviceLocal, what);
  b.upload(data.data(), data.size() * 4);
  bytes_ += data.size() * 4;
  return b;
}

GpuBuffer WeightUploader::zeros(uint64_t bytes, const std::string& what) {
  GpuBuffer b(ctx_, std::max<uint64_t>(bytes, 16), GpuBuffer::Kind::DeviceLocal, what);
  b.fill_zero();
  return b;
}

VkBufferView WeightUploader::view(const GpuBuffer& b, bool weights) {
  VkBufferViewCreateInfo ci{};
  ci.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO;
  ci.buffer = b.handle();
  ci.format = weights && f16_ ? VK_FORMAT_R16G16B16A16_SFLOAT : VK_FORMAT_R32G32B32A32_SFLOAT;
  ci.offset = 0;
  ci.range = VK_WHOLE_SIZE;
  VkBufferView v = VK_NULL_HANDLE;
  VK_CHECK(vkCreateBufferView(ctx_.device(), &ci, nullptr, &v));
  views_.push_back(v);
  return v;
}

}  // namespace vkssm

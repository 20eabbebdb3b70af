#include "engine/vk/weight_uploader.h"

#include <algorithm>

#include "engine/vk/vk_check.h"
#include "engine/vk/vulkan_context.h"
#include "host/error.h"
#include "host/dtype.h"
#include "host/quant_matrix.h"

namespace vkssm {

MatrixFormat WeightUploader::format_of(int64_t cols) const {
  if (quant_ && quantizable_row(cols)) return *quant_ == QuantType::Q8_0 ? MatrixFormat::Q8_0 : MatrixFormat::Q4_0;
  return f16_ ? MatrixFormat::F16 : MatrixFormat::F32;
}

uint64_t WeightUploader::row_bytes(int64_t cols) const {
  switch (format_of(cols)) {
    case MatrixFormat::Q8_0: return 4ull * device_row_words(QuantType::Q8_0, cols);
    case MatrixFormat::Q4_0: return 4ull * device_row_words(QuantType::Q4_0, cols);
    case MatrixFormat::F16: return 2ull * pad8(cols);
    case MatrixFormat::F32: break;
  }
  return 4ull * pad8(cols);
}

std::string WeightUploader::weight_type() const {
  for (const char* q : {"q8_0", "q4_0"})
    for (const TensorStorage& t : tensors_)
      if (t.type == q) return q;
  return f16_ ? "f16" : "f32";
}

void WeightUploader::record(const std::string& what, const char* type, uint64_t bytes) {
  tensors_.push_back({what, type, bytes});
  bytes_ += bytes;
}

GpuBuffer WeightUploader::device_weights(const void* data, uint64_t bytes, const std::string& what) {
  VulkanContext::SharedWeights& shared = ctx_.shared_weights();
  if (shared.replay) {
    // The same graph code runs for every shard, so the uploads come in the same order.
    if (shared.next >= shared.entries.size() || shared.entries[shared.next].what != what ||
        shared.entries[shared.next].size != bytes)
      throw Error("internal: shard weights differ from the first shard's at " + what);
    const VulkanContext::SharedWeights::Entry& e = shared.entries[shared.next++];
    return GpuBuffer::alias(e.buffer, e.size, e.what);
  }
  GpuBuffer b(ctx_, bytes, GpuBuffer::Kind::DeviceLocal, what);
  b.upload(data, bytes);
  shared.entries.push_back({what, b.handle(), bytes});
  return b;
}

GpuBuffer WeightUploader::words(const std::vector<uint32_t>& w, const std::string& what, const char* type) {
  GpuBuffer b = device_weights(w.data(), w.size() * 4, what);
  record(what, type, w.size() * 4);
  return b;
}

GpuBuffer WeightUploader::matrix(const std::vector<float>& m, int64_t rows, int64_t cols, const std::string& what) {
  const MatrixFormat format = format_of(cols);
  if (format == MatrixFormat::Q8_0 || format == MatrixFormat::Q4_0)
    return words(pack_device_matrix(*quant_, m.data(), rows, cols), what,
                 format == MatrixFormat::Q8_0 ? "q8_0" : "q4_0");
  const uint32_t stride = pad8(cols);
  std::vector<float> padded(size_t(rows) * stride, 0.0f);
  for (int64_t r = 0; r < rows; ++r) std::copy_n(m.data() + r * cols, cols, padded.data() + r * stride);
  return flat(padded, what);
}

GpuBuffer WeightUploader::flat(const std::vector<float>& v, const std::string& what) {
  if (!f16_) return floats(v, what);
  std::vector<uint16_t> h(v.size() + (v.size() & 1), 0);
  for (size_t i = 0; i < v.size(); ++i) h[i] = float_to_half(v[i]);
  GpuBuffer b = device_weights(h.data(), h.size() * 2, what);
  record(what, "f16", h.size() * 2);
  return b;
}

GpuBuffer WeightUploader::floats(const std::vector<float>& v, const std::string& what, size_t padded) {
  std::vector<float> data(v);
  if (padded > data.size()) data.resize(padded, 0.0f);
  if (data.empty()) data.push_back(0.0f);  // Vulkan buffers cannot be empty
  GpuBuffer b = device_weights(data.data(), data.size() * 4, what);
  record(what, "f32", data.size() * 4);
  return b;
}

GpuBuffer WeightUploader::zeros(uint64_t bytes, const std::string& what) {
  GpuBuffer b(ctx_, std::max<uint64_t>(bytes, 16), GpuBuffer::Kind::DeviceLocal, what);
  b.fill_zero();
  return b;
}

VkBufferView WeightUploader::view(const GpuBuffer& b, bool weights, uint64_t offset, uint64_t bytes, bool blocks) {
  const bool half = weights && f16_ && !blocks;
  const VkFormat format = blocks ? VK_FORMAT_R32G32B32A32_UINT
                          : half ? VK_FORMAT_R16G16B16A16_SFLOAT
                                 : VK_FORMAT_R32G32B32A32_SFLOAT;
  for (const View& v : views_)
    if (v.buffer == b.handle() && v.format == format && v.offset == offset && v.bytes == bytes) return v.view.get();
  const uint64_t texel = half ? 8 : 16;
  const uint64_t texels = (bytes ? bytes : std::max<uint64_t>(b.size(), 16) - offset) / texel;
  if (texels > ctx_.caps().max_texel_buffer_elements)
    throw Error(b.what() + ": a texel view of " + std::to_string(texels) + " texels exceeds maxTexelBufferElements (" +
                std::to_string(ctx_.caps().max_texel_buffer_elements) + ") of " + ctx_.caps().name);
  VkBufferViewCreateInfo ci{};
  ci.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO;
  ci.buffer = b.handle();
  ci.format = format;
  ci.offset = offset;
  ci.range = bytes ? bytes : VK_WHOLE_SIZE;
  View& v = views_.emplace_back(
      View{b.handle(), format, offset, bytes, DeviceHandle<VkBufferView>(ctx_.device(), vkDestroyBufferView)});
  VK_CHECK(vkCreateBufferView(ctx_.device(), &ci, nullptr, v.view.out()));
  return v.view.get();
}

const GpuBuffer& WeightUploader::placeholder() {
  if (!placeholder_.handle()) placeholder_ = zeros(16, "placeholder");
  return placeholder_;
}

}  // namespace vkssm

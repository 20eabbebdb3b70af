#include "engine/vk/weight_uploader.h"

#include <algorithm>

#include "engine/vk/vk_check.h"
#include "engine/vk/vulkan_context.h"
#include "host/error.h"
#include "host/dtype.h"
#include "host/quant_matrix.h"

namespace vkssm {

std::optional<QuantType> block_type_of(MatrixFormat f) {
  switch (f) {
    case MatrixFormat::Q8_0: return QuantType::Q8_0;
    case MatrixFormat::Q4_0: return QuantType::Q4_0;
    case MatrixFormat::Q4_K: return QuantType::Q4_K;
    case MatrixFormat::Q5_K: return QuantType::Q5_K;
    case MatrixFormat::Q6_K: return QuantType::Q6_K;
    case MatrixFormat::F32:
    case MatrixFormat::F16: break;
  }
  return std::nullopt;
}

const char* matrix_format_name(MatrixFormat f) {
  switch (f) {
    case MatrixFormat::F32: return "f32";
    case MatrixFormat::F16: return "f16";
    case MatrixFormat::Q8_0: return "q8_0";
    case MatrixFormat::Q4_0: return "q4_0";
    case MatrixFormat::Q4_K: return "q4_k";
    case MatrixFormat::Q5_K: return "q5_k";
    case MatrixFormat::Q6_K: return "q6_k";
  }
  return "?";
}

namespace {

MatrixFormat format_of_blocks(QuantType q) {
  switch (q) {
    case QuantType::Q8_0: return MatrixFormat::Q8_0;
    case QuantType::Q4_0: return MatrixFormat::Q4_0;
    case QuantType::Q4_K: return MatrixFormat::Q4_K;
    case QuantType::Q5_K: return MatrixFormat::Q5_K;
    case QuantType::Q6_K: return MatrixFormat::Q6_K;
    default: break;
  }
  throw Error(std::string("no device layout for ") + quant_traits(q).name + " blocks");
}

}  // namespace

MatrixFormat WeightUploader::format_of(int64_t cols) const {
  if (quant_)
    if (const std::optional<QuantType> q = row_block_type(*quant_, cols)) return format_of_blocks(*q);
  return f16_ ? MatrixFormat::F16 : MatrixFormat::F32;
}

namespace {

uint64_t format_row_bytes(MatrixFormat f, int64_t cols) {
  if (const std::optional<QuantType> q = block_type_of(f)) return 4ull * device_row_words(*q, cols);
  return (f == MatrixFormat::F16 ? 2ull : 4ull) * pad8(cols);
}

}  // namespace

uint64_t WeightUploader::row_bytes(int64_t cols) const { return format_row_bytes(format_of(cols), cols); }

MatrixFormat WeightUploader::format_of(const GpuBuffer& b) const {
  for (const auto& [buffer, format] : formats_)
    if (buffer == b.handle()) return format;
  return f16_ ? MatrixFormat::F16 : MatrixFormat::F32;
}

uint64_t WeightUploader::row_bytes(const GpuBuffer& b, int64_t cols) const {
  return format_row_bytes(format_of(b), cols);
}

std::string WeightUploader::weight_type() const {
  std::string fallback;
  for (const TensorStorage& t : tensors_) {
    if (quant_ && t.type == matrix_format_name(format_of_blocks(*quant_))) return t.type;
    if (t.type != "f32" && t.type != "f16" && fallback.empty()) fallback = t.type;
  }
  if (!fallback.empty()) return fallback;
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
  MatrixFormat format = format_of(cols);
  GpuBuffer b = upload_matrix(m, rows, cols, what, format);
  // A sharded model's later shards alias the first one's buffers: the handle may have its entry.
  if (!std::any_of(formats_.begin(), formats_.end(), [&](const auto& e) { return e.first == b.handle(); }))
    formats_.emplace_back(b.handle(), format);
  return b;
}

GpuBuffer WeightUploader::upload_matrix(const std::vector<float>& m, int64_t rows, int64_t cols,
                                        const std::string& what, MatrixFormat& format) {
  if (file_blocks_)
    if (const auto it = file_blocks_->find(m.data()); it != file_blocks_->end()) {
      const FileBlocks& fb = it->second;
      if (device_block_format(fb.type) && quantizable_row(fb.type, cols) &&
          fb.bytes.size() == size_t(rows) * quant_row_bytes(fb.type, size_t(cols))) {
        format = format_of_blocks(fb.type);
        return blocks(fb.type, repack_blocks(fb.type, fb.bytes.data(), rows, cols), rows, cols, what);
      }
    }
  if (const std::optional<QuantType> q = block_type_of(format))
    return blocks(*q, pack_device_matrix(*q, m.data(), rows, cols), rows, cols, what);
  return flat_matrix(m, rows, cols, what);
}

GpuBuffer WeightUploader::blocks(QuantType type, const std::vector<uint32_t>& w, int64_t rows, int64_t cols,
                                 const std::string& what) {
  const char* name = matrix_format_name(format_of_blocks(type));
  return banded_ ? words(band_rows(type, w, rows, cols), what, name) : words(w, what, name);
}

GpuBuffer WeightUploader::flat_matrix(const std::vector<float>& m, int64_t rows, int64_t cols,
                                      const std::string& what) {
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

#include "engine/vk/gpu_buffer.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "engine/vk/vk_check.h"
#include "engine/vk/vulkan_context.h"

namespace vkssm {

FlushRange flush_range(uint64_t offset, uint64_t bytes, uint64_t atom, uint64_t allocation_size) {
  atom = std::max<uint64_t>(atom, 1);
  const uint64_t begin = offset / atom * atom;
  const uint64_t end = std::min(allocation_size, (offset + bytes + atom - 1) / atom * atom);
  return {begin, end > begin ? end - begin : 0};
}

GpuBuffer::GpuBuffer(VulkanContext& ctx, uint64_t size, Kind kind, const std::string& what)
    : ctx_(&ctx), size_(size), what_(what) {
  if (size == 0) size = 16;  // Vulkan forbids empty buffers; keep a placeholder
  VkDevice dev = ctx.device();
  VkBufferCreateInfo bi{};
  bi.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO;
  bi.size = size;
  bi.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
             VK_BUFFER_USAGE_TRANSFER_DST_BIT | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT;
  bi.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  VK_CHECK(vkCreateBuffer(dev, &bi, nullptr, &buffer_));

  VkMemoryRequirements req{};
  vkGetBufferMemoryRequirements(dev, buffer_, &req);
  VkMemoryPropertyFlags required = 0, preferred = 0;
  switch (kind) {
    case Kind::DeviceLocal:
      required = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
      if (ctx.caps().upload != UploadPath::Staged) preferred = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT;
      break;
    case Kind::Upload:
      required = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
      break;
    case Kind::Readback:
      required = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
      preferred = VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
      break;
  }
  if (req.size > ctx.caps().max_memory_allocation_size) {
    release();
    throw Error(what + ": an allocation of " + std::to_string(req.size) + " bytes exceeds maxMemoryAllocationSize (" +
                std::to_string(ctx.caps().max_memory_allocation_size) + ") of " + ctx.caps().name);
  }
  // Every buffer has an allocation of its own: a model needs a few per layer, far below the 4096
  // that is the least a device may allow, but a huge model or many shards could reach it.
  if (ctx.allocations() >= ctx.caps().max_memory_allocation_count) {
    release();
    throw Error(what + ": allocation " + std::to_string(ctx.allocations() + 1) + " exceeds maxMemoryAllocationCount (" +
                std::to_string(ctx.caps().max_memory_allocation_count) + ") of " + ctx.caps().name);
  }
  VkMemoryAllocateInfo ai{};
  ai.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO;
  ai.allocationSize = req.size;
  try {
    ai.memoryTypeIndex = ctx.find_memory_type(req.memoryTypeBits, required, preferred);
  } catch (const Error&) {
    release();
    throw;
  }
  VkResult r = vkAllocateMemory(dev, &ai, nullptr, &memory_);
  if (r != VK_SUCCESS) {
    release();
    throw Error("out of device memory: allocating " + std::to_string(req.size >> 20) + " MiB for " +
                what + " on " + ctx.caps().name + " failed (" + vk_result_name(r) + ")");
  }
  VK_CHECK(vkBindBufferMemory(dev, buffer_, memory_, 0));
  allocation_size_ = req.size;
  ctx.buffer_bytes() += size_;
  ctx.allocations()++;
  const VkMemoryPropertyFlags flags = ctx.memory_type_flags(ai.memoryTypeIndex);
  host_visible_ = kind == Kind::DeviceLocal && ctx.caps().upload != UploadPath::Staged &&
                  (flags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT);
  flush_ = host_visible_ &&
           (!(flags & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT) || ctx.caps().upload == UploadPath::Flushed);
  if (kind != Kind::DeviceLocal) VK_CHECK(vkMapMemory(dev, memory_, 0, VK_WHOLE_SIZE, 0, &mapped_));
}

GpuBuffer::~GpuBuffer() { release(); }

GpuBuffer GpuBuffer::alias(VkBuffer buffer, uint64_t size, const std::string& what) {
  GpuBuffer b;  // no context: release() leaves the handle alone
  b.buffer_ = buffer;
  b.size_ = size;
  b.what_ = what;
  return b;
}

void GpuBuffer::release() {
  if (!ctx_) return;
  VkDevice dev = ctx_->device();
  if (memory_) {
    if (mapped_) vkUnmapMemory(dev, memory_);
    vkFreeMemory(dev, memory_, nullptr);
    if (allocation_size_) {
      ctx_->buffer_bytes() -= size_;
      ctx_->allocations()--;
    }
  }
  if (buffer_) vkDestroyBuffer(dev, buffer_, nullptr);
  buffer_ = VK_NULL_HANDLE;
  memory_ = VK_NULL_HANDLE;
  mapped_ = nullptr;
}

GpuBuffer::GpuBuffer(GpuBuffer&& o) noexcept { *this = std::move(o); }

GpuBuffer& GpuBuffer::operator=(GpuBuffer&& o) noexcept {
  if (this != &o) {
    release();
    ctx_ = std::exchange(o.ctx_, nullptr);
    buffer_ = std::exchange(o.buffer_, VK_NULL_HANDLE);
    memory_ = std::exchange(o.memory_, VK_NULL_HANDLE);
    size_ = std::exchange(o.size_, 0);
    mapped_ = std::exchange(o.mapped_, nullptr);
    allocation_size_ = std::exchange(o.allocation_size_, 0);
    host_visible_ = std::exchange(o.host_visible_, false);
    flush_ = std::exchange(o.flush_, false);
    what_ = std::move(o.what_);
  }
  return *this;
}

void GpuBuffer::upload(const void* data, uint64_t bytes, uint64_t offset) {
  if (bytes == 0) return;
  if (offset + bytes > size_) throw Error("internal: upload past the end of a buffer");
  if (mapped_) {
    std::memcpy(static_cast<char*>(mapped_) + offset, data, bytes);
    return;
  }
  if (host_visible_) {
    write_in_place(offset, bytes, [&](void* dst) { std::memcpy(dst, data, bytes); });
    return;
  }
  ctx_->upload_counters().staged_bytes += bytes;
  GpuBuffer staging(*ctx_, bytes, Kind::Upload, "a staging buffer");
  std::memcpy(staging.mapped(), data, bytes);
  ctx_->run_once([&](VkCommandBuffer cb) {
    VkBufferCopy region{0, offset, bytes};
    vkCmdCopyBuffer(cb, staging.handle(), buffer_, 1, &region);
  });
}

template <class F>
void GpuBuffer::write_in_place(uint64_t offset, uint64_t bytes, F&& write) {
  VkDevice dev = ctx_->device();
  void* base = nullptr;
  VK_CHECK(vkMapMemory(dev, memory_, 0, VK_WHOLE_SIZE, 0, &base));
  write(static_cast<char*>(base) + offset);
  ctx_->upload_counters().mapped_bytes += bytes;
  if (flush_ && bytes > 0) {
    const FlushRange r = flush_range(offset, bytes, ctx_->caps().non_coherent_atom_size, allocation_size_);
    VkMappedMemoryRange range{};
    range.sType = VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE;
    range.memory = memory_;
    range.offset = r.offset;
    range.size = r.size;
    const VkResult result = vkFlushMappedMemoryRanges(dev, 1, &range);
    vkUnmapMemory(dev, memory_);
    VK_CHECK(result);
    ctx_->upload_counters().flushes++;
    return;
  }
  vkUnmapMemory(dev, memory_);
}

void GpuBuffer::fill_zero() {
  if (mapped_) {
    std::memset(mapped_, 0, size_);
    return;
  }
  if (host_visible_) {
    write_in_place(0, size_, [&](void* dst) { std::memset(dst, 0, size_); });
    return;
  }
  ctx_->run_once([&](VkCommandBuffer cb) { vkCmdFillBuffer(cb, buffer_, 0, VK_WHOLE_SIZE, 0); });
}

}  // namespace vkssm

#pragma once
// One VkBuffer with its own memory. Weights and activations live in device-local memory; the
// per-step inputs and outputs live in host-visible memory that stays mapped for the buffer's life.
#include <cstdint>
#include <string>

#include <volk.h>

namespace vkssm {

class VulkanContext;

// The range of a mapped allocation to flush after writing [offset, offset + bytes): the offset
// rounded down and the end rounded up to `atom` (nonCoherentAtomSize), the end clamped to the
// allocation's size, as vkFlushMappedMemoryRanges requires.
struct FlushRange {
  uint64_t offset = 0, size = 0;
  bool operator==(const FlushRange& o) const { return offset == o.offset && size == o.size; }
};
FlushRange flush_range(uint64_t offset, uint64_t bytes, uint64_t atom, uint64_t allocation_size);

class GpuBuffer {
 public:
  enum class Kind {
    DeviceLocal,  // GPU memory; filled at load time through a staging buffer, or on unified
                  // memory (UploadPath::Mapped) written in place: no staging copy, no 2x peak
    Upload,       // host-visible, coherent, mapped: host writes, GPU reads
    Readback,     // host-visible, coherent (cached when possible), mapped: GPU writes, host reads
  };

  GpuBuffer() = default;
  // `what` names the buffer in error messages (e.g. "weights of layer 3").
  GpuBuffer(VulkanContext& ctx, uint64_t size, Kind kind, const std::string& what);
  ~GpuBuffer();
  GpuBuffer(GpuBuffer&& other) noexcept;
  GpuBuffer& operator=(GpuBuffer&& other) noexcept;
  GpuBuffer(const GpuBuffer&) = delete;
  GpuBuffer& operator=(const GpuBuffer&) = delete;
  // A non-owning handle to another buffer's VkBuffer (a shard's view of the weights its first
  // shard owns): binds like the original, never uploads, frees nothing. The owner must outlive it.
  static GpuBuffer alias(VkBuffer buffer, uint64_t size, const std::string& what);

  VkBuffer handle() const { return buffer_; }
  uint64_t size() const { return size_; }
  const std::string& what() const { return what_; }  // the name given at creation
  void* mapped() const { return mapped_; }  // nullptr for DeviceLocal

  // Copies host bytes into the buffer: in place when it is host-visible (flushing the range when
  // the memory is not host-coherent), else through a staging buffer. Load time only: a staged
  // copy waits for the GPU, and an in-place write assumes the GPU is not using the buffer.
  void upload(const void* data, uint64_t bytes, uint64_t offset = 0);
  void fill_zero();

 private:
  void release();
  // Maps the memory, lets `write` fill [offset, offset + bytes) of the mapping, flushes that range
  // where needed and unmaps (DeviceLocal buffers on unified memory).
  template <class F>
  void write_in_place(uint64_t offset, uint64_t bytes, F&& write);
  VulkanContext* ctx_ = nullptr;
  uint64_t allocation_size_ = 0;
  bool host_visible_ = false;  // a DeviceLocal buffer in memory the host can map (unified memory)
  bool flush_ = false;         // writes need vkFlushMappedMemoryRanges
  VkBuffer buffer_ = VK_NULL_HANDLE;
  VkDeviceMemory memory_ = VK_NULL_HANDLE;
  uint64_t size_ = 0;
  void* mapped_ = nullptr;
  std::string what_;
};

}  // namespace vkssm

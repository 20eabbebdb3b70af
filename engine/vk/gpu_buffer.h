#pragma once
// One VkBuffer with its own memory. Weights and activations live in device-local memory; the
// per-step inputs and outputs live in host-visible memory that stays mapped for the buffer's life.
#include <cstdint>
#include <string>

#include <volk.h>

namespace vkssm {

class VulkanContext;

class GpuBuffer {
 public:
  enum class Kind {
    DeviceLocal,  // GPU-only; filled through a staging buffer at load time
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

  VkBuffer handle() const { return buffer_; }
  uint64_t size() const { return size_; }
  const std::string& what() const { return what_; }  // the name given at creation
  void* mapped() const { return mapped_; }  // nullptr for DeviceLocal

  // Copies host bytes into the buffer (through a staging buffer when it is device-local).
  // Load time only: it waits for the GPU.
  void upload(const void* data, uint64_t bytes, uint64_t offset = 0);
  void fill_zero();

 private:
  void release();
  VulkanContext* ctx_ = nullptr;
  VkBuffer buffer_ = VK_NULL_HANDLE;
  VkDeviceMemory memory_ = VK_NULL_HANDLE;
  uint64_t size_ = 0;
  void* mapped_ = nullptr;
  std::string what_;
};

}  // namespace vkssm

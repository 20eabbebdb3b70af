#pragma once
// Owning wrappers for the device objects vkssm creates and destroys itself, so that no object
// leaks when a later call in the same constructor throws, and no destructor has to list them.
//
//   DeviceHandle<VkFence> fence(dev, vkDestroyFence);   VK_CHECK(vkCreateFence(..., fence.out()));
//   CommandBuffers cbs(dev, pool);                       VkCommandBuffer cb = cbs.allocate();
//
// The destroy function is stored at run time: with volk, vkDestroyFence and friends are function
// pointers loaded after the device exists, not functions a template could name.
#include <utility>
#include <vector>

#include <volk.h>

namespace vkssm {

template <typename Handle>
class DeviceHandle {
 public:
  using Destroy = void (*)(VkDevice, Handle, const VkAllocationCallbacks*);

  DeviceHandle() = default;
  DeviceHandle(VkDevice device, Destroy destroy) : device_(device), destroy_(destroy) {}
  ~DeviceHandle() { reset(); }
  DeviceHandle(DeviceHandle&& o) noexcept
      : device_(o.device_), destroy_(o.destroy_), handle_(std::exchange(o.handle_, Handle(VK_NULL_HANDLE))) {}
  DeviceHandle& operator=(DeviceHandle&& o) noexcept {
    if (this != &o) {
      reset();
      device_ = o.device_;
      destroy_ = o.destroy_;
      handle_ = std::exchange(o.handle_, Handle(VK_NULL_HANDLE));
    }
    return *this;
  }
  DeviceHandle(const DeviceHandle&) = delete;
  DeviceHandle& operator=(const DeviceHandle&) = delete;

  Handle get() const { return handle_; }
  explicit operator bool() const { return handle_ != VK_NULL_HANDLE; }
  // Where a vkCreate* call writes the new handle (destroying any previous one first).
  Handle* out() {
    reset();
    return &handle_;
  }
  void reset() {
    if (handle_ != VK_NULL_HANDLE && destroy_) destroy_(device_, handle_, nullptr);
    handle_ = VK_NULL_HANDLE;
  }

 private:
  VkDevice device_ = VK_NULL_HANDLE;
  Destroy destroy_ = nullptr;
  Handle handle_ = VK_NULL_HANDLE;
};

// Primary command buffers from one pool, freed together when this goes. The owner must make sure
// the device no longer executes them by then (VulkanStepModel waits for idle first).
class CommandBuffers {
 public:
  CommandBuffers() = default;
  CommandBuffers(VkDevice device, VkCommandPool pool) : device_(device), pool_(pool) {}
  ~CommandBuffers() { release(); }
  CommandBuffers(CommandBuffers&& o) noexcept
      : device_(o.device_), pool_(o.pool_), buffers_(std::exchange(o.buffers_, {})) {}
  CommandBuffers& operator=(CommandBuffers&& o) noexcept {
    if (this != &o) {
      release();
      device_ = o.device_;
      pool_ = o.pool_;
      buffers_ = std::exchange(o.buffers_, {});
    }
    return *this;
  }
  CommandBuffers(const CommandBuffers&) = delete;
  CommandBuffers& operator=(const CommandBuffers&) = delete;

  // A new command buffer, owned by this set. Throws vkssm::Error on failure.
  VkCommandBuffer allocate();
  size_t size() const { return buffers_.size(); }
  void release();

 private:
  VkDevice device_ = VK_NULL_HANDLE;
  VkCommandPool pool_ = VK_NULL_HANDLE;
  std::vector<VkCommandBuffer> buffers_;
};

}  // namespace vkssm

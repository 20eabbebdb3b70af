#include "engine/vk/vk_handle.h"

#include "engine/vk/vk_check.h"

namespace vkssm {

VkCommandBuffer CommandBuffers::allocate() {
  VkCommandBufferAllocateInfo ai{};
  ai.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
  ai.commandPool = pool_;
  ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  ai.commandBufferCount = 1;
  VkCommandBuffer cb = VK_NULL_HANDLE;
  buffers_.reserve(buffers_.size() + 1);  // cannot throw after the allocation below
  VK_CHECK(vkAllocateCommandBuffers(device_, &ai, &cb));
  buffers_.push_back(cb);
  return cb;
}

void CommandBuffers::release() {
  if (!buffers_.empty()) vkFreeCommandBuffers(device_, pool_, uint32_t(buffers_.size()), buffers_.data());
  buffers_.clear();
}

}  // namespace vkssm

#pragma once
// A compute pipeline made from one embedded SPIR-V variant: its descriptor-set layout (N buffers
// at bindings 0..N-1) and specialization constants (ids 0..M-1, all 32-bit; see spec_constants.h).
// Pipelines are created at load time through the context's VkPipelineCache.
#include <cstdint>
#include <string>
#include <vector>

#include <volk.h>

#include "engine/vk/shader_registry.h"
#include "engine/vk/spec_constants.h"
#include "engine/vk/vk_handle.h"

namespace vkssm {

class VulkanContext;
class GpuBuffer;

class ComputePipeline {
 public:
  // Bindings in `texel_mask` are uniform texel buffers (samplerBuffer); the rest storage buffers.
  // Every object is owned by a member as soon as it exists, so a failure part-way (e.g. the
  // pipeline compile) destroys the layouts created before it.
  ComputePipeline(VulkanContext& ctx, ShaderId shader, uint32_t num_buffers, const SpecConstants& spec,
                  uint32_t texel_mask = 0);
  ComputePipeline(const ComputePipeline&) = delete;
  ComputePipeline& operator=(const ComputePipeline&) = delete;

  VkPipeline handle() const { return pipeline_.get(); }
  VkPipelineLayout layout() const { return layout_.get(); }
  VkDescriptorSetLayout set_layout() const { return set_layout_.get(); }
  uint32_t num_buffers() const { return num_buffers_; }
  bool is_texel(uint32_t binding) const { return (texel_mask_ >> binding) & 1; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  uint32_t num_buffers_ = 0;
  uint32_t texel_mask_ = 0;
  // Declared in creation order: destroyed pipeline first, set layout last.
  DeviceHandle<VkDescriptorSetLayout> set_layout_;
  DeviceHandle<VkPipelineLayout> layout_;
  DeviceHandle<VkPipeline> pipeline_;
};

// A range of a buffer bound to one binding.
struct BufferBinding {
  const GpuBuffer* buffer = nullptr;
  uint64_t offset = 0;
  uint64_t range = 0;  // 0 = to the end
  VkBufferView view = VK_NULL_HANDLE;  // for texel-buffer bindings
};

struct DeviceCaps;
// Throws vkssm::Error naming the shader and maxPerStageDescriptorStorageBuffers when a shader
// binds more storage buffers than the device allows (every ComputePipeline checks it).
void check_storage_buffers(const std::string& shader, uint32_t count, const DeviceCaps& caps);
// Throws vkssm::Error naming the buffer, the shader and the limit when a storage-buffer binding is
// longer than maxStorageBufferRange (or misaligned): make_set checks every binding with it.
void check_binding(const DeviceCaps& caps, const ComputePipeline& pipeline, const BufferBinding& b, bool texel);

// Owns a descriptor pool; hands out descriptor sets written once at load time.
class DescriptorArena {
 public:
  DescriptorArena(VulkanContext& ctx, uint32_t max_sets, uint32_t max_buffers);
  DescriptorArena(const DescriptorArena&) = delete;
  DescriptorArena& operator=(const DescriptorArena&) = delete;
  VkDescriptorSet make_set(const ComputePipeline& pipeline, const std::vector<BufferBinding>& buffers);

 private:
  VulkanContext& ctx_;
  DeviceHandle<VkDescriptorPool> pool_;
};

}  // namespace vkssm

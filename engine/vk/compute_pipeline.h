#pragma once
// A compute pipeline made from one embedded SPIR-V variant: its descriptor-set layout (N storage
// buffers at bindings 0..N-1), push-constant range and specialization constants (ids 0..M-1, all
// 32-bit). Pipelines are created at load time through the context's VkPipelineCache.
#include <cstdint>
#include <string>
#include <vector>

#include <volk.h>

namespace vkssm {

class VulkanContext;
class GpuBuffer;

class ComputePipeline {
 public:
  // Bindings in `texel_mask` are uniform texel buffers (samplerBuffer); the rest storage buffers.
  ComputePipeline(VulkanContext& ctx, const std::string& shader, uint32_t num_buffers,
                  uint32_t push_constant_bytes, const std::vector<uint32_t>& spec_constants,
                  uint32_t texel_mask = 0);
  ~ComputePipeline();
  ComputePipeline(const ComputePipeline&) = delete;
  ComputePipeline& operator=(const ComputePipeline&) = delete;

  VkPipeline handle() const { return pipeline_; }
  VkPipelineLayout layout() const { return layout_; }
  VkDescriptorSetLayout set_layout() const { return set_layout_; }
  uint32_t num_buffers() const { return num_buffers_; }
  bool is_texel(uint32_t binding) const { return (texel_mask_ >> binding) & 1; }
  const std::string& name() const { return name_; }

 private:
  VulkanContext& ctx_;
  std::string name_;
  uint32_t num_buffers_ = 0;
  uint32_t texel_mask_ = 0;
  VkDescriptorSetLayout set_layout_ = VK_NULL_HANDLE;
  VkPipelineLayout layout_ = VK_NULL_HANDLE;
  VkPipeline pipeline_ = VK_NULL_HANDLE;
};

// A range of a buffer bound to one binding.
struct BufferBinding {
  const GpuBuffer* buffer = nullptr;
  uint64_t offset = 0;
  uint64_t range = 0;  // 0 = to the end
  VkBufferView view = VK_NULL_HANDLE;  // for texel-buffer bindings
};

// Owns a descriptor pool; hands out descriptor sets written once at load time.
class DescriptorArena {
 public:
  DescriptorArena(VulkanContext& ctx, uint32_t max_sets, uint32_t max_buffers);
  ~DescriptorArena();
  DescriptorArena(const DescriptorArena&) = delete;
  DescriptorArena& operator=(const DescriptorArena&) = delete;
  VkDescriptorSet make_set(const ComputePipeline& pipeline, const std::vector<BufferBinding>& buffers);

 private:
  VulkanContext& ctx_;
  VkDescriptorPool pool_ = VK_NULL_HANDLE;
};

}  // namespace vkssm

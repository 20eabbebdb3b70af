#include "engine/vk/compute_pipeline.h"

#include <algorithm>

#include "engine/vk/gpu_buffer.h"
#include "engine/vk/shader_registry.h"
#include "engine/vk/vk_check.h"
#include "engine/vk/vulkan_context.h"

namespace vkssm {

ComputePipeline::ComputePipeline(VulkanContext& ctx, ShaderId shader, uint32_t num_buffers,
                                 const SpecConstants& spec, uint32_t texel_mask)
    : name_(shader_blob(shader).name),
      num_buffers_(num_buffers),
      texel_mask_(texel_mask),
      set_layout_(ctx.device(), vkDestroyDescriptorSetLayout),
      layout_(ctx.device(), vkDestroyPipelineLayout),
      pipeline_(ctx.device(), vkDestroyPipeline) {
  const ShaderBlob& blob = shader_blob(shader);
  VkDevice dev = ctx.device();
  uint32_t storage = 0;
  for (uint32_t i = 0; i < num_buffers; ++i) storage += is_texel(i) ? 0 : 1;
  check_storage_buffers(name_, storage, ctx.caps());

  std::vector<VkDescriptorSetLayoutBinding> bindings(num_buffers);
  for (uint32_t i = 0; i < num_buffers; ++i) {
    bindings[i].binding = i;
    bindings[i].descriptorType = is_texel(i) ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
                                             : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    bindings[i].descriptorCount = 1;
    bindings[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
  }
  VkDescriptorSetLayoutCreateInfo li{};
  li.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO;
  li.bindingCount = num_buffers;
  li.pBindings = bindings.data();
  VK_CHECK(vkCreateDescriptorSetLayout(dev, &li, nullptr, set_layout_.out()));

  const VkDescriptorSetLayout set_layout = set_layout_.get();
  VkPipelineLayoutCreateInfo pli{};
  pli.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO;
  pli.setLayoutCount = 1;
  pli.pSetLayouts = &set_layout;
  VK_CHECK(vkCreatePipelineLayout(dev, &pli, nullptr, layout_.out()));

  VkShaderModuleCreateInfo mi{};
  mi.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO;
  mi.codeSize = blob.size_bytes;
  mi.pCode = blob.code;
  DeviceHandle<VkShaderModule> module(dev, vkDestroyShaderModule);  // only needed until the pipeline exists
  VK_CHECK(vkCreateShaderModule(dev, &mi, nullptr, module.out()));

  const std::vector<uint32_t>& words = spec.words();
  std::vector<VkSpecializationMapEntry> entries(words.size());
  for (uint32_t i = 0; i < entries.size(); ++i) entries[i] = {i, i * 4, 4};
  VkSpecializationInfo si{};
  si.mapEntryCount = uint32_t(entries.size());
  si.pMapEntries = entries.data();
  si.dataSize = words.size() * 4;
  si.pData = words.data();

  VkComputePipelineCreateInfo ci{};
  ci.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO;
  ci.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
  ci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  ci.stage.module = module.get();
  ci.stage.pName = "main";
  ci.stage.pSpecializationInfo = words.empty() ? nullptr : &si;
  ci.layout = layout_.get();
  const VkResult r = vkCreateComputePipelines(dev, ctx.pipeline_cache(), 1, &ci, nullptr, pipeline_.out());
  if (r != VK_SUCCESS)
    throw Error("creating pipeline '" + name_ + "' on " + ctx.caps().name + " failed: " + vk_result_name(r));
}

void check_storage_buffers(const std::string& shader, uint32_t count, const DeviceCaps& caps) {
  if (count > caps.max_per_stage_storage_buffers)
    throw Error("shader " + shader + " binds " + std::to_string(count) +
                " storage buffers; maxPerStageDescriptorStorageBuffers of " + caps.name + " is " +
                std::to_string(caps.max_per_stage_storage_buffers));
}

void check_binding(const DeviceCaps& caps, const ComputePipeline& pipeline, const BufferBinding& b, bool texel) {
  if (texel) return;  // views are checked where they are made (WeightUploader::view)
  const GpuBuffer& buf = *b.buffer;
  const uint64_t range = b.range ? b.range : std::max<uint64_t>(buf.size(), 16) - b.offset;
  const std::string where = buf.what() + " (bound to " + pipeline.name() + ")";
  if (range > caps.max_storage_buffer_range)
    throw Error(where + ": a binding of " + std::to_string(range) + " bytes exceeds maxStorageBufferRange (" +
                std::to_string(caps.max_storage_buffer_range) + ") of " + caps.name);
  if (b.offset % caps.min_storage_buffer_offset_alignment)
    throw Error("internal: " + where + " bound at offset " + std::to_string(b.offset) +
                ", not a multiple of minStorageBufferOffsetAlignment (" +
                std::to_string(caps.min_storage_buffer_offset_alignment) + ")");
}

DescriptorArena::DescriptorArena(VulkanContext& ctx, uint32_t max_sets, uint32_t max_buffers)
    : ctx_(ctx), pool_(ctx.device(), vkDestroyDescriptorPool) {
  VkDescriptorPoolSize sizes[2] = {{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, max_buffers},
                                   {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, max_buffers}};
  VkDescriptorPoolCreateInfo ci{};
  ci.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO;
  ci.maxSets = max_sets;
  ci.poolSizeCount = 2;
  ci.pPoolSizes = sizes;
  VK_CHECK(vkCreateDescriptorPool(ctx.device(), &ci, nullptr, pool_.out()));
}

VkDescriptorSet DescriptorArena::make_set(const ComputePipeline& pipeline,
                                          const std::vector<BufferBinding>& buffers) {
  if (buffers.size() != pipeline.num_buffers())
    throw Error("internal: pipeline '" + pipeline.name() + "' takes " +
                std::to_string(pipeline.num_buffers()) + " buffers, got " + std::to_string(buffers.size()));
  VkDescriptorSetLayout layout = pipeline.set_layout();
  VkDescriptorSetAllocateInfo ai{};
  ai.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO;
  ai.descriptorPool = pool_.get();
  ai.descriptorSetCount = 1;
  ai.pSetLayouts = &layout;
  VkDescriptorSet set = VK_NULL_HANDLE;
  VK_CHECK(vkAllocateDescriptorSets(ctx_.device(), &ai, &set));
  std::vector<VkDescriptorBufferInfo> infos(buffers.size());
  std::vector<VkWriteDescriptorSet> writes(buffers.size());
  for (size_t i = 0; i < buffers.size(); ++i) {
    check_binding(ctx_.caps(), pipeline, buffers[i], pipeline.is_texel(uint32_t(i)));
    infos[i].buffer = buffers[i].buffer->handle();
    infos[i].offset = buffers[i].offset;
    infos[i].range = buffers[i].range ? buffers[i].range : VK_WHOLE_SIZE;
    writes[i] = {};
    writes[i].sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
    writes[i].dstSet = set;
    writes[i].dstBinding = uint32_t(i);
    writes[i].descriptorCount = 1;
    if (pipeline.is_texel(uint32_t(i))) {
      if (!buffers[i].view) throw Error("internal: pipeline '" + pipeline.name() + "' binding " +
                                        std::to_string(i) + " needs a buffer view");
      writes[i].descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
      writes[i].pTexelBufferView = &buffers[i].view;
    } else {
      writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
      writes[i].pBufferInfo = &infos[i];
    }
  }
  vkUpdateDescriptorSets(ctx_.device(), uint32_t(writes.size()), writes.data(), 0, nullptr);
  return set;
}

}  // namespace vkssm

#pragma once
// More streams than one binding holds: a Vulkan model in shards.
//
// Every per-stream buffer of a VulkanStepModel (a layer's state [capacity][floats], the logits
// and activations [rows][...]) is one storage-buffer binding, and a binding may not exceed
// maxStorageBufferRange (128 MiB on Adreno, Mali and the Android baseline profile; 1 MiB under
// VKSSM_DEVICE_PROFILE=tiny-bindings). Asked for more streams than that holds (an explicit
// LoadOptions::max_streams; the automatic capacity stops at one binding), the model is built as
// several VulkanStepModels over one context, each with at most a binding's worth of slots:
//
//   slot s  ->  shard s / shard_capacity, local slot s % shard_capacity
//
// The shards share one copy of the weights: the first shard uploads them and owns them, the
// others hold aliases (VulkanContext::SharedWeights). A step splits its rows by shard, submits
// each shard's part (each shard then reads the weights once for its rows) and puts the results
// back in the caller's row order. Everything else (reset, prefill, snapshot, rollback) goes to the
// slot's shard; fork between shards is a device-side copy (VulkanStepModel::fork_to).
//
// The per-step path allocates nothing: the per-shard row lists are sized at load.
#include <memory>

#include "engine/vkssm.hpp"
#include "engine/vulkan_step_model.h"

namespace vkssm {

// Builds the architecture's graph as one VulkanStepModel, or as shards of one when the load
// options ask for more streams than one binding holds. Every architecture's create_*_vulkan()
// goes through here.
std::unique_ptr<Model> create_vulkan_model(const LoadOptions& options, const VulkanStepModel::GraphFactory& make_graph);

}  // namespace vkssm

#pragma once
// The part of a Vulkan model that differs per architecture: its step graph.
//
// A model on Vulkan is one VulkanStepModel (engine/vulkan_step_model.h, the same for every
// architecture) that owns one StepGraph (models/<arch>/<arch>_vulkan.cpp). The graph uploads its
// layer weights, creates its pipelines and descriptor sets, and records two command buffers once at
// load:
//   record_body   every layer of one step, for the rows listed in the step input;
//   record_head   the final projection, writing the model's outputs [row][d_output].
// The model records and submits everything else (step-input copy, rollback save, sampler, copies
// back) and owns the graph: it waits for the device to go idle before the graph and its buffers
// are destroyed, so a graph needs no destructor of its own.
//
// While it is built, a graph reaches the model through a GraphBuilder (below): the context, the
// step input, the state slots and the outputs.
#include <cstdint>
#include <memory>
#include <string>

#include <volk.h>

#include "engine/vk/device_tuning.h"
#include "engine/vkssm.hpp"
#include "host/state_file.h"

namespace vkssm {

class ComputePipeline;
class GpuBuffer;
class VulkanContext;
class VulkanStepModel;
class WeightUploader;
struct DeviceCaps;
struct WeightsPlan;

// One dispatch: a pipeline, its descriptor set and the number of workgroups.
struct Dispatch {
  const ComputePipeline* pipeline = nullptr;
  VkDescriptorSet set = VK_NULL_HANDLE;
  uint32_t groups = 1;
  // A twin of `pipeline` for steps of one row (one stream, one frame), with the same bindings, or
  // nullptr: the model's one-row command buffers use it, and only those (MatvecPipeline on CPU
  // drivers, whose `pipeline` then holds only the passes for several rows).
  const ComputePipeline* one_row = nullptr;
};

// Records dispatches into one of the model's load-time command buffers.
class StepRecorder {
 public:
  // one_row: this command buffer runs only steps of one row, so it takes Dispatch::one_row twins.
  StepRecorder(VkCommandBuffer cb, uint32_t max_groups_x, bool one_row = false)
      : cb_(cb), max_x_(max_groups_x), one_row_(one_row) {}
  VkCommandBuffer command_buffer() const { return cb_; }
  // Binds the pipeline and set, dispatches `groups` workgroups (folded into y beyond the device's
  // x limit: shaders compute their workgroup index as y * num_x + x) and adds a compute barrier,
  // so each dispatch sees the writes of the one before.
  void dispatch(const ComputePipeline& pipeline, VkDescriptorSet set, uint32_t groups);
  void dispatch(const Dispatch& d) {
    if (d.one_row) ++twins_;
    dispatch(one_row_ && d.one_row ? *d.one_row : *d.pipeline, d.set, d.groups);
  }
  uint64_t dispatches() const { return dispatches_; }
  // Dispatches recorded that have a one-row twin (used or not).
  uint64_t twins() const { return twins_; }

 private:
  VkCommandBuffer cb_;
  uint32_t max_x_;
  bool one_row_;
  uint64_t dispatches_ = 0, twins_ = 0;
};

class StepGraph {
 public:
  virtual ~StepGraph() = default;
  virtual void record_body(StepRecorder& r) = 0;
  virtual void record_head(StepRecorder& r) = 0;
};

// What a graph may use of its model while it is built (only then: the graph keeps references to
// the buffers, which the model owns and keeps until after the graph is gone).
class GraphBuilder {
 public:
  explicit GraphBuilder(VulkanStepModel& model) : model_(model) {}

  VulkanContext& ctx() const;
  const DeviceCaps& caps() const;

  // Sizes the step: `capacity` state slots, d_input floats per input frame (0 for token models),
  // d_output floats of output per row. Call before the buffers below are used.
  void create_io(int capacity, int64_t d_input, int64_t d_output);
  // The same with the capacity of `plan` (and the reason for it, which the memory plan reports).
  void create_io(const WeightsPlan& plan, int64_t d_input, int64_t d_output);
  // A per-slot state buffer [capacity][floats_per_slot] (zeroed). Snapshot blobs hold the
  // registered buffers' slot regions in registration order.
  GpuBuffer& add_state(uint64_t floats_per_slot, const std::string& what);
  const GpuBuffer& step_input() const;
  const GpuBuffer& outputs() const;
  int capacity() const;
  // Rows of one step: max(capacity x frames_per_step(), kPrefillRows). Activation buffers have
  // this many rows and the step input's per-row arrays this stride (the shaders' CAPACITY
  // constant). A prefill step lists one slot in several rows, in token order, and so does a frame
  // step of several frames per stream (rows i*F .. i*F+F-1), so a shader must process rows in
  // order and give each state element to one invocation for all rows (as a loop over rows in the
  // outer position does).
  int step_rows() const;
  // Frame models: the most frames per stream one step takes (LoadOptions::frames_per_step; 1 for
  // token models). Valid after create_io().
  int frames_per_step() const;

  // What the model reports: the architecture's info (weight_type and weight_bytes are filled in
  // from `weights`, the uploader that holds the graph's weights), its snapshot header, and the work
  // split the graph runs with. Call once, last.
  void describe(ModelInfo info, const StateHeader& header, const Tuning& tuning, const WeightUploader& weights);

 private:
  VulkanStepModel& model_;
};

}  // namespace vkssm

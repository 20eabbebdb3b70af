#pragma once
// What every architecture's Vulkan backend shares: the per-step input, the state slots, the
// outputs, the sampler, the rollback ring, and the way a step is submitted.
//
// A Vulkan model is this class plus one StepGraph (engine/vulkan_step_graph.h), the architecture's
// part (models/<arch>/<arch>_vulkan.cpp), which it builds through a GraphBuilder and then owns.
// The graph records every layer of one step (record_body) and the final projection (record_head)
// once at load; this class records the rest once at load too (the step-input copy, the rollback
// save, the sampler, the copies back to the host) and submits a list of those command buffers per
// step:
//
//   prologue[i] -> [rollback save] -> body -> [head] -> [sampler] -> [ids back] -> [outputs back]
//
// Nothing is recorded, allocated or written to a descriptor on the per-token path: a step writes
// its inputs into a mapped staging buffer and calls vkQueueSubmit once.
//
// Lifetime: the device may still run submitted work when the model goes, so nothing the recorded
// command buffers use may be destroyed before the device is idle. The graph (which owns the
// architecture's weights, activations, pipelines and descriptor sets) is held by this class, not
// derived from it, and `idle_` is the last member: members are destroyed in reverse order, so the
// wait for idle comes first, then the graph, then this class's own buffers and command buffers,
// and the context last. The same order holds when a constructor throws part-way.
#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/vk/compute_pipeline.h"
#include "engine/vk/device_tuning.h"
#include "engine/vk/gpu_buffer.h"
#include "engine/vk/vk_handle.h"
#include "engine/vk/vulkan_context.h"
#include "engine/vkssm.hpp"
#include "engine/vulkan_step_graph.h"
#include "engine/vulkan_weights_plan.h"
#include "host/state_file.h"

namespace vkssm {

class VulkanStepModel final : public Model {
 public:
  using GraphFactory = std::function<std::unique_ptr<StepGraph>(GraphBuilder&)>;
  // A later shard of a sharded model (engine/vulkan_sharded_model.h): the first shard's context,
  // whose shared weights it replays, and its own number of slots.
  struct Shard {
    std::shared_ptr<VulkanContext> ctx;
    int capacity = 0;
  };
  // Creates the context (or takes the first shard's), lets `make_graph` build the architecture's
  // graph (which sizes the step with GraphBuilder::create_io, registers its state and describes
  // the model), then records everything and warms the pipelines up.
  VulkanStepModel(const LoadOptions& options, const GraphFactory& make_graph, const Shard* shard = nullptr);

  const ModelInfo& info() const override { return info_; }
  int capacity() const override { return capacity_; }
  void reset(int slot) override;
  void step(const int32_t* tokens, const int32_t* slots, int batch, float* logits) override;
  void step_frames(const float* frames, const int32_t* slots, int batch, float* outputs) override;
  void step_sample(const int32_t* tokens, const int32_t* slots, int batch, const SamplingParams* params,
                   int32_t* next_tokens, float* logits) override;
  void prefill(int slot, const int32_t* tokens, int n, float* last_logits) override;
  void rollback(int slot, int steps) override;
  int rollback_available(int slot) const override;
  StepCounters counters() const override { return counters_; }
  std::vector<uint8_t> snapshot(int slot) const override;
  void restore(int slot, const uint8_t* data, size_t size) override;
  void fork(int from_slot, int to_slot) override;
  void submit(const StepRequest& request) override;
  void collect(int32_t* next_tokens, float* outputs) override;
  int in_flight() const override { return int(flight_.size()); }
  int max_top_k() const override { return kMaxTopK; }

  // The work split the graph runs with (the tuning table's row, VKSSM_TUNE, after the texel check).
  const Tuning& tuning() const { return tuning_; }
  // How a step's completion is awaited: a timeline semaphore, or (devices without them, e.g.
  // VKSSM_DEVICE_PROFILE=vulkan-1.1-minimal) one fence per staging parity.
  bool uses_timeline() const { return timeline_.get() != VK_NULL_HANDLE; }
  // The capabilities the model runs with (the probe, clamped by a device profile).
  const DeviceCaps& caps() const { return ctx_->caps(); }
  // What the load-time uploads did: staged copies, in-place writes, flushes (UploadPath).
  const VulkanContext::UploadCounters& upload_counters() const { return ctx_->upload_counters(); }

  // Sharding (engine/vulkan_sharded_model.h). The streams the load options asked for: more than
  // capacity() when one binding cannot hold them all, and this model is then the first shard.
  int requested_capacity() const { return requested_capacity_; }
  const std::shared_ptr<VulkanContext>& context() const { return ctx_; }
  // fork() into a slot of another shard of the same model (a device-side copy of every state
  // buffer's slot region; the shards' state layouts are the same).
  void fork_to(int from_slot, VulkanStepModel& to, int to_slot);

  // Prompt tokens per step in prefill(): they run as the rows of one step (see prefill()).
  static constexpr int kPrefillRows = 64;
  // Tokens per submit in prefill() when a rollback ring is kept (one step per token).
  static constexpr int kPrefillChunk = 32;
  // The largest top_k the device sampler takes (it selects candidates one by one).
  static constexpr int kMaxTopK = 256;

 private:
  friend class GraphBuilder;

  struct InFlight {
    int batch = 0;
    int rows = 0;  // batch x frames per stream
    int parity = 0;
    bool sampled = false, outputs = false;
    uint64_t ticket = 0;
  };

  // Waits for the device to finish everything submitted when destroyed (see the top of the file).
  struct IdleGuard {
    VulkanContext* ctx = nullptr;
    IdleGuard() = default;
    IdleGuard(const IdleGuard&) = delete;
    IdleGuard& operator=(const IdleGuard&) = delete;
    ~IdleGuard();
  };

  void create_io(int capacity, int64_t d_input, int64_t d_output);
  void describe_memory();
  GpuBuffer& add_state(uint64_t floats_per_slot, const std::string& what);
  void finish();
  void check_idle(const char* what) const;
  void step_now(const char* what, StepRequest request, int32_t* next_tokens, float* outputs);
  // Validates and writes one step's inputs into staging buffer `staging`.
  void stage(int staging, const int32_t* tokens, const float* frames, const int32_t* slots, int batch,
             const SamplingParams* sampling, int frames_per_stream = 1);
  // Stages n prompt tokens of one slot as the n rows of one step.
  void stage_prompt(int staging, const int32_t* tokens, int n, int slot);
  void prefill_by_steps(int slot, const int32_t* tokens, int n, float* last_logits);
  void push_rollback(const int32_t* slots, int batch, uint32_t* ring_index);
  void submit_commands(const std::vector<VkCommandBuffer>& cbs, uint64_t dispatches);
  void wait_ticket(uint64_t ticket);
  // Records one load-time command buffer: `record` adds its commands; returns the buffer and
  // adds the dispatches recorded to *dispatches when given. one_row: the buffer runs only steps of
  // one row, and takes the dispatches' one-row twins (Dispatch::one_row).
  VkCommandBuffer record(const std::function<void(StepRecorder&)>& record, uint64_t* dispatches = nullptr,
                         bool one_row = false);
  // The body and head for a step of `rows` rows.
  VkCommandBuffer body_for(int rows) const { return rows == 1 ? body_one_ : body_; }
  VkCommandBuffer head_for(int rows) const { return rows == 1 ? head_one_ : head_; }
  void record_all();
  void create_completion();
  void copy_slot_states(VkCommandBuffer cb, int slot, VkBuffer host, bool to_host) const;
  uint32_t bucket_of(int batch) const;

  std::shared_ptr<VulkanContext> ctx_;  // first: destroyed last (shared by a sharded model's shards)
  int shard_capacity_ = 0;              // a later shard: its slots (else 0)
  int requested_capacity_ = 0;
  ModelInfo info_;
  StateHeader header_;
  Tuning tuning_{};
  bool described_ = false;
  int capacity_ = 0;
  CapacityPlan capacity_plan_;  // why capacity_ (the memory plan)
  int rows_ = 1;
  int max_frames_ = 1;  // frame models: LoadOptions::frames_per_step
  int out_rows_ = 1;    // the most rows a step's outputs have: capacity x max_frames_
  int64_t d_input_ = 0, d_output_ = 0;
  int depth_ = 0;  // rollback depth K
  uint32_t in_words_ = 0;

  // A registered state buffer and its rollback ring. The ring's entries [capacity * K][floats]
  // (entry slot * K + k) are split into buffers of `ring_entries` entries each, so that each fits
  // one binding and one allocation whatever the capacity and depth: state_save runs once per part.
  struct State {
    GpuBuffer buffer;               // [capacity][floats]
    std::vector<GpuBuffer> rings;   // [ring_entries][floats] each (the last may be shorter)
    uint64_t floats = 0;
    uint64_t ring_entries = 0;
  };
  std::deque<State> states_;  // deque: references handed out by add_state() stay valid
  uint64_t state_floats_ = 0;

  GpuBuffer step_in_, outputs_, ids_;               // device
  std::vector<GpuBuffer> staging_;                  // host-visible step inputs
  std::array<GpuBuffer, 2> ids_back_, outputs_back_;  // host-visible results, per parity

  std::unique_ptr<ComputePipeline> sample_pipe_;
  std::vector<std::unique_ptr<ComputePipeline>> save_pipes_;  // state_save, one per state size
  std::unique_ptr<DescriptorArena> arena_, save_arena_;
  VkDescriptorSet sample_set_ = VK_NULL_HANDLE;

  // Recorded once at load (all owned by cbs_).
  CommandBuffers cbs_;
  std::vector<VkCommandBuffer> prologue_;  // per staging buffer: copy it to step_in_
  VkCommandBuffer body_ = VK_NULL_HANDLE, head_ = VK_NULL_HANDLE, sample_ = VK_NULL_HANDLE,
                  save_ = VK_NULL_HANDLE;
  // The same for steps of one row: with the one-row twins where the graph has any (CPU drivers),
  // else body_ and head_ themselves.
  VkCommandBuffer body_one_ = VK_NULL_HANDLE, head_one_ = VK_NULL_HANDLE;
  std::array<VkCommandBuffer, 2> ids_copy_{};
  std::array<std::vector<VkCommandBuffer>, 2> outputs_copy_;  // per parity, per batch bucket
  std::vector<VkCommandBuffer> submit_list_;  // the command buffers of one submit (reserved at load)
  uint64_t body_dispatches_ = 0, head_dispatches_ = 0, save_dispatches_ = 0;

  // Completion: a timeline semaphore where the device has one, else one fence per parity.
  DeviceHandle<VkSemaphore> timeline_;
  std::array<DeviceHandle<VkFence>, 2> fences_;
  uint64_t next_ticket_ = 1;
  // Submitted, uncollected steps, oldest first: at most two, in fixed storage (no allocation).
  struct FlightQueue {
    std::array<InFlight, 2> items{};
    size_t first = 0, count = 0;
    size_t size() const { return count; }
    bool empty() const { return count == 0; }
    void push_back(const InFlight& f) { items[(first + count++) % 2] = f; }
    InFlight& back() { return items[(first + count - 1) % 2]; }
    const InFlight& front() const { return items[first]; }
    void pop_front() {
      first = (first + 1) % 2;
      --count;
    }
    void clear() { first = count = 0; }
  };
  FlightQueue flight_;
  int next_parity_ = 0;

  StepCounters counters_;
  std::vector<uint8_t> fresh_;       // per slot: the next step starts from zeros
  std::vector<uint8_t> marks_;       // duplicate-slot check, all zero between calls
  std::vector<uint64_t> sampled_;    // per slot: tokens sampled since reset (sampler draw index)
  std::vector<uint32_t> ring_head_;  // per slot: ring position the next step saves into
  std::vector<int> history_;         // per slot: steps rollback() can undo

  std::unique_ptr<StepGraph> graph_;  // the architecture's part: destroyed before the buffers above
  IdleGuard idle_;                    // last: destroyed first
};

}  // namespace vkssm

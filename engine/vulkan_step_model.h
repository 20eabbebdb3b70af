#pragma once
// What every architecture's Vulkan backend shares: the per-step input, the state slots, the
// outputs, the sampler, the rollback ring, and the way a step is submitted.
//
// An architecture (models/<arch>/<arch>_vulkan.cpp) derives from VulkanStepModel, uploads its
// weights, registers its per-slot state buffers and records two things once at load:
//   record_body(cb)  every layer of one step, for the streams listed in step_input();
//   record_head(cb)  the final projection, writing outputs() [stream][d_output].
// This class records the rest once at load too (the step-input copy, the rollback save, the
// sampler, the copies back to the host) and submits a list of those command buffers per step:
//
//   prologue[i] -> [rollback save] -> body -> [head] -> [sampler] -> [ids back] -> [outputs back]
//
// Nothing is recorded, allocated or written to a descriptor on the per-token path: a step writes
// its inputs into a mapped staging buffer and calls vkQueueSubmit once.
#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "engine/vk/compute_pipeline.h"
#include "engine/vk/gpu_buffer.h"
#include "engine/vk/vulkan_context.h"
#include "engine/vkssm.hpp"
#include "host/state_file.h"

namespace vkssm {

class VulkanStepModel : public Model {
 public:
  ~VulkanStepModel() override;

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

  // Prompt tokens per step in prefill(): they run as the rows of one step (see prefill()).
  static constexpr int kPrefillRows = 64;
  // Tokens per submit in prefill() when a rollback ring is kept (one step per token).
  static constexpr int kPrefillChunk = 32;
  // The largest top_k the device sampler takes (it selects candidates one by one).
  static constexpr int kMaxTopK = 256;

 protected:
  explicit VulkanStepModel(const LoadOptions& options);

  VulkanContext& ctx() const { return *ctx_; }
  const DeviceCaps& caps() const { return ctx_->caps(); }

  // Called by the subclass constructor once it knows its capacity and sizes, before it creates
  // descriptor sets (they bind step_input() and outputs()). d_input = floats per input frame
  // (0 for token models), d_output = floats of output per stream.
  void create_io(int capacity, int64_t d_input, int64_t d_output);
  // A per-slot state buffer [capacity][floats_per_slot] (zeroed). Snapshot blobs hold the
  // registered buffers' slot regions in registration order.
  GpuBuffer& add_state(uint64_t floats_per_slot, const std::string& what);
  // Called last by the subclass constructor: records everything, warms the pipelines up, fills
  // in the backend fields of `info`.
  void finish(ModelInfo info, const StateHeader& header);

  virtual void record_body(VkCommandBuffer cb) = 0;
  virtual void record_head(VkCommandBuffer cb) = 0;

  // Shared by the subclasses' recordings.
  const GpuBuffer& step_input() const { return step_in_; }
  // Rows of one step: max(capacity, kPrefillRows). Activation buffers have this many rows and the
  // step input's per-row arrays this stride (the shaders' CAPACITY constant). A prefill step lists
  // one slot in several rows, in token order, so a shader must process rows in order and give each
  // state element to one invocation for all rows (as a loop over rows in the outer position does).
  int step_rows() const { return rows_; }
  const GpuBuffer& outputs() const { return outputs_; }
  // Binds `pipeline` and `set`, dispatches `groups` workgroups (folded into y beyond the device's
  // x limit) and adds a compute barrier.
  void dispatch(VkCommandBuffer cb, const ComputePipeline& pipeline, VkDescriptorSet set, uint32_t groups);
  static void compute_barrier(VkCommandBuffer cb);
  // Waits until the device is done with every submitted step (subclass destructors call it
  // before their buffers go).
  void drain();
  int capacity_ = 1;

 private:
  int rows_ = 1;
  struct InFlight {
    int batch = 0;
    int parity = 0;
    bool sampled = false, outputs = false;
    uint64_t ticket = 0;
  };

  void check_idle(const char* what) const;
  // Validates and writes one step's inputs into staging buffer `staging`.
  void stage(int staging, const int32_t* tokens, const float* frames, const int32_t* slots, int batch,
             const SamplingParams* sampling);
  // Stages n prompt tokens of one slot as the n rows of one step.
  void stage_prompt(int staging, const int32_t* tokens, int n, int slot);
  void prefill_by_steps(int slot, const int32_t* tokens, int n, float* last_logits);
  void push_rollback(const int32_t* slots, int batch, uint32_t* ring_index);
  void submit_commands(const std::vector<VkCommandBuffer>& cbs, uint64_t dispatches);
  void wait_ticket(uint64_t ticket);
  VkCommandBuffer begin_recording();
  void end_recording(VkCommandBuffer cb);
  void record_all();
  void copy_slot_states(VkCommandBuffer cb, int slot, VkBuffer host, bool to_host) const;
  uint32_t bucket_of(int batch) const;

  std::unique_ptr<VulkanContext> ctx_;  // first: destroyed last
  ModelInfo info_;
  StateHeader header_;
  int64_t d_input_ = 0, d_output_ = 0;
  int depth_ = 0;  // rollback depth K
  uint32_t in_words_ = 0;

  struct State {
    GpuBuffer buffer, ring;  // [capacity][floats], [capacity][K][floats]
    uint64_t floats = 0;
    VkDescriptorSet save_set = VK_NULL_HANDLE;
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

  // Recorded once at load.
  std::vector<VkCommandBuffer> prologue_;  // per staging buffer: copy it to step_in_
  VkCommandBuffer body_ = VK_NULL_HANDLE, head_ = VK_NULL_HANDLE, sample_ = VK_NULL_HANDLE,
                  save_ = VK_NULL_HANDLE;
  std::array<VkCommandBuffer, 2> ids_copy_{};
  std::array<std::vector<VkCommandBuffer>, 2> outputs_copy_;  // per parity, per batch bucket
  std::vector<VkCommandBuffer> all_cbs_;
  std::vector<VkCommandBuffer> submit_list_;  // the command buffers of one submit (reserved at load)
  uint64_t body_dispatches_ = 0, head_dispatches_ = 0, save_dispatches_ = 0;
  uint64_t recording_dispatches_ = 0;  // counts dispatch() calls while recording

  // Completion: a timeline semaphore where the device has one, else one fence per parity.
  VkSemaphore timeline_ = VK_NULL_HANDLE;
  std::array<VkFence, 2> fences_{};
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
};

}  // namespace vkssm

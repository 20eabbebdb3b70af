#include "engine/vulkan_step_model.h"

#include <algorithm>
#include <cstring>

#include "engine/model_checks.h"
#include "engine/vk/dispatch_math.h"
#include "engine/vk/shader_registry.h"
#include "engine/vk/vk_check.h"
#include "engine/vk/weight_uploader.h"
#include "host/error.h"
#include "host/sampling.h"
#include "shaders/step_input.h"

namespace vkssm {
namespace {

// Orders work of one command buffer after everything submitted before it: compute and transfer
// writes become visible to compute and transfer reads and writes.
void full_barrier(VkCommandBuffer cb) {
  VkMemoryBarrier mb{};
  mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
  mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                     VK_ACCESS_TRANSFER_WRITE_BIT;
  const VkPipelineStageFlags stages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
  vkCmdPipelineBarrier(cb, stages, stages, 0, 1, &mb, 0, nullptr, 0, nullptr);
}

// Makes transfer writes visible to the host.
void host_barrier(VkCommandBuffer cb) {
  VkMemoryBarrier mb{};
  mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
  mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
  mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
  vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, nullptr, 0,
                       nullptr);
}

// Makes one dispatch's shader writes visible to the next dispatch.
void compute_barrier(VkCommandBuffer cb) {
  VkMemoryBarrier mb{};
  mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
  mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
  mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
  vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb,
                       0, nullptr, 0, nullptr);
}

// sample_tokens.comp's specialization constants, in its constant_id order.
struct SampleTokensSpec {
  uint32_t local = 64;     // 0: threads per workgroup (a power of two: tree reductions)
  uint32_t vocab = 1;      // 1: V, logits per row
  uint32_t capacity = 1;   // 2: CAPACITY, the step input's row stride
  uint32_t max_top_k = 1;  // 3: MAX_TOPK, candidates kept in shared memory
  SpecConstants constants() const { return {local, vocab, capacity, max_top_k}; }
};

// state_save.comp's specialization constants, in its constant_id order.
struct StateSaveSpec {
  uint32_t local = 64;        // 0: threads per workgroup, one float each
  uint32_t floats = 1;        // 1: FLOATS per slot in this state buffer
  uint32_t capacity = 1;      // 2: CAPACITY, the step input's row stride
  uint32_t first_entry = 0;   // 3: FIRST_ENTRY, the ring entry this part of the ring starts at
  uint32_t entries = 1;       // 4: ENTRIES in this part
  SpecConstants constants() const { return {local, floats, capacity, first_entry, entries}; }
};
constexpr uint32_t kSaveLocal = 64;  // a plain copy: any size works, 64 fits every device's limit

}  // namespace

VulkanStepModel::VulkanStepModel(const LoadOptions& options, const GraphFactory& make_graph, const Shard* shard)
    : max_frames_(options.frames_per_step), depth_(options.rollback_depth) {
  check_frames_per_step(options.frames_per_step);
  if (options.max_streams < 0)
    throw Error("max_streams must be at least 1 (or 0 for automatic), got " + std::to_string(options.max_streams));
  if (depth_ < 0) throw Error("rollback_depth must be >= 0, got " + std::to_string(depth_));
  if (shard) {
    ctx_ = shard->ctx;
    shard_capacity_ = shard->capacity;
  } else {
    ctx_ = std::make_shared<VulkanContext>(
        VulkanContext::Options{options.device, options.validation, options.cache_dir, ""});
  }
  idle_.ctx = ctx_.get();
  cbs_ = CommandBuffers(ctx_->device(), ctx_->command_pool());
  GraphBuilder builder(*this);
  graph_ = make_graph(builder);
  if (capacity_ == 0 || !described_)
    throw Error("internal: a Vulkan step graph did not call create_io() and describe()");
  finish();
}

VulkanStepModel::IdleGuard::~IdleGuard() {
  if (ctx) vkDeviceWaitIdle(ctx->device());
}

// ---- what a graph uses while it is built --------------------------------------------------------

VulkanContext& GraphBuilder::ctx() const { return *model_.ctx_; }
const DeviceCaps& GraphBuilder::caps() const { return model_.ctx_->caps(); }
void GraphBuilder::create_io(int capacity, int64_t d_input, int64_t d_output) {
  model_.create_io(capacity, d_input, d_output);
}
void GraphBuilder::create_io(const WeightsPlan& plan, int64_t d_input, int64_t d_output) {
  model_.capacity_plan_ = plan.capacity_plan;
  model_.requested_capacity_ = plan.capacity;
  // A shard holds at most what one binding holds; the first shard its share, a later one what
  // the sharded model gives it.
  const int slots = model_.shard_capacity_ > 0 ? model_.shard_capacity_ : plan.capacity_plan.shard_capacity;
  model_.create_io(std::min(slots, plan.capacity), d_input, d_output);
}
GpuBuffer& GraphBuilder::add_state(uint64_t floats_per_slot, const std::string& what) {
  return model_.add_state(floats_per_slot, what);
}
const GpuBuffer& GraphBuilder::step_input() const { return model_.step_in_; }
const GpuBuffer& GraphBuilder::outputs() const { return model_.outputs_; }
int GraphBuilder::capacity() const { return model_.capacity_; }
int GraphBuilder::step_rows() const { return model_.rows_; }
int GraphBuilder::frames_per_step() const { return model_.max_frames_; }
void GraphBuilder::describe(ModelInfo info, const StateHeader& header, const Tuning& tuning,
                            const WeightUploader& weights) {
  info.weight_type = weights.weight_type();
  info.tensors = weights.tensors();
  info.weight_bytes = weights.bytes();
  model_.info_ = std::move(info);
  model_.header_ = header;
  model_.tuning_ = tuning;
  model_.described_ = true;
}

void StepRecorder::dispatch(const ComputePipeline& pipeline, VkDescriptorSet set, uint32_t groups) {
  vkCmdBindPipeline(cb_, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.handle());
  vkCmdBindDescriptorSets(cb_, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.layout(), 0, 1, &set, 0, nullptr);
  const uint32_t x = std::min(std::max(groups, 1u), max_x_);
  vkCmdDispatch(cb_, x, ceil_div(std::max(groups, 1u), x), 1);
  compute_barrier(cb_);
  ++dispatches_;
}

// ---- load time ----------------------------------------------------------------------------------

void VulkanStepModel::create_io(int capacity, int64_t d_input, int64_t d_output) {
  capacity_ = capacity;
  if (requested_capacity_ == 0) requested_capacity_ = capacity;
  if (d_input == 0) max_frames_ = 1;  // token models take one token per stream and step
  out_rows_ = capacity * max_frames_;
  rows_ = std::max(out_rows_, kPrefillRows);
  d_input_ = d_input;
  d_output_ = d_output;
  const uint64_t cap = uint64_t(capacity), rows = uint64_t(rows_);
  in_words_ = uint32_t(STEP_IN_TOTAL_WORDS(rows, uint64_t(d_input)));
  step_in_ = GpuBuffer(*ctx_, in_words_ * 4ull, GpuBuffer::Kind::DeviceLocal, "step input");
  step_in_.fill_zero();
  // Two staging buffers for the two steps that may be in flight, then one per prefill token.
  for (int i = 0; i < 2 + kPrefillChunk; ++i) {
    staging_.emplace_back(*ctx_, in_words_ * 4ull, GpuBuffer::Kind::Upload, "step input staging");
    std::memset(staging_.back().mapped(), 0, in_words_ * 4ull);
  }
  outputs_ = GpuBuffer(*ctx_, rows * uint64_t(d_output) * 4, GpuBuffer::Kind::DeviceLocal, "step outputs");
  outputs_.fill_zero();
  ids_ = GpuBuffer(*ctx_, rows * 4, GpuBuffer::Kind::DeviceLocal, "sampled token ids");
  ids_.fill_zero();
  for (int p = 0; p < 2; ++p) {
    outputs_back_[p] = GpuBuffer(*ctx_, uint64_t(out_rows_) * uint64_t(d_output) * 4, GpuBuffer::Kind::Readback,
                                 "step outputs (host)");
    ids_back_[p] = GpuBuffer(*ctx_, cap * 4, GpuBuffer::Kind::Readback, "sampled token ids (host)");
  }
  fresh_.assign(cap, 1);
  marks_.assign(cap, 0);
  sampled_.assign(cap, 0);
  ring_head_.assign(cap, 0);
  history_.assign(cap, 0);
}

GpuBuffer& VulkanStepModel::add_state(uint64_t floats_per_slot, const std::string& what) {
  const uint64_t cap = uint64_t(capacity_);
  if (cap * floats_per_slot >= (1ull << 32))
    throw Error(what + ": " + std::to_string(cap) + " slots exceed the 2^32 floats one state buffer can index; "
                "lower max_streams");
  State& s = states_.emplace_back();
  s.floats = floats_per_slot;
  s.buffer = GpuBuffer(*ctx_, cap * floats_per_slot * 4, GpuBuffer::Kind::DeviceLocal, what);
  s.buffer.fill_zero();
  if (depth_ > 0) {
    // As many entries per ring buffer as one binding and one allocation hold (at least one: the
    // state buffer itself holds `capacity` of them within the same limits).
    const DeviceCaps& caps = ctx_->caps();
    const uint64_t limit = std::min(caps.max_storage_buffer_range, caps.max_memory_allocation_size);
    const uint64_t entries = cap * uint64_t(depth_);
    s.ring_entries = std::min(entries, std::max<uint64_t>(1, limit / (floats_per_slot * 4)));
    const uint64_t parts = ceil_div(entries, s.ring_entries);
    for (uint64_t i = 0; i < parts; ++i) {
      const uint64_t n = std::min(s.ring_entries, entries - i * s.ring_entries);
      s.rings.emplace_back(*ctx_, n * floats_per_slot * 4, GpuBuffer::Kind::DeviceLocal,
                           what + " rollback ring" + (parts > 1 ? " part " + std::to_string(i) : ""));
    }
  }
  state_floats_ += floats_per_slot;
  return s.buffer;
}

VkCommandBuffer VulkanStepModel::record(const std::function<void(StepRecorder&)>& commands, uint64_t* dispatches,
                                        bool one_row) {
  VkCommandBuffer cb = cbs_.allocate();
  VkCommandBufferBeginInfo bi{};
  bi.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
  // A prefill submit lists the body once per token.
  bi.flags = VK_COMMAND_BUFFER_USAGE_SIMULTANEOUS_USE_BIT;
  VK_CHECK(vkBeginCommandBuffer(cb, &bi));
  full_barrier(cb);
  StepRecorder recorder(cb, ctx_->caps().max_workgroup_count_x, one_row);
  commands(recorder);
  VK_CHECK(vkEndCommandBuffer(cb));
  counters_.recordings++;
  if (dispatches) *dispatches += recorder.dispatches();
  return cb;
}

// Batch buckets for copying outputs back: powers of two up to the capacity, so a step copies at
// most twice the rows it produced.
uint32_t VulkanStepModel::bucket_of(int batch) const {
  uint32_t bucket = 0;
  while ((1 << bucket) < batch) ++bucket;
  return bucket;
}

void VulkanStepModel::finish() {
  info_.backend = "vulkan";
  info_.device_name = ctx_->caps().name;
  header_.payload_floats = state_floats_;
  const uint32_t rows = uint32_t(rows_);

  // The engine's own pipeline: the sampler (token models), in the work split of the graph.
  arena_ = std::make_unique<DescriptorArena>(*ctx_, 1, 3);
  if (info_.vocab_size > 0) {
    const SampleTokensSpec spec{.local = sampler_local(tuning_), .vocab = uint32_t(d_output_), .capacity = rows,
                                .max_top_k = uint32_t(kMaxTopK)};
    sample_pipe_ = std::make_unique<ComputePipeline>(*ctx_, ShaderId::sample_tokens, 3, spec.constants());
    sample_set_ = arena_->make_set(*sample_pipe_, {{&step_in_}, {&outputs_}, {&ids_}});
  }
  record_all();
  create_completion();
  describe_memory();
  ctx_->save_pipeline_cache();
  // The longest submit: a prefill chunk of (prologue, save, body) per token plus head and copy.
  submit_list_.reserve(3 * kPrefillChunk + 8);

  // Warm up: run the step once with zero streams, so drivers that compile on first use do it now.
  std::memset(staging_[0].mapped(), 0, in_words_ * 4ull);
  std::vector<VkCommandBuffer>& cbs = submit_list_;
  cbs.assign({prologue_[0]});
  if (save_) cbs.push_back(save_);
  cbs.insert(cbs.end(), {body_, head_});
  if (body_one_ != body_) cbs.insert(cbs.end(), {body_one_, head_one_});
  if (sample_) cbs.push_back(sample_);
  submit_commands(cbs, 0);
  wait_ticket(flight_.back().ticket);
  flight_.clear();
  counters_.submits = 0;
}

// Where the memory went: every live buffer of this model is counted by the context, so "other"
// (activations, step inputs, staging) is the rest once the named parts are taken out.
void VulkanStepModel::describe_memory() {
  MemoryPlan& m = info_.memory;
  m = MemoryPlan{};
  uint64_t weights = 0;
  for (const TensorStorage& t : info_.tensors) {
    auto it = std::find_if(m.weights.begin(), m.weights.end(), [&](const auto& w) { return w.first == t.type; });
    if (it == m.weights.end()) it = m.weights.insert(m.weights.end(), {t.type, 0});
    it->second += t.bytes;
    weights += t.bytes;
  }
  for (const State& s : states_) {
    m.state_bytes += s.buffer.size();
    for (const GpuBuffer& r : s.rings) m.rollback_bytes += r.size();
  }
  m.outputs_bytes = outputs_.size() + outputs_back_[0].size() + outputs_back_[1].size();
  m.total_bytes = ctx_->buffer_bytes();
  m.other_bytes = m.total_bytes - std::min(m.total_bytes, weights + m.state_bytes + m.rollback_bytes + m.outputs_bytes);
  m.capacity = capacity_;
  m.capacity_reason = capacity_reason_name(capacity_plan_.reason);
  m.capacity_detail = capacity_plan_.detail;
  m.budget_bytes = stream_memory_budget(ctx_->caps());
  m.unified_memory = ctx_->caps().unified_memory;
  m.upload = upload_path_name(ctx_->caps().upload);
}

void VulkanStepModel::record_all() {
  const uint32_t cap = uint32_t(capacity_), rows = uint32_t(rows_);
  for (size_t i = 0; i < staging_.size(); ++i) {
    prologue_.push_back(record([&](StepRecorder& r) {
      const VkBufferCopy copy{0, 0, in_words_ * 4ull};
      vkCmdCopyBuffer(r.command_buffer(), staging_[i].handle(), step_in_.handle(), 1, &copy);
    }));
  }
  uint64_t twins = 0;
  body_ = record([&](StepRecorder& r) { graph_->record_body(r); twins += r.twins(); }, &body_dispatches_);
  head_ = record([&](StepRecorder& r) { graph_->record_head(r); twins += r.twins(); }, &head_dispatches_);
  body_one_ = body_;
  head_one_ = head_;
  if (twins > 0) {
    body_one_ = record([&](StepRecorder& r) { graph_->record_body(r); }, nullptr, true);
    head_one_ = record([&](StepRecorder& r) { graph_->record_head(r); }, nullptr, true);
  }
  if (sample_pipe_) sample_ = record([&](StepRecorder& r) { r.dispatch(*sample_pipe_, sample_set_, cap); });
  if (depth_ > 0) {
    // state_save: one dispatch per part of each state buffer's ring. Pipelines differ only in
    // FLOATS and the part's entries.
    struct SavePipe {
      uint64_t floats, first, entries;
      std::unique_ptr<ComputePipeline> pipe;
    };
    std::vector<SavePipe> pipes;
    uint32_t parts = 0;
    for (const State& s : states_) parts += uint32_t(s.rings.size());
    auto save_arena = std::make_unique<DescriptorArena>(*ctx_, parts, parts * 3);
    save_ = record([&](StepRecorder& r) {
      for (State& s : states_) {
        for (size_t part = 0; part < s.rings.size(); ++part) {
          const uint64_t first = part * s.ring_entries, entries = s.rings[part].size() / (s.floats * 4);
          ComputePipeline* pipe = nullptr;
          for (SavePipe& p : pipes)
            if (p.floats == s.floats && p.first == first && p.entries == entries) pipe = p.pipe.get();
          if (!pipe) {
            const StateSaveSpec spec{.local = kSaveLocal, .floats = uint32_t(s.floats), .capacity = rows,
                                     .first_entry = uint32_t(first), .entries = uint32_t(entries)};
            pipes.push_back({s.floats, first, entries,
                             std::make_unique<ComputePipeline>(*ctx_, ShaderId::state_save, 3, spec.constants())});
            pipe = pipes.back().pipe.get();
          }
          const VkDescriptorSet set = save_arena->make_set(*pipe, {{&step_in_}, {&s.buffer}, {&s.rings[part]}});
          r.dispatch(*pipe, set, ceil_div(s.floats, kSaveLocal));
        }
      }
    }, &save_dispatches_);
    // The recording references the pipelines and sets: keep them for the model's life.
    for (SavePipe& p : pipes) save_pipes_.push_back(std::move(p.pipe));
    save_arena_ = std::move(save_arena);
  }
  for (int p = 0; p < 2; ++p) {
    ids_copy_[p] = record([&](StepRecorder& r) {
      const VkBufferCopy ids{0, 0, cap * 4ull};
      vkCmdCopyBuffer(r.command_buffer(), ids_.handle(), ids_back_[p].handle(), 1, &ids);
      host_barrier(r.command_buffer());
    });
    const uint32_t out_rows = uint32_t(out_rows_);
    for (uint32_t bucket = 0; (1u << bucket) < 2 * out_rows; ++bucket) {
      outputs_copy_[p].push_back(record([&](StepRecorder& r) {
        const uint64_t n_rows = std::min<uint64_t>(1ull << bucket, out_rows);
        const VkBufferCopy out{0, 0, n_rows * uint64_t(d_output_) * 4};
        vkCmdCopyBuffer(r.command_buffer(), outputs_.handle(), outputs_back_[p].handle(), 1, &out);
        host_barrier(r.command_buffer());
      }));
    }
  }
}

// Completion tracking: a timeline semaphore where the device has one, else a fence per parity.
void VulkanStepModel::create_completion() {
  VkDevice dev = ctx_->device();
  if (ctx_->caps().timeline_semaphores) {
    VkSemaphoreTypeCreateInfo ti{};
    ti.sType = VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO;
    ti.semaphoreType = VK_SEMAPHORE_TYPE_TIMELINE;
    ti.initialValue = 0;
    VkSemaphoreCreateInfo si{};
    si.sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO;
    si.pNext = &ti;
    timeline_ = DeviceHandle<VkSemaphore>(dev, vkDestroySemaphore);
    VK_CHECK(vkCreateSemaphore(dev, &si, nullptr, timeline_.out()));
  } else {
    VkFenceCreateInfo fi{};
    fi.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
    for (DeviceHandle<VkFence>& f : fences_) {
      f = DeviceHandle<VkFence>(dev, vkDestroyFence);
      VK_CHECK(vkCreateFence(dev, &fi, nullptr, f.out()));
    }
  }
}

// ---- submission ---------------------------------------------------------------------------------

void VulkanStepModel::submit_commands(const std::vector<VkCommandBuffer>& cbs, uint64_t dispatches) {
  const uint64_t ticket = next_ticket_++;
  VkSubmitInfo si{};
  si.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
  si.commandBufferCount = uint32_t(cbs.size());
  si.pCommandBuffers = cbs.data();
  VkTimelineSemaphoreSubmitInfo ti{};
  VkFence fence = VK_NULL_HANDLE;
  const VkSemaphore timeline = timeline_.get();
  if (timeline) {
    ti.sType = VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO;
    ti.signalSemaphoreValueCount = 1;
    ti.pSignalSemaphoreValues = &ticket;
    si.pNext = &ti;
    si.signalSemaphoreCount = 1;
    si.pSignalSemaphores = &timeline;
  } else {
    fence = fences_[ticket & 1].get();
  }
  VK_CHECK(vkQueueSubmit(ctx_->queue(), 1, &si, fence));
  InFlight f;
  f.ticket = ticket;
  flight_.push_back(f);
  counters_.submits++;
  counters_.dispatches += dispatches;
}

void VulkanStepModel::wait_ticket(uint64_t ticket) {
  if (const VkSemaphore timeline = timeline_.get()) {
    VkSemaphoreWaitInfo wi{};
    wi.sType = VK_STRUCTURE_TYPE_SEMAPHORE_WAIT_INFO;
    wi.semaphoreCount = 1;
    wi.pSemaphores = &timeline;
    wi.pValues = &ticket;
    VK_CHECK(vkWaitSemaphores(ctx_->device(), &wi, UINT64_MAX));
  } else {
    VkFence fence = fences_[ticket & 1].get();
    VK_CHECK(vkWaitForFences(ctx_->device(), 1, &fence, VK_TRUE, UINT64_MAX));
    VK_CHECK(vkResetFences(ctx_->device(), 1, &fence));
  }
}

void VulkanStepModel::check_idle(const char* what) const {
  if (!flight_.empty())
    throw Error(std::string(what) + " while " + std::to_string(flight_.size()) +
                " submitted step(s) are not collected; call collect() first");
}

// Saves where each slot's pre-step state goes in its rollback ring and advances the ring.
void VulkanStepModel::push_rollback(const int32_t* slots, int batch, uint32_t* ring_index) {
  for (int b = 0; b < batch; ++b) {
    const int s = slots[b];
    ring_index[b] = uint32_t(s) * uint32_t(depth_) + ring_head_[size_t(s)];
    ring_head_[size_t(s)] = (ring_head_[size_t(s)] + 1) % uint32_t(depth_);
    history_[size_t(s)] = std::min(history_[size_t(s)] + 1, depth_);
  }
}

void VulkanStepModel::stage(int staging, const int32_t* tokens, const float* frames, const int32_t* slots,
                            int batch, const SamplingParams* sampling, int frames_per_stream) {
  // Everything is checked before anything changes.
  check_batch_and_slots(slots, batch, capacity_, marks_);
  if (d_input_ == 0) {
    for (int b = 0; b < batch; ++b) check_token(tokens[b], info_.vocab_size);
  }
  if (sampling) {
    for (int b = 0; b < batch; ++b) {
      check_sampling(sampling[b]);
      if (sampling[b].top_k > kMaxTopK && sampling[b].temperature != 0.0f)
        throw Error("sampling top_k " + std::to_string(sampling[b].top_k) + " exceeds the device sampler's limit of " +
                    std::to_string(kMaxTopK));
    }
  }
  const int F = frames_per_stream;
  uint32_t* in = static_cast<uint32_t*>(staging_[size_t(staging)].mapped());
  const uint32_t cap = uint32_t(rows_);  // the per-row arrays' stride (layout: shaders/step_input.h)
  in[STEP_IN_BATCH_WORD] = uint32_t(batch * F);
  in[STEP_IN_FRAMES_WORD] = uint32_t(F);
  for (int b = 0; b < batch; ++b) {
    const size_t s = size_t(slots[b]);
    // A stream's F frames are rows b*F .. b*F+F-1; only the first may start from a zero state.
    for (int t = 0; t < F; ++t) {
      const uint32_t row = uint32_t(b * F + t);
      in[STEP_IN_WORD(STEP_IN_TOKEN, row, cap)] = tokens ? uint32_t(tokens[b]) : 0u;
      in[STEP_IN_WORD(STEP_IN_SLOT, row, cap)] = uint32_t(slots[b]);
      in[STEP_IN_WORD(STEP_IN_FRESH, row, cap)] = t == 0 ? fresh_[s] : 0u;
    }
    if (sampling) {
      const uint32_t row = uint32_t(b);
      in[STEP_IN_WORD(STEP_IN_TEMPERATURE, row, cap)] = float_bits(sampling[b].temperature);
      in[STEP_IN_WORD(STEP_IN_TOPK, row, cap)] = uint32_t(sampling[b].top_k);
      Rng rng(sampling[b].seed);
      in[STEP_IN_WORD(STEP_IN_DRAW, row, cap)] = float_bits(rng.skip(sampled_[s]).next_float());
      sampled_[s]++;
    }
    fresh_[s] = 0;
  }
  if (frames)
    std::memcpy(in + STEP_IN_FRAME_WORD(0u, 0u, cap, 0u), frames, size_t(batch) * size_t(F) * size_t(d_input_) * 4);
  if (depth_ > 0) push_rollback(slots, batch, in + STEP_IN_WORD(STEP_IN_RING, 0u, cap));
}

void VulkanStepModel::submit(const StepRequest& r) {
  if (flight_.size() >= 2) throw Error("two steps are already in flight; collect() one first");
  if (d_input_ == 0 && !r.tokens) throw Error("submit: this model takes token ids (StepRequest::tokens)");
  if (d_input_ > 0 && !r.frames) throw Error("submit: this model takes input frames (StepRequest::frames)");
  if (r.sampling && info_.vocab_size == 0) throw Error("submit: sampling needs a token model");
  const int F = r.frames_per_stream;
  check_frames_per_stream(F, max_frames_, d_input_, depth_);
  const int parity = next_parity_;
  stage(parity, r.tokens, r.frames, r.slots, r.batch, r.sampling, F);
  // submit_list_ and flight_ have their room from load time: nothing here allocates.
  std::vector<VkCommandBuffer>& cbs = submit_list_;
  cbs.assign({prologue_[size_t(parity)]});
  uint64_t dispatches = body_dispatches_;
  if (save_) {
    cbs.push_back(save_);
    dispatches += save_dispatches_;
  }
  cbs.push_back(body_for(r.batch * F));
  const bool head = r.sampling || r.want_outputs;
  if (head) {
    cbs.push_back(head_for(r.batch * F));
    dispatches += head_dispatches_;
  }
  if (r.sampling) {
    cbs.push_back(sample_);
    cbs.push_back(ids_copy_[size_t(parity)]);
    dispatches += 1;
  }
  if (r.want_outputs) cbs.push_back(outputs_copy_[size_t(parity)][bucket_of(r.batch * F)]);
  submit_commands(cbs, dispatches);
  InFlight& f = flight_.back();
  f.batch = r.batch;
  f.rows = r.batch * F;
  f.parity = parity;
  f.sampled = r.sampling != nullptr;
  f.outputs = r.want_outputs;
  next_parity_ ^= 1;
  counters_.steps++;
}

void VulkanStepModel::collect(int32_t* next_tokens, float* outputs) {
  if (flight_.empty()) throw Error("collect: no submitted step to collect");
  const InFlight f = flight_.front();
  wait_ticket(f.ticket);
  flight_.pop_front();
  if (f.sampled && next_tokens) std::memcpy(next_tokens, ids_back_[size_t(f.parity)].mapped(), size_t(f.batch) * 4);
  if (f.outputs && outputs)
    std::memcpy(outputs, outputs_back_[size_t(f.parity)].mapped(), size_t(f.rows) * size_t(d_output_) * 4);
}

// The blocking calls: one submit and its collect, with nothing else in flight.
void VulkanStepModel::step_now(const char* what, StepRequest r, int32_t* next_tokens, float* outputs) {
  check_idle(what);
  r.want_outputs = outputs != nullptr;
  submit(r);
  collect(next_tokens, outputs);
}

void VulkanStepModel::step(const int32_t* tokens, const int32_t* slots, int batch, float* logits) {
  if (d_input_ > 0) throw Error("model '" + info_.architecture + "' takes input frames (step_frames), not token ids");
  step_now("step", {.tokens = tokens, .slots = slots, .batch = batch}, nullptr, logits);
}

void VulkanStepModel::step_frames(const float* frames, const int32_t* slots, int batch, float* outputs) {
  if (d_input_ == 0) throw Error("model '" + info_.architecture + "' takes token ids (step), not input frames");
  step_now("step_frames", {.frames = frames, .slots = slots, .batch = batch}, nullptr, outputs);
}

void VulkanStepModel::step_sample(const int32_t* tokens, const int32_t* slots, int batch,
                                  const SamplingParams* params, int32_t* next_tokens, float* logits) {
  step_now("step_sample", {.tokens = tokens, .slots = slots, .batch = batch, .sampling = params}, next_tokens, logits);
}

void VulkanStepModel::stage_prompt(int staging, const int32_t* tokens, int n, int slot) {
  uint32_t* in = static_cast<uint32_t*>(staging_[size_t(staging)].mapped());
  const uint32_t cap = uint32_t(rows_);
  in[STEP_IN_BATCH_WORD] = uint32_t(n);
  in[STEP_IN_FRAMES_WORD] = 1u;
  for (int t = 0; t < n; ++t) {
    const uint32_t row = uint32_t(t);
    in[STEP_IN_WORD(STEP_IN_TOKEN, row, cap)] = uint32_t(tokens[t]);
    in[STEP_IN_WORD(STEP_IN_SLOT, row, cap)] = uint32_t(slot);
    // Later rows continue the state the earlier rows leave.
    in[STEP_IN_WORD(STEP_IN_FRESH, row, cap)] = t == 0 ? fresh_[size_t(slot)] : 0u;
  }
  fresh_[size_t(slot)] = 0;
}

// The prompt's tokens become the rows of a step: every projection then reads its weights once
// for up to kPrefillRows tokens (a matrix-matrix product instead of one matrix-vector product per
// token), while the conv and scan shaders walk the rows in order, carrying the state from token to
// token - the recurrence computed exactly as the step computes it. The last token runs as an
// ordinary step in the same submit, so only its logits are computed.
void VulkanStepModel::prefill(int slot, const int32_t* tokens, int n, float* last_logits) {
  if (d_input_ > 0) throw Error("model '" + info_.architecture + "' takes input frames, not a token prompt");
  check_idle("prefill");
  check_prefill(slot, tokens, n, capacity_, info_.vocab_size);
  // The rollback ring saves one state per step, not per row: keep one step per token then.
  if (depth_ > 0) return prefill_by_steps(slot, tokens, n, last_logits);
  int t0 = 0;
  while (true) {
    const int count = std::min(rows_, n - 1 - t0);
    std::vector<VkCommandBuffer>& cbs = submit_list_;
    cbs.clear();
    uint64_t dispatches = 0;
    if (count > 0) {
      stage_prompt(2, tokens + t0, count, slot);
      cbs.insert(cbs.end(), {prologue_[2], body_for(count)});
      dispatches += body_dispatches_;
      counters_.steps += uint64_t(count);
      t0 += count;
    }
    const bool last = t0 == n - 1;
    if (last) {
      stage(3, &tokens[n - 1], nullptr, &slot, 1, nullptr);
      cbs.insert(cbs.end(), {prologue_[3], body_for(1)});
      dispatches += body_dispatches_;
      counters_.steps++;
      if (last_logits) {
        cbs.insert(cbs.end(), {head_for(1), outputs_copy_[0][0]});
        dispatches += head_dispatches_;
      }
    }
    submit_commands(cbs, dispatches);
    wait_ticket(flight_.back().ticket);
    flight_.clear();
    if (last) break;
  }
  if (last_logits) std::memcpy(last_logits, outputs_back_[0].mapped(), size_t(d_output_) * 4);
}

// Up to kPrefillChunk tokens per submit, one step each: every token's inputs sit in their own
// staging buffer and the submit lists (prologue_i, rollback save, body) once per token.
void VulkanStepModel::prefill_by_steps(int slot, const int32_t* tokens, int n, float* last_logits) {
  for (int t0 = 0; t0 < n; t0 += kPrefillChunk) {
    const int count = std::min(kPrefillChunk, n - t0);
    std::vector<VkCommandBuffer>& cbs = submit_list_;
    cbs.clear();
    uint64_t dispatches = 0;
    for (int t = 0; t < count; ++t) {
      stage(2 + t, &tokens[t0 + t], nullptr, &slot, 1, nullptr);
      cbs.push_back(prologue_[size_t(2 + t)]);
      if (save_) {
        cbs.push_back(save_);
        dispatches += save_dispatches_;
      }
      cbs.push_back(body_for(1));
      dispatches += body_dispatches_;
      counters_.steps++;
    }
    const bool last = t0 + count == n;
    if (last && last_logits) {
      cbs.push_back(head_for(1));
      cbs.push_back(outputs_copy_[0][0]);
      dispatches += head_dispatches_;
    }
    submit_commands(cbs, dispatches);
    wait_ticket(flight_.back().ticket);
    flight_.clear();
    if (last && last_logits) std::memcpy(last_logits, outputs_back_[0].mapped(), size_t(d_output_) * 4);
  }
}

// ---- per-slot state: reset, snapshot, restore, fork, rollback -----------------------------------
// One-time command buffers (run_once): never on the per-token path.

void VulkanStepModel::reset(int slot) {
  check_slot_index(slot, capacity_);
  check_idle("reset");
  fresh_[size_t(slot)] = 1;
  sampled_[size_t(slot)] = 0;
  history_[size_t(slot)] = 0;
}

namespace {
void state_barrier(VkCommandBuffer cb, VkPipelineStageFlags src_stage, VkAccessFlags src,
                   VkPipelineStageFlags dst_stage, VkAccessFlags dst) {
  VkMemoryBarrier mb{};
  mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
  mb.srcAccessMask = src;
  mb.dstAccessMask = dst;
  vkCmdPipelineBarrier(cb, src_stage, dst_stage, 0, 1, &mb, 0, nullptr, 0, nullptr);
}
constexpr VkAccessFlags kShaderRW = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
constexpr VkAccessFlags kTransferRW = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;

// Copies recorded between the compute work before and after them.
template <typename F>
void with_state_barriers(VkCommandBuffer cb, F&& copies) {
  state_barrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, kShaderRW, VK_PIPELINE_STAGE_TRANSFER_BIT, kTransferRW);
  copies();
  state_barrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_HOST_BIT, kShaderRW | VK_ACCESS_HOST_READ_BIT);
}
}  // namespace

void VulkanStepModel::copy_slot_states(VkCommandBuffer cb, int slot, VkBuffer host, bool to_host) const {
  uint64_t offset = 0;
  for (const State& s : states_) {
    const uint64_t bytes = s.floats * 4;
    VkBufferCopy c{uint64_t(slot) * bytes, offset, bytes};
    if (to_host) {
      vkCmdCopyBuffer(cb, s.buffer.handle(), host, 1, &c);
    } else {
      std::swap(c.srcOffset, c.dstOffset);
      vkCmdCopyBuffer(cb, host, s.buffer.handle(), 1, &c);
    }
    offset += bytes;
  }
}

std::vector<uint8_t> VulkanStepModel::snapshot(int slot) const {
  check_slot_index(slot, capacity_);
  check_idle("snapshot");
  std::vector<float> payload(state_floats_, 0.0f);
  if (!fresh_[size_t(slot)]) {  // a fresh slot logically holds zeros, whatever its buffers contain
    GpuBuffer host(*ctx_, payload.size() * 4, GpuBuffer::Kind::Readback, "state snapshot");
    ctx_->run_once([&](VkCommandBuffer cb) {
      with_state_barriers(cb, [&] { copy_slot_states(cb, slot, host.handle(), true); });
    });
    std::memcpy(payload.data(), host.mapped(), payload.size() * 4);
  }
  return encode_state(header_, payload.data(), payload.size());
}

void VulkanStepModel::restore(int slot, const uint8_t* data, size_t size) {
  check_slot_index(slot, capacity_);
  check_idle("restore");
  const std::vector<float> payload = decode_state(data, size, header_);  // throws before any change
  GpuBuffer host(*ctx_, payload.size() * 4, GpuBuffer::Kind::Upload, "state restore");
  std::memcpy(host.mapped(), payload.data(), payload.size() * 4);
  ctx_->run_once([&](VkCommandBuffer cb) {
    with_state_barriers(cb, [&] { copy_slot_states(cb, slot, host.handle(), false); });
  });
  fresh_[size_t(slot)] = 0;
  history_[size_t(slot)] = 0;
}

void VulkanStepModel::fork(int from_slot, int to_slot) {
  check_slot_index(from_slot, capacity_);
  check_slot_index(to_slot, capacity_);
  check_idle("fork");
  if (from_slot == to_slot) return;
  fresh_[size_t(to_slot)] = fresh_[size_t(from_slot)];
  sampled_[size_t(to_slot)] = sampled_[size_t(from_slot)];
  history_[size_t(to_slot)] = 0;
  if (fresh_[size_t(from_slot)]) return;  // both start from zeros: nothing to copy
  ctx_->run_once([&](VkCommandBuffer cb) {
    with_state_barriers(cb, [&] {
      for (const State& s : states_) {
        const uint64_t bytes = s.floats * 4;  // same buffer, distinct slots: never overlapping
        const VkBufferCopy c{uint64_t(from_slot) * bytes, uint64_t(to_slot) * bytes, bytes};
        vkCmdCopyBuffer(cb, s.buffer.handle(), s.buffer.handle(), 1, &c);
      }
    });
  });
}

void VulkanStepModel::fork_to(int from_slot, VulkanStepModel& to, int to_slot) {
  check_slot_index(from_slot, capacity_);
  check_slot_index(to_slot, to.capacity_);
  check_idle("fork");
  to.check_idle("fork");
  if (&to == this) return fork(from_slot, to_slot);
  if (to.ctx_ != ctx_ || to.states_.size() != states_.size())
    throw Error("internal: fork_to() between models that are not shards of one model");
  to.fresh_[size_t(to_slot)] = fresh_[size_t(from_slot)];
  to.sampled_[size_t(to_slot)] = sampled_[size_t(from_slot)];
  to.history_[size_t(to_slot)] = 0;
  if (fresh_[size_t(from_slot)]) return;
  ctx_->run_once([&](VkCommandBuffer cb) {
    with_state_barriers(cb, [&] {
      for (size_t i = 0; i < states_.size(); ++i) {
        const uint64_t bytes = states_[i].floats * 4;
        const VkBufferCopy c{uint64_t(from_slot) * bytes, uint64_t(to_slot) * bytes, bytes};
        vkCmdCopyBuffer(cb, states_[i].buffer.handle(), to.states_[i].buffer.handle(), 1, &c);
      }
    });
  });
}

void VulkanStepModel::rollback(int slot, int steps) {
  check_slot_index(slot, capacity_);
  check_idle("rollback");
  check_rollback(slot, steps, depth_, history_[size_t(slot)]);
  if (steps == 0) return;
  // The entry `steps` behind the ring head holds the state before the steps-th most recent step.
  const uint32_t K = uint32_t(depth_);
  const uint32_t entry = (ring_head_[size_t(slot)] + 2 * K - uint32_t(steps)) % K;
  ctx_->run_once([&](VkCommandBuffer cb) {
    with_state_barriers(cb, [&] {
      for (const State& s : states_) {
        const uint64_t bytes = s.floats * 4;
        const uint64_t e = uint64_t(slot) * K + entry;  // its ring entry, in part e / ring_entries
        const VkBufferCopy c{(e % s.ring_entries) * bytes, uint64_t(slot) * bytes, bytes};
        vkCmdCopyBuffer(cb, s.rings[e / s.ring_entries].handle(), s.buffer.handle(), 1, &c);
      }
    });
  });
  ring_head_[size_t(slot)] = entry;
  history_[size_t(slot)] -= steps;
  fresh_[size_t(slot)] = 0;
}

int VulkanStepModel::rollback_available(int slot) const {
  check_slot_index(slot, capacity_);
  return history_[size_t(slot)];
}

}  // namespace vkssm

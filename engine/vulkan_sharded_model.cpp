#include "engine/vulkan_sharded_model.h"

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "engine/model_checks.h"
#include "engine/vk/vulkan_context.h"
#include "host/error.h"

namespace vkssm {
namespace {

class ShardedModel final : public Model {
 public:
  ShardedModel(std::vector<std::unique_ptr<VulkanStepModel>> shards, int capacity, int rollback_depth, int max_frames)
      : shards_(std::move(shards)), capacity_(capacity), per_shard_(shards_[0]->capacity()), depth_(rollback_depth),
        max_frames_(max_frames) {
    const ModelInfo& first = shards_[0]->info();
    d_input_ = first.d_input;
    d_output_ = first.d_output;
    vocab_ = first.vocab_size;
    for (Flight& f : flights_) {
      f.parts.resize(shards_.size());
      for (Part& p : f.parts) {
        const size_t n = size_t(per_shard_);
        p.rows.resize(n);
        p.slots.resize(n);
        p.tokens.resize(n);
        p.frames.resize(n * size_t(max_frames_) * size_t(std::max<int64_t>(d_input_, 0)));
        p.sampling.resize(n);
      }
    }
    ids_.resize(size_t(per_shard_));
    outputs_.resize(size_t(per_shard_) * size_t(max_frames_) * size_t(d_output_));
    marks_.assign(size_t(capacity_), 0);
    describe();
  }
  // The first shard owns the weights the others alias: it goes last.
  ~ShardedModel() override {
    while (!shards_.empty()) shards_.pop_back();
  }

  const ModelInfo& info() const override { return info_; }
  int capacity() const override { return capacity_; }
  int max_top_k() const override { return shards_[0]->max_top_k(); }
  int in_flight() const override { return int(flight_count_); }

  void reset(int slot) override {
    check_slot_index(slot, capacity_);
    shard_of(slot).reset(local(slot));
  }

  void step(const int32_t* tokens, const int32_t* slots, int batch, float* logits) override {
    if (d_input_ > 0) throw Error("model '" + info_.architecture + "' takes input frames (step_frames), not token ids");
    step_now("step", {.tokens = tokens, .slots = slots, .batch = batch}, nullptr, logits);
  }
  void step_frames(const float* frames, const int32_t* slots, int batch, float* outputs) override {
    if (d_input_ == 0) throw Error("model '" + info_.architecture + "' takes token ids (step), not input frames");
    step_now("step_frames", {.frames = frames, .slots = slots, .batch = batch}, nullptr, outputs);
  }
  void step_sample(const int32_t* tokens, const int32_t* slots, int batch, const SamplingParams* params,
                   int32_t* next_tokens, float* logits) override {
    step_now("step_sample", {.tokens = tokens, .slots = slots, .batch = batch, .sampling = params}, next_tokens,
             logits);
  }

  void prefill(int slot, const int32_t* tokens, int n, float* last_logits) override {
    if (d_input_ > 0) throw Error("model '" + info_.architecture + "' takes input frames, not a token prompt");
    check_idle("prefill");
    check_prefill(slot, tokens, n, capacity_, vocab_);  // errors name the model's slot, not the shard's
    shard_of(slot).prefill(local(slot), tokens, n, last_logits);
  }

  void rollback(int slot, int steps) override {
    check_slot_index(slot, capacity_);
    check_idle("rollback");
    check_rollback(slot, steps, depth_, shard_of(slot).rollback_available(local(slot)));
    shard_of(slot).rollback(local(slot), steps);
  }
  int rollback_available(int slot) const override {
    check_slot_index(slot, capacity_);
    return shard_of(slot).rollback_available(local(slot));
  }

  StepCounters counters() const override {
    StepCounters c;
    c.steps = steps_;
    for (const auto& s : shards_) {
      const StepCounters sc = s->counters();
      c.submits += sc.submits;
      c.dispatches += sc.dispatches;
      c.recordings += sc.recordings;
    }
    return c;
  }

  std::vector<uint8_t> snapshot(int slot) const override {
    check_slot_index(slot, capacity_);
    check_idle("snapshot");
    return shard_of(slot).snapshot(local(slot));
  }
  void restore(int slot, const uint8_t* data, size_t size) override {
    check_slot_index(slot, capacity_);
    check_idle("restore");
    shard_of(slot).restore(local(slot), data, size);
  }
  void fork(int from_slot, int to_slot) override {
    check_slot_index(from_slot, capacity_);
    check_slot_index(to_slot, capacity_);
    check_idle("fork");
    shard_of(from_slot).fork_to(local(from_slot), shard_of(to_slot), local(to_slot));
  }

  void submit(const StepRequest& r) override {
    if (flight_count_ >= 2) throw Error("two steps are already in flight; collect() one first");
    validate(r);
    Flight& f = flights_[(flight_first_ + flight_count_) % 2];
    f.sampled = r.sampling != nullptr;
    f.outputs = r.want_outputs;
    f.batch = r.batch;
    const size_t F = size_t(r.frames_per_stream);  // validated: 1 .. max_frames_
    f.frames = F;
    for (Part& p : f.parts) p.count = 0;
    for (int b = 0; b < r.batch; ++b) {
      Part& p = f.parts[size_t(r.slots[b] / per_shard_)];
      const size_t i = size_t(p.count++);
      p.rows[i] = b;
      p.slots[i] = local(r.slots[b]);
      if (r.tokens) p.tokens[i] = r.tokens[b];
      if (r.frames)
        std::copy_n(r.frames + size_t(b) * F * size_t(d_input_), F * size_t(d_input_),
                    p.frames.data() + i * F * size_t(d_input_));
      if (r.sampling) p.sampling[i] = r.sampling[b];
    }
    // Everything was checked above, so no shard throws part-way through a step.
    for (size_t s = 0; s < shards_.size(); ++s) {
      const Part& p = f.parts[s];
      if (p.count == 0) continue;
      shards_[s]->submit({.tokens = r.tokens ? p.tokens.data() : nullptr,
                          .frames = r.frames ? p.frames.data() : nullptr,
                          .slots = p.slots.data(),
                          .batch = p.count,
                          .sampling = r.sampling ? p.sampling.data() : nullptr,
                          .want_outputs = r.want_outputs,
                          .frames_per_stream = r.frames_per_stream});
    }
    ++flight_count_;
    ++steps_;
  }

  void collect(int32_t* next_tokens, float* outputs) override {
    if (flight_count_ == 0) throw Error("collect: no submitted step to collect");
    const Flight& f = flights_[flight_first_];
    flight_first_ = (flight_first_ + 1) % 2;
    --flight_count_;
    const size_t d = size_t(d_output_) * f.frames;  // a stream's outputs
    for (size_t s = 0; s < shards_.size(); ++s) {
      const Part& p = f.parts[s];
      if (p.count == 0) continue;
      shards_[s]->collect(ids_.data(), outputs_.data());
      for (int i = 0; i < p.count; ++i) {
        const size_t row = size_t(p.rows[size_t(i)]);
        if (f.sampled && next_tokens) next_tokens[row] = ids_[size_t(i)];
        if (f.outputs && outputs) std::copy_n(outputs_.data() + size_t(i) * d, d, outputs + row * d);
      }
    }
  }

 private:
  // One shard's rows of a step: rows[i] is the caller's row of the shard's row i.
  struct Part {
    int count = 0;
    std::vector<int> rows;
    std::vector<int32_t> slots, tokens;
    std::vector<float> frames;
    std::vector<SamplingParams> sampling;
  };
  // A submitted step: its parts stay until collect() puts the results back in order.
  struct Flight {
    std::vector<Part> parts;  // per shard
    int batch = 0;
    size_t frames = 1;        // frames per stream
    bool sampled = false, outputs = false;
  };

  VulkanStepModel& shard_of(int slot) const { return *shards_[size_t(slot / per_shard_)]; }
  int local(int slot) const { return slot % per_shard_; }

  void check_idle(const char* what) const {
    if (flight_count_ > 0)
      throw Error(std::string(what) + " while " + std::to_string(flight_count_) +
                  " submitted step(s) are not collected; call collect() first");
  }

  // The checks a shard would make, made for the whole step first (with the model's slot numbers).
  void validate(const StepRequest& r) {
    if (d_input_ == 0 && !r.tokens) throw Error("submit: this model takes token ids (StepRequest::tokens)");
    if (d_input_ > 0 && !r.frames) throw Error("submit: this model takes input frames (StepRequest::frames)");
    if (r.sampling && vocab_ == 0) throw Error("submit: sampling needs a token model");
    check_frames_per_stream(r.frames_per_stream, max_frames_, d_input_, depth_);
    check_batch_and_slots(r.slots, r.batch, capacity_, marks_);
    if (r.tokens && d_input_ == 0)
      for (int b = 0; b < r.batch; ++b) check_token(r.tokens[b], vocab_);
    if (r.sampling) {
      for (int b = 0; b < r.batch; ++b) {
        check_sampling(r.sampling[b]);
        if (r.sampling[b].top_k > max_top_k() && r.sampling[b].temperature != 0.0f)
          throw Error("sampling top_k " + std::to_string(r.sampling[b].top_k) +
                      " exceeds the device sampler's limit of " + std::to_string(max_top_k()));
      }
    }
  }

  void step_now(const char* what, StepRequest r, int32_t* next_tokens, float* outputs) {
    check_idle(what);
    r.want_outputs = outputs != nullptr;
    submit(r);
    collect(next_tokens, outputs);
  }

  // The first shard's description, with the memory of all shards.
  void describe() {
    info_ = shards_[0]->info();
    MemoryPlan& m = info_.memory;
    for (size_t s = 1; s < shards_.size(); ++s) {
      const MemoryPlan& o = shards_[s]->info().memory;
      m.state_bytes += o.state_bytes;
      m.rollback_bytes += o.rollback_bytes;
      m.outputs_bytes += o.outputs_bytes;
    }
    uint64_t weights = 0;
    for (const auto& w : m.weights) weights += w.second;
    m.total_bytes = shards_[0]->context()->buffer_bytes();
    m.other_bytes =
        m.total_bytes - std::min(m.total_bytes, weights + m.state_bytes + m.rollback_bytes + m.outputs_bytes);
    m.capacity = capacity_;
    m.shards = int(shards_.size());
  }

  std::vector<std::unique_ptr<VulkanStepModel>> shards_;  // [0] owns the weights
  int capacity_, per_shard_, depth_, max_frames_;
  int64_t d_input_ = 0, d_output_ = 0, vocab_ = 0;
  ModelInfo info_;
  std::array<Flight, 2> flights_;
  size_t flight_first_ = 0, flight_count_ = 0;
  uint64_t steps_ = 0;
  std::vector<int32_t> ids_;     // one shard's sampled ids
  std::vector<float> outputs_;   // one shard's outputs
  std::vector<uint8_t> marks_;   // duplicate-slot check, all zero between calls
};

}  // namespace

std::unique_ptr<Model> create_vulkan_model(const LoadOptions& options, const VulkanStepModel::GraphFactory& make_graph) {
  auto first = std::make_unique<VulkanStepModel>(options, make_graph);
  const int total = first->requested_capacity(), per = first->capacity();
  if (total <= per) return first;
  const std::shared_ptr<VulkanContext> ctx = first->context();
  std::vector<std::unique_ptr<VulkanStepModel>> shards;
  shards.push_back(std::move(first));
  VulkanContext::SharedWeights& shared = ctx->shared_weights();
  try {
    for (int start = per; start < total; start += per) {
      const VulkanStepModel::Shard shard{ctx, std::min(per, total - start)};
      shared.replay = true;
      shared.next = 0;
      shards.push_back(std::make_unique<VulkanStepModel>(options, make_graph, &shard));
      shared.replay = false;
    }
  } catch (...) {
    shared.replay = false;
    while (!shards.empty()) shards.pop_back();  // the weights' owner last
    throw;
  }
  return std::make_unique<ShardedModel>(std::move(shards), total, options.rollback_depth, options.frames_per_step);
}

}  // namespace vkssm

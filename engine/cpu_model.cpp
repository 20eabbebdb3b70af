#include "engine/cpu_model.h"

#include <algorithm>
#include <cstring>
#include <array>
#include <string>
#include <vector>

#include "engine/model_checks.h"
#include "engine/weight_storage.h"
#include "host/error.h"
#include "host/sampling.h"

namespace vkssm {

void CpuStepper::step_token(float*, int32_t, float*) const {
  throw Error("this model takes input frames (step_frames), not token ids");
}
void CpuStepper::step_frame(float*, const float*, float*) const {
  throw Error("this model takes token ids (step), not input frames");
}
void CpuStepper::step_tokens(float* const* states, const int32_t* tokens, int batch, float* out,
                             size_t out_stride) const {
  for (int b = 0; b < batch; ++b) step_token(states[b], tokens[b], out + size_t(b) * out_stride);
}
void CpuStepper::step_frames(float* const* states, const float* frames, size_t frame_stride, int batch, float* out,
                             size_t out_stride) const {
  for (int b = 0; b < batch; ++b)
    step_frame(states[b], frames + size_t(b) * frame_stride, out + size_t(b) * out_stride);
}
void CpuStepper::prefill(float* state, const int32_t* tokens, int n, float* last) const {
  for (int t = 0; t < n; ++t) step_token(state, tokens[t], last);
}

namespace {

class CpuModel final : public Model {
 public:
  CpuModel(std::unique_ptr<CpuStepper> stepper, const ModelInfo& info, const StateHeader& header,
           const LoadOptions& options)
      : stepper_(std::move(stepper)), info_(info), header_(header), depth_(options.rollback_depth),
        max_frames_(options.frames_per_step) {
    check_frames_per_step(max_frames_);
    // Host memory: "automatic" means a modest 64 streams.
    const int capacity = options.max_streams == 0 ? 64 : options.max_streams;
    if (capacity < 1) throw Error("max_streams must be at least 1 (or 0 for automatic), got " +
                                  std::to_string(capacity));
    if (depth_ < 0) throw Error("rollback_depth must be >= 0, got " + std::to_string(depth_));
    const bool fast = options.backend == BackendKind::Cpu;
    info_.backend = fast ? "cpu" : "reference";
    info_.device_name = stepper_->device_name();
    if (info_.device_name.empty())
      info_.device_name = fast ? "host CPU (reference: " + info_.architecture + " has no fast cpu stepper yet)"
                               : "host CPU (reference)";
    // What the stepper stores (fast steppers: fp16, int8 blocks, panel padding).
    info_.weight_bytes = stepper_->weight_bytes(info_.weight_bytes);
    if (info_.weight_type.empty()) info_.weight_type = stepper_->weight_type();
    // Q8_0 / Q4_0: the stepper's weights went through store_as(), the values the GPU computes with.
    if (info_.weight_type.empty())
      info_.weight_type = quant_type_of(options.weights) ? weight_storage_name(options.weights) : "f32";
    const size_t n = stepper_->state_floats();
    header_.payload_floats = n;
    slots_.resize(size_t(capacity));
    for (Slot& s : slots_) {
      s.state.assign(n, 0.0f);
      s.ring.assign(size_t(depth_), std::vector<float>(n, 0.0f));
    }
    scratch_.resize(size_t(std::max<int64_t>(info_.d_output, 1)));
    marks_.assign(size_t(capacity), 0);
    states_.resize(size_t(capacity));
  }

  const ModelInfo& info() const override { return info_; }
  int capacity() const override { return int(slots_.size()); }

  void reset(int slot) override {
    check_slot_index(slot, capacity());
    Slot& s = slots_[size_t(slot)];
    std::fill(s.state.begin(), s.state.end(), 0.0f);
    s.history = 0;
    s.sampled = 0;
  }

  void step(const int32_t* tokens, const int32_t* slots, int batch, float* logits) override {
    if (info_.vocab_size == 0)
      throw Error("model '" + info_.architecture + "' takes input frames (step_frames), not token ids");
    if (!tokens) throw Error("step: no token ids (tokens is null)");
    check_step(tokens, slots, batch);
    for (int b = 0; b < batch; ++b) states_[size_t(b)] = push(slots[b]).state.data();
    if (logits) stepper_->step_tokens(states_.data(), tokens, batch, logits, size_t(info_.d_output));
    else stepper_->step_tokens(states_.data(), tokens, batch, scratch_.data(), 0);
    counters_.steps++;
  }

  void step_frames(const float* frames, const int32_t* slots, int batch, float* outputs) override {
    step_frame_runs(frames, slots, batch, 1, outputs);
  }

  void step_sample(const int32_t* tokens, const int32_t* slots, int batch, const SamplingParams* params,
                   int32_t* next_tokens, float* logits) override {
    for (int b = 0; b < batch; ++b) check_sampling(params[b]);
    // The caller's buffer when it wants the logits, else ours (grown once to the largest batch).
    const size_t n = size_t(std::max(batch, 0)) * size_t(info_.d_output);
    if (!logits && sample_logits_.size() < n) sample_logits_.resize(n);
    float* all = logits ? logits : sample_logits_.data();
    step(tokens, slots, batch, all);
    for (int b = 0; b < batch; ++b) {
      Slot& s = slots_[size_t(slots[b])];
      next_tokens[b] = sample_nth(all + size_t(b) * info_.d_output, int(info_.d_output), params[b], s.sampled++);
    }
  }

  void prefill(int slot, const int32_t* tokens, int n, float* last_logits) override {
    if (info_.vocab_size == 0)
      throw Error("model '" + info_.architecture + "' takes input frames, not a token prompt");
    check_prefill(slot, tokens, n, capacity(), info_.vocab_size);
    // The rollback ring saves one state per token, so with one the prompt goes token by token.
    if (depth_ > 0) {
      for (int t = 0; t < n; ++t) step(&tokens[t], &slot, 1, t + 1 == n ? last_logits : nullptr);
      return;
    }
    stepper_->prefill(slots_[size_t(slot)].state.data(), tokens, n, last_logits ? last_logits : scratch_.data());
    counters_.steps += uint64_t(n);
  }

  void rollback(int slot, int steps) override {
    check_slot_index(slot, capacity());
    Slot& s = slots_[size_t(slot)];
    check_rollback(slot, steps, depth_, s.history);
    if (steps == 0) return;
    // ring[(head - k) mod depth] holds the state before the k-th most recent step (k = 1..history).
    const size_t idx = (s.head + size_t(depth_) * 2 - size_t(steps)) % size_t(depth_);
    s.state = s.ring[idx];
    s.head = idx;
    s.history -= steps;
  }
  int rollback_available(int slot) const override {
    check_slot_index(slot, capacity());
    return slots_[size_t(slot)].history;
  }

  StepCounters counters() const override { return counters_; }

  // The reference runs a step at once; submit() keeps its results until collect(), in one of two
  // result buffers that keep their room between steps (no allocation once warm).
  void submit(const StepRequest& r) override {
    if (in_flight_ >= 2) throw Error("two steps are already in flight; collect() one first");
    Done& d = done_[(done_first_ + in_flight_) % 2];
    check_frames_per_stream(r.frames_per_stream, max_frames_, info_.d_input, depth_);
    d.outputs.resize(size_t(std::max(r.batch, 0)) * size_t(r.frames_per_stream) * info_.d_output);
    d.ids.resize(r.sampling ? size_t(std::max(r.batch, 0)) : 0);
    if (r.sampling) {
      step_sample(r.tokens, r.slots, r.batch, r.sampling, d.ids.data(), d.outputs.data());
    } else if (info_.vocab_size == 0) {
      step_frame_runs(r.frames, r.slots, r.batch, r.frames_per_stream, d.outputs.data());
    } else {
      step(r.tokens, r.slots, r.batch, d.outputs.data());
    }
    if (!r.want_outputs) d.outputs.resize(0);
    ++in_flight_;
  }
  void collect(int32_t* next_tokens, float* outputs) override {
    if (in_flight_ == 0) throw Error("collect: no submitted step to collect");
    const Done& d = done_[done_first_];
    if (next_tokens) std::copy(d.ids.begin(), d.ids.end(), next_tokens);
    if (outputs) std::copy(d.outputs.begin(), d.outputs.end(), outputs);
    done_first_ = (done_first_ + 1) % 2;
    --in_flight_;
  }
  int in_flight() const override { return in_flight_; }

  std::vector<uint8_t> snapshot(int slot) const override {
    check_slot_index(slot, capacity());
    const auto& st = slots_[size_t(slot)].state;
    return encode_state(header_, st.data(), st.size());
  }
  void restore(int slot, const uint8_t* data, size_t size) override {
    check_slot_index(slot, capacity());
    std::vector<float> payload = decode_state(data, size, header_);  // validated before any change
    Slot& s = slots_[size_t(slot)];
    s.state = std::move(payload);
    s.history = 0;
  }
  void fork(int from_slot, int to_slot) override {
    check_slot_index(from_slot, capacity());
    check_slot_index(to_slot, capacity());
    if (from_slot == to_slot) return;
    Slot& to = slots_[size_t(to_slot)];
    to.state = slots_[size_t(from_slot)].state;
    to.history = 0;
    to.sampled = slots_[size_t(from_slot)].sampled;
  }

 private:
  struct Slot {
    std::vector<float> state;
    std::vector<std::vector<float>> ring;  // rollback_depth earlier states
    size_t head = 0;                       // ring position the next step saves into
    int history = 0;                       // steps that can be undone
    uint64_t sampled = 0;                  // tokens sampled since reset (the sampler's counter)
  };

  void check_step(const int32_t* tokens, const int32_t* slots, int batch) {
    check_batch_and_slots(slots, batch, capacity(), marks_);
    for (int b = 0; b < batch; ++b) check_token(tokens[b], info_.vocab_size);
  }

  // Saves the slot's state into its rollback ring before a step changes it.
  Slot& push(int slot) {
    Slot& s = slots_[size_t(slot)];
    if (depth_ > 0) {
      s.ring[s.head] = s.state;
      s.head = (s.head + 1) % size_t(depth_);
      s.history = std::min(s.history + 1, depth_);
    }
    return s;
  }

  // Frame models: each slot advances by F consecutive frames (frames [batch][F][d_input], outputs
  // [batch][F][d_output]), frame by frame as F steps would. F was checked by the caller.
  void step_frame_runs(const float* frames, const int32_t* slots, int batch, int F, float* outputs) {
    if (info_.vocab_size != 0)
      throw Error("model '" + info_.architecture + "' takes token ids (step), not input frames");
    if (!frames) throw Error("step_frames: no input frames (frames is null)");
    check_batch_and_slots(slots, batch, capacity(), marks_);
    for (int b = 0; b < batch; ++b) states_[size_t(b)] = push(slots[b]).state.data();
    const size_t d_input = size_t(info_.d_input), d_output = size_t(info_.d_output);
    for (int t = 0; t < F; ++t) {
      const float* in = frames + size_t(t) * d_input;
      if (outputs) stepper_->step_frames(states_.data(), in, F * d_input, batch, outputs + size_t(t) * d_output, F * d_output);
      else stepper_->step_frames(states_.data(), in, F * d_input, batch, scratch_.data(), 0);
    }
    counters_.steps++;
  }

  struct Done {
    std::vector<int32_t> ids;
    std::vector<float> outputs;
  };
  std::array<Done, 2> done_;  // submitted, uncollected results: done_[done_first_] is the oldest
  int done_first_ = 0, in_flight_ = 0;

  std::unique_ptr<CpuStepper> stepper_;
  ModelInfo info_;
  StateHeader header_;
  int depth_ = 0;
  int max_frames_ = 1;  // LoadOptions::frames_per_step
  std::vector<Slot> slots_;
  std::vector<float> scratch_;
  std::vector<uint8_t> marks_;
  std::vector<float*> states_;  // the stepped slots' states, [capacity] (no allocation per step)
  std::vector<float> sample_logits_;  // step_sample's logits when the caller wants none
  StepCounters counters_;
};

}  // namespace

std::unique_ptr<Model> create_cpu_model(std::unique_ptr<CpuStepper> stepper, const ModelInfo& info,
                                        const StateHeader& header, const LoadOptions& options) {
  return std::make_unique<CpuModel>(std::move(stepper), info, header, options);
}

}  // namespace vkssm

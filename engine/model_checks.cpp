#include "engine/model_checks.h"

#include <cmath>

#include "engine/vkssm.hpp"
#include "host/error.h"

namespace vkssm {

void check_slot_index(int slot, int capacity) {
  if (slot < 0 || slot >= capacity)
    throw Error("slot " + std::to_string(slot) + " out of range [0, " + std::to_string(capacity) + ")");
}

void check_token(int32_t token, int64_t vocab_size) {
  if (token < 0 || token >= vocab_size)
    throw Error("token id " + std::to_string(token) + " out of range [0, " + std::to_string(vocab_size) + ")");
}

void check_batch_and_slots(const int32_t* slots, int batch, int capacity, std::vector<uint8_t>& marks) {
  if (batch < 1 || batch > capacity)
    throw Error("batch of " + std::to_string(batch) + " streams exceeds the capacity of " +
                std::to_string(capacity) + " (LoadOptions::max_streams)");
  int marked = 0;
  std::string why;
  for (; marked < batch; ++marked) {
    const int s = slots[marked];
    if (s < 0 || s >= capacity) {
      why = "slot " + std::to_string(s) + " out of range [0, " + std::to_string(capacity) + ")";
      break;
    }
    if (marks[size_t(s)]) {
      why = "slot " + std::to_string(s) + " appears twice in one step";
      break;
    }
    marks[size_t(s)] = 1;
  }
  for (int b = 0; b < marked; ++b) marks[size_t(slots[b])] = 0;
  if (!why.empty()) throw Error(why);
}

void check_frames_per_step(int frames_per_step) {
  if (frames_per_step < 1 || frames_per_step > kMaxFramesPerStep)
    throw Error("frames_per_step must be within 1 .. " + std::to_string(kMaxFramesPerStep) + ", got " +
                std::to_string(frames_per_step));
}

void check_frames_per_stream(int frames, int max_frames, int64_t d_input, int depth) {
  if (frames == 1) return;
  if (d_input == 0) throw Error("submit: frames_per_stream is for frame models; a token model steps one token per stream");
  if (frames < 1 || frames > max_frames)
    throw Error("submit: frames_per_stream " + std::to_string(frames) + " is outside 1 .. " + std::to_string(max_frames) +
                " (LoadOptions::frames_per_step)");
  if (depth > 0) throw Error("submit: frames_per_stream > 1 with a rollback ring (rollback_depth) is not supported");
}

void check_sampling(const SamplingParams& p) {
  if (!(p.temperature >= 0.0f) || std::isinf(p.temperature))
    throw Error("sampling temperature must be finite and >= 0 (got " + std::to_string(p.temperature) + ")");
  if (p.top_k < 0) throw Error("sampling top_k must be >= 0 (got " + std::to_string(p.top_k) + ")");
}

void check_prefill(int slot, const int32_t* tokens, int n, int capacity, int64_t vocab_size) {
  check_slot_index(slot, capacity);
  if (n < 1) throw Error("prefill needs at least one token, got " + std::to_string(n));
  for (int t = 0; t < n; ++t) {
    if (tokens[t] < 0 || tokens[t] >= vocab_size)
      throw Error("prompt token " + std::to_string(t) + " (id " + std::to_string(tokens[t]) +
                  ") out of range [0, " + std::to_string(vocab_size) + ")");
  }
}

void check_rollback(int slot, int steps, int depth, int available) {
  if (steps < 0) throw Error("rollback of " + std::to_string(steps) + " steps: must be >= 0");
  if (steps > depth)
    throw Error("rollback of " + std::to_string(steps) + " steps on slot " + std::to_string(slot) +
                " exceeds the rollback depth of " + std::to_string(depth) + " (LoadOptions::rollback_depth)");
  if (steps > available)
    throw Error("rollback of " + std::to_string(steps) + " steps on slot " + std::to_string(slot) +
                ": only " + std::to_string(available) + " steps since its last reset, restore or fork");
}

// ---- defaults of the optional Model members -------------------------------------------------

void Model::step_frames(const float*, const int32_t*, int, float*) {
  throw Error("model '" + info().architecture + "' takes token ids (step), not input frames");
}

void Model::step_sample(const int32_t*, const int32_t*, int, const SamplingParams*, int32_t*, float*) {
  throw Error("step_sample is not available on the " + info().backend + " backend of '" +
              info().architecture + "'");
}

void Model::prefill(int slot, const int32_t* tokens, int n, float* last_logits) {
  check_prefill(slot, tokens, n, capacity(), info().vocab_size);
  for (int t = 0; t < n; ++t) step(&tokens[t], &slot, 1, t + 1 == n ? last_logits : nullptr);
}

void Model::rollback(int slot, int steps) {
  check_slot_index(slot, capacity());
  check_rollback(slot, steps, 0, 0);
}

int Model::rollback_available(int slot) const {
  check_slot_index(slot, capacity());
  return 0;
}

}  // namespace vkssm

namespace vkssm {

void Model::submit(const StepRequest&) {
  throw Error("asynchronous steps are not available on the " + info().backend + " backend of '" +
              info().architecture + "'");
}
void Model::collect(int32_t*, float*) { throw Error("collect: no submitted step to collect"); }
int Model::in_flight() const { return 0; }

}  // namespace vkssm

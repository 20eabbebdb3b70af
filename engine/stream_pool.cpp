// StreamPool: streams (handles with queued input) mapped onto a Model's state slots.
#include "engine/stream_pool.h"

#include <algorithm>
#include <string>

#include "engine/model_checks.h"
#include "host/error.h"

namespace vkssm {

StreamPool::StreamPool(Model& model)
    : model_(model),
      vocab_(model.info().vocab_size),
      d_input_(model.info().d_input),
      d_output_(model.info().d_output),
      slots_(size_t(std::max(model.capacity(), 0))) {
  // Descending, so that pop_back() hands out slot 0 first: a fresh pool fills slots in order.
  for (size_t i = slots_.size(); i-- > 0;) free_.push_back(uint32_t(i));
}

StreamPool::Slot& StreamPool::checked(StreamHandle stream) {
  if (stream.slot >= slots_.size() || !slots_[stream.slot].open ||
      slots_[stream.slot].generation != stream.generation)
    throw Error("stream handle is closed or stale (slot " + std::to_string(stream.slot) +
                ", generation " + std::to_string(stream.generation) + ")");
  return slots_[stream.slot];
}

StreamHandle StreamPool::acquire() {
  if (free_.empty()) {
    const std::string n = std::to_string(slots_.size());
    throw Error("stream capacity of " + n + " exceeded (all " + n + " streams are open)");
  }
  const uint32_t slot = free_.back();
  // Reset before taking the slot off the free list, so a throwing reset leaves the pool as it was.
  model_.reset(int(slot));
  free_.pop_back();
  Slot& s = slots_[slot];
  s.open = true;
  s.queue.clear();
  s.frames.clear();
  s.sampling = SamplingParams{};
  return {slot, s.generation};
}

void StreamPool::release(uint32_t slot) {
  Slot& s = slots_[slot];
  s.open = false;
  s.queue.clear();
  s.frames.clear();
  ++s.generation;
  free_.push_back(slot);
}

size_t StreamPool::queued(const Slot& s) const {
  return d_input_ > 0 ? s.frames.size() / size_t(d_input_) : s.queue.size();
}

std::vector<int32_t> StreamPool::ready_slots() const {
  std::vector<int32_t> ready;
  for (uint32_t i = 0; i < slots_.size(); ++i)
    if (slots_[i].open && queued(slots_[i]) > 0) ready.push_back(int32_t(i));
  return ready;
}

StreamHandle StreamPool::open() {
  std::lock_guard lock(mutex_);
  return acquire();
}

void StreamPool::close(StreamHandle stream) {
  std::lock_guard lock(mutex_);
  checked(stream);
  release(stream.slot);
}

void StreamPool::reset(StreamHandle stream) {
  std::lock_guard lock(mutex_);
  Slot& s = checked(stream);
  model_.reset(int(stream.slot));
  s.queue.clear();
  s.frames.clear();
}

StreamHandle StreamPool::fork(StreamHandle stream) {
  std::lock_guard lock(mutex_);
  checked(stream);
  const StreamHandle copy = acquire();
  try {
    model_.fork(int(stream.slot), int(copy.slot));
  } catch (...) {
    release(copy.slot);
    throw;
  }
  slots_[copy.slot].sampling = slots_[stream.slot].sampling;
  return copy;
}

std::vector<uint8_t> StreamPool::snapshot(StreamHandle stream) {
  std::lock_guard lock(mutex_);
  checked(stream);
  return model_.snapshot(int(stream.slot));
}

StreamHandle StreamPool::restore(const uint8_t* data, size_t size) {
  std::lock_guard lock(mutex_);
  const StreamHandle stream = acquire();
  try {
    model_.restore(int(stream.slot), data, size);
  } catch (...) {
    release(stream.slot);
    throw;
  }
  return stream;
}

void StreamPool::rollback(StreamHandle stream, int steps) {
  std::lock_guard lock(mutex_);
  checked(stream);
  model_.rollback(int(stream.slot), steps);
}

int StreamPool::rollback_available(StreamHandle stream) {
  std::lock_guard lock(mutex_);
  checked(stream);
  return model_.rollback_available(int(stream.slot));
}

void StreamPool::feed(StreamHandle stream, const int32_t* tokens, size_t n) {
  std::lock_guard lock(mutex_);
  Slot& s = checked(stream);
  if (d_input_ > 0)
    throw Error("feed: model '" + model_.info().architecture + "' takes input frames (feed_frames), not token ids");
  if (n > 0 && tokens == nullptr) throw Error("feed: tokens is null but n = " + std::to_string(n));
  // Check every id before queuing any, so a bad id leaves the queue as it was.
  for (size_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab_)
      throw Error("token id " + std::to_string(tokens[i]) + " out of range [0, " +
                  std::to_string(vocab_) + ")");
  s.queue.insert(s.queue.end(), tokens, tokens + n);
}

void StreamPool::feed_frames(StreamHandle stream, const float* frames, size_t n) {
  std::lock_guard lock(mutex_);
  Slot& s = checked(stream);
  if (d_input_ == 0)
    throw Error("feed_frames: model '" + model_.info().architecture + "' takes token ids (feed), not input frames");
  if (n > 0 && frames == nullptr) throw Error("feed_frames: frames is null but n = " + std::to_string(n));
  if (n > (s.frames.max_size() - s.frames.size()) / size_t(d_input_))
    throw Error("feed_frames: " + std::to_string(n) + " frames of " + std::to_string(d_input_) +
                " floats exceed the queue's limit");
  s.frames.insert(s.frames.end(), frames, frames + n * size_t(d_input_));
}

size_t StreamPool::pending(StreamHandle stream) {
  std::lock_guard lock(mutex_);
  return queued(checked(stream));
}

void StreamPool::set_sampling(StreamHandle stream, const SamplingParams& params) {
  std::lock_guard lock(mutex_);
  Slot& s = checked(stream);
  check_sampling(params);
  // The device sampler's own limit, checked here too: found only at step time, one stream's
  // parameters would fail every batched step of every stream.
  if (const int limit = model_.max_top_k(); limit > 0 && params.temperature != 0.0f && params.top_k > limit)
    throw Error("sampling top_k " + std::to_string(params.top_k) + " exceeds the device sampler's limit of " +
                std::to_string(limit));
  s.sampling = params;
}

int StreamPool::open_count() {
  std::lock_guard lock(mutex_);
  return int(slots_.size() - free_.size());
}

std::vector<StepResult> StreamPool::step(bool want_logits) {
  std::lock_guard lock(mutex_);
  const std::vector<int32_t> slots = ready_slots();
  if (slots.empty()) return {};
  const int batch = int(slots.size());
  std::vector<float> outputs(want_logits ? size_t(batch) * size_t(d_output_) : 0);
  float* out = want_logits ? outputs.data() : nullptr;

  std::vector<int32_t> tokens;
  if (d_input_ > 0) {
    std::vector<float> frames;
    frames.reserve(size_t(batch) * size_t(d_input_));
    for (int32_t i : slots) {
      const auto& q = slots_[size_t(i)].frames;
      frames.insert(frames.end(), q.begin(), q.begin() + ptrdiff_t(d_input_));
    }
    model_.step_frames(frames.data(), slots.data(), batch, out);
  } else {
    for (int32_t i : slots) tokens.push_back(slots_[size_t(i)].queue.front());
    model_.step(tokens.data(), slots.data(), batch, out);
  }

  // The step went through: only now consume the input, so a throwing step changes no queue.
  std::vector<StepResult> results(static_cast<size_t>(batch));
  for (int b = 0; b < batch; ++b) {
    Slot& s = slots_[size_t(slots[b])];
    StepResult& r = results[size_t(b)];
    r.stream = {uint32_t(slots[b]), s.generation};
    if (d_input_ > 0) {
      s.frames.erase(s.frames.begin(), s.frames.begin() + ptrdiff_t(d_input_));
      r.token_fed = -1;
    } else {
      s.queue.pop_front();
      r.token_fed = tokens[size_t(b)];
    }
    if (want_logits)
      r.logits.assign(outputs.begin() + ptrdiff_t(b) * d_output_, outputs.begin() + ptrdiff_t(b + 1) * d_output_);
  }
  return results;
}

std::vector<StepResult> StreamPool::step_sample(const SampleOptions& options) {
  std::lock_guard lock(mutex_);
  if (d_input_ > 0)
    throw Error("step_sample: model '" + model_.info().architecture +
                "' takes input frames and has no tokens to sample; use step()");
  const std::vector<int32_t> slots = ready_slots();
  if (slots.empty()) return {};
  const int batch = int(slots.size());
  std::vector<int32_t> tokens, next(size_t(batch), -1);
  std::vector<SamplingParams> params;
  for (int32_t i : slots) {
    tokens.push_back(slots_[size_t(i)].queue.front());
    params.push_back(slots_[size_t(i)].sampling);
  }
  std::vector<float> logits(options.want_logits ? size_t(batch) * size_t(d_output_) : 0);
  model_.step_sample(tokens.data(), slots.data(), batch, params.data(), next.data(),
                     options.want_logits ? logits.data() : nullptr);

  std::vector<StepResult> results(static_cast<size_t>(batch));
  for (int b = 0; b < batch; ++b) {
    Slot& s = slots_[size_t(slots[b])];
    s.queue.pop_front();
    if (options.feed_back && s.queue.empty()) s.queue.push_back(next[size_t(b)]);
    StepResult& r = results[size_t(b)];
    r.stream = {uint32_t(slots[b]), s.generation};
    r.token_fed = tokens[size_t(b)];
    r.sampled = next[size_t(b)];
    if (options.want_logits)
      r.logits.assign(logits.begin() + ptrdiff_t(b) * d_output_, logits.begin() + ptrdiff_t(b + 1) * d_output_);
  }
  return results;
}

size_t StreamPool::prefill(StreamHandle stream) {
  std::lock_guard lock(mutex_);
  Slot& s = checked(stream);
  if (d_input_ > 0)
    throw Error("prefill: model '" + model_.info().architecture + "' takes input frames, not a token prompt");
  size_t consumed = 0;
  // Model::prefill counts in int; a longer queue goes in several calls, each consumed when done.
  constexpr size_t kMaxPerCall = size_t(1) << 30;
  while (s.queue.size() > 1) {
    const size_t n = std::min(s.queue.size() - 1, kMaxPerCall);
    const std::vector<int32_t> prompt(s.queue.begin(), s.queue.begin() + ptrdiff_t(n));
    model_.prefill(int(stream.slot), prompt.data(), int(n), nullptr);
    s.queue.erase(s.queue.begin(), s.queue.begin() + ptrdiff_t(n));
    consumed += n;
  }
  return consumed;
}

}  // namespace vkssm

// StreamPool: streams (handles with queued input) mapped onto a Model's state slots.
#include "engine/stream_pool.h"

#include <algorithm>
#include <string>

#include "host/error.h"

namespace vkssm {

StreamPool::StreamPool(Model& model)
    : model_(model), vocab_(model.info().vocab_size), slots_(size_t(std::max(model.capacity(), 0))) {
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
  return {slot, s.generation};
}

void StreamPool::release(uint32_t slot) {
  Slot& s = slots_[slot];
  s.open = false;
  s.queue.clear();
  ++s.generation;
  free_.push_back(slot);
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

void StreamPool::feed(StreamHandle stream, const int32_t* tokens, size_t n) {
  std::lock_guard lock(mutex_);
  Slot& s = checked(stream);
  if (n > 0 && tokens == nullptr) throw Error("feed: tokens is null but n = " + std::to_string(n));
  // Check every id before queuing any, so a bad id leaves the queue as it was.
  for (size_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab_)
      throw Error("token id " + std::to_string(tokens[i]) + " out of range [0, " +
                  std::to_string(vocab_) + ")");
  s.queue.insert(s.queue.end(), tokens, tokens + n);
}

size_t StreamPool::pending(StreamHandle stream) {
  std::lock_guard lock(mutex_);
  return checked(stream).queue.size();
}

int StreamPool::open_count() {
  std::lock_guard lock(mutex_);
  return int(slots_.size() - free_.size());
}

std::vector<StepResult> StreamPool::step(bool want_logits) {
  std::lock_guard lock(mutex_);
  std::vector<int32_t> tokens, slots;
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    if (!slots_[i].open || slots_[i].queue.empty()) continue;
    tokens.push_back(slots_[i].queue.front());
    slots.push_back(int32_t(i));
  }
  if (tokens.empty()) return {};

  const int batch = int(tokens.size());
  std::vector<float> logits(want_logits ? size_t(batch) * size_t(vocab_) : 0);
  model_.step(tokens.data(), slots.data(), batch, want_logits ? logits.data() : nullptr);

  // The step went through: only now consume the tokens, so a throwing step changes no queue.
  std::vector<StepResult> results(static_cast<size_t>(batch));
  for (int b = 0; b < batch; ++b) {
    Slot& s = slots_[size_t(slots[b])];
    s.queue.pop_front();
    StepResult& r = results[size_t(b)];
    r.stream = {uint32_t(slots[b]), s.generation};
    r.token_fed = tokens[b];
    if (want_logits)
      r.logits.assign(logits.begin() + ptrdiff_t(b) * vocab_, logits.begin() + ptrdiff_t(b + 1) * vocab_);
  }
  return results;
}

}  // namespace vkssm

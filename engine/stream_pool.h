#pragma once
// Streams on top of a Model's state slots.
//
// A Model thinks in slots: the caller picks which slot each token goes to. A server thinks in
// streams: conversations that start, receive tokens at their own pace and end. StreamPool does the
// bookkeeping between the two:
//   - open() hands out a free slot as a stream handle; close() gives it back.
//   - feed() queues tokens for a stream; step() advances every stream that has queued input by one
//     token, all of them in a single Model::step call, so streams batch together on the GPU no
//     matter when they joined.
//   - A handle carries its slot's generation: once the stream is closed (and the slot perhaps
//     reused by another stream) the old handle is rejected instead of silently touching someone
//     else's state.
//
//   vkssm::StreamPool pool(*model);
//   auto a = pool.open();
//   pool.feed(a, prompt.data(), prompt.size());
//   while (pool.pending(a) > 0)
//     for (auto& r : pool.step()) use(r.stream, r.logits);
//   pool.close(a);
//
// Thread safety: every public member takes one internal std::mutex, so open/close/feed/step/...
// may be called from several host threads at once. step() holds the mutex for the whole
// Model::step call, so a feed() issued meanwhile waits for that step and is consumed by the next.
// The Model itself must not be used directly (or by another pool) while a pool is using it.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include "engine/vkssm.hpp"

namespace vkssm {

struct StreamHandle {
  uint32_t slot = 0;
  uint32_t generation = 0;
  friend bool operator==(const StreamHandle&, const StreamHandle&) = default;
};

struct StepResult {
  StreamHandle stream;
  int32_t token_fed = 0;
  std::vector<float> logits;  // vocab_size floats; empty when step(false)
};

class StreamPool {
 public:
  // The pool serves model.capacity() streams. `model` must outlive the pool.
  explicit StreamPool(Model& model);
  StreamPool(const StreamPool&) = delete;
  StreamPool& operator=(const StreamPool&) = delete;

  // A new stream with a zero state and no queued input. Throws vkssm::Error when all slots are open.
  StreamHandle open();
  // Ends the stream; its queued tokens are dropped and its handle becomes stale.
  void close(StreamHandle stream);
  // Zeroes the stream's state and drops its queued tokens.
  void reset(StreamHandle stream);
  // A new stream whose state is an exact (device-side) copy of `stream`'s. Only the state is
  // copied: tokens queued on `stream` and not yet stepped stay with `stream`.
  StreamHandle fork(StreamHandle stream);
  // The stream's recurrent state as a blob (Model::snapshot); queued tokens are not part of it.
  std::vector<uint8_t> snapshot(StreamHandle stream);
  // Opens a stream and restores a snapshot blob into it. On a bad blob throws vkssm::Error and the
  // pool is as before (the slot is free again).
  StreamHandle restore(const uint8_t* data, size_t size);

  // Queues n tokens for the stream. All ids are checked first: on a bad id nothing is queued.
  void feed(StreamHandle stream, const int32_t* tokens, size_t n);
  // Tokens queued for the stream and not yet stepped.
  size_t pending(StreamHandle stream);

  // Advances every open stream with queued input by one token, in one Model::step call. Returns one
  // result per advanced stream, in slot order (none when no stream has input). If the model throws,
  // no queue is changed.
  std::vector<StepResult> step(bool want_logits = true);

  int capacity() const { return int(slots_.size()); }
  int open_count();

 private:
  struct Slot {
    bool open = false;
    uint32_t generation = 0;  // bumped on every release, so handles of earlier streams go stale
    std::deque<int32_t> queue;
  };

  // Callers hold mutex_.
  Slot& checked(StreamHandle stream);
  StreamHandle acquire();         // a free slot, reset, marked open
  void release(uint32_t slot);    // marks it free and stales its handles

  Model& model_;
  const int64_t vocab_;
  std::mutex mutex_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;  // free slot indices; the last one freed is reused first
};

}  // namespace vkssm

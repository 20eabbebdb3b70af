#pragma once
// Streams on top of a Model's state slots.
//
// A Model thinks in slots: the caller picks which slot each token goes to. A server thinks in
// streams: conversations that start, receive tokens at their own pace and end. StreamPool does the
// bookkeeping between the two:
//   - open() hands out a free slot as a stream handle; close() gives it back.
//   - feed() queues tokens for a stream (feed_frames() queues input frames on a frame model such
//     as S4D); step() advances every stream that has queued input by one token or frame, all of
//     them in a single Model call, so streams batch together on the GPU no matter when they joined.
//   - step_sample() does the same and also picks each stream's next token on the device with the
//     stream's SamplingParams (set_sampling); with `feed_back` it queues that token as the stream's
//     next input, which is a whole generation loop: feed a prompt, then call step_sample until done.
//   - prefill() runs a stream's long queue (a prompt) through Model::prefill in a few submits
//     instead of one step per token, leaving the last token queued for the next batched step.
//   - A handle carries its slot's generation: once the stream is closed (and the slot perhaps
//     reused by another stream) the old handle is rejected instead of silently touching someone
//     else's state.
//
//   vkssm::StreamPool pool(*model);
//   auto a = pool.open();
//   pool.feed(a, prompt.data(), prompt.size());
//   pool.prefill(a);                               // optional: all but the last prompt token
//   pool.set_sampling(a, {0.8f, 40, /*seed*/ 1});
//   for (int i = 0; i < 100; ++i)
//     for (auto& r : pool.step_sample({.feed_back = true})) emit(r.stream, r.sampled);
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

// Relative to this header, so the same lines work in the source tree and installed (<vkssm/...>).
#include "vkssm.hpp"
#include "host/sampling.h"

namespace vkssm {

struct StreamHandle {
  uint32_t slot = 0;
  uint32_t generation = 0;
  friend bool operator==(const StreamHandle&, const StreamHandle&) = default;
};

struct StepResult {
  StreamHandle stream;
  int32_t token_fed = 0;      // the token this step consumed; -1 when it consumed an input frame
  int32_t sampled = -1;       // step_sample(): the token picked for the stream; -1 from step()
  std::vector<float> logits;  // d_output floats (logits, or a frame model's outputs); empty when
                              // not asked for
};

struct SampleOptions {
  bool want_logits = false;  // also return each stream's logits (one more device-to-host copy)
  // Queue each sampled token as its stream's next input when the stream has nothing else queued.
  // A stream still reading queued tokens (a prompt) goes on with them: its sampled token is
  // reported but not queued.
  bool feed_back = false;
};

class VKSSM_API StreamPool {
 public:
  // The pool serves model.capacity() streams. `model` must outlive the pool.
  explicit StreamPool(Model& model);
  StreamPool(const StreamPool&) = delete;
  StreamPool& operator=(const StreamPool&) = delete;

  // A new stream with a zero state, no queued input and greedy sampling. Throws vkssm::Error when
  // all slots are open.
  StreamHandle open();
  // Ends the stream; its queued input is dropped and its handle becomes stale.
  void close(StreamHandle stream);
  // Zeroes the stream's state and drops its queued input (its sampling parameters stay).
  void reset(StreamHandle stream);
  // A new stream whose state is an exact (device-side) copy of `stream`'s, with the same sampling
  // parameters. Only the state is copied: input queued on `stream` and not yet stepped stays with
  // `stream`.
  StreamHandle fork(StreamHandle stream);
  // The stream's recurrent state as a blob (Model::snapshot); queued input is not part of it.
  std::vector<uint8_t> snapshot(StreamHandle stream);
  // Opens a stream and restores a snapshot blob into it. On a bad blob throws vkssm::Error and the
  // pool is as before (the slot is free again).
  StreamHandle restore(const uint8_t* data, size_t size);
  // Undoes the stream's last `steps` steps (Model::rollback: needs LoadOptions::rollback_depth;
  // same errors, nothing changed on error). Queued input is not touched.
  void rollback(StreamHandle stream, int steps);
  // How many steps rollback() can undo on the stream right now.
  int rollback_available(StreamHandle stream);

  // Token models: queues n tokens for the stream. All ids are checked first: on a bad id nothing
  // is queued. Throws on a frame model.
  void feed(StreamHandle stream, const int32_t* tokens, size_t n);
  // Frame models: queues n input frames of d_input floats each (frames[i * d_input ...]). Throws
  // on a token model.
  void feed_frames(StreamHandle stream, const float* frames, size_t n);
  // Tokens (or frames) queued for the stream and not yet stepped.
  size_t pending(StreamHandle stream);
  // The parameters step_sample() uses for this stream, checked here (temperature finite and >= 0,
  // top_k >= 0 and, on Vulkan, within the device sampler's limit) so that one stream's parameters
  // cannot fail the batched steps of the others. The draw index is the model's per-slot count of sampled tokens since the last
  // reset, so a stream's sampled sequence depends only on its seed and its own history.
  void set_sampling(StreamHandle stream, const SamplingParams& params);

  // Advances every open stream with queued input by one token (Model::step) or one frame
  // (Model::step_frames), in one call. Returns one result per advanced stream, in slot order (none
  // when no stream has input). If the model throws, no queue is changed.
  std::vector<StepResult> step(bool want_logits = true);
  // Token models: like step(), through Model::step_sample, so each result also carries the token
  // sampled for its stream.
  std::vector<StepResult> step_sample(const SampleOptions& options = {});
  // Runs all but the last of the stream's queued tokens through one Model::prefill (on Vulkan: up
  // to 64 prompt tokens per submit) and returns how many it consumed (0 when at most one token is
  // queued). The last token stays queued, so the next step() or step_sample() advances it together
  // with the other streams and returns its logits or sampled token. The state afterwards equals
  // that many step() calls; no logits are computed for the consumed tokens. On error nothing is
  // consumed.
  size_t prefill(StreamHandle stream);

  int capacity() const { return int(slots_.size()); }
  int open_count();

 private:
  struct Slot {
    bool open = false;
    uint32_t generation = 0;  // bumped on every release, so handles of earlier streams go stale
    std::deque<int32_t> queue;   // token models: queued ids
    std::deque<float> frames;    // frame models: queued frames, d_input floats each
    SamplingParams sampling;
  };

  // Callers hold mutex_.
  Slot& checked(StreamHandle stream);
  StreamHandle acquire();         // a free slot, reset, marked open
  void release(uint32_t slot);    // marks it free and stales its handles
  size_t queued(const Slot& s) const;
  // The open streams with queued input, in slot order.
  std::vector<int32_t> ready_slots() const;

  Model& model_;
  const int64_t vocab_;    // token models; 0 for frame models
  const int64_t d_input_;  // frame models: floats per frame; 0 for token models
  const int64_t d_output_;
  std::mutex mutex_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;  // free slot indices; the last one freed is reused first
};

}  // namespace vkssm

#pragma once
// The step loop of `vkssm serve`: one thread owns the Model and the session table; HTTP handler
// threads hand it jobs and wait on a future.
//
// Each turn the loop takes every queued job, runs the control jobs (create, fork, delete, load a
// state) and then advances all sessions with work in ONE batched Model::step: a session reading
// its input contributes its next token, a generating session the token it just sampled. So a
// request never waits for another client's whole generation, only for the shared steps.
//
// Long inputs: all but a session's last pending token go through Model::prefill, at most
// kPrefillChunk tokens per session per turn, before the batched step. Prefill runs many tokens
// per submit (far faster than one batched step per token); bounding the chunk keeps the other
// sessions' steps flowing while a long prompt is read. The last token always goes through the
// batched step, which gives its logits.
//
// Frame models (the speech-command model): a session holds a slot plus its audio front-end and
// command decoder (AudioSlot below) while a WebSocket is attached to it. Audio arrives in the
// session's AudioFeed from the connection's thread; each turn the loop moves it into the log-mel
// front-ends and runs ONE Model::step_frames for every session with a frame ready (one 10 ms hop),
// then decodes each row, as engine/listener.cpp does for `vkssm listen`.
//
// Sampling happens on the host from the logits each step returns (sample_nth with the request's
// own draw index), so a request's output depends only on its seed and the session's state, not on
// which slot or batch it ran in, and top logprobs come from the same logits.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/listener.h"
#include "engine/vkssm.hpp"
#include "host/audio/command_decoder.h"
#include "host/audio/log_mel.h"
#include "samples/serve/metrics.h"
#include "samples/serve/session_table.h"

namespace vkssm::serve {

enum class JobKind {
  Create,   // a new session `session` with a zero state
  Advance,  // feed `feed` to `session`, then generate up to `max_tokens` tokens
  Fork,     // a new session `target` with a copy of `session`'s state
  Delete,   // free `session`
  Load,     // hold `session` with `state`, `position` and `logits` (from Redis); no-op when held
  Attach,   // frame models: connect `audio_feed` and `audio_sink` to `session` (a WebSocket opened on it)
};

enum class Status {
  Ok,
  NotFound,  // no such session in this process
  Full,      // every state slot is taken
  Invalid,   // the request does not fit the session (generate before any token was fed)
  BadState,  // a Load's state blob does not restore (another model, corrupted)
  Failed,    // the model threw, or the server is shutting down
  Conflict,  // Attach: the session already has an audio connection
};

// An audio session's connection as the step loop sees it (websocket_server.cpp implements it).
// Called on the step loop's thread; implementations only queue work and never block.
class AudioSink {
 public:
  virtual ~AudioSink() = default;
  virtual void event(std::string json_text) = 0;             // one detection
  virtual void end(uint16_t close_code, std::string reason) = 0;  // the session is over
};

// Audio on its way from a connection to the step loop: 16 kHz samples in [-1, 1).
struct AudioFeed {
  std::mutex mutex;
  std::vector<float> samples;
  bool end = false;  // end of audio: process what came, send its events, then end the session
  // Frames the step loop has stepped for this session: the connection compares it with the
  // samples it has pushed to know how far behind the session is (its backpressure).
  std::atomic<int64_t> frames_stepped{0};
};

struct JobSpec {
  JobKind kind = JobKind::Advance;
  std::string session;
  std::string target;                // Fork: the new session's id
  std::vector<int32_t> feed;         // Advance: ids, already checked against the vocabulary
  int max_tokens = 0;                // Advance: tokens to generate after the feed
  SamplingParams sampling;
  int32_t eos = -1;                  // generation stops before this token (-1: none)
  // Advance: called on the step loop's thread for each generated token with the logits it was
  // sampled from; returning false stops the generation (a streaming client went away).
  std::function<bool(int32_t token, const float* logits)> on_token;
  bool want_logits = false;          // return the last token's logits
  bool want_state = false;           // return the session's snapshot (to persist it)
  // Advance, Fork: the position the session must be at (-1: any). A held copy at another
  // position is stale (another replica advanced the session): it is dropped and the job answers
  // NotFound, so the caller loads the current state and retries.
  int64_t expect_position = -1;
  std::vector<uint8_t> state;        // Load
  int64_t position = 0;              // Load
  std::vector<float> logits;         // Load
  std::shared_ptr<AudioFeed> audio_feed;  // Attach
  std::shared_ptr<AudioSink> audio_sink;  // Attach
};

struct JobResult {
  Status status = Status::Ok;
  std::string message;               // for every status but Ok
  int64_t position = 0;              // the session's (Fork: the new one's)
  std::vector<float> logits;         // want_logits
  std::vector<uint8_t> state;        // want_state
  std::vector<int32_t> generated;
  std::string finish_reason;         // Advance with max_tokens > 0: "length", "stop" or "cancelled"
};

class Batcher {
 public:
  // At most kPrefillChunk tokens of one session go through one Model::prefill call per turn.
  static constexpr int kPrefillChunk = 64;

  // `speech`: the model's speech_commands section, for a frame model (nullptr for a token model).
  // `frames_per_step`: audio sessions step F hops at a time once they have them (the model was
  // loaded with LoadOptions::frames_per_step >= F), as `vkssm listen --frames-per-step` does.
  Batcher(Model& model, Metrics& metrics, std::chrono::milliseconds idle_timeout,
          const SpeechCommandsConfig* speech = nullptr, int frames_per_step = 1);
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  void start();
  // Refuses new jobs, finishes every queued and running one, then joins the loop.
  void stop();
  // Queues a job. After stop() the future holds Status::Failed.
  std::future<JobResult> submit(JobSpec spec);
  // Wakes the loop after audio was added to an attached session's feed. Thread-safe.
  void audio_arrived();

 private:
  struct Job {
    JobSpec spec;
    std::promise<JobResult> done;
    JobResult result;
    Session* session = nullptr;  // Advance: set when it starts
    size_t fed = 0;              // tokens of spec.feed consumed
    bool stopped = false;        // generation ended early (end of text or cancelled)
  };

  void loop();
  // Runs a control job, or starts an Advance job (false: its session is busy, try next turn).
  bool start_job(std::unique_ptr<Job>& job);
  void run_control(Job& job);
  void expire_idle();
  void advance();      // one turn of prefill + batched step over the running Advance jobs
  void fail_running(const std::string& message);
  void finish(Job& job, Status status = Status::Ok, const std::string& message = "");
  void publish_gauges();
  // Frame models: one hop (step_frames for every attached session with a frame ready).
  void advance_audio();
  // Ends `slot`'s audio connection (the session itself stays unless the caller removes it).
  void detach(int32_t slot, uint16_t close_code, const std::string& reason);

  // A frame session's streaming state while a WebSocket is attached; one per slot, made at
  // construction (FFTW plans are made once, on one thread).
  struct AudioSlot {
    LogMelStream front_end;
    std::unique_ptr<CommandDecoder> decoder;
    std::shared_ptr<AudioFeed> feed;  // null: no connection
    std::shared_ptr<AudioSink> sink;
    std::string session;
    std::vector<float> taken;         // scratch
  };

  Model& model_;
  Metrics& metrics_;
  const std::chrono::milliseconds idle_timeout_;
  const int64_t vocab_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Job>> queue_;
  bool stopping_ = false;
  bool audio_pending_ = false;  // audio_arrived() since the loop last looked
  std::thread thread_;

  // The loop thread's own.
  SessionTable table_;
  std::deque<std::unique_ptr<Job>> waiting_;    // jobs whose session is busy
  std::vector<std::unique_ptr<Job>> running_;  // Advance jobs in progress
  Clock::time_point last_expiry_check_;
  // Reused every step (sized for a full batch at construction).
  std::vector<int32_t> step_tokens_, step_slots_;
  std::vector<Job*> step_jobs_;
  std::vector<float> step_logits_;
  // Frame models.
  const SpeechCommandsConfig* speech_ = nullptr;
  std::vector<std::unique_ptr<AudioSlot>> audio_;  // by slot
  bool audio_more_ = false;                        // a session still has a step's frames ready
  int frames_per_step_ = 1;                        // F: hops per session and step
  std::vector<AudioSlot*> audio_batch_;
  std::vector<int32_t> frame_slots_;
  std::vector<int> frame_real_;                    // per session in the step: its frames that are audio
  std::vector<float> frames_, frame_outputs_;      // [session][F][mels], [session][F][labels]
};

}  // namespace vkssm::serve

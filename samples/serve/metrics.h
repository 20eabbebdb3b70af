#pragma once
// Counters of `vkssm serve`, written by the step loop, the HTTP handlers and the Redis store, and
// read as Prometheus text by GET /metrics. Plain atomics: a scrape never blocks a step.
#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace vkssm::serve {

struct Metrics {
  // Upper bounds (seconds) of the step latency histogram's buckets; +Inf is implicit.
  static constexpr std::array<double, 10> kStepBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                          0.025,  0.05,  0.1,    0.25,  1.0};

  std::atomic<int64_t> active_sessions{0};
  std::atomic<int64_t> queue_depth{0};        // requests waiting for the step loop
  std::atomic<int64_t> state_bytes{0};        // recurrent state held by the active sessions
  std::atomic<uint64_t> steps{0};             // batched Model::step calls
  std::atomic<uint64_t> tokens_stepped{0};    // tokens through Model::step (one per stream and step)
  std::atomic<uint64_t> tokens_prefilled{0};  // tokens through Model::prefill
  std::atomic<uint64_t> tokens_generated{0};
  std::atomic<uint64_t> frames_stepped{0};    // audio frames through Model::step_frames (frame models)
  std::atomic<uint64_t> audio_read_pauses{0}; // times a WebSocket stopped reading: its backlog was full
  std::atomic<uint64_t> sessions_expired{0};
  std::atomic<uint64_t> redis_round_trips{0};
  std::atomic<uint64_t> redis_failures{0};
  std::atomic<uint64_t> http_requests{0};
  std::atomic<uint64_t> http_errors{0};       // answers with a 4xx or 5xx status

  void observe_step(double seconds);
  // The Prometheus text exposition format (version 0.0.4).
  std::string prometheus() const;

 private:
  std::array<std::atomic<uint64_t>, kStepBuckets.size() + 1> step_buckets_{};  // not cumulative
  std::atomic<uint64_t> step_count_{0};
  std::atomic<uint64_t> step_nanos_{0};
};

}  // namespace vkssm::serve

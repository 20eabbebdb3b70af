#include "samples/serve/metrics.h"

#include <cstdio>

namespace vkssm::serve {

void Metrics::observe_step(double seconds) {
  size_t b = 0;
  while (b < kStepBuckets.size() && seconds > kStepBuckets[b]) ++b;
  step_buckets_[b].fetch_add(1, std::memory_order_relaxed);
  step_count_.fetch_add(1, std::memory_order_relaxed);
  step_nanos_.fetch_add(static_cast<uint64_t>(seconds * 1e9), std::memory_order_relaxed);
}

namespace {

void metric(std::string& out, const char* name, const char* type, const char* help, double value) {
  char line[256];
  std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, value);
  out += line;
}

}  // namespace

std::string Metrics::prometheus() const {
  std::string out;
  auto get = [](const auto& a) { return static_cast<double>(a.load(std::memory_order_relaxed)); };
  metric(out, "vkssm_active_sessions", "gauge", "Sessions holding a state slot.", get(active_sessions));
  metric(out, "vkssm_queue_depth", "gauge", "Requests waiting for the step loop.", get(queue_depth));
  metric(out, "vkssm_state_bytes", "gauge", "Recurrent state bytes held by active sessions.", get(state_bytes));
  metric(out, "vkssm_steps_total", "counter", "Batched model steps.", get(steps));
  metric(out, "vkssm_tokens_stepped_total", "counter", "Tokens advanced by batched steps.", get(tokens_stepped));
  metric(out, "vkssm_tokens_prefilled_total", "counter", "Prompt tokens advanced by prefill.", get(tokens_prefilled));
  metric(out, "vkssm_audio_frames_total", "counter", "Audio frames (10 ms hops) advanced by step_frames.",
         get(frames_stepped));
  metric(out, "vkssm_audio_read_pauses_total", "counter",
         "Times an audio socket stopped being read because its session's backlog was full (--audio-backlog).",
         get(audio_read_pauses));
  metric(out, "vkssm_tokens_generated_total", "counter", "Tokens sampled for generation requests.",
         get(tokens_generated));
  metric(out, "vkssm_sessions_expired_total", "counter", "Sessions freed after being idle too long.",
         get(sessions_expired));
  metric(out, "vkssm_redis_round_trips_total", "counter", "Commands sent to Redis.", get(redis_round_trips));
  metric(out, "vkssm_redis_failures_total", "counter", "Redis commands that failed.", get(redis_failures));
  metric(out, "vkssm_http_requests_total", "counter", "HTTP requests answered.", get(http_requests));
  metric(out, "vkssm_http_errors_total", "counter", "HTTP requests answered with a 4xx or 5xx status.",
         get(http_errors));

  out += "# HELP vkssm_step_seconds Latency of one batched model step.\n# TYPE vkssm_step_seconds histogram\n";
  char line[128];
  uint64_t cumulative = 0;
  for (size_t b = 0; b <= kStepBuckets.size(); ++b) {
    cumulative += step_buckets_[b].load(std::memory_order_relaxed);
    if (b < kStepBuckets.size())
      std::snprintf(line, sizeof line, "vkssm_step_seconds_bucket{le=\"%g\"} %llu\n", kStepBuckets[b],
                    static_cast<unsigned long long>(cumulative));
    else
      std::snprintf(line, sizeof line, "vkssm_step_seconds_bucket{le=\"+Inf\"} %llu\n",
                    static_cast<unsigned long long>(cumulative));
    out += line;
  }
  std::snprintf(line, sizeof line, "vkssm_step_seconds_sum %.9f\nvkssm_step_seconds_count %llu\n",
                get(step_nanos_) * 1e-9, static_cast<unsigned long long>(step_count_.load()));
  out += line;
  return out;
}

}  // namespace vkssm::serve

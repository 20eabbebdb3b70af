#include "samples/serve/batcher.h"

#include <algorithm>

#include "samples/listen_event_json.h"

namespace vkssm::serve {

Batcher::Batcher(Model& model, Metrics& metrics, std::chrono::milliseconds idle_timeout,
                 const SpeechCommandsConfig* speech, int frames_per_step)
    : model_(model),
      metrics_(metrics),
      idle_timeout_(idle_timeout),
      vocab_(std::max<int64_t>(0, model.info().vocab_size)),
      table_(model.capacity()),
      speech_(speech),
      frames_per_step_(frames_per_step) {
  const size_t cap = static_cast<size_t>(model.capacity());
  step_tokens_.reserve(cap);
  step_slots_.reserve(cap);
  step_jobs_.reserve(cap);
  step_logits_.resize(cap * static_cast<size_t>(vocab_));
  if (speech_) {
    for (size_t i = 0; i < cap; ++i) {
      audio_.push_back(std::make_unique<AudioSlot>());
      audio_.back()->decoder =
          std::make_unique<CommandDecoder>(speech_->n_labels, int(speech_->commands.size()), speech_->decoder);
    }
    const size_t F = size_t(frames_per_step_);
    audio_batch_.reserve(cap);
    frame_slots_.resize(cap);
    frame_real_.resize(cap);
    frames_.resize(cap * F * size_t(LogMelSpec::kMels));
    frame_outputs_.resize(cap * F * size_t(speech_->n_labels));
  }
}

Batcher::~Batcher() { stop(); }

void Batcher::start() {
  last_expiry_check_ = Clock::now();
  thread_ = std::thread([this] { loop(); });
}

void Batcher::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::future<JobResult> Batcher::submit(JobSpec spec) {
  auto job = std::make_unique<Job>();
  job->spec = std::move(spec);
  std::future<JobResult> done = job->done.get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) {
      job->result.status = Status::Failed;
      job->result.message = "the server is shutting down";
      job->done.set_value(std::move(job->result));
      return done;
    }
    queue_.push_back(std::move(job));
    metrics_.queue_depth.fetch_add(1);
  }
  wake_.notify_one();
  return done;
}

void Batcher::audio_arrived() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    audio_pending_ = true;
  }
  wake_.notify_one();
}

void Batcher::loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      // Idle: wake at least once a second to expire idle sessions.
      if (running_.empty() && !audio_more_)
        wake_.wait_for(lock, std::chrono::seconds(1),
                       [&] { return stopping_ || !queue_.empty() || audio_pending_; });
      audio_pending_ = false;
      for (auto& job : queue_) waiting_.push_back(std::move(job));
      queue_.clear();
      if (stopping_ && waiting_.empty() && running_.empty()) {
        // Connections still open are told so; the transport closes them.
        for (size_t slot = 0; slot < audio_.size(); ++slot)
          if (audio_[slot]->sink) detach(int32_t(slot), 1001, "the server is shutting down");
        break;
      }
    }
    // Jobs start in arrival order; one whose session is busy waits for a later turn.
    for (size_t i = 0, n = waiting_.size(); i < n; ++i) {
      std::unique_ptr<Job> job = std::move(waiting_.front());
      waiting_.pop_front();
      if (!start_job(job)) waiting_.push_back(std::move(job));
    }
    expire_idle();
    if (!running_.empty()) advance();
    if (speech_) advance_audio();
    publish_gauges();
  }
}

bool Batcher::start_job(std::unique_ptr<Job>& job) {
  Session* s = table_.find(job->spec.session);
  // An audio session stays busy while its WebSocket is open; DELETE ends it at once and a second
  // connection is refused at once.
  const bool attached = s && speech_ && audio_[size_t(s->slot)]->sink;
  const bool now = job->spec.kind == JobKind::Delete || job->spec.kind == JobKind::Attach;
  if (s && s->busy && !(attached && now)) return false;
  metrics_.queue_depth.fetch_sub(1);
  if (s && job->spec.kind != JobKind::Load) s->reserved = false;  // the request it was loaded for
  if (s && job->spec.expect_position >= 0 && s->position != job->spec.expect_position) {
    table_.remove(job->spec.session);
    s = nullptr;
  }
  if (job->spec.kind != JobKind::Advance) {
    run_control(*job);
    return true;
  }
  if (!s) {
    finish(*job, Status::NotFound, "no session '" + job->spec.session + "'");
    return true;
  }
  if (job->spec.max_tokens > 0 && job->spec.feed.empty() && s->position == 0) {
    finish(*job, Status::Invalid, "session '" + job->spec.session +
                                      "' has read no tokens yet: feed at least one token before generating");
    return true;
  }
  s->busy = true;
  job->session = s;
  job->result.generated.reserve(static_cast<size_t>(job->spec.max_tokens));
  running_.push_back(std::move(job));
  return true;
}

void Batcher::run_control(Job& job) {
  const JobSpec& spec = job.spec;
  const std::string& id = spec.kind == JobKind::Fork ? spec.target : spec.session;
  Session* source = table_.find(spec.session);
  if (spec.kind == JobKind::Delete) {
    if (!source) return finish(job, Status::NotFound, "no session '" + id + "'");
    if (speech_ && audio_[size_t(source->slot)]->sink) detach(source->slot, 1000, "session deleted");
    table_.remove(id);
    return finish(job);
  }
  if (spec.kind == JobKind::Attach) {
    if (!source) return finish(job, Status::NotFound, "no session '" + id + "'");
    if (!speech_)
      return finish(job, Status::Invalid,
                    "session '" + id + "' is a session of a token model, which reads token ids, not audio: "
                    "the audio endpoint needs a server started with a speech-command model "
                    "(--model models/s4d/speech-commands)");
    AudioSlot& a = *audio_[size_t(source->slot)];
    if (a.sink) return finish(job, Status::Conflict, "session '" + id + "' already has an audio connection");
    // A session's audio starts with its connection; it ends when the connection does.
    a.front_end.reset();
    a.decoder->reset();
    a.feed = spec.audio_feed;
    a.sink = spec.audio_sink;
    a.session = id;
    source->busy = true;
    return finish(job);
  }
  if (spec.kind == JobKind::Load && source) {  // another request loaded it first
    source->reserved = true;
    return finish(job);
  }
  if (spec.kind == JobKind::Fork && !source) return finish(job, Status::NotFound, "no session '" + spec.session + "'");
  if (spec.kind != JobKind::Fork && source) return finish(job, Status::Failed, "session '" + id + "' exists");
  // Full: a session whose state is in Redis can make room (it is loaded again when asked for),
  // but not a fork's source. add() and evict_one() leave `source` where it is (unordered_map
  // nodes do not move).
  Session* s = table_.full() && !table_.evict_one(source) ? nullptr : table_.add(id, vocab_);
  if (!s)
    return finish(job, Status::Full,
                  "all " + std::to_string(model_.capacity()) + " session slots are in use (--max-streams)");
  try {
    switch (spec.kind) {
      case JobKind::Create:
        model_.reset(s->slot);
        break;
      case JobKind::Fork:
        model_.fork(source->slot, s->slot);
        s->position = source->position;
        s->logits = source->logits;
        source->last_used = Clock::now();
        break;
      case JobKind::Load:
        if (spec.position < 0 || (spec.logits.size() != 0 && spec.logits.size() != size_t(vocab_)) ||
            (spec.position > 0) != !spec.logits.empty())
          throw Error("the stored position (" + std::to_string(spec.position) + ") and logits (" +
                      std::to_string(spec.logits.size()) + " floats) do not fit this model's vocabulary of " +
                      std::to_string(vocab_));
        model_.restore(s->slot, spec.state.data(), spec.state.size());
        s->position = spec.position;
        s->logits = spec.logits;
        break;
      default:
        break;
    }
  } catch (const std::exception& e) {
    table_.remove(id);
    return finish(job, spec.kind == JobKind::Load ? Status::BadState : Status::Failed, e.what());
  }
  s->persisted = spec.want_state || spec.kind == JobKind::Load;
  s->reserved = spec.kind == JobKind::Load;
  job.session = s;
  finish(job);
}

void Batcher::expire_idle() {
  const Clock::time_point now = Clock::now();
  if (now - last_expiry_check_ < std::chrono::seconds(1) && !stopping_) return;
  last_expiry_check_ = now;
  for (const std::string& id : table_.idle_since(now - idle_timeout_)) {
    table_.remove(id);
    metrics_.sessions_expired.fetch_add(1);
  }
}

void Batcher::advance() {
  try {
    // Long inputs: all but the last pending token through prefill, a bounded chunk per turn.
    for (auto& job : running_) {
      const size_t left = job->spec.feed.size() - job->fed;
      if (left <= 1) continue;
      const int n = static_cast<int>(std::min<size_t>(left - 1, kPrefillChunk));
      model_.prefill(job->session->slot, job->spec.feed.data() + job->fed, n, nullptr);
      job->fed += static_cast<size_t>(n);
      job->session->position += n;
      metrics_.tokens_prefilled.fetch_add(static_cast<uint64_t>(n));
    }

    // Every running job contributes one token to the batched step: its next input token, or the
    // token it samples now from its session's logits.
    step_tokens_.clear();
    step_slots_.clear();
    step_jobs_.clear();
    for (auto& job : running_) {
      Session& s = *job->session;
      int32_t token;
      if (job->fed < job->spec.feed.size()) {
        token = job->spec.feed[job->fed];
      } else {
        const int produced = static_cast<int>(job->result.generated.size());
        if (job->stopped || produced >= job->spec.max_tokens) continue;
        token = sample_nth(s.logits.data(), static_cast<int>(vocab_), job->spec.sampling, uint64_t(produced));
        if (token == job->spec.eos) {
          job->stopped = true;
          job->result.finish_reason = "stop";
          continue;
        }
        job->result.generated.push_back(token);
        metrics_.tokens_generated.fetch_add(1);
        if (job->spec.on_token && !job->spec.on_token(token, s.logits.data())) {
          job->stopped = true;
          job->result.finish_reason = "cancelled";
        }
      }
      step_tokens_.push_back(token);
      step_slots_.push_back(s.slot);
      step_jobs_.push_back(job.get());
    }

    if (!step_jobs_.empty()) {
      const int batch = static_cast<int>(step_jobs_.size());
      const Clock::time_point t0 = Clock::now();
      model_.step(step_tokens_.data(), step_slots_.data(), batch, step_logits_.data());
      metrics_.observe_step(std::chrono::duration<double>(Clock::now() - t0).count());
      metrics_.steps.fetch_add(1);
      metrics_.tokens_stepped.fetch_add(static_cast<uint64_t>(batch));
      for (int i = 0; i < batch; ++i) {
        Job& job = *step_jobs_[size_t(i)];
        const float* row = step_logits_.data() + size_t(i) * size_t(vocab_);
        job.session->logits.assign(row, row + vocab_);  // capacity reserved: no allocation
        job.session->position += 1;
        if (job.fed < job.spec.feed.size()) ++job.fed;
      }
    }
  } catch (const std::exception& e) {
    fail_running(std::string("the model failed: ") + e.what());
    return;
  }

  // Jobs with nothing left to do are answered.
  for (size_t i = 0; i < running_.size();) {
    Job& job = *running_[i];
    const bool fed = job.fed == job.spec.feed.size();
    const bool generated = job.stopped || static_cast<int>(job.result.generated.size()) >= job.spec.max_tokens;
    if (fed && generated) {
      if (job.spec.max_tokens > 0 && job.result.finish_reason.empty()) job.result.finish_reason = "length";
      finish(job);
      running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
}

void Batcher::fail_running(const std::string& message) {
  for (auto& job : running_) finish(*job, Status::Failed, message);
  running_.clear();
}

void Batcher::finish(Job& job, Status status, const std::string& message) {
  JobResult& r = job.result;
  r.status = status;
  r.message = message;
  if (Session* s = job.session) {
    s->busy = false;
    s->last_used = Clock::now();
    if (status == Status::Ok) {
      r.position = s->position;
      if (job.spec.want_logits) r.logits = s->logits;
      if (job.spec.want_state) {
        try {
          r.state = model_.snapshot(s->slot);
        } catch (const std::exception& e) {
          r.status = Status::Failed;
          r.message = std::string("could not snapshot the session's state: ") + e.what();
        }
      }
    }
  }
  // The gauges first: a client that reads /metrics after this answer sees the session table as
  // the answer left it (a deleted session no longer counted), not as of the loop's last turn.
  publish_gauges();
  job.done.set_value(std::move(r));
}

void Batcher::detach(int32_t slot, uint16_t close_code, const std::string& reason) {
  AudioSlot& a = *audio_[size_t(slot)];
  if (a.sink) a.sink->end(close_code, reason);
  a.sink.reset();
  a.feed.reset();
  if (Session* s = table_.find(a.session)) s->busy = false;
  a.session.clear();
}

void Batcher::advance_audio() {
  // Audio that arrived since the last turn goes into the front-ends (16 kHz in: no resampler,
  // as for `vkssm listen -`). A session steps once it has F frames (its last ones padded when its
  // audio has ended); a session whose audio ended and whose frames are all stepped is over.
  const size_t F = size_t(frames_per_step_);
  audio_batch_.clear();
  audio_more_ = false;
  for (size_t slot = 0; slot < audio_.size(); ++slot) {
    AudioSlot& a = *audio_[slot];
    if (!a.sink) continue;
    bool ended = false;
    {
      std::lock_guard<std::mutex> lock(a.feed->mutex);
      a.taken.swap(a.feed->samples);
      ended = a.feed->end;
    }
    a.front_end.push(a.taken.data(), a.taken.size());
    a.taken.clear();
    if (ended) a.front_end.end_audio(kEndOfAudioSilenceSamples);  // once; its last word is still decided
    const size_t ready = a.front_end.frames_ready();
    if (ready >= F || (ended && ready > 0)) {
      audio_batch_.push_back(&a);
    } else if (ended) {
      const std::string id = a.session;
      detach(int32_t(slot), 1000, "end of audio");
      table_.remove(id);
    }
  }
  if (audio_batch_.empty()) return;
  const int batch = int(audio_batch_.size());
  const size_t d_in = LogMelSpec::kMels, n_out = size_t(speech_->n_labels);
  uint64_t frames = 0;
  for (int i = 0; i < batch; ++i) {
    AudioSlot& a = *audio_batch_[size_t(i)];
    // Padding after the end (zero frames) is never decoded; the silence after it is, but is not
    // counted as audio.
    const size_t audio_before = a.front_end.audio_frames_popped();
    const size_t t = a.front_end.pop_frames(frames_.data() + size_t(i) * F * d_in, F);
    frame_real_[size_t(i)] = int(t);
    frames += a.front_end.audio_frames_popped() - audio_before;
    frame_slots_[size_t(i)] = table_.find(a.session)->slot;
  }
  try {
    const Clock::time_point t0 = Clock::now();
    model_.submit({.frames = frames_.data(), .slots = frame_slots_.data(), .batch = batch, .want_outputs = true,
                   .frames_per_stream = frames_per_step_});
    model_.collect(nullptr, frame_outputs_.data());
    metrics_.observe_step(std::chrono::duration<double>(Clock::now() - t0).count());
    metrics_.steps.fetch_add(1);
    metrics_.frames_stepped.fetch_add(frames);
  } catch (const std::exception& e) {
    for (int i = 0; i < batch; ++i) {
      const int32_t slot = frame_slots_[size_t(i)];
      const std::string id = audio_[size_t(slot)]->session;
      detach(slot, 1011, std::string("the model failed: ") + e.what());
      table_.remove(id);
    }
    return;
  }
  // In time order (frame t of every session before frame t + 1), as one frame per step gives.
  for (size_t t = 0; t < F; ++t) {
    for (int i = 0; i < batch; ++i) {
      if (int(t) >= frame_real_[size_t(i)]) continue;
      AudioSlot& a = *audio_batch_[size_t(i)];
      Session& s = *table_.find(a.session);
      s.position += 1;  // frames
      a.feed->frames_stepped.fetch_add(1, std::memory_order_release);
      s.last_used = Clock::now();
      CommandDetection d;
      if (a.decoder->push(frame_outputs_.data() + (size_t(i) * F + t) * n_out, &d)) {
        ListenerEvent e;
        e.command = d.command;
        e.word = speech_->commands[size_t(d.command)];
        e.time = command_event_time(d.frame);
        e.score = d.score;
        // One socket is one stream of raw audio: the line `vkssm listen --json -` prints for it.
        a.sink->event(cli::listen_event_json(e, 0, "-").dump());
      }
    }
  }
  for (AudioSlot* a : audio_batch_)
    if (a->front_end.frames_ready() >= F) audio_more_ = true;
}

void Batcher::publish_gauges() {
  metrics_.active_sessions.store(static_cast<int64_t>(table_.size()));
  metrics_.state_bytes.store(static_cast<int64_t>(table_.size() * model_.info().state_bytes_per_stream));
}

}  // namespace vkssm::serve

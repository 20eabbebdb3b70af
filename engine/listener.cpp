#include "engine/listener.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "host/audio/log_mel.h"
#include "host/audio/resampler.h"
#include "host/error.h"

namespace vkssm {
namespace fs = std::filesystem;
using nlohmann::json;

// One audio stream. `in_mutex` guards what push()/finish() touch (the raw input and the flag);
// the rest belongs to process().
struct Listener::Stream {
  int id = 0;
  std::atomic<bool> open{false};  // slot in use (until done); read by push() on other threads
  std::mutex in_mutex;
  std::vector<float> input;    // pushed, not yet resampled
  bool finish_requested = false;
  bool finished_input = false;  // the resampler was flushed
  bool ending = false;          // in ended_: no frame left, done once the hop in flight is decoded
  std::atomic<bool> done{false};
  std::unique_ptr<Resampler> resampler;
  LogMelStream front_end;
  std::unique_ptr<CommandDecoder> decoder;
  std::vector<float> taken, resampled;  // scratch
};

namespace {

const json& require(const json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key)) throw Error(where + ": missing '" + key + "'");
  return j.at(key);
}

void check_number(const json& features, const char* key, double expected, const std::string& where) {
  const json& v = require(features, key, where);
  if (!v.is_number() || std::abs(v.get<double>() - expected) > 1e-9 * std::max(1.0, std::abs(expected)))
    throw Error(where + ": '" + key + "' is " + v.dump() + ", but vkssm's front-end computes " +
                (expected == std::floor(expected) ? json(int64_t(expected)) : json(expected)).dump() +
                " (host/audio/log_mel.h)");
}

}  // namespace

SpeechCommandsConfig read_speech_commands(const std::string& model_dir, const ListenerOptions& options) {
  SpeechCommandsConfig out;
  const std::string config_path = (fs::path(model_dir) / "config.json").string();
  out.config_path = config_path;
  std::ifstream in(config_path);
  if (!in) throw Error(config_path + ": cannot open (is " + model_dir + " a command model folder?)");
  json config;
  try {
    config = json::parse(in);
  } catch (const std::exception& e) {
    throw Error(config_path + ": not valid JSON: " + e.what());
  }
  const std::string where = config_path + " speech_commands";
  const json& sc = require(config, "speech_commands", config_path);
  const json& labels = require(sc, "labels", where);
  if (!labels.is_array() || labels.size() < 2) throw Error(where + ": 'labels' must be an array of at least 2 strings");
  for (const auto& l : labels) {
    if (!l.is_string()) throw Error(where + ": 'labels' must hold strings, got " + l.dump());
    out.commands.push_back(l.get<std::string>());
  }
  out.n_labels = int(labels.size());
  // The last label is the background class; the others are commands.
  out.commands.pop_back();
  const json& f = require(sc, "features", where);
  using S = LogMelSpec;
  check_number(f, "sample_rate", S::kSampleRate, where + ".features");
  check_number(f, "window", S::kWindow, where + ".features");
  check_number(f, "hop", S::kHop, where + ".features");
  check_number(f, "n_fft", S::kFft, where + ".features");
  check_number(f, "n_mels", S::kMels, where + ".features");
  check_number(f, "f_min", S::kFMin, where + ".features");
  check_number(f, "f_max", S::kFMax, where + ".features");
  check_number(f, "log_floor", S::kLogFloor, where + ".features");
  CommandDecoderOptions& d_opt = out.decoder;
  if (sc.contains("decoder")) {
    const json& d = sc["decoder"];
    if (d.contains("threshold")) d_opt.threshold = d["threshold"].get<float>();
    if (d.contains("window")) d_opt.window = d["window"].get<int>();
    if (d.contains("refractory")) d_opt.refractory = d["refractory"].get<int>();
  }
  if (options.threshold != 0.0f) d_opt.threshold = options.threshold;
  if (options.window != 0) d_opt.window = options.window;
  if (options.refractory != 0) d_opt.refractory = options.refractory;
  CommandDecoder check(out.n_labels, int(out.commands.size()), d_opt);  // validates the options
  return out;
}

void check_speech_model(const SpeechCommandsConfig& config, const ModelInfo& info) {
  using S = LogMelSpec;
  if (info.d_input != S::kMels)
    throw Error(config.config_path + ": the model takes " + std::to_string(info.d_input) +
                " floats per frame, the front-end gives " + std::to_string(S::kMels) + " log-mel features");
  if (info.d_output != int64_t(config.n_labels))
    throw Error(config.config_path + " speech_commands: " + std::to_string(config.n_labels) +
                " labels, but the model has " + std::to_string(info.d_output) + " outputs");
}

double command_event_time(int64_t frame) {
  return double(frame * LogMelSpec::kHop + LogMelSpec::kWindow) / LogMelSpec::kSampleRate;
}

Listener::Listener(const std::string& model_dir, const ListenerOptions& options) {
  const SpeechCommandsConfig sc = read_speech_commands(model_dir, options);
  commands_ = sc.commands;
  decoder_opt_ = sc.decoder;
  using S = LogMelSpec;
  LoadOptions load = options.load;
  if (load.max_streams < 1) throw Error("listener: max_streams must be at least 1, got " + std::to_string(load.max_streams));
  model_ = load_model(model_dir, load);
  const ModelInfo& info = model_->info();
  check_speech_model(sc, info);
  n_outputs_ = int(info.d_output);
  const int cap = model_->capacity();
  streams_.reserve(cap);
  for (int i = 0; i < cap; ++i) {
    streams_.push_back(std::make_unique<Stream>());
    streams_.back()->id = i;
  }
  frames_per_step_ = load.frames_per_step;
  const size_t F = size_t(frames_per_step_);
  for (Hop& h : hops_) {
    h.streams.reserve(cap);
    h.frames.resize(size_t(cap) * F * S::kMels);
    h.slots.resize(cap);
    h.real.resize(cap);
    h.audio.resize(cap);
  }
  outputs_.resize(size_t(cap) * F * n_outputs_);
  ended_.reserve(cap);
  stats_.hop_ms.reserve(ListenerStats::kHopHistory);
}

Listener::~Listener() = default;

std::string Listener::default_model_dir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  const fs::path dir = exe.parent_path();
  for (const fs::path& candidate : {dir / ".." / "share" / "vkssm" / "models" / "speech-commands",
                                    dir / ".." / ".." / "models" / "s4d" / "speech-commands",
                                    dir / ".." / "models" / "s4d" / "speech-commands"}) {
    if (fs::exists(candidate / "config.json", ec)) return fs::weakly_canonical(candidate, ec).string();
  }
  return "";
}

int Listener::capacity() const { return model_->capacity(); }
const ModelInfo& Listener::model_info() const { return model_->info(); }

Listener::Stream& Listener::stream_at(int id) const {
  if (id < 0 || id >= int(streams_.size()) || !streams_[id]->open)
    throw Error("listener: stream " + std::to_string(id) + " is not open");
  return *streams_[id];
}

int Listener::open_stream(int sample_rate) {
  std::lock_guard<std::mutex> control(control_mutex_);
  for (auto& s : streams_) {
    if (s->open) continue;
    auto resampler = std::make_unique<Resampler>(sample_rate, LogMelSpec::kSampleRate);
    std::lock_guard<std::mutex> lock(s->in_mutex);
    s->resampler = std::move(resampler);
    if (!s->decoder) s->decoder = std::make_unique<CommandDecoder>(n_outputs_, int(commands_.size()), decoder_opt_);
    s->decoder->reset();
    s->front_end.reset();
    s->input.clear();
    s->finish_requested = s->finished_input = s->done = false;
    s->ending = false;
    model_->reset(s->id);
    s->open = true;
    return s->id;
  }
  throw Error("listener: all " + std::to_string(streams_.size()) +
              " streams are in use (the limit is the model's max_streams)");
}

void Listener::push(int stream, const float* samples, size_t n) {
  Stream& s = stream_at(stream);
  std::lock_guard<std::mutex> lock(s.in_mutex);
  if (s.finish_requested) throw Error("listener: stream " + std::to_string(stream) + " was finished; no more audio");
  s.input.insert(s.input.end(), samples, samples + n);
}

void Listener::push_s16(int stream, const int16_t* samples, size_t n) {
  Stream& s = stream_at(stream);
  std::lock_guard<std::mutex> lock(s.in_mutex);
  if (s.finish_requested) throw Error("listener: stream " + std::to_string(stream) + " was finished; no more audio");
  for (size_t i = 0; i < n; ++i) s.input.push_back(float(samples[i]) / 32768.0f);
}

void Listener::finish(int stream) {
  Stream& s = stream_at(stream);
  std::lock_guard<std::mutex> lock(s.in_mutex);
  s.finish_requested = true;
}

void Listener::close(int stream) {
  std::lock_guard<std::mutex> control(control_mutex_);
  Stream& s = stream_at(stream);
  std::lock_guard<std::mutex> lock(s.in_mutex);
  s.open = false;
  s.done = true;
}

bool Listener::done(int stream) const {
  if (stream < 0 || stream >= int(streams_.size())) throw Error("listener: stream " + std::to_string(stream) + " does not exist");
  return streams_[stream]->done || !streams_[stream]->open;
}

int Listener::open_streams() const {
  int n = 0;
  for (auto& s : streams_) n += s->open ? 1 : 0;
  return n;
}

bool Listener::has_hop(Stream& s, size_t frames) {
  if (s.front_end.frames_ready() >= frames) return true;
  bool flush = false;
  {
    std::lock_guard<std::mutex> lock(s.in_mutex);
    s.taken.swap(s.input);
    s.input.clear();
    flush = s.finish_requested && !s.finished_input;
  }
  if (!s.taken.empty() || flush) {
    s.resampled.clear();
    s.resampler->process(s.taken.data(), s.taken.size(), flush, s.resampled);
    s.front_end.push(s.resampled.data(), s.resampled.size());
    s.taken.clear();
    if (flush) {
      s.front_end.end_audio(kEndOfAudioSilenceSamples);
      s.finished_input = true;
    }
  }
  const size_t ready = s.front_end.frames_ready();
  if (ready >= frames || (s.finished_input && ready > 0)) return true;
  if (s.finished_input && ready == 0 && !s.ending) {
    s.ending = true;
    ended_.push_back(&s);
  }
  return false;
}

void Listener::gather(Hop& hop) {
  const size_t F = size_t(frames_per_step_), d_in = LogMelSpec::kMels;
  hop.streams.clear();
  for (auto& s : streams_)
    if (s->open && !s->done && has_hop(*s, F)) hop.streams.push_back(s.get());
  for (size_t i = 0; i < hop.streams.size(); ++i) {
    Stream& s = *hop.streams[i];
    // A stream's last frames: the step's other frames are zeros, their outputs never decoded (the
    // slot is reset before it serves another stream).
    const size_t audio_before = s.front_end.audio_frames_popped();
    hop.real[i] = int(s.front_end.pop_frames(hop.frames.data() + i * F * d_in, F));
    hop.audio[i] = int(s.front_end.audio_frames_popped() - audio_before);
    hop.slots[i] = s.id;
  }
}

// In time order, frame t of every stream before frame t + 1: the same events in the same order
// as one frame per step gives.
void Listener::decode(const Hop& hop) {
  const size_t F = size_t(frames_per_step_);
  for (size_t t = 0; t < F; ++t) {
    for (size_t i = 0; i < hop.streams.size(); ++i) {
      if (int(t) >= hop.real[i]) continue;
      Stream& s = *hop.streams[i];
      CommandDetection d;
      if (s.decoder->push(outputs_.data() + (i * F + t) * size_t(n_outputs_), &d)) {
        ListenerEvent e;
        e.stream = s.id;
        e.command = d.command;
        e.word = commands_[d.command];
        e.time = command_event_time(d.frame);
        e.score = d.score;
        std::lock_guard<std::mutex> lock(events_mutex_);
        events_.push_back(std::move(e));
      }
    }
  }
}

// Streams found at their end by gather(): done now, their slots free for new streams.
void Listener::retire_ended() {
  for (Stream* s : ended_) {
    std::lock_guard<std::mutex> lock(s->in_mutex);
    s->done = true;
    s->open = false;
  }
  ended_.clear();
}

int Listener::process() {
  std::lock_guard<std::mutex> control(control_mutex_);
  using clock = std::chrono::steady_clock;
  int steps = 0;
  auto t0 = clock::now();
  gather(hops_[0]);
  for (int cur = 0; !hops_[cur].streams.empty(); cur ^= 1) {
    const Hop& hop = hops_[cur];
    const int B = int(hop.streams.size());
    model_->submit({.frames = hop.frames.data(), .slots = hop.slots.data(), .batch = B, .want_outputs = true,
                    .frames_per_stream = frames_per_step_});
    // The next hop's features while this one steps: on a GPU the host's front-end work and the
    // device's step overlap.
    try {
      gather(hops_[cur ^ 1]);
    } catch (...) {
      model_->collect(nullptr, nullptr);
      throw;
    }
    model_->collect(nullptr, outputs_.data());
    decode(hop);
    // A stream that ended had its last frame in this hop at the latest: its detections are out.
    retire_ended();
    const auto now = clock::now();
    const double ms = std::chrono::duration<double, std::milli>(now - t0).count();
    t0 = now;
    if (stats_.hop_ms.size() < ListenerStats::kHopHistory) stats_.hop_ms.push_back(ms);
    else stats_.hop_ms[stats_.steps % ListenerStats::kHopHistory] = ms;
    ++steps;
    ++stats_.steps;
    stats_.hops += uint64_t(frames_per_step_);
    for (int i = 0; i < B; ++i) stats_.frames += uint64_t(hop.audio[size_t(i)]);
  }
  retire_ended();  // streams that ended with no hop left to step
  return steps;
}

std::vector<ListenerEvent> Listener::poll(size_t max) {
  std::lock_guard<std::mutex> lock(events_mutex_);
  std::vector<ListenerEvent> out;
  if (max >= events_.size()) {
    out.swap(events_);
  } else {
    out.assign(std::make_move_iterator(events_.begin()), std::make_move_iterator(events_.begin() + long(max)));
    events_.erase(events_.begin(), events_.begin() + long(max));
  }
  return out;
}

}  // namespace vkssm

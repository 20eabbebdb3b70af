// `vkssm listen [options] INPUT...`: every INPUT (a WAV file, or '-' for raw signed 16-bit
// little-endian 16 kHz mono on standard input) is a stream; all streams advance together, one
// batched model step per 10 ms hop, and each detected command is printed as soon as it is decided.
// `--bench N` runs N synthetic streams instead and reports whether they keep up with real time.
#include "samples/listen_command.h"
#include "samples/listen_event_json.h"
#include "samples/load_options.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/listener.h"
#include "host/audio/resampler.h"
#include "host/audio/wav_reader.h"
#include "host/error.h"

namespace vkssm::cli {

const std::vector<Flag> kListenFlags = {
    {"--model", "DIR", "command model folder (default: the shipped speech-commands model)"},
    {"--backend", "NAME", kBackendHelp},
    {"--device", "N", "Vulkan device index (default: $VKSSM_DEVICE, else the best)"},
    {"--threads", "N", kThreadsHelp},
    {"--threshold", "X", "detection threshold in (0, 1] (default: the model's)"},
    {"--frames-per-step", "F", "hops per stream in each batched step, 1..64 (default 1): more streams keep up, detections F-1 hops later at most"},
    {"--json", "", "print one JSON object per detection instead of tab-separated fields"},
    {"--bench", "N", "instead of inputs: N synthetic streams (N, or a list like 64,128,256)"},
    {"--seconds", "S", "with --bench: seconds of audio per stream (default 10)"},
};

const char* const kListenDetails =
    "Each INPUT is a WAV file (PCM 8/16/24/32-bit or float, mono or stereo, any sample rate) or '-'\n"
    "for raw signed 16-bit little-endian 16 kHz mono audio on standard input, e.g.\n"
    "  arecord -q -f S16_LE -r 16000 -c 1 | vkssm listen -\n"
    "Output, one line per detection as soon as it is decided: STREAM<TAB>SECONDS<TAB>WORD<TAB>SCORE\n"
    "(STREAM is the input's index, SECONDS the time from the start of that input), or with --json\n"
    "{\"stream\": 0, \"input\": \"a.wav\", \"word\": \"go\", \"time\": 1.23, \"score\": 0.97}.\n"
    "At the end, standard error gets the streams, audio and wall seconds, the real-time factor and\n"
    "the per-hop latency. An input that cannot be read is reported and the others go on; the exit\n"
    "code is then 1.\n"
    "--bench N runs N streams of synthetic audio (the shipped demo recordings, shifted per stream)\n"
    "and reports, for each N, the real-time factor and per-hop latency p50/p99.\n";

namespace {

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  size_t i = size_t(std::min<double>(double(v.size() - 1), std::floor(p * double(v.size() - 1) + 0.5)));
  return v[i];
}

ListenerOptions listener_options(const Args& args, int streams) {
  ListenerOptions opt;
  opt.load = load_options(args);
  opt.load.max_streams = std::max(1, streams);
  if (args.has("--frames-per-step"))
    opt.load.frames_per_step = int(parse_int("--frames-per-step", args.get("--frames-per-step"), 1, 64));
  if (args.has("--threshold")) {
    opt.threshold = parse_float("--threshold", args.get("--threshold"), 0.0f, 1.0f);
    if (opt.threshold <= 0.0f) throw UsageError("--threshold: expected a number in (0, 1], got '" + args.get("--threshold") + "'");
  }
  return opt;
}

std::string model_dir(const Args& args) {
  if (args.has("--model")) return args.get("--model");
  std::string dir = Listener::default_model_dir();
  if (dir.empty())
    throw Error("the shipped speech-commands model was not found next to the vkssm executable; give --model DIR");
  return dir;
}

// Raw s16le from standard input into one stream, on its own thread, until end of file.
void read_stdin(Listener& listener, int stream, std::atomic<bool>& finished) {
  std::vector<uint8_t> buf(6400);  // 200 ms
  size_t carry = 0;
  std::vector<int16_t> samples;
  while (true) {
    ssize_t got = ::read(0, buf.data() + carry, buf.size() - carry);
    if (got <= 0) break;
    size_t have = carry + size_t(got), n = have / 2;
    samples.resize(n);
    for (size_t i = 0; i < n; ++i) samples[i] = int16_t(uint16_t(buf[2 * i] | (buf[2 * i + 1] << 8)));
    listener.push_s16(stream, samples.data(), n);
    carry = have % 2;
    if (carry) buf[0] = buf[have - 1];
  }
  listener.finish(stream);
  finished = true;
}

void print_event(const ListenerEvent& e, int index, const std::string& input, bool json_out) {
  if (json_out) {
    std::cout << listen_event_json(e, index, input).dump() << "\n";
  } else {
    char line[256];
    std::snprintf(line, sizeof line, "%d\t%.2f\t%s\t%.3f\n", index, e.time, e.word.c_str(), double(e.score));
    std::cout << line;
  }
  std::cout << std::flush;
}

// With several hops per step the latency figures are per step.
std::string steps_note(const ListenerStats& st) {
  if (st.steps == st.hops) return "";
  return " (" + std::to_string(st.steps) + " steps of " + std::to_string(st.steps ? st.hops / st.steps : 0) +
         " hops: the latency is per step)";
}

void print_summary(const Listener& l, int streams, double audio_seconds, double wall) {
  const auto& st = l.stats();
  char line[512];
  std::snprintf(line, sizeof line,
                "listen: %d streams, %.2f s of audio in %.3f s wall (real-time factor %.4f, %.1fx real time); "
                "per-hop latency p50 %.3f ms, p99 %.3f ms over %llu hops%s\n",
                streams, audio_seconds, wall, audio_seconds > 0 ? wall / audio_seconds : 0.0,
                wall > 0 ? audio_seconds / wall : 0.0, percentile(st.hop_ms, 0.5), percentile(st.hop_ms, 0.99),
                static_cast<unsigned long long>(st.hops), steps_note(st).c_str());
  std::cerr << line;
}

int run_inputs(const Args& args, const std::vector<std::string>& inputs) {
  if (std::count(inputs.begin(), inputs.end(), std::string("-")) > 1)
    throw UsageError("standard input ('-') can be given once");
  const bool json_out = args.has("--json");
  // Read every file first, so that each bad one is reported by name before any model work.
  std::vector<WavAudio> audio(inputs.size());
  std::vector<bool> ok(inputs.size(), true);
  bool failed = false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i] == "-") continue;
    try {
      audio[i] = read_wav_file(inputs[i]);
    } catch (const Error& e) {
      std::cerr << "vkssm: error: " << e.what() << "\n";
      ok[i] = false;
      failed = true;
    }
  }
  Listener listener(model_dir(args), listener_options(args, int(inputs.size())));
  report_backend_choice(listener.model_info());
  std::vector<int> index_of(listener.capacity(), -1);
  std::vector<int> stream_of(inputs.size(), -1);
  std::atomic<bool> stdin_done{true};
  std::thread stdin_thread;
  double audio_seconds = 0.0;
  auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!ok[i]) continue;
    if (inputs[i] == "-") {
      int s = listener.open_stream(16000);
      stream_of[i] = s, index_of[s] = int(i);
      stdin_done = false;
      stdin_thread = std::thread(read_stdin, std::ref(listener), s, std::ref(stdin_done));
      continue;
    }
    int s = listener.open_stream(audio[i].sample_rate);
    stream_of[i] = s, index_of[s] = int(i);
    listener.push(s, audio[i].samples.data(), audio[i].samples.size());
    listener.finish(s);
    audio[i].samples = {};
  }
  while (true) {
    int hops = listener.process();
    for (const ListenerEvent& e : listener.poll()) print_event(e, index_of[e.stream], inputs[index_of[e.stream]], json_out);
    if (hops == 0) {
      if (stdin_done && listener.open_streams() == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  if (stdin_thread.joinable()) stdin_thread.join();
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  audio_seconds = double(listener.stats().frames) * 0.01;
  int streams = int(std::count_if(stream_of.begin(), stream_of.end(), [](int s) { return s >= 0; }));
  print_summary(listener, streams, audio_seconds, wall);
  return failed ? 1 : 0;
}

// --bench: N streams of the shipped demo recordings (each stream starts at a different offset of
// their concatenation, so streams differ), processed as fast as possible.
int run_bench(const Args& args) {
  std::vector<int> counts;
  std::stringstream list(args.get("--bench"));
  for (std::string item; std::getline(list, item, ',');) counts.push_back(int(parse_int("--bench", item, 1, 4096)));
  const double seconds = args.has("--seconds") ? parse_float("--seconds", args.get("--seconds"), 0.1f, 3600.0f) : 10.0;
  const std::string dir = model_dir(args);
  std::vector<float> source;
  const std::string demo = dir + "/demo";
  for (int i = 0;; ++i) {
    std::string path = demo + "/command-" + std::to_string(i) + ".wav";
    if (::access(path.c_str(), R_OK) != 0) break;
    WavAudio w = read_wav_file(path);
    std::vector<float> x = resample(w.samples, w.sample_rate, 16000);
    source.insert(source.end(), x.begin(), x.end());
  }
  if (source.empty()) throw Error(demo + ": no demo recordings (command-0.wav, ...) for --bench");
  const size_t n = size_t(seconds * 16000);
  // With several hops per step the latency columns are per step (F hops of audio).
  const bool per_step = args.has("--frames-per-step") && args.get("--frames-per-step") != "1";
  std::cout << (per_step ? "streams  audio_s   wall_s  realtime_x step_p50_ms step_p99_ms  keeps_up\n"
                         : "streams  audio_s   wall_s  realtime_x  hop_p50_ms  hop_p99_ms  keeps_up\n");
  int best = 0;
  for (int N : counts) {
    Listener listener(dir, listener_options(args, N));
    std::vector<float> chunk(n);
    for (int s = 0; s < N; ++s) {
      size_t offset = (size_t(s) * 7919 * 16) % source.size();
      for (size_t k = 0; k < n; ++k) chunk[k] = source[(offset + k) % source.size()];
      int id = listener.open_stream(16000);
      listener.push(id, chunk.data(), n);
      listener.finish(id);
    }
    auto t0 = std::chrono::steady_clock::now();
    while (listener.process() > 0) listener.poll();
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto& st = listener.stats();
    const double audio = double(st.frames) * 0.01 / N;  // seconds per stream
    const bool keeps_up = wall <= audio;
    if (keeps_up) best = std::max(best, N);
    char line[256];
    std::snprintf(line, sizeof line, "%7d  %7.2f  %7.3f  %10.2f  %10.3f  %10.3f  %8s\n", N, audio, wall, audio / wall,
                  percentile(st.hop_ms, 0.5), percentile(st.hop_ms, 0.99), keeps_up ? "yes" : "no");
    std::cout << line << std::flush;
  }
  std::cout << "largest real-time stream count measured: " << best << "\n";
  return 0;
}

}  // namespace

int cmd_listen(const Args& args) {
  const auto& inputs = args.positional();
  if (args.has("--bench")) {
    if (!inputs.empty()) throw UsageError("--bench takes no inputs");
    return run_bench(args);
  }
  if (args.has("--seconds")) throw UsageError("--seconds goes with --bench");
  if (inputs.empty()) throw UsageError("give at least one INPUT (a WAV file or '-')");
  return run_inputs(args, inputs);
}

}  // namespace vkssm::cli

// The speech-command listener (engine/listener.h) and its C API on the shipped command model and
// demo recordings: the same events on the reference, cpu and vulkan backends, streams that are copies give
// identical events whatever the chunking or thread, and every misuse gives an exact error.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/listener.h"
#include "engine/vkssm.h"
#include "host/audio/wav_reader.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

namespace fs = std::filesystem;
using testing::HasSubstr;
using testing_helpers::error_of;

const std::string kModel = std::string(VKSSM_SOURCE_DIR) + "/models/s4d/speech-commands";

std::string demo(int i) { return kModel + "/demo/command-" + std::to_string(i) + ".wav"; }

// The commands the demo's script says, in order (command-N.txt: "voice, rate, channels: a / b").
std::vector<std::string> spoken_commands(int i, const std::vector<std::string>& commands) {
  std::ifstream in(kModel + "/demo/command-" + std::to_string(i) + ".txt");
  std::string line;
  std::getline(in, line);
  line = line.substr(line.find(':', line.find("channel")) + 1);
  std::vector<std::string> out;
  std::string word;
  for (char c : line + " ") {
    if (std::isalpha(static_cast<unsigned char>(c))) {
      word += c;
    } else if (!word.empty()) {
      if (std::find(commands.begin(), commands.end(), word) != commands.end()) out.push_back(word);
      word.clear();
    }
  }
  return out;
}

ListenerOptions options(BackendKind backend, int streams) {
  ListenerOptions o;
  o.load.backend = backend;
  o.load.max_streams = streams;
  return o;
}

struct Heard {
  int stream;
  std::string word;
  double time;
  float score;
};

// Runs whole files (pushed in `chunk`-sample pieces) through one listener; events per stream.
std::vector<std::vector<Heard>> listen(Listener& l, const std::vector<WavAudio>& inputs, size_t chunk) {
  std::vector<int> ids;
  for (const WavAudio& a : inputs) ids.push_back(l.open_stream(a.sample_rate));
  std::vector<std::vector<Heard>> out(inputs.size());
  std::vector<bool> finished(inputs.size(), false);
  for (size_t pos = 0;; pos += chunk) {
    bool more = false;
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (finished[i]) continue;
      const auto& x = inputs[i].samples;
      if (pos < x.size()) l.push(ids[i], x.data() + pos, std::min(chunk, x.size() - pos));
      if (pos + chunk >= x.size()) {
        l.finish(ids[i]);
        finished[i] = true;
      } else {
        more = true;
      }
    }
    l.process();
    if (!more) break;
  }
  while (l.process() > 0) {
  }
  for (const ListenerEvent& e : l.poll()) {
    size_t i = size_t(std::find(ids.begin(), ids.end(), e.stream) - ids.begin());
    out[i].push_back({e.stream, e.word, e.time, e.score});
  }
  for (int id : ids) EXPECT_TRUE(l.done(id));
  EXPECT_EQ(l.open_streams(), 0);
  return out;
}

TEST(Listener, ShippedModelHasTheCommandVocabulary) {
  Listener l(kModel, options(BackendKind::Reference, 1));
  EXPECT_EQ(l.commands(), (std::vector<std::string>{"yes", "no", "up", "down", "left", "right", "on", "off", "stop",
                                                    "go", "forward", "backward", "zero", "one", "two", "three", "four",
                                                    "five", "six", "seven", "eight", "nine"}));
  EXPECT_EQ(l.model_info().architecture, "s4d");
  EXPECT_EQ(l.model_info().d_input, 40);
}

// True when `heard` is `spoken` with some words left out (nothing heard that was not said, in order).
bool is_subsequence(const std::vector<std::string>& heard, const std::vector<std::string>& spoken) {
  size_t i = 0;
  for (const std::string& w : spoken)
    if (i < heard.size() && heard[i] == w) ++i;
  return i == heard.size();
}

// Every demo recording (three sample rates, one stereo) gives only commands that were said, in
// order; command-1.wav (espeak-ng's held-out Annie variant) gives all four; and the cpu and vulkan
// backends decide the same words at the same times.
TEST(Listener, DemoRecordingsGiveTheirCommandsOnBothBackends) {
  std::vector<WavAudio> inputs;
  for (int i = 0; i < 4; ++i) inputs.push_back(read_wav_file(demo(i)));
  Listener cpu(kModel, options(BackendKind::Reference, 4));
  Listener gpu(kModel, options(BackendKind::Vulkan, 4));
  auto a = listen(cpu, inputs, 4096);
  auto b = listen(gpu, inputs, 4096);
  for (int i = 0; i < 4; ++i) {
    std::vector<std::string> words;
    for (const Heard& h : a[i]) words.push_back(h.word);
    EXPECT_TRUE(is_subsequence(words, spoken_commands(i, cpu.commands()))) << demo(i);
    if (i == 1) {
      EXPECT_EQ(words, spoken_commands(i, cpu.commands()));
    }
    ASSERT_EQ(a[i].size(), b[i].size()) << demo(i);
    for (size_t k = 0; k < a[i].size(); ++k) {
      EXPECT_EQ(a[i][k].word, b[i][k].word);
      EXPECT_EQ(a[i][k].time, b[i][k].time);
      EXPECT_NEAR(a[i][k].score, b[i][k].score, 1e-3);
    }
  }
  EXPECT_EQ(spoken_commands(1, cpu.commands()), (std::vector<std::string>{"yes", "no", "up", "down"}));
}

// A recording cut off right after its last command, before the decision (which comes 0.1-0.4 s
// after the word), still gives that command, at about the same time: its end is followed by
// silence. The listener's audio frames are those of the recording, not of that silence.
TEST(Listener, ARecordingCutRightAfterItsLastCommandStillGivesIt) {
  const WavAudio full = read_wav_file(demo(1));
  Listener l(kModel, options(BackendKind::Vulkan, 1));
  const auto whole = listen(l, {full}, 4096)[0];
  ASSERT_EQ(whole.size(), 4u);
  WavAudio cut = full;
  cut.samples.resize(size_t((whole.back().time - 0.12) * full.sample_rate));
  ASSERT_LT(double(cut.samples.size()) / cut.sample_rate, whole.back().time - 0.1);
  const uint64_t frames_before = l.stats().frames;
  const auto heard = listen(l, {cut}, 4096)[0];
  ASSERT_EQ(heard.size(), whole.size());
  EXPECT_EQ(heard.back().word, whole.back().word);
  EXPECT_NEAR(heard.back().time, whole.back().time, 0.05);
  const uint64_t resampled = uint64_t(std::ceil(double(cut.samples.size()) * 16000.0 / cut.sample_rate));
  EXPECT_NEAR(double(l.stats().frames - frames_before), double(resampled - 400) / 160 + 1, 1.0);
}

#if VKSSM_CPU_FAST
// The cpu backend (s4d_cpu_fast.cpp, fp32 sums) decides the same words at the same times as the
// reference on every demo recording; it hears at least the four commands of command-1.wav.
TEST(Listener, DemoRecordingsGiveTheSameEventsOnTheCpuBackend) {
  std::vector<WavAudio> inputs;
  for (int i = 0; i < 4; ++i) inputs.push_back(read_wav_file(demo(i)));
  Listener ref(kModel, options(BackendKind::Reference, 4));
  Listener fast(kModel, options(BackendKind::Cpu, 4));
  EXPECT_EQ(fast.model_info().backend, "cpu");
  auto a = listen(ref, inputs, 4096);
  auto b = listen(fast, inputs, 4096);
  size_t events = 0;
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(a[i].size(), b[i].size()) << demo(i);
    events += a[i].size();
    for (size_t k = 0; k < a[i].size(); ++k) {
      EXPECT_EQ(a[i][k].word, b[i][k].word) << demo(i);
      EXPECT_EQ(a[i][k].time, b[i][k].time) << demo(i);
      EXPECT_NEAR(a[i][k].score, b[i][k].score, 1e-3) << demo(i);
    }
  }
  EXPECT_GE(b[1].size(), 4u);
  EXPECT_GE(events, 4u);
}
#endif

// N copies of one file, pushed in different chunk sizes, give N identical event lists.
TEST(Listener, CopiesOfOneStreamGiveIdenticalEvents) {
  WavAudio w = read_wav_file(demo(1));
  std::vector<WavAudio> copies(8, w);
  Listener l(kModel, options(BackendKind::Vulkan, 8));
  auto together = listen(l, copies, 1000);
  ASSERT_FALSE(together[0].empty());
  for (int i = 1; i < 8; ++i) {
    ASSERT_EQ(together[i].size(), together[0].size()) << i;
    for (size_t k = 0; k < together[0].size(); ++k) {
      EXPECT_EQ(together[i][k].word, together[0][k].word);
      EXPECT_EQ(together[i][k].time, together[0][k].time);
      EXPECT_EQ(together[i][k].score, together[0][k].score);
    }
  }
  // Chunking does not matter either: one sample at a time for the first second, then the rest.
  Listener solo(kModel, options(BackendKind::Vulkan, 1));
  int s = solo.open_stream(w.sample_rate);
  for (size_t i = 0; i < 16000; ++i) {
    solo.push(s, &w.samples[i], 1);
    if (i % 500 == 0) solo.process();
  }
  solo.push(s, w.samples.data() + 16000, w.samples.size() - 16000);
  solo.finish(s);
  while (solo.process() > 0) {
  }
  auto events = solo.poll();
  ASSERT_EQ(events.size(), together[0].size());
  for (size_t k = 0; k < events.size(); ++k) {
    EXPECT_EQ(events[k].word, together[0][k].word);
    EXPECT_EQ(events[k].time, together[0][k].time);
  }
}

TEST(Listener, PushesFromManyThreads) {
  WavAudio w = read_wav_file(demo(1));
  Listener l(kModel, options(BackendKind::Reference, 4));
  std::vector<int> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(l.open_stream(w.sample_rate));
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      for (size_t pos = 0; pos < w.samples.size(); pos += 777)
        l.push(ids[i], w.samples.data() + pos, std::min<size_t>(777, w.samples.size() - pos));
      l.finish(ids[i]);
    });
  while (l.open_streams() > 0) {
    l.process();
    std::this_thread::yield();
  }
  for (auto& t : threads) t.join();
  std::vector<std::vector<std::string>> words(4);
  for (const ListenerEvent& e : l.poll()) words[size_t(e.stream)].push_back(e.word);
  EXPECT_FALSE(words[0].empty());
  for (int i = 1; i < 4; ++i) EXPECT_EQ(words[i], words[0]);
}

TEST(Listener, StreamsOfDifferentLengthsLeaveAndSlotsAreReused) {
  Listener l(kModel, options(BackendKind::Reference, 2));
  int a = l.open_stream(16000), b = l.open_stream(8000);
  std::vector<float> one_second(16000, 0.0f);
  l.push(a, one_second.data(), 16000);  // 1 s at 16 kHz: 98 frames
  l.push(b, one_second.data(), 4000);   // 0.5 s at 8 kHz: 48 frames
  l.finish(a);
  l.finish(b);
  while (l.process() > 0) {
  }
  EXPECT_TRUE(l.done(a));
  EXPECT_TRUE(l.done(b));
  EXPECT_EQ(l.stats().hops, 148u);  // 98 and the 0.5 s of silence after an end (kEndOfAudioSilenceSamples)
  EXPECT_EQ(l.stats().frames, 98u + 48u);
  EXPECT_EQ(l.open_stream(44100), a);  // the slot is free again
  EXPECT_TRUE(l.poll().empty());       // silence: no command
}

// Several hops per step (LoadOptions::frames_per_step) give the events one hop per step gives,
// on both backends, with streams of different lengths ending part-way through a step and audio
// pushed in pieces that are not whole steps; a stream's padding is not counted.
TEST(Listener, SeveralHopsPerStepGiveTheSameEvents) {
  std::vector<WavAudio> inputs;
  for (int i = 0; i < 4; ++i) inputs.push_back(read_wav_file(demo(i)));
  for (BackendKind backend : {BackendKind::Vulkan, BackendKind::Reference}) {
    Listener one(kModel, options(backend, 4));
    ListenerOptions o = options(backend, 4);
    o.load.frames_per_step = 3;
    Listener three(kModel, o);
    auto a = listen(one, inputs, 4096);
    auto b = listen(three, inputs, 1000);
    for (int i = 0; i < 4; ++i) {
      ASSERT_EQ(a[i].size(), b[i].size()) << demo(i);
      for (size_t k = 0; k < a[i].size(); ++k) {
        EXPECT_EQ(a[i][k].word, b[i][k].word);
        EXPECT_EQ(a[i][k].time, b[i][k].time);
        EXPECT_EQ(a[i][k].score, b[i][k].score);
      }
    }
    EXPECT_EQ(one.stats().frames, three.stats().frames);
    EXPECT_EQ(three.stats().hops, 3 * three.stats().steps);
  }
  ListenerOptions bad = options(BackendKind::Reference, 1);
  bad.load.frames_per_step = 0;
  EXPECT_EQ(error_of([&] { Listener l(kModel, bad); }), "frames_per_step must be within 1 .. 64, got 0");
}

TEST(Listener, MisuseGivesExactErrors) {
  Listener l(kModel, options(BackendKind::Reference, 1));
  int s = l.open_stream(16000);
  EXPECT_EQ(error_of([&] { l.open_stream(16000); }),
            "listener: all 1 streams are in use (the limit is the model's max_streams)");
  float x = 0;
  EXPECT_EQ(error_of([&] { l.push(5, &x, 1); }), "listener: stream 5 is not open");
  EXPECT_EQ(error_of([&] { l.push(-1, &x, 1); }), "listener: stream -1 is not open");
  l.finish(s);
  EXPECT_EQ(error_of([&] { l.push(s, &x, 1); }), "listener: stream 0 was finished; no more audio");
  l.close(s);
  EXPECT_EQ(error_of([&] { l.finish(s); }), "listener: stream 0 is not open");
  EXPECT_EQ(error_of([&] { l.open_stream(0); }), "sample rate 0 Hz to 16000 Hz: rates must be within 1 .. 384000 Hz");
  ListenerOptions bad = options(BackendKind::Reference, 1);
  bad.threshold = 2.0f;
  EXPECT_EQ(error_of([&] { Listener x(kModel, bad); }), "command decoder: threshold 2.000000 is outside (0, 1]");
  EXPECT_EQ(error_of([&] { Listener x("/nonexistent", options(BackendKind::Reference, 1)); }),
            "/nonexistent/config.json: cannot open (is /nonexistent a command model folder?)");
}

// A model folder whose config lacks or contradicts the speech_commands section.
TEST(Listener, RefusesModelsThatDoNotFitTheFrontEnd) {
  fs::path dir = fs::path(testing::TempDir()) / ("vkssm_listener_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(kModel + "/model.safetensors", dir / "model.safetensors", fs::copy_options::overwrite_existing);
  std::ifstream in(kModel + "/config.json");
  std::string config((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto write_config = [&](const std::string& text) { std::ofstream(dir / "config.json") << text; };
  const std::string path = (dir / "config.json").string();
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string c = config;
    size_t at = c.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return c.replace(at, from.size(), to);
  };
  write_config(replaced("\"speech_commands\"", "\"other\""));
  EXPECT_EQ(error_of([&] { Listener x(dir.string(), options(BackendKind::Reference, 1)); }), path + ": missing 'speech_commands'");
  write_config(replaced("\"n_mels\": 40", "\"n_mels\": 64"));
  EXPECT_EQ(error_of([&] { Listener x(dir.string(), options(BackendKind::Reference, 1)); }),
            path + " speech_commands.features: 'n_mels' is 64, but vkssm's front-end computes 40 (host/audio/log_mel.h)");
  write_config(replaced("\"yes\",", ""));
  EXPECT_EQ(error_of([&] { Listener x(dir.string(), options(BackendKind::Reference, 1)); }),
            path + " speech_commands: 22 labels, but the model has 23 outputs");
  write_config("{");
  EXPECT_THAT(error_of([&] { Listener x(dir.string(), options(BackendKind::Reference, 1)); }),
              HasSubstr(path + ": not valid JSON"));
  fs::remove_all(dir);
}

TEST(ListenerCApi, ListensAndReportsErrors) {
  vkssm_load_options o;
  vkssm_load_options_default(&o);
  o.backend = 1;
  o.max_streams = 2;
  vkssm_listener* l = nullptr;
  ASSERT_EQ(vkssm_listener_create(kModel.c_str(), &o, 0.0f, &l), VKSSM_OK) << vkssm_last_error();
  EXPECT_EQ(vkssm_listener_command_count(l), 22);
  EXPECT_STREQ(vkssm_listener_command(l, 9), "go");
  EXPECT_EQ(vkssm_listener_command(l, 22), nullptr);
  WavAudio w = read_wav_file(demo(1));
  int s = -1;
  ASSERT_EQ(vkssm_listener_open_stream(l, w.sample_rate, &s), VKSSM_OK);
  std::vector<int16_t> pcm(w.samples.size());
  for (size_t i = 0; i < pcm.size(); ++i) pcm[i] = int16_t(std::lround(w.samples[i] * 32768.0f));
  ASSERT_EQ(vkssm_listener_push_s16(l, s, pcm.data(), pcm.size()), VKSSM_OK);
  ASSERT_EQ(vkssm_listener_finish_stream(l, s), VKSSM_OK);
  int hops = 0, done = 0, n = 0;
  ASSERT_EQ(vkssm_listener_process(l, &hops), VKSSM_OK);
  EXPECT_GT(hops, 100);
  ASSERT_EQ(vkssm_listener_stream_done(l, s, &done), VKSSM_OK);
  EXPECT_EQ(done, 1);
  vkssm_listen_event ev[2];
  std::vector<std::string> words;
  do {
    ASSERT_EQ(vkssm_listener_poll(l, ev, 2, &n), VKSSM_OK);
    for (int i = 0; i < n; ++i) words.push_back(ev[i].word);
  } while (n == 2);
  Listener ref(kModel, options(BackendKind::Reference, 1));
  EXPECT_EQ(words, spoken_commands(1, ref.commands()));

  EXPECT_EQ(vkssm_listener_push_s16(l, 7, pcm.data(), 1), VKSSM_ERROR);
  EXPECT_STREQ(vkssm_last_error(), "listener: stream 7 is not open");
  EXPECT_EQ(vkssm_listener_poll(l, nullptr, 1, &n), VKSSM_INVALID_ARGUMENT);
  EXPECT_STREQ(vkssm_last_error(), "vkssm_listener_poll: events is NULL");
  EXPECT_EQ(vkssm_listener_open_stream(nullptr, 16000, &s), VKSSM_INVALID_ARGUMENT);
  vkssm_listener* bad = nullptr;
  EXPECT_EQ(vkssm_listener_create(kModel.c_str(), &o, 1.5f, &bad), VKSSM_INVALID_ARGUMENT);
  EXPECT_STREQ(vkssm_last_error(), "vkssm_listener_create: threshold must be 0 (the model's) or in (0, 1], got 1.500000");
  EXPECT_EQ(bad, nullptr);
  vkssm_listener_free(l);
}

}  // namespace
}  // namespace vkssm

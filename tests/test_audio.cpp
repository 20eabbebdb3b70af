// The speech front-end (host/audio): WAV reading, resampling, streaming log-mel features against
// the Python definition that training uses, and the command decoder.
#include <unistd.h>

#include <cmath>
#include <complex>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "host/audio/command_decoder.h"
#include "host/audio/log_mel.h"
#include "host/audio/resampler.h"
#include "host/audio/wav_reader.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

namespace fs = std::filesystem;
using testing::HasSubstr;
using testing_helpers::error_of;

// ---- WAV files built byte by byte -----------------------------------------------------------

void put(std::vector<uint8_t>& b, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) b.push_back(uint8_t(v >> (8 * i)));
}

// A WAV with `format` (1 PCM, 3 float, 0xFFFE extensible over PCM), given sample bytes.
std::vector<uint8_t> make_wav(uint16_t format, int channels, int rate, int bits, const std::vector<uint8_t>& data,
                              int64_t data_size_field = -1, bool extra_chunk = false) {
  std::vector<uint8_t> b;
  b.insert(b.end(), {'R', 'I', 'F', 'F'});
  put(b, 0, 4);  // RIFF size: not checked (streaming writers leave it wrong)
  b.insert(b.end(), {'W', 'A', 'V', 'E', 'f', 'm', 't', ' '});
  const bool ext = format == 0xFFFE;
  put(b, ext ? 40 : 16, 4);
  put(b, format, 2);
  put(b, channels, 2);
  put(b, rate, 4);
  put(b, rate * channels * bits / 8, 4);
  put(b, channels * bits / 8, 2);
  put(b, bits, 2);
  if (ext) {
    put(b, 22, 2);
    put(b, bits, 2);
    put(b, 0, 4);
    put(b, 1, 2);  // sub-format: PCM, then the rest of the GUID
    for (int i = 0; i < 14; ++i) b.push_back(0);
  }
  if (extra_chunk) {
    b.insert(b.end(), {'L', 'I', 'S', 'T'});
    put(b, 3, 4);
    b.insert(b.end(), {'a', 'b', 'c', 0});  // odd size + pad byte
  }
  b.insert(b.end(), {'d', 'a', 't', 'a'});
  put(b, data_size_field >= 0 ? uint32_t(data_size_field) : uint32_t(data.size()), 4);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

WavAudio parse(const std::vector<uint8_t>& b) { return parse_wav(b.data(), b.size(), "x.wav"); }

TEST(WavReader, ReadsEveryPcmDepthAndFloat) {
  // 8-bit unsigned: 0 -> -1, 128 -> 0, 192 -> 0.5
  WavAudio a = parse(make_wav(1, 1, 8000, 8, {0, 128, 192}));
  EXPECT_EQ(a.sample_rate, 8000);
  EXPECT_EQ(a.bits_per_sample, 8);
  EXPECT_EQ(a.samples, (std::vector<float>{-1.0f, 0.0f, 0.5f}));
  // 16-bit: -32768, 16384
  std::vector<uint8_t> d16;
  put(d16, 0x8000, 2);
  put(d16, 0x4000, 2);
  EXPECT_EQ(parse(make_wav(1, 1, 16000, 16, d16)).samples, (std::vector<float>{-1.0f, 0.5f}));
  // 24-bit: 0x400000 = 0.5, 0xC00000 = -0.5
  std::vector<uint8_t> d24;
  put(d24, 0x400000, 3);
  put(d24, 0xC00000, 3);
  EXPECT_EQ(parse(make_wav(1, 1, 22050, 24, d24)).samples, (std::vector<float>{0.5f, -0.5f}));
  // 32-bit integer
  std::vector<uint8_t> d32;
  put(d32, 0x20000000, 4);
  EXPECT_EQ(parse(make_wav(1, 1, 48000, 32, d32)).samples, (std::vector<float>{0.25f}));
  // 32-bit float
  std::vector<uint8_t> df;
  float f = -0.125f;
  uint32_t u;
  std::memcpy(&u, &f, 4);
  put(df, u, 4);
  WavAudio fl = parse(make_wav(3, 1, 44100, 32, df));
  EXPECT_TRUE(fl.is_float);
  EXPECT_EQ(fl.samples, (std::vector<float>{-0.125f}));
  // WAVE_FORMAT_EXTENSIBLE over PCM, with a LIST chunk of odd size before the data
  EXPECT_EQ(parse(make_wav(0xFFFE, 1, 16000, 16, d16, -1, true)).samples, (std::vector<float>{-1.0f, 0.5f}));
}

TEST(WavReader, MixesStereoToMono) {
  std::vector<uint8_t> d;
  put(d, 0x4000, 2);  // L 0.5
  put(d, 0x0000, 2);  // R 0
  put(d, 0xC000, 2);  // L -0.5
  put(d, 0xC000, 2);  // R -0.5
  WavAudio a = parse(make_wav(1, 2, 16000, 16, d));
  EXPECT_EQ(a.channels, 2);
  EXPECT_EQ(a.samples, (std::vector<float>{0.25f, -0.5f}));
}

TEST(WavReader, ZeroSamplesAndStreamingSize) {
  EXPECT_TRUE(parse(make_wav(1, 1, 16000, 16, {})).samples.empty());
  // A writer on a pipe leaves 0xFFFFFFFF: the data runs to the end of the file.
  std::vector<uint8_t> d;
  put(d, 0x4000, 2);
  put(d, 0x4000, 2);
  EXPECT_EQ(parse(make_wav(1, 1, 16000, 16, d, 0xFFFFFFFFu)).samples.size(), 2u);
}

TEST(WavReader, RefusesBrokenFilesNamingThem) {
  std::vector<uint8_t> d(8, 0);
  EXPECT_EQ(error_of([&] { parse({'R', 'I', 'F', 'F'}); }), "x.wav: not a WAV file (no RIFF/WAVE header)");
  std::vector<uint8_t> text(64, 'a');
  EXPECT_EQ(error_of([&] { parse(text); }), "x.wav: not a WAV file (no RIFF/WAVE header)");
  EXPECT_EQ(error_of([&] { parse(make_wav(1, 1, 16000, 16, d, 1000)); }),
            "x.wav: truncated: the data chunk holds 1000 bytes but the file has 8");
  auto no_data = make_wav(1, 1, 16000, 16, d);
  no_data.resize(36);  // RIFF header + fmt chunk only
  EXPECT_EQ(error_of([&] { parse(no_data); }), "x.wav: no data chunk");
  auto cut_fmt = make_wav(1, 1, 16000, 16, d);
  cut_fmt.resize(20);
  EXPECT_EQ(error_of([&] { parse(cut_fmt); }), "x.wav: truncated fmt chunk");
  EXPECT_EQ(error_of([&] { parse(make_wav(2, 1, 16000, 16, d)); }),
            "x.wav: WAV format code 2 is not supported (PCM or IEEE float only)");
  EXPECT_EQ(error_of([&] { parse(make_wav(1, 3, 16000, 16, d)); }),
            "x.wav: 3 channels are not supported (mono or stereo)");
  EXPECT_EQ(error_of([&] { parse(make_wav(1, 1, 16000, 12, d)); }),
            "x.wav: PCM samples of 12 bits are not supported (8, 16, 24 or 32)");
  EXPECT_EQ(error_of([&] { parse(make_wav(3, 1, 16000, 64, d)); }),
            "x.wav: float samples of 64 bits are not supported (32 only)");
  EXPECT_EQ(error_of([&] { parse(make_wav(1, 1, 0, 16, d)); }), "x.wav: sample rate 0 Hz is out of range");
  EXPECT_EQ(error_of([&] { read_wav_file("/nonexistent/a.wav"); }), "/nonexistent/a.wav: cannot open");
}

TEST(WavReader, WriteThenReadRoundTrips) {
  fs::path p = fs::path(testing::TempDir()) / ("vkssm_wav_" + std::to_string(::getpid()) + ".wav");
  write_wav_file(p.string(), {0.0f, 0.5f, -0.5f, 2.0f}, 8000);
  WavAudio a = read_wav_file(p.string());
  fs::remove(p);
  ASSERT_EQ(a.samples.size(), 4u);
  EXPECT_EQ(a.sample_rate, 8000);
  EXPECT_NEAR(a.samples[1], 0.5f, 1.0f / 32768);
  EXPECT_NEAR(a.samples[2], -0.5f, 1.0f / 32768);
  EXPECT_NEAR(a.samples[3], 1.0f, 1.0f / 32768);  // clipped
}

// ---- resampling -----------------------------------------------------------------------------

std::vector<float> tone(double hz, int rate, double seconds, double amp = 0.5) {
  std::vector<float> x(size_t(seconds * rate));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(amp * std::sin(2 * M_PI * hz * double(i) / rate));
  return x;
}

// Amplitude of the component at `hz` (a single-bin DFT over the middle of the signal).
double amplitude_at(const std::vector<float>& x, int rate, double hz) {
  size_t a = x.size() / 4, b = 3 * x.size() / 4;
  std::complex<double> s = 0;
  for (size_t i = a; i < b; ++i) s += double(x[i]) * std::polar(1.0, -2 * M_PI * hz * double(i) / rate);
  return 2.0 * std::abs(s) / double(b - a);
}

TEST(Resampler, TonesKeepTheirFrequencyAndLevel) {
  for (int rate : {8000, 22050, 44100, 48000}) {
    std::vector<float> y = resample(tone(1000.0, rate, 1.0), rate, 16000);
    EXPECT_NEAR(double(y.size()), 16000.0, 2.0) << rate;
    EXPECT_NEAR(amplitude_at(y, 16000, 1000.0), 0.5, 0.01) << rate;
    EXPECT_LT(amplitude_at(y, 16000, 1100.0), 0.01) << rate;
  }
}

TEST(Resampler, NothingAliasesFromAbove8kHz) {
  // 12 kHz and 15 kHz at 48 kHz would fold to 4 kHz and 1 kHz without the anti-aliasing filter.
  for (double hz : {12000.0, 15000.0}) {
    std::vector<float> y = resample(tone(hz, 48000, 1.0), 48000, 16000);
    double rms = 0;
    for (size_t i = y.size() / 4; i < 3 * y.size() / 4; ++i) rms += double(y[i]) * y[i];
    rms = std::sqrt(rms / double(y.size() / 2));
    EXPECT_LT(rms, 0.5 * 1e-3) << hz;  // below -60 dB of the input's amplitude
  }
}

TEST(Resampler, StreamingInChunksEqualsWholeSignalLength) {
  std::vector<float> x = tone(440.0, 44100, 0.5);
  Resampler r(44100, 16000);
  std::vector<float> out;
  size_t pos = 0;
  std::mt19937 g(3);
  while (pos < x.size()) {
    size_t n = std::min(x.size() - pos, size_t(g() % 997 + 1));
    r.process(x.data() + pos, n, false, out);
    pos += n;
  }
  r.process(nullptr, 0, true, out);
  std::vector<float> whole = resample(x, 44100, 16000);
  EXPECT_NEAR(double(out.size()), double(whole.size()), 2.0);
  EXPECT_NEAR(amplitude_at(out, 16000, 440.0), 0.5, 0.01);
}

TEST(Resampler, EqualRatesPassThroughAndBadRatesAreRefused) {
  std::vector<float> x = {0.1f, 0.2f, 0.3f};
  EXPECT_EQ(resample(x, 16000, 16000), x);
  EXPECT_EQ(error_of([] { Resampler r(0, 16000); }), "sample rate 0 Hz to 16000 Hz: rates must be within 1 .. 384000 Hz");
  EXPECT_EQ(error_of([] { Resampler r(16, 16000); }),
            "sample rate 16 Hz cannot be converted to 16000 Hz (ratio outside 1/256 .. 256)");
}

// ---- log-mel features -----------------------------------------------------------------------

// A deterministic test signal: a chirp, a tone and noise, with a silent stretch.
std::vector<float> test_signal(size_t n) {
  std::vector<float> x(n);
  std::mt19937 g(11);
  std::normal_distribution<float> noise(0.0f, 0.02f);
  for (size_t i = 0; i < n; ++i) {
    double t = double(i) / 16000;
    double v = 0.3 * std::sin(2 * M_PI * (200 + 3000 * t) * t) + 0.1 * std::sin(2 * M_PI * 2500 * t) + noise(g);
    if (i > n / 2 && i < n / 2 + 3000) v = 0.0;
    x[i] = float(v);
  }
  return x;
}

TEST(LogMel, FrameCountsAndShape) {
  EXPECT_EQ(log_mel_frame_count(0), 0u);
  EXPECT_EQ(log_mel_frame_count(399), 0u);
  EXPECT_EQ(log_mel_frame_count(400), 1u);
  EXPECT_EQ(log_mel_frame_count(559), 1u);
  EXPECT_EQ(log_mel_frame_count(560), 2u);
  EXPECT_EQ(log_mel(nullptr, 0).size(), 0u);
  std::vector<float> silence(400, 0.0f);
  std::vector<float> f = log_mel(silence.data(), silence.size());
  ASSERT_EQ(f.size(), size_t(LogMelSpec::kMels));
  for (float v : f) EXPECT_FLOAT_EQ(v, float(std::log(1e-6)));
}

TEST(LogMel, StreamingEqualsWholeSignalBitForBit) {
  std::vector<float> x = test_signal(16000);
  std::vector<float> whole = log_mel(x.data(), x.size());
  for (unsigned seed : {1u, 2u, 3u}) {
    LogMelStream s;
    std::vector<float> got, frame(LogMelSpec::kMels);
    std::mt19937 g(seed);
    size_t pos = 0;
    while (pos < x.size()) {
      size_t n = std::min(x.size() - pos, size_t(g() % (seed == 1 ? 7 : 700) + 1));
      s.push(x.data() + pos, n);
      pos += n;
      while (s.pop_frame(frame.data())) got.insert(got.end(), frame.begin(), frame.end());
    }
    ASSERT_EQ(got.size(), whole.size());
    EXPECT_EQ(std::memcmp(got.data(), whole.data(), got.size() * sizeof(float)), 0) << seed;
    EXPECT_EQ(s.frames_popped(), log_mel_frame_count(x.size()));
  }
}

// A stream's end: the silence end_audio() adds gives the frames of the audio followed by that
// many zeros, once, and audio_frames_popped() counts only the frames of the audio itself.
TEST(LogMel, EndOfAudioAddsSilenceOnceAndCountsOnlyTheAudio) {
  std::vector<float> x = test_signal(5000);
  std::vector<float> padded = x;
  padded.resize(x.size() + 1200, 0.0f);
  const std::vector<float> whole = log_mel(padded.data(), padded.size());
  LogMelStream s;
  s.push(x.data(), 3000);
  std::vector<float> got(whole.size());
  size_t t = 0;
  while (s.pop_frame(got.data() + t * LogMelSpec::kMels)) ++t;
  EXPECT_FALSE(s.audio_ended());
  EXPECT_EQ(s.audio_frames_popped(), t);
  s.push(x.data() + 3000, x.size() - 3000);
  s.end_audio(1200);
  s.end_audio(1200);  // once
  EXPECT_TRUE(s.audio_ended());
  EXPECT_EQ(s.samples_pushed(), padded.size());
  while (s.pop_frame(got.data() + t * LogMelSpec::kMels)) ++t;
  ASSERT_EQ(t * LogMelSpec::kMels, whole.size());
  EXPECT_EQ(std::memcmp(got.data(), whole.data(), whole.size() * sizeof(float)), 0);
  EXPECT_EQ(s.frames_popped(), log_mel_frame_count(padded.size()));
  EXPECT_EQ(s.audio_frames_popped(), log_mel_frame_count(x.size()));
  s.reset();
  EXPECT_FALSE(s.audio_ended());
  EXPECT_EQ(s.audio_frames_popped(), 0u);
}

// The C++ features against models/s4d/speech/features.py, which training used.
TEST(LogMel, MatchesThePythonFrontEndUsedForTraining) {
  std::vector<float> x = test_signal(12345);
  fs::path dir = fs::path(testing::TempDir()) / ("vkssm_logmel_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream out(dir / "in.raw", std::ios::binary);
    out.write(reinterpret_cast<const char*>(x.data()), std::streamsize(x.size() * 4));
  }
  std::string script = std::string(VKSSM_SOURCE_DIR) + "/models/s4d/speech/features.py";
  std::string cmd = "/usr/bin/python3 '" + script + "' --dump '" + (dir / "in.raw").string() + "' '" +
                    (dir / "out.raw").string() + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(dir / "out.raw", std::ios::binary);
  std::vector<float> py(log_mel_frame_count(x.size()) * LogMelSpec::kMels);
  in.read(reinterpret_cast<char*>(py.data()), std::streamsize(py.size() * 4));
  ASSERT_EQ(size_t(in.gcount()), py.size() * 4);
  fs::remove_all(dir);
  std::vector<float> cpp = log_mel(x.data(), x.size());
  ASSERT_EQ(cpp.size(), py.size());
  float worst = 0;
  for (size_t i = 0; i < cpp.size(); ++i) worst = std::max(worst, std::fabs(cpp[i] - py[i]));
  EXPECT_LE(worst, 1e-4f);
}

// ---- command decoder ------------------------------------------------------------------------

// Outputs for 3 commands + background where command `k` has probability ~p.
std::vector<float> frame_for(int k, float p) {
  std::vector<float> logits(4, 0.0f);
  if (k < 0) return logits;
  // softmax: e^a / (e^a + 3) = p  ->  a = ln(3p / (1 - p))
  logits[k] = std::log(3.0f * p / (1.0f - p));
  return logits;
}

TEST(CommandDecoder, FiresOnceThenWaitsForRefractoryAndRearm) {
  CommandDecoderOptions o;
  o.threshold = 0.6f;
  o.window = 4;
  o.refractory = 10;
  CommandDecoder d(4, 3, o);
  std::vector<CommandDetection> got;
  auto feed = [&](int k, float p, int frames) {
    for (int i = 0; i < frames; ++i) {
      CommandDetection e;
      auto f = frame_for(k, p);
      if (d.push(f.data(), &e)) got.push_back(e);
    }
  };
  feed(-1, 0, 5);    // frames 0-4: nothing
  feed(1, 0.9f, 8);  // frames 5-12: the average reaches 0.6 on the third such frame (frame 7)
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].frame, 7);
  EXPECT_EQ(got[0].command, 1);
  EXPECT_NEAR(got[0].score, (0.9f * 3 + 0.25f) / 4, 1e-5);
  feed(1, 0.9f, 20);  // still high: not re-armed, no second detection
  EXPECT_EQ(got.size(), 1u);
  feed(2, 0.95f, 6);  // another word, past the refractory time: fires
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].command, 2);
  feed(-1, 0, 6);     // command 1 falls below half the threshold: re-armed
  feed(1, 0.9f, 3);   // 11 frames after the last detection
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[2].command, 1);
  EXPECT_EQ(d.frames(), 5 + 8 + 20 + 6 + 6 + 3);
}

TEST(CommandDecoder, RefractoryBlocksAnyWordAndBackgroundNeverFires) {
  CommandDecoderOptions o;
  o.threshold = 0.5f;
  o.window = 1;
  o.refractory = 5;
  CommandDecoder d(4, 3, o);
  CommandDetection e;
  auto bg = std::vector<float>{0, 0, 0, 10};  // background certain
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(d.push(bg.data(), &e));
  auto a = frame_for(0, 0.9f), b = frame_for(2, 0.9f);
  EXPECT_TRUE(d.push(a.data(), &e));
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(d.push(b.data(), &e)) << i;  // within 5 frames
  EXPECT_TRUE(d.push(b.data(), &e));
  EXPECT_EQ(e.command, 2);
  EXPECT_EQ(e.frame, 15);
}

TEST(CommandDecoder, RefusesBadOptions) {
  CommandDecoderOptions o;
  EXPECT_EQ(error_of([&] { CommandDecoder d(2, 3, o); }),
            "command decoder: 3 commands need at least as many model outputs, got 2");
  o.threshold = 1.5f;
  EXPECT_EQ(error_of([&] { CommandDecoder d(4, 3, o); }), "command decoder: threshold 1.500000 is outside (0, 1]");
  o.threshold = 0.5f;
  o.window = 0;
  EXPECT_EQ(error_of([&] { CommandDecoder d(4, 3, o); }), "command decoder: window 0 frames is outside 1 .. 1000");
}

}  // namespace
}  // namespace vkssm

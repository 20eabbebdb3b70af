#pragma once
// Streaming log-mel features, one frame per 10 ms hop, for the speech front-end.
//
// The definition (window, FFT size, mel scale, floor) is written once, in
// models/s4d/speech/features.py, which training uses; this is the same computation in C++, in
// double precision, so both agree to ~1e-9 (tests/test_audio.cpp checks <= 1e-4). The FFT comes
// from FFTW (Debian libfftw3): fast, exact to rounding, and well kept, unlike a hand-written one.
#include <cstddef>
#include <memory>
#include <vector>

namespace vkssm {

struct LogMelSpec {
  static constexpr int kSampleRate = 16000;
  static constexpr int kWindow = 400;   // 25 ms
  static constexpr int kHop = 160;      // 10 ms
  static constexpr int kFft = 512;
  static constexpr int kMels = 40;
  static constexpr double kFMin = 20.0, kFMax = 7600.0;
  static constexpr double kLogFloor = 1e-6;
};

// The periodic Hann window and the [kMels][kFft/2+1] triangular filters (HTK mel scale).
const std::vector<double>& log_mel_window();
const std::vector<double>& log_mel_filterbank();

// Number of frames a whole signal of n samples gives: 0 below 400, else (n - 400)/160 + 1.
size_t log_mel_frame_count(size_t n_samples);

// One stream's front-end: push 16 kHz samples in chunks of any size; a frame is ready each time
// 160 new samples complete a 400-sample window (the last 240 are kept between hops). The frames
// equal those of log_mel() on the whole signal, bit for bit.
class LogMelStream {
 public:
  LogMelStream();
  ~LogMelStream();
  LogMelStream(const LogMelStream&) = delete;
  LogMelStream& operator=(const LogMelStream&) = delete;

  void push(const float* samples, size_t n);
  // Frames ready now (each needs one pop_frame()).
  size_t frames_ready() const;
  // Writes the oldest ready frame's kMels features; false when none is ready.
  bool pop_frame(float* features);
  // Up to `count` frames into dst [count][kMels]; the rows past the frames ready are zeros (a
  // stream's last, padded step). Returns how many frames it took.
  size_t pop_frames(float* dst, size_t count);
  // Samples taken in so far, and frames popped so far.
  size_t samples_pushed() const { return pushed_; }
  size_t frames_popped() const { return popped_; }
  // The stream's audio has ended: `silence` zero samples follow it (once; later calls do
  // nothing), so the frames after its last word are those of a recording that went on quietly.
  void end_audio(size_t silence);
  bool audio_ended() const { return audio_frames_ != kNoEnd; }
  // Frames popped so far whose window lies in the audio, not in the silence end_audio() added.
  size_t audio_frames_popped() const { return popped_ < audio_frames_ ? popped_ : audio_frames_; }
  void reset();

 private:
  struct Fft;                 // FFTW plan and aligned buffers (log_mel.cpp)
  std::unique_ptr<Fft> fft_;
  std::vector<float> pending_;  // samples not yet dropped; the next frame starts at start_
  size_t start_ = 0;
  size_t pushed_ = 0, popped_ = 0;
  static constexpr size_t kNoEnd = ~size_t(0);
  size_t audio_frames_ = kNoEnd;  // frames of the audio alone, once end_audio() was called
};

// The whole-signal computation: [frames][kMels] floats, row-major.
std::vector<float> log_mel(const float* samples, size_t n);

}  // namespace vkssm

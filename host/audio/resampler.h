#pragma once
// Streaming sample-rate conversion to the front-end's 16 kHz.
//
// Built on libsamplerate (Debian libsamplerate0): a well-kept band-limited sinc converter whose
// low-pass filter sits below the output Nyquist frequency, so 44.1/48 kHz input does not alias
// into the 0-8 kHz band the mel filters look at. Hand-written polyphase code would need its own
// filter design and tests for every ratio; this library already has both.
#include <cstddef>
#include <vector>

typedef struct SRC_STATE_tag SRC_STATE;

namespace vkssm {

class Resampler {
 public:
  // `input_rate` Hz to `output_rate` Hz. Equal rates pass samples through unchanged. Throws
  // vkssm::Error for a rate out of range (1 .. 384000, ratio within libsamplerate's 1/256 .. 256).
  Resampler(int input_rate, int output_rate);
  ~Resampler();
  Resampler(const Resampler&) = delete;
  Resampler& operator=(const Resampler&) = delete;

  // Converts the next n input samples, appending the output to `out`. `last` flushes the filter's
  // delay line: the output then holds every sample the input implies (about n·ratio in all).
  void process(const float* in, size_t n, bool last, std::vector<float>& out);
  // Starts a new stream.
  void reset();

  int input_rate() const { return input_rate_; }
  int output_rate() const { return output_rate_; }

 private:
  int input_rate_, output_rate_;
  double ratio_;
  SRC_STATE* state_ = nullptr;  // owned; null when the rates are equal
  std::vector<float> chunk_;    // output scratch
};

// The whole signal at once (tests, tools).
std::vector<float> resample(const std::vector<float>& in, int input_rate, int output_rate);

}  // namespace vkssm

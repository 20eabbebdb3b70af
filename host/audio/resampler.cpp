#include "host/audio/resampler.h"

#include <samplerate.h>

#include <string>

#include "host/error.h"

namespace vkssm {

Resampler::Resampler(int input_rate, int output_rate)
    : input_rate_(input_rate), output_rate_(output_rate), ratio_(double(output_rate) / input_rate) {
  if (input_rate < 1 || input_rate > 384000 || output_rate < 1 || output_rate > 384000)
    throw Error("sample rate " + std::to_string(input_rate) + " Hz to " + std::to_string(output_rate) +
                " Hz: rates must be within 1 .. 384000 Hz");
  if (!src_is_valid_ratio(ratio_))
    throw Error("sample rate " + std::to_string(input_rate) + " Hz cannot be converted to " +
                std::to_string(output_rate) + " Hz (ratio outside 1/256 .. 256)");
  if (input_rate_ == output_rate_) return;
  int err = 0;
  // Medium quality: 97 dB stop band, passband to ~90 % of the output Nyquist frequency (7.2 kHz at
  // 16 kHz, above the top mel edge at 7.6 kHz it rolls off, where speech carries little).
  state_ = src_new(SRC_SINC_MEDIUM_QUALITY, 1, &err);
  if (!state_) throw Error(std::string("libsamplerate: ") + src_strerror(err));
}

Resampler::~Resampler() {
  if (state_) src_delete(state_);
}

void Resampler::reset() {
  if (state_) src_reset(state_);
}

void Resampler::process(const float* in, size_t n, bool last, std::vector<float>& out) {
  if (!state_) {
    out.insert(out.end(), in, in + n);
    return;
  }
  // libsamplerate may hold input back and produce less than asked; loop until it has consumed
  // all input (and, at the end, drained its delay line).
  chunk_.resize(size_t(double(n) * ratio_) + 1024);
  SRC_DATA d{};
  // libsamplerate refuses a null input pointer even for zero samples (a flush of an empty vector).
  static const float kNoInput = 0.0f;
  d.data_in = in ? in : &kNoInput;
  d.input_frames = long(n);
  d.src_ratio = ratio_;
  d.end_of_input = last ? 1 : 0;
  while (true) {
    d.data_out = chunk_.data();
    d.output_frames = long(chunk_.size());
    int err = src_process(state_, &d);
    if (err) throw Error(std::string("libsamplerate: ") + src_strerror(err));
    out.insert(out.end(), chunk_.begin(), chunk_.begin() + d.output_frames_gen);
    d.data_in += d.input_frames_used;
    d.input_frames -= d.input_frames_used;
    if (d.input_frames == 0 && (!last || d.output_frames_gen == 0)) break;
  }
}

std::vector<float> resample(const std::vector<float>& in, int input_rate, int output_rate) {
  Resampler r(input_rate, output_rate);
  std::vector<float> out;
  r.process(in.data(), in.size(), true, out);
  return out;
}

}  // namespace vkssm

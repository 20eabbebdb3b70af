#include "host/audio/command_decoder.h"

#include <cmath>
#include <string>

#include "host/error.h"

namespace vkssm {

CommandDecoder::CommandDecoder(int n_outputs, int n_commands, const CommandDecoderOptions& options)
    : n_outputs_(n_outputs), n_commands_(n_commands), opt_(options) {
  if (n_commands < 1 || n_outputs < n_commands)
    throw Error("command decoder: " + std::to_string(n_commands) + " commands need at least as many model outputs, got " +
                std::to_string(n_outputs));
  if (!(opt_.threshold > 0.0f && opt_.threshold <= 1.0f))
    throw Error("command decoder: threshold " + std::to_string(opt_.threshold) + " is outside (0, 1]");
  if (opt_.window < 1 || opt_.window > 1000)
    throw Error("command decoder: window " + std::to_string(opt_.window) + " frames is outside 1 .. 1000");
  if (opt_.refractory < 0) throw Error("command decoder: refractory " + std::to_string(opt_.refractory) + " is negative");
  ring_.resize(size_t(opt_.window) * n_commands_);
  armed_.resize(n_commands_);
  exps_.resize(n_outputs_);
  reset();
}

void CommandDecoder::reset() {
  std::fill(ring_.begin(), ring_.end(), 0.0f);
  std::fill(armed_.begin(), armed_.end(), uint8_t(1));
  frame_ = 0;
  last_detection_ = -(int64_t(1) << 40);
}

bool CommandDecoder::push(const float* outputs, CommandDetection* out) {
  // Softmax in double, as NumPy computes it in the training-side decoder.
  double mx = outputs[0];
  for (int i = 1; i < n_outputs_; ++i) mx = std::max(mx, double(outputs[i]));
  double sum = 0.0;
  for (int i = 0; i < n_outputs_; ++i) sum += (exps_[i] = std::exp(double(outputs[i]) - mx));
  float* slot = ring_.data() + size_t(frame_ % opt_.window) * n_commands_;
  for (int k = 0; k < n_commands_; ++k) slot[k] = float(exps_[k] / sum);

  int best = 0;
  double best_avg = -1.0;
  for (int k = 0; k < n_commands_; ++k) {
    double s = 0.0;
    for (int w = 0; w < opt_.window; ++w) s += ring_[size_t(w) * n_commands_ + k];
    double avg = s / opt_.window;
    if (avg < 0.5 * opt_.threshold) armed_[k] = 1;
    if (avg > best_avg) best_avg = avg, best = k;
  }
  const int64_t t = frame_++;
  if (best_avg >= opt_.threshold && armed_[best] && t - last_detection_ >= opt_.refractory) {
    armed_[best] = 0;
    last_detection_ = t;
    if (out) *out = CommandDetection{t, best, float(best_avg)};
    return true;
  }
  return false;
}

}  // namespace vkssm

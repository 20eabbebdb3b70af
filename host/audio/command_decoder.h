#pragma once
// Turns a command model's per-frame outputs into detections (one instance per stream).
//
// The rule, the same as models/s4d/speech/kws.py's EventDecoder that the shipped model's
// threshold was chosen with:
//   p_t = softmax(outputs_t); a_t = mean of p over the last `window` frames (frames before the
//   stream's start count as zero); the command k with the largest a_t[k] fires when
//   a_t[k] >= threshold, at least `refractory` frames passed since the stream's last detection,
//   and k is armed: a word re-arms once its average fell below threshold / 2 after it fired.
// Outputs 0 .. n_commands-1 are commands; the rest (background) never fire.
#include <cstdint>
#include <vector>

namespace vkssm {

// Audio a detection needs after its word: the command model marks a command from 120 to 400 ms
// after the word ends (models/s4d/speech/train_commands.py) and the decoder averages `window`
// frames on top. A stream whose audio ends sooner (a recording cut right after its last word) is
// followed by this much silence, so its last command is still decided.
constexpr int kEndOfAudioSilenceSamples = 8000;  // 0.5 s at 16 kHz

struct CommandDecoderOptions {
  float threshold = 0.6f;
  int window = 8;        // frames (10 ms each)
  int refractory = 30;   // frames
};

struct CommandDetection {
  int64_t frame = 0;  // index of the frame that decided it
  int command = 0;
  float score = 0.0f; // the averaged posterior that crossed the threshold
};

class CommandDecoder {
 public:
  // Throws vkssm::Error when n_outputs < n_commands, n_commands < 1, window < 1, refractory < 0
  // or threshold outside (0, 1].
  CommandDecoder(int n_outputs, int n_commands, const CommandDecoderOptions& options);
  // One frame of raw outputs (n_outputs floats). Returns true and fills `out` on a detection.
  bool push(const float* outputs, CommandDetection* out);
  void reset();
  int64_t frames() const { return frame_; }

 private:
  int n_outputs_, n_commands_;
  CommandDecoderOptions opt_;
  std::vector<float> ring_;     // [window][n_commands] posteriors, ring by frame index
  std::vector<uint8_t> armed_;  // per command
  std::vector<double> exps_;    // scratch
  int64_t frame_ = 0;
  int64_t last_detection_;
};

}  // namespace vkssm

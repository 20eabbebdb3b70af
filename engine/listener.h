#pragma once
// The speech-command listener: many live audio streams, one batched model step per 10 ms hop.
//
// Each stream owns a slot of a frame model (the shipped S4D command model or any model with the
// same config.json "speech_commands" section), a resampler to 16 kHz, a log-mel front-end and a
// command decoder. Audio may be pushed from any thread in chunks of any size; process() advances
// every stream that has a full hop of audio in one batched model step per hop, so the model's
// weights are read once per hop for all streams, and computes the next hop's features while a
// step runs. Detections come out of poll().
//
//   vkssm::Listener listener(vkssm::Listener::default_model_dir(), {});
//   int s = listener.open_stream(48000);
//   listener.push(s, samples, n);      // any thread, any chunk size
//   listener.process();                // steps while a hop is ready
//   for (auto& e : listener.poll()) printf("%d %.2f %s\n", e.stream, e.time, e.word.c_str());
//   listener.finish(s);                // end of input: the rest is processed, then the slot frees
#include <cstdint>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

// Relative to this header, so the same lines work in the source tree and installed (<vkssm/...>).
#include "vkssm.hpp"
#include "host/audio/command_decoder.h"

namespace vkssm {

struct ListenerOptions {
  // backend, device; load.max_streams = streams open at once; load.frames_per_step = F, the hops
  // each batched step advances a stream by: a step is run once every stream in it has F hops of
  // audio (a stream's last hops run padded), so each step's fixed costs and every state's read and
  // write are paid once per F hops (more streams keep up, chiefly on CPU drivers) and a detection
  // is decided up to F - 1 hops later. The events are the same for every F.
  LoadOptions load;
  float threshold = 0.0f;  // 0: the model's own (config.json speech_commands.decoder)
  int window = 0;          // frames; 0: the model's own
  int refractory = 0;      // frames; 0: the model's own
};

struct ListenerEvent {
  int stream = 0;
  int command = 0;         // index into commands()
  std::string word;
  double time = 0.0;       // seconds from the start of the stream's audio to the decision
  float score = 0.0f;
};

struct ListenerStats {
  uint64_t hops = 0;            // hops of audio stepped: batched steps x frames per step
  uint64_t steps = 0;           // batched steps run
  uint64_t frames = 0;          // stream-frames of audio processed (without padding, nor the
                                // silence after a stream's end: kEndOfAudioSilenceSamples)
  // Wall time of the most recent steps (front-end, model step, decoding; each covers
  // frames_per_step hops), at most kHopHistory of them in no particular order: a listener that
  // runs for days keeps a fixed-size record, reserved at construction, so no step allocates.
  static constexpr size_t kHopHistory = 1 << 16;
  std::vector<double> hop_ms;
};

// A command model's config.json "speech_commands" section: the command words (labels without the
// last, background one), the number of model outputs the labels name and the decoder's options
// (the model's own, overridden by `options` where set). Shared by Listener and `vkssm serve`'s
// audio sessions, so both read a model the same way. Throws vkssm::Error naming the file and
// field when the section is missing or its features are not the ones host/audio/log_mel.h computes.
struct SpeechCommandsConfig {
  std::string config_path;
  std::vector<std::string> commands;
  int n_labels = 0;
  CommandDecoderOptions decoder;
};
VKSSM_API SpeechCommandsConfig read_speech_commands(const std::string& model_dir, const ListenerOptions& options);
// Throws vkssm::Error when the loaded model does not take log-mel frames or its outputs disagree
// with the labels.
VKSSM_API void check_speech_model(const SpeechCommandsConfig& config, const ModelInfo& info);
// The time a detection is reported at: seconds from the start of the stream's audio to the end of
// the window of the frame that decided it.
VKSSM_API double command_event_time(int64_t frame);

class VKSSM_API Listener {
 public:
  // Loads the model in `model_dir` and reads its speech_commands section. Throws vkssm::Error
  // naming the file and field when the model is not a frame model, its input is not 40 log-mel
  // features at 16 kHz as host/audio/log_mel.h computes them, or the labels disagree with d_output.
  Listener(const std::string& model_dir, const ListenerOptions& options);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // The shipped command model: <exe dir>/../share/vkssm/models/speech-commands when installed,
  // else the source tree's models/s4d/speech-commands found from the executable's location.
  // Returns "" when neither exists.
  static std::string default_model_dir();

  const std::vector<std::string>& commands() const { return commands_; }
  const CommandDecoderOptions& decoder_options() const { return decoder_opt_; }
  int capacity() const;
  const ModelInfo& model_info() const;

  // A new stream of mono audio at `sample_rate` Hz. Throws when all streams are in use (naming
  // the limit) or the rate is out of range.
  int open_stream(int sample_rate);
  // Appends samples (floats in [-1, 1], or signed 16-bit). Thread-safe. Throws on a bad or
  // finished stream id.
  void push(int stream, const float* samples, size_t n);
  void push_s16(int stream, const int16_t* samples, size_t n);
  // No more audio: process() runs the stream's last hops and 0.5 s of silence after them (so a
  // command said just before the end is still decided), then the stream leaves the batch and
  // its slot is free again. Thread-safe.
  void finish(int stream);
  // Drops a stream now (its undelivered events stay in poll()).
  void close(int stream);
  // True once a finished stream has been fully processed (or closed).
  bool done(int stream) const;
  int open_streams() const;

  // Runs batched steps while any stream has frames_per_step full hops (or its last ones); returns
  // how many steps ran. Call it from one thread at a time.
  int process();
  // Detections since the last poll (at most `max`; the rest stay queued), in decision order.
  // Thread-safe.
  std::vector<ListenerEvent> poll(size_t max = SIZE_MAX);
  const ListenerStats& stats() const { return stats_; }

 private:
  struct Stream;
  // One step's batch: the streams with F frames ready (or their last ones), their frames
  // [stream][F][mels] and slots (room for every stream reserved at construction).
  struct Hop {
    std::vector<Stream*> streams;
    std::vector<float> frames;
    std::vector<int32_t> slots;
    std::vector<int> real;   // frames of each stream from its front-end (the rest is padding)
    std::vector<int> audio;  // of those, frames of its audio (not the silence after its end)
  };
  Stream& stream_at(int id) const;
  // Moves the stream's pushed audio into its front-end until `frames` are ready; true when a step
  // can take the stream (`frames` ready, or its audio ended with at least one left).
  bool has_hop(Stream& s, size_t frames);
  // Fills `hop` with F frames of every open stream that has them; streams whose audio has ended
  // with no frame left go to ended_.
  void gather(Hop& hop);
  void decode(const Hop& hop);
  void retire_ended();

  std::unique_ptr<Model> model_;
  std::vector<std::string> commands_;
  int n_outputs_ = 0;
  int frames_per_step_ = 1;
  CommandDecoderOptions decoder_opt_;
  std::vector<std::unique_ptr<Stream>> streams_;  // by stream id = slot
  // Held by open_stream, close and process: who may start or end a stream while hops run.
  std::mutex control_mutex_;
  mutable std::mutex events_mutex_;
  std::vector<ListenerEvent> events_;
  ListenerStats stats_;
  // Step scratch, sized at construction: no allocation per hop. Two hops: the one stepping and
  // the next, whose features are computed meanwhile.
  Hop hops_[2];
  std::vector<float> outputs_;
  // Streams found at their end by gather(): marked done only after the hop in flight is decoded,
  // so done() never says a stream is over before its last event can be polled.
  std::vector<Stream*> ended_;
};

}  // namespace vkssm

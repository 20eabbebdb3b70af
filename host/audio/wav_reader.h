#pragma once
// WAV (RIFF/WAVE) files to float samples: PCM 8/16/24/32-bit integer and IEEE float 32-bit, in a
// plain or WAVE_FORMAT_EXTENSIBLE fmt chunk, any sample rate, one or two channels (two are mixed
// to mono by their mean). No Vulkan, no allocation beyond the samples.
//
// Strict on purpose: a file whose data chunk claims more bytes than the file holds is truncated
// and is refused, rather than silently played short. The one exception is the size a streaming
// writer leaves when it cannot seek back (0 or 0xFFFFFFFF, as `arecord` writes to a pipe): then
// the data runs to the end of the file.
#include <cstdint>
#include <string>
#include <vector>

namespace vkssm {

struct WavAudio {
  int sample_rate = 0;
  int channels = 0;        // in the file (the samples below are mono)
  int bits_per_sample = 0; // in the file
  bool is_float = false;   // IEEE float samples in the file
  std::vector<float> samples;  // mono, in [-1, 1]
};

// Parses a whole WAV file held in memory. `name` is used in errors. Throws vkssm::Error naming
// `name` and what is wrong (not RIFF/WAVE, no fmt or data chunk, unsupported format, channels or
// bit depth, truncated data).
WavAudio parse_wav(const uint8_t* data, size_t size, const std::string& name);

// Reads and parses a file; errors name the path.
WavAudio read_wav_file(const std::string& path);

// Writes 16-bit PCM mono (samples clipped to [-1, 1]); used by tests and tools.
void write_wav_file(const std::string& path, const std::vector<float>& samples, int sample_rate);

// Raw signed 16-bit little-endian samples to floats in [-1, 1). An odd trailing byte is ignored by
// the caller keeping it for the next chunk: this converts size/2 samples.
void s16le_to_float(const uint8_t* data, size_t n_samples, float* out);

}  // namespace vkssm

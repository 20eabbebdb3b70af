#include "host/audio/wav_reader.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "host/error.h"

namespace vkssm {
namespace {

uint16_t u16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
uint32_t u32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}

constexpr uint16_t kFormatPcm = 1;
constexpr uint16_t kFormatFloat = 3;
constexpr uint16_t kFormatExtensible = 0xFFFE;

// One sample of `bits` at p, as a float in [-1, 1).
float decode_sample(const uint8_t* p, int bits, bool is_float) {
  if (is_float) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  switch (bits) {
    case 8: return (float(p[0]) - 128.0f) / 128.0f;  // 8-bit WAV is unsigned
    case 16: return float(int16_t(u16(p))) / 32768.0f;
    case 24: {
      int32_t v = int32_t(uint32_t(p[0]) << 8 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 24) >> 8;
      return float(v) / 8388608.0f;
    }
    default: return float(double(int32_t(u32(p))) / 2147483648.0);
  }
}

}  // namespace

WavAudio parse_wav(const uint8_t* data, size_t size, const std::string& name) {
  auto fail = [&](const std::string& what) { throw Error(name + ": " + what); };
  if (size < 12 || std::memcmp(data, "RIFF", 4) != 0 || std::memcmp(data + 8, "WAVE", 4) != 0)
    fail("not a WAV file (no RIFF/WAVE header)");

  WavAudio out;
  bool have_fmt = false;
  uint16_t block_align = 0;
  size_t pos = 12;
  while (true) {
    if (pos + 8 > size) fail(have_fmt ? "no data chunk" : "no fmt chunk");
    const uint8_t* chunk = data + pos;
    uint32_t chunk_size = u32(chunk + 4);
    size_t body = pos + 8;
    if (std::memcmp(chunk, "fmt ", 4) == 0) {
      if (chunk_size < 16 || body + chunk_size > size) fail("truncated fmt chunk");
      uint16_t format = u16(data + body);
      out.channels = u16(data + body + 2);
      uint32_t rate = u32(data + body + 4);
      block_align = u16(data + body + 12);
      out.bits_per_sample = u16(data + body + 14);
      if (format == kFormatExtensible) {
        if (chunk_size < 40) fail("truncated WAVE_FORMAT_EXTENSIBLE fmt chunk");
        format = u16(data + body + 24);  // the sub-format GUID starts with the format code
      }
      if (format == kFormatFloat) {
        if (out.bits_per_sample != 32)
          fail("float samples of " + std::to_string(out.bits_per_sample) + " bits are not supported (32 only)");
        out.is_float = true;
      } else if (format == kFormatPcm) {
        int b = out.bits_per_sample;
        if (b != 8 && b != 16 && b != 24 && b != 32)
          fail("PCM samples of " + std::to_string(b) + " bits are not supported (8, 16, 24 or 32)");
      } else {
        fail("WAV format code " + std::to_string(format) + " is not supported (PCM or IEEE float only)");
      }
      if (out.channels != 1 && out.channels != 2)
        fail(std::to_string(out.channels) + " channels are not supported (mono or stereo)");
      if (rate == 0 || rate > 384000) fail("sample rate " + std::to_string(rate) + " Hz is out of range");
      out.sample_rate = int(rate);
      if (block_align != out.channels * out.bits_per_sample / 8)
        fail("block align " + std::to_string(block_align) + " does not match " +
             std::to_string(out.channels) + " channels of " + std::to_string(out.bits_per_sample) + " bits");
      have_fmt = true;
    } else if (std::memcmp(chunk, "data", 4) == 0) {
      if (!have_fmt) fail("data chunk before the fmt chunk");
      size_t available = size - body;
      size_t bytes = chunk_size;
      if (chunk_size == 0 || chunk_size == 0xFFFFFFFFu) {
        bytes = available;  // written by a streaming writer that could not seek back
      } else if (bytes > available) {
        fail("truncated: the data chunk holds " + std::to_string(chunk_size) + " bytes but the file has " +
             std::to_string(available));
      }
      size_t frames = bytes / block_align;
      out.samples.resize(frames);
      const int width = out.bits_per_sample / 8;
      for (size_t i = 0; i < frames; ++i) {
        const uint8_t* p = data + body + i * block_align;
        float v = decode_sample(p, out.bits_per_sample, out.is_float);
        if (out.channels == 2) v = 0.5f * (v + decode_sample(p + width, out.bits_per_sample, out.is_float));
        out.samples[i] = v;
      }
      return out;
    }
    // Skip any other chunk (LIST, fact, ...); chunks are padded to an even size.
    size_t next = body + size_t(chunk_size) + (chunk_size & 1);
    if (next > size) fail(have_fmt ? "no data chunk (truncated file)" : "no fmt chunk (truncated file)");
    pos = next;
  }
}

WavAudio read_wav_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_wav(bytes.data(), bytes.size(), path);
}

void write_wav_file(const std::string& path, const std::vector<float>& samples, int sample_rate) {
  std::ofstream out(path, std::ios::binary);
  if (!out) throw Error(path + ": cannot create");
  auto put16 = [&](uint16_t v) { out.put(char(v & 0xFF)).put(char(v >> 8)); };
  auto put32 = [&](uint32_t v) { put16(uint16_t(v & 0xFFFF)); put16(uint16_t(v >> 16)); };
  uint32_t bytes = uint32_t(samples.size() * 2);
  out.write("RIFF", 4); put32(36 + bytes); out.write("WAVEfmt ", 8);
  put32(16); put16(kFormatPcm); put16(1); put32(uint32_t(sample_rate)); put32(uint32_t(sample_rate) * 2);
  put16(2); put16(16);
  out.write("data", 4); put32(bytes);
  for (float s : samples) {
    float c = s < -1.0f ? -1.0f : (s > 1.0f ? 1.0f : s);
    long v = std::lround(c * 32767.0f);
    put16(uint16_t(int16_t(v)));
  }
  if (!out) throw Error(path + ": write failed");
}

void s16le_to_float(const uint8_t* data, size_t n_samples, float* out) {
  for (size_t i = 0; i < n_samples; ++i) out[i] = float(int16_t(u16(data + 2 * i))) / 32768.0f;
}

}  // namespace vkssm

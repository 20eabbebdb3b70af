#pragma once
// The state blob: one stream's full recurrent state, self-describing, so it can be saved to a
// file, restored later (or into another backend) and rejected when it does not fit the model.
//
// Layout (little-endian):
//   "VKSSMST\0"            8 bytes magic
//   u32 version            kStateFormatVersion
//   u32 header bytes       bytes before the payload
//   u64 model fingerprint  see mamba1_fingerprint()
//   u32 length + bytes     architecture ("mamba")
//   u32 count + u64 dims   shape (Mamba-1: n_layer, d_inner, d_conv, d_state)
//   u64 payload bytes
//   payload                fp32: conv states of all layers [L][E][K] (newest input last),
//                          then ssm states of all layers [L][E][N]
//   u64 checksum           FNV-1a 64 over everything before it
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "host/vkssm_export.h"

namespace vkssm {

inline constexpr uint32_t kStateFormatVersion = 1;

struct StateHeader {
  uint64_t fingerprint = 0;
  std::string architecture;
  std::vector<uint64_t> shape;
  uint64_t payload_floats = 0;  // decode_state: the count the model expects (encode_state ignores it)
};

// FNV-1a 64; `h` continues an earlier hash.
inline constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;
uint64_t fnv1a64(const void* data, size_t bytes, uint64_t h = kFnvOffset);

// Builds a blob from `n` payload floats.
std::vector<uint8_t> encode_state(const StateHeader& header, const float* payload, size_t n);

// Validates a blob against what the model expects and returns its payload floats. Throws
// vkssm::Error ("state: ...") on anything wrong; never reads outside [data, data + size).
std::vector<float> decode_state(const uint8_t* data, size_t size, const StateHeader& expected);

// Whole-file I/O of a blob. Errors name the file. (Also declared in engine/vkssm.hpp.)
VKSSM_API void save_state_file(const std::string& path, const std::vector<uint8_t>& blob);
VKSSM_API std::vector<uint8_t> load_state_file(const std::string& path);

}  // namespace vkssm

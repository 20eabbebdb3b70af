#pragma once
// Work split per device, shared by the architectures' step shaders. GPUs want many threads per
// workgroup; llvmpipe (lavapipe) runs 8 invocations as one SIMD vector, where texelFetch becomes
// a vector gather while storage-buffer loads with varying offsets become a per-lane loop.
#include <cstdint>

namespace vkssm {

struct DeviceCaps;

struct Tuning {
  uint32_t local;       // threads per workgroup in matvec / channel shaders
  uint32_t row_groups;  // matvec rows per workgroup = 4 * row_groups
  uint32_t conv_chunk;  // channels per workgroup in the conv shaders
  uint32_t ssm_chunk;   // channels per workgroup in the scan shaders
  bool texel;           // matvec reads through uniform texel buffers
};

// The table's choice for `caps`; VKSSM_TUNE=local,row_groups,conv_chunk,ssm_chunk,texel
// overrides it (for tuning new devices, and for tests that run every split on lavapipe).
Tuning tuning_for(const DeviceCaps& caps);

}  // namespace vkssm

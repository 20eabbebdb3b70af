#pragma once
// Work split per device, shared by the architectures' step shaders and the engine's own (the
// sampler). This is the one place a workgroup size is chosen: GPUs want many threads per
// workgroup; llvmpipe (lavapipe) runs 8 invocations as one SIMD vector, where texelFetch becomes a
// vector gather while storage-buffer loads with varying offsets become a per-lane loop.
#include <cstdint>
#include <string>

namespace vkssm {

struct DeviceCaps;

struct Tuning {
  uint32_t local;       // threads per workgroup in matvec / channel shaders
  uint32_t row_groups;  // matvec rows per workgroup = 4 * row_groups
  uint32_t conv_chunk;  // channels per workgroup in the conv shaders
  uint32_t ssm_chunk;   // channels per workgroup in the scan shaders
  bool texel;           // matvec reads through uniform texel buffers

  // "local=8 row_groups=32 conv_chunk=256 ssm_chunk=256 texel=1" (the VKSSM_TUNE order).
  std::string describe() const;
  bool operator==(const Tuning& o) const {
    return local == o.local && row_groups == o.row_groups && conv_chunk == o.conv_chunk &&
           ssm_chunk == o.ssm_chunk && texel == o.texel;
  }
};

// Which row of the table: the token models' large matrices, or a frame model's small ones.
enum class TuningProfile {
  TokenModel,  // Mamba-1, Mamba-2: matrices of thousands of rows, few streams per step
  FrameModel,  // S4D: matrices of 64-256 rows, many streams (audio) per step
};

// The table's choice for `caps` and `profile`, or the VKSSM_TUNE override (for tuning new devices,
// and for tests that run every split on lavapipe). An override the engine cannot run throws
// vkssm::Error naming VKSSM_TUNE and the field (see parse_tuning).
Tuning tuning_for(const DeviceCaps& caps, TuningProfile profile = TuningProfile::TokenModel);

// Parses "local,row_groups,conv_chunk,ssm_chunk,texel" (five whole numbers) and checks it against
// the device: every count at least 1, local within the device's workgroup limit and the matvec's
// reduction (32 subgroups), conv_chunk within shared memory, texel 0 or 1 and 1 only where the
// device has texel buffers. Throws vkssm::Error naming VKSSM_TUNE and the bad field.
Tuning parse_tuning(const std::string& value, const DeviceCaps& caps);

// The sampler's workgroup size for a split: its tree reductions need a power of two.
uint32_t sampler_local(const Tuning& t);

}  // namespace vkssm

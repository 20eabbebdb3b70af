#pragma once
// The load-time decisions every architecture's Vulkan graph makes the same way, before it uploads
// anything: the weight storage type, the number of state slots, and whether the matvecs may read
// through texel buffers on this device.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/vk/device_tuning.h"
#include "engine/vkssm.hpp"
#include "host/dtype.h"

namespace vkssm {

struct DeviceCaps;

// A weight matrix that would be stored in the weight type, named as the checkpoint names it.
struct NamedMatrix {
  std::string name;  // e.g. "layers.1.out_proj"
  const std::vector<float>* values;
};

struct WeightsPlanRequest {
  WeightStorage requested = WeightStorage::Auto;  // LoadOptions::weights
  // What Auto means: fp16 when the checkpoint's matrices are 16-bit and the device has 16-bit
  // storage (token models), or never (S4D: its matrices are small next to the per-step work).
  bool auto_may_use_f16 = true;
  DType source_dtype = DType::F32;  // what the checkpoint stored the big matrices as
  std::string source;               // checkpoint path, for messages
  // Checked against the fp16 range before fp16 is chosen: a bf16 checkpoint can hold values fp16
  // cannot. Auto then keeps fp32; an explicit f16 request throws, naming the tensor and file.
  std::vector<NamedMatrix> matrices;
  int max_streams = 0;                 // LoadOptions::max_streams; 0 = automatic
  uint64_t parameters = 0;             // weights on the device, for the automatic capacity
  uint64_t bytes_per_stream = 0;       // state + activations + outputs of one stream
  // What one stream adds to the largest single bindings: a state buffer ([capacity][slot_bytes],
  // its rollback ring rollback_depth times that) and an activation or output buffer ([step rows]
  // [row_bytes]). The automatic capacity keeps them within maxStorageBufferRange.
  uint64_t slot_bytes = 0, row_bytes = 0;
  int rollback_depth = 0;
};

struct WeightsPlan {
  bool f16 = false;
  int capacity = 1;
};

// A request with the load options' and the checkpoint's fields filled in; the caller adds its
// matrices (and, for S4D, auto_may_use_f16 = false).
WeightsPlanRequest plan_request(const LoadOptions& options, DType source_dtype, const std::string& source,
                                int64_t parameters, uint64_t bytes_per_stream);

WeightsPlan plan_weights(const WeightsPlanRequest& request, const DeviceCaps& caps);

// As many streams as fit in half the device-local memory once the weights are in (1 to 1024).
int automatic_capacity(uint64_t weight_bytes, uint64_t bytes_per_stream, const DeviceCaps& caps);
// At most `capacity` streams, and no more than keep every state buffer, rollback ring and
// activation buffer within maxStorageBufferRange (at least 1).
int capacity_within_bindings(int capacity, const WeightsPlanRequest& r, const DeviceCaps& caps);

// Keeps tune.texel only where the device can view every buffer the matvecs read as a texel buffer:
// RGBA32F texels (RGBA16F too for fp16 weights), and no view longer than maxTexelBufferElements
// (`largest_texels`, in 4-float texels). Otherwise the matvecs read storage buffers.
void fit_texel_views(Tuning& tune, const DeviceCaps& caps, bool f16, uint64_t largest_texels);

// The first matrix holding a value fp16 cannot represent (|x| > 65504), or nullptr.
const NamedMatrix* first_beyond_fp16(const std::vector<NamedMatrix>& matrices);

}  // namespace vkssm

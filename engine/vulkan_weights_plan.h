#pragma once
// The load-time decisions every architecture's Vulkan graph makes the same way, before it uploads
// anything: the weight storage type, the number of state slots, and whether the matvecs may read
// through texel buffers on this device.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/vk/device_tuning.h"
#include "engine/vkssm.hpp"
#include "host/dtype.h"
#include "host/quant.h"

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
  // What one stream adds to the largest single bindings: a state buffer ([capacity][slot_bytes])
  // and an activation or output buffer ([step rows][row_bytes]), named for messages. The capacity
  // keeps them within one binding; rollback rings are split across buffers, so they do not count.
  uint64_t slot_bytes = 0, row_bytes = 0;
  std::string slot_what = "a layer's state", row_what = "step outputs";
  int rollback_depth = 0;
};

// Why a model has as many stream slots as it has (ModelInfo::memory).
enum class CapacityReason {
  Requested,     // LoadOptions::max_streams
  MemoryBudget,  // what the memory budget holds beside the weights
  BindingLimit,  // what one binding (or allocation) holds of the largest per-stream buffer
  Ceiling,       // kMaxAutomaticStreams
};
const char* capacity_reason_name(CapacityReason r);

struct CapacityPlan {
  int capacity = 1;
  // Slots per shard: capacity when one binding holds every per-stream buffer; otherwise (an
  // explicit max_streams beyond the binding limit) what one binding holds, and the model runs as
  // ceil(capacity / shard_capacity) shards (engine/vulkan_sharded_model.h).
  int shard_capacity = 1;
  CapacityReason reason = CapacityReason::Requested;
  std::string detail;         // e.g. "step outputs: 16000 bytes per stream, maxStorageBufferRange 1048576"
  uint64_t budget_bytes = 0;  // what the automatic capacity may spend (stream_memory_budget)
};

struct WeightsPlan {
  bool f16 = false;                 // the fp32/fp16 type (of every matrix not kept in blocks)
  std::optional<QuantType> quant;   // matrices whose rows allow it are kept in these blocks (row_block_type)
  int capacity = 1;
  CapacityPlan capacity_plan;       // capacity and why
};

// The most streams an automatic capacity gives (a bound on load time and host-side arrays).
inline constexpr int kMaxAutomaticStreams = 1024;
// On unified memory the device-local heap is the system's RAM, shared with the application around
// the engine, the OS and the page cache that holds the mmap'd checkpoint: the automatic capacity
// spends at most 1/kUnifiedMemoryShare of it (weights included), leaving the rest to them.
inline constexpr uint64_t kUnifiedMemoryShare = 4;

// What weights and streams may use: caps.memory_available (heapBudget - heapUsage with
// VK_EXT_memory_budget, else the heap size), a quarter of it on unified memory.
uint64_t stream_memory_budget(const DeviceCaps& caps);

// The largest per-stream binding: how many streams it allows within maxStorageBufferRange (and
// maxMemoryAllocationSize), which buffer and which limit. capacity = INT32_MAX when nothing limits.
CapacityPlan binding_capacity(const WeightsPlanRequest& r, const DeviceCaps& caps);

// The capacity for `r`: max_streams when given (in shards when one binding cannot hold it: the
// detail names the buffer, the limit and the streams per shard), else the least of the memory
// budget, the binding limit and kMaxAutomaticStreams (one shard: an automatic capacity never
// reads the weights more than once a step). `weight_bytes`: the weights on the device.
CapacityPlan plan_capacity(const WeightsPlanRequest& r, uint64_t weight_bytes, const DeviceCaps& caps);

// A request with the load options' and the checkpoint's fields filled in; the caller adds its
// matrices (and, for S4D, auto_may_use_f16 = false).
WeightsPlanRequest plan_request(const LoadOptions& options, DType source_dtype, const std::string& source,
                                int64_t parameters, uint64_t bytes_per_stream);

WeightsPlan plan_weights(const WeightsPlanRequest& request, const DeviceCaps& caps);

// As many streams as fit in stream_memory_budget() once the weights are in (1 to
// kMaxAutomaticStreams).
int automatic_capacity(uint64_t weight_bytes, uint64_t bytes_per_stream, const DeviceCaps& caps);

// Keeps tune.texel only where the device can view every buffer the matvecs read as a texel buffer:
// RGBA32F texels (RGBA16F too for fp16 weights), and no view longer than maxTexelBufferElements
// (`largest_texels`, in 4-float texels). Otherwise the matvecs read storage buffers.
void fit_texel_views(Tuning& tune, const DeviceCaps& caps, bool f16, uint64_t largest_texels);

// The first matrix holding a value fp16 cannot represent (|x| > 65504), or nullptr.
const NamedMatrix* first_beyond_fp16(const std::vector<NamedMatrix>& matrices);

}  // namespace vkssm

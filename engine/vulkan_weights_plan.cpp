#include "engine/vulkan_weights_plan.h"

#include <algorithm>
#include <climits>
#include <cmath>

#include "engine/vk/dispatch_math.h"
#include "engine/vk/vulkan_context.h"
#include "engine/weight_storage.h"
#include "host/error.h"

namespace vkssm {

const NamedMatrix* first_beyond_fp16(const std::vector<NamedMatrix>& matrices) {
  for (const NamedMatrix& m : matrices)
    if (std::any_of(m.values->begin(), m.values->end(), [](float x) { return std::fabs(x) > 65504.0f; }))
      return &m;
  return nullptr;
}

const char* capacity_reason_name(CapacityReason r) {
  switch (r) {
    case CapacityReason::Requested: return "requested";
    case CapacityReason::MemoryBudget: return "memory budget";
    case CapacityReason::BindingLimit: return "binding limit";
    case CapacityReason::Ceiling: return "automatic maximum";
  }
  return "?";
}

uint64_t stream_memory_budget(const DeviceCaps& caps) {
  return caps.unified_memory ? caps.memory_available / kUnifiedMemoryShare : caps.memory_available;
}

int automatic_capacity(uint64_t weight_bytes, uint64_t bytes_per_stream, const DeviceCaps& caps) {
  const uint64_t budget = stream_memory_budget(caps);
  if (budget <= weight_bytes + bytes_per_stream) return 1;
  return int(std::min<uint64_t>(kMaxAutomaticStreams, (budget - weight_bytes) / std::max<uint64_t>(bytes_per_stream, 1)));
}

CapacityPlan binding_capacity(const WeightsPlanRequest& r, const DeviceCaps& caps) {
  const bool by_allocation = caps.max_memory_allocation_size < caps.max_storage_buffer_range;
  const uint64_t limit = by_allocation ? caps.max_memory_allocation_size : caps.max_storage_buffer_range;
  const char* limit_name = by_allocation ? "maxMemoryAllocationSize" : "maxStorageBufferRange";
  CapacityPlan p;
  p.capacity = INT32_MAX;
  p.reason = CapacityReason::BindingLimit;
  auto consider = [&](uint64_t per_stream, const std::string& what) {
    if (per_stream == 0) return;
    const uint64_t fit = std::max<uint64_t>(1, limit / per_stream);
    if (fit >= uint64_t(p.capacity)) return;
    p.capacity = int(fit);
    p.detail = what + ": " + std::to_string(per_stream) + " bytes per stream, " + limit_name + " " +
               std::to_string(limit) + " of " + caps.name;
  };
  consider(r.slot_bytes, r.slot_what);
  consider(r.row_bytes, r.row_what);
  return p;
}

CapacityPlan plan_capacity(const WeightsPlanRequest& r, uint64_t weight_bytes, const DeviceCaps& caps) {
  const CapacityPlan bindings = binding_capacity(r, caps);
  CapacityPlan p;
  p.budget_bytes = stream_memory_budget(caps);
  if (r.max_streams > 0) {
    p.capacity = p.shard_capacity = r.max_streams;
    p.reason = CapacityReason::Requested;
    if (r.max_streams > bindings.capacity) {
      // As few shards as the binding allows, with the slots spread evenly over them.
      const int shards = int(ceil_div(uint64_t(r.max_streams), uint64_t(bindings.capacity)));
      p.shard_capacity = int(ceil_div(uint64_t(r.max_streams), uint64_t(shards)));
      p.detail = std::to_string(shards) + " shards of at most " + std::to_string(p.shard_capacity) +
                 " streams: " + bindings.detail + " holds " + std::to_string(bindings.capacity) + " streams";
    }
    return p;
  }
  p.capacity = automatic_capacity(weight_bytes, r.bytes_per_stream, caps);
  p.reason = p.capacity == kMaxAutomaticStreams ? CapacityReason::Ceiling : CapacityReason::MemoryBudget;
  p.detail = std::to_string(p.budget_bytes) + " bytes (" +
             (caps.memory_budget_ext ? "VK_EXT_memory_budget" : "heap size") +
             (caps.unified_memory ? ", 1/" + std::to_string(kUnifiedMemoryShare) + " on unified memory" : "") +
             ") less " + std::to_string(weight_bytes) + " bytes of weights, " + std::to_string(r.bytes_per_stream) +
             " bytes per stream";
  if (bindings.capacity < p.capacity) {
    p.capacity = bindings.capacity;
    p.reason = CapacityReason::BindingLimit;
    p.detail = bindings.detail;
  }
  p.shard_capacity = p.capacity;
  return p;
}

WeightsPlanRequest plan_request(const LoadOptions& options, DType source_dtype, const std::string& source,
                                int64_t parameters, uint64_t bytes_per_stream) {
  WeightsPlanRequest r;
  r.requested = options.weights;
  r.source_dtype = source_dtype;
  r.source = source;
  r.max_streams = options.max_streams;
  r.parameters = uint64_t(parameters);
  r.bytes_per_stream = bytes_per_stream;
  r.rollback_depth = options.rollback_depth;
  return r;
}

WeightsPlan plan_weights(const WeightsPlanRequest& r, const DeviceCaps& caps) {
  WeightsPlan plan;
  switch (r.requested) {
    case WeightStorage::F32: plan.f16 = false; break;
    case WeightStorage::F16: plan.f16 = true; break;
    case WeightStorage::Auto: plan.f16 = r.auto_may_use_f16 && r.source_dtype != DType::F32 && caps.storage16; break;
    // Blocks carry their own fp16 scales; a matrix whose rows cannot be blocks keeps fp32, so it
    // computes exactly what the cpu backend does.
    case WeightStorage::Q8_0:
    case WeightStorage::Q4_0:
    case WeightStorage::Q4_K:
    case WeightStorage::Q5_K:
    case WeightStorage::Q6_K: plan.quant = quant_type_of(r.requested); break;
  }
  if (plan.f16) {
    if (const NamedMatrix* big = first_beyond_fp16(r.matrices)) {
      if (r.requested == WeightStorage::F16)
        throw Error("tensor " + big->name + " of " + r.source +
                    " has values beyond the fp16 range (65504); load it with f32 weights");
      plan.f16 = false;
    }
  }
  plan.capacity_plan = plan_capacity(r, r.parameters * (plan.f16 ? 2 : plan.quant ? 1 : 4), caps);
  plan.capacity = plan.capacity_plan.capacity;
  return plan;
}

void fit_texel_views(Tuning& tune, const DeviceCaps& caps, bool f16, uint64_t largest_texels) {
  if (tune.texel && (!caps.texel_rgba32f || (f16 && !caps.texel_rgba16f) ||
                     largest_texels > caps.max_texel_buffer_elements))
    tune.texel = false;
}

}  // namespace vkssm

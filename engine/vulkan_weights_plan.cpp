#include "engine/vulkan_weights_plan.h"

#include <algorithm>
#include <cmath>

#include "engine/vk/vulkan_context.h"
#include "host/error.h"

namespace vkssm {

const NamedMatrix* first_beyond_fp16(const std::vector<NamedMatrix>& matrices) {
  for (const NamedMatrix& m : matrices)
    if (std::any_of(m.values->begin(), m.values->end(), [](float x) { return std::fabs(x) > 65504.0f; }))
      return &m;
  return nullptr;
}

int automatic_capacity(uint64_t weight_bytes, uint64_t bytes_per_stream, const DeviceCaps& caps) {
  const uint64_t budget = caps.device_local_bytes / 2;
  if (budget <= weight_bytes + bytes_per_stream) return 1;
  return int(std::min<uint64_t>(1024, (budget - weight_bytes) / bytes_per_stream));
}

int capacity_within_bindings(int capacity, const WeightsPlanRequest& r, const DeviceCaps& caps) {
  const uint64_t limit = caps.max_storage_buffer_range;
  uint64_t cap = uint64_t(capacity);
  if (r.slot_bytes) cap = std::min(cap, limit / (r.slot_bytes * uint64_t(std::max(1, r.rollback_depth))));
  if (r.row_bytes) cap = std::min(cap, limit / r.row_bytes);
  return int(std::max<uint64_t>(cap, 1));
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
  }
  if (plan.f16) {
    if (const NamedMatrix* big = first_beyond_fp16(r.matrices)) {
      if (r.requested == WeightStorage::F16)
        throw Error("tensor " + big->name + " of " + r.source +
                    " has values beyond the fp16 range (65504); load it with f32 weights");
      plan.f16 = false;
    }
  }
  plan.capacity = r.max_streams == 0
                      ? capacity_within_bindings(
                            automatic_capacity(r.parameters * (plan.f16 ? 2 : 4), r.bytes_per_stream, caps), r, caps)
                      : r.max_streams;
  return plan;
}

void fit_texel_views(Tuning& tune, const DeviceCaps& caps, bool f16, uint64_t largest_texels) {
  if (tune.texel && (!caps.texel_rgba32f || (f16 && !caps.texel_rgba16f) ||
                     largest_texels > caps.max_texel_buffer_elements))
    tune.texel = false;
}

}  // namespace vkssm

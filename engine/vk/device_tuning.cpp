#include "engine/vk/device_tuning.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "engine/vk/dispatch_math.h"
#include "engine/vk/vulkan_context.h"
#include "host/error.h"

namespace vkssm {
namespace {

const char* const kFields[5] = {"local", "row_groups", "conv_chunk", "ssm_chunk", "texel"};

[[noreturn]] void bad(const std::string& value, const std::string& why) {
  throw Error("VKSSM_TUNE='" + value + "': " + why +
              " (it takes local,row_groups,conv_chunk,ssm_chunk,texel; unset it for the device's table)");
}

}  // namespace

std::string Tuning::describe() const {
  return "local=" + std::to_string(local) + " row_groups=" + std::to_string(row_groups) +
         " conv_chunk=" + std::to_string(conv_chunk) + " ssm_chunk=" + std::to_string(ssm_chunk) +
         " texel=" + (texel ? "1" : "0");
}

Tuning parse_tuning(const std::string& value, const DeviceCaps& caps) {
  std::vector<std::string> fields(1);
  for (char c : value) {
    if (c == ',') fields.emplace_back();
    else fields.back() += c;
  }
  if (fields.size() != 5) bad(value, "has " + std::to_string(fields.size()) + " field(s), not 5");
  uint32_t v[5];
  for (int i = 0; i < 5; ++i) {
    const std::string& f = fields[size_t(i)];
    if (f.empty() || f.size() > 9 || !std::all_of(f.begin(), f.end(), [](char c) { return c >= '0' && c <= '9'; }))
      bad(value, std::string("field ") + kFields[i] + " = '" + f + "' is not a whole number");
    v[i] = uint32_t(std::strtoul(f.c_str(), nullptr, 10));
    if (i < 4 && v[i] == 0) bad(value, std::string("field ") + kFields[i] + " must be at least 1");
  }
  const Tuning t{v[0], v[1], v[2], v[3], v[4] != 0};
  if (t.local > caps.max_workgroup_invocations)
    bad(value, "field local = " + std::to_string(t.local) + " exceeds " + caps.name + "'s limit of " +
                   std::to_string(caps.max_workgroup_invocations) + " invocations per workgroup");
  // matvec.comp reduces over at most 32 subgroups (its shared `red` array), or 32 threads where
  // the device has no subgroup arithmetic.
  const uint32_t max_reduced = 32 * (caps.subgroup_arithmetic ? std::max(caps.subgroup_size, 1u) : 1u);
  if (t.local > 1 && t.local > max_reduced)
    bad(value, "field local = " + std::to_string(t.local) + " exceeds " +
                   (caps.subgroup_arithmetic ? "32 subgroups of " + std::to_string(caps.subgroup_size)
                                             : std::string("32 threads (no subgroup arithmetic)")) +
                   " (the matvec's reduction)");
  // mamba1_conv_x_proj.comp reads its chunk's channels four at a time.
  if (t.conv_chunk % 4 != 0) bad(value, "field conv_chunk = " + std::to_string(t.conv_chunk) + " is not a multiple of 4");
  // mamba1_conv_x_proj.comp keeps conv_chunk floats in shared memory.
  if (uint64_t(t.conv_chunk) * 4 > caps.shared_memory)
    bad(value, "field conv_chunk = " + std::to_string(t.conv_chunk) + " needs " + std::to_string(t.conv_chunk * 4ull) +
                   " bytes of shared memory; " + caps.name + " has " + std::to_string(caps.shared_memory));
  if (v[4] > 1) bad(value, "field texel = " + fields[4] + " must be 0 or 1");
  if (t.texel && !caps.texel_rgba32f)
    bad(value, "field texel = 1, but " + caps.name + " cannot read RGBA32F uniform texel buffers");
  return t;
}

Tuning tuning_for(const DeviceCaps& caps, TuningProfile profile) {
  if (const char* env = std::getenv("VKSSM_TUNE"); env && *env) return parse_tuning(env, caps);
  if (caps.is_cpu()) {
    // S4D's matrices are small next to Mamba's (128 rows per workgroup would leave most cores
    // idle) and its batches large, so one invocation per 4-row workgroup spreads them over the
    // cores and needs no reduction barrier: measured with `vkssm listen --bench 32` on lavapipe,
    // 1.16x real time instead of 0.71x.
    if (profile == TuningProfile::FrameModel) return {1, 1, 256, 256, true};
    return {8, 32, 256, 256, true};
  }
  // Without subgroup arithmetic the matvec reduces one value per thread in shared memory: 32 at most.
  // With it, one partial sum per subgroup, 32 subgroups at most: 64 threads fit any subgroup size
  // from 2 up (a larger subgroup than the workgroup is one partial subgroup, which subgroupAdd handles).
  const uint32_t reduced = caps.subgroup_arithmetic ? std::min(64u, 32 * std::max(caps.subgroup_size, 1u)) : 32u;
  const uint32_t local = std::min<uint32_t>(reduced, caps.max_workgroup_invocations);
  return {local, 1, local, local, false};
}

uint32_t sampler_local(const Tuning& t) { return floor_pow2(t.local); }

}  // namespace vkssm

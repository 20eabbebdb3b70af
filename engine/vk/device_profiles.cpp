#include "engine/vk/device_profiles.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <optional>

#include "engine/vk/vulkan_context.h"
#include "host/error.h"

namespace vkssm {
namespace {

// One class of devices: every limit it sets is a ceiling (std::nullopt / true: keep the probe's).
struct DeviceProfile {
  const char* name;
  std::optional<uint64_t> max_storage_buffer_range = std::nullopt;
  std::optional<uint64_t> max_texel_buffer_elements = std::nullopt;
  std::optional<uint64_t> max_memory_allocation_size = std::nullopt;
  std::optional<uint32_t> max_per_stage_storage_buffers = std::nullopt;
  std::optional<uint32_t> shared_memory = std::nullopt;
  std::optional<uint32_t> max_workgroup_invocations = std::nullopt;
  bool timeline_semaphores = true;
  bool storage16 = true;
  bool float16 = true;
  bool subgroup_arithmetic = true;
};

// Sources:
//  [ABP] The Android Baseline 2021/2022 profile (Khronos Vulkan-Profiles, VP_ANDROID_baseline_2022),
//        as tabulated in the project's reference notes (shared/reference/edge-gpus.md, "Limits
//        real devices report"): maxStorageBufferRange 134217728, maxTexelBufferElements 65536,
//        maxComputeSharedMemorySize 16384, maxComputeWorkGroupInvocations 128,
//        maxPerStageDescriptorStorageBuffers 4.
//  [SPEC] Vulkan 1.1 spec, table "Required Limits": maxStorageBufferRange 2^27,
//        maxTexelBufferElements 65536, maxComputeSharedMemorySize 16384,
//        maxComputeWorkGroupInvocations 128, maxPerStageDescriptorStorageBuffers 4,
//        maxMemoryAllocationSize 2^30 (Vulkan 1.1 maintenance3); timelineSemaphore (1.2),
//        storageBuffer16BitAccess, shaderFloat16 and subgroup ARITHMETIC are optional.

// The most storage buffers one vkssm shader binds (mamba1_scan.comp): what the profiles keep of a
// real device's maxPerStageDescriptorStorageBuffers, since the shaders cannot do with fewer.
constexpr uint32_t kStepShaderStorageBuffers = 10;

const DeviceProfile kProfiles[] = {
    // [ABP]. maxPerStageDescriptorStorageBuffers: the baseline says 4, but vkssm's step shaders
    // bind up to 10 storage buffers (mamba1_scan.comp), so the profile keeps 10: a device that
    // really allows only 4 is refused at load with an error naming the shader and the limit
    // (ComputePipeline). Texel buffers are uniform texel buffers, not storage buffers.
    {.name = "android-baseline-2022",
     .max_storage_buffer_range = 134217728,
     .max_texel_buffer_elements = 65536,
     .max_per_stage_storage_buffers = kStepShaderStorageBuffers,
     .shared_memory = 16384,
     .max_workgroup_invocations = 128},
    // [SPEC]: a Vulkan 1.1 device with the required limits and none of the optional features
    // vkssm can use (fences instead of timeline semaphores, fp32 weights, shared-memory
    // reductions instead of subgroup adds). Storage buffers per stage as above (spec: 4).
    {.name = "vulkan-1.1-minimal",
     .max_storage_buffer_range = 134217728,
     .max_texel_buffer_elements = 65536,
     .max_memory_allocation_size = uint64_t(1) << 30,
     .max_per_stage_storage_buffers = kStepShaderStorageBuffers,
     .shared_memory = 16384,
     .max_workgroup_invocations = 128,
     .timeline_semaphores = false,
     .storage16 = false,
     .float16 = false,
     .subgroup_arithmetic = false},
    // Not a real device: 1 MiB bindings (texel views of 64 Ki texels) and 16 MiB allocations, so
    // that tests split the embedding, lm_head and other large bindings on small, fast models.
    {.name = "tiny-bindings",
     .max_storage_buffer_range = uint64_t(1) << 20,
     .max_texel_buffer_elements = 65536,
     .max_memory_allocation_size = uint64_t(16) << 20},
};

template <class T>
void clamp(T& value, const std::optional<T>& ceiling) {
  if (ceiling) value = std::min(value, *ceiling);
}

}  // namespace

std::vector<std::string> device_profile_names() {
  std::vector<std::string> names;
  for (const DeviceProfile& p : kProfiles) names.emplace_back(p.name);
  return names;
}

std::string device_profile_from_env() {
  const char* env = std::getenv("VKSSM_DEVICE_PROFILE");
  return env ? env : "";
}

void apply_device_profile(DeviceCaps& caps, const std::string& name) {
  if (name.empty()) return;
  for (const DeviceProfile& p : kProfiles) {
    if (name != p.name) continue;
    clamp(caps.max_storage_buffer_range, p.max_storage_buffer_range);
    clamp(caps.max_texel_buffer_elements, p.max_texel_buffer_elements);
    clamp(caps.max_memory_allocation_size, p.max_memory_allocation_size);
    clamp(caps.max_per_stage_storage_buffers, p.max_per_stage_storage_buffers);
    clamp(caps.shared_memory, p.shared_memory);
    clamp(caps.max_workgroup_invocations, p.max_workgroup_invocations);
    caps.timeline_semaphores = caps.timeline_semaphores && p.timeline_semaphores;
    caps.storage16 = caps.storage16 && p.storage16;
    caps.float16 = caps.float16 && p.float16;
    caps.subgroup_arithmetic = caps.subgroup_arithmetic && p.subgroup_arithmetic;
    caps.profile = p.name;
    return;
  }
  std::string known;
  for (const std::string& n : device_profile_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error("VKSSM_DEVICE_PROFILE='" + name + "' is not a known device profile (known: " + known + ")");
}

}  // namespace vkssm

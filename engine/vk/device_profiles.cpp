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
  std::optional<uint32_t> max_memory_allocation_count = std::nullopt;
  std::optional<uint32_t> max_per_stage_storage_buffers = std::nullopt;
  std::optional<uint32_t> shared_memory = std::nullopt;
  std::optional<uint32_t> max_workgroup_invocations = std::nullopt;
  std::optional<uint32_t> api_version = std::nullopt;  // below 1.2: no 1.2 features either
  bool timeline_semaphores = true;
  bool storage16 = true;
  bool float16 = true;
  bool subgroup_arithmetic = true;
  // false: behave as memory that is not both device-local and host-visible (staged uploads, the
  // discrete-card capacity rule).
  bool unified_memory = true;
};

// Sources:
//  [ABP] The Android Baseline 2021/2022 profile (Khronos Vulkan-Profiles, VP_ANDROID_baseline_2022):
//        maxStorageBufferRange 134217728, maxTexelBufferElements 65536,
//        maxComputeSharedMemorySize 16384, maxComputeWorkGroupInvocations 128,
//        maxPerStageDescriptorStorageBuffers 4.
//  [SPEC] Vulkan 1.1 spec, table "Required Limits": maxStorageBufferRange 2^27,
//        maxTexelBufferElements 65536, maxComputeSharedMemorySize 16384,
//        maxComputeWorkGroupInvocations 128, maxPerStageDescriptorStorageBuffers 4,
//        maxMemoryAllocationSize 2^30 (Vulkan 1.1 maintenance3); timelineSemaphore (1.2),
//        storageBuffer16BitAccess, shaderFloat16 and subgroup ARITHMETIC are optional; memory
//        need only have one DEVICE_LOCAL type and one HOST_VISIBLE | HOST_COHERENT type, not one
//        type that is both (chapter "Device Memory"), so unified memory is optional too.

// The most storage buffers one vkssm shader binds (mamba1_scan.comp): what the profiles keep of a
// real device's maxPerStageDescriptorStorageBuffers, since the shaders cannot do with fewer.
constexpr uint32_t kStepShaderStorageBuffers = 10;

constexpr uint32_t kVulkan11 = VK_API_VERSION_1_1, kVulkan13 = VK_API_VERSION_1_3;
constexpr uint64_t k128MiB = uint64_t(1) << 27, k1GiB = uint64_t(1) << 30;

const DeviceProfile kProfiles[] = {
    // [ABP]. maxPerStageDescriptorStorageBuffers: the baseline says 4, but vkssm's step shaders
    // bind up to 10 storage buffers (mamba1_scan.comp), so the profile keeps 10: a device that
    // really allows only 4 is refused at load with an error naming the shader and the limit
    // (ComputePipeline). Texel buffers are uniform texel buffers, not storage buffers.
    {.name = "android-baseline-2022",
     .max_storage_buffer_range = 134217728,
     .max_texel_buffer_elements = 65536,
     .max_memory_allocation_count = 4096,  // the least Vulkan allows
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
     .max_memory_allocation_count = 4096,  // the least Vulkan allows
     .max_per_stage_storage_buffers = kStepShaderStorageBuffers,
     .shared_memory = 16384,
     .max_workgroup_invocations = 128,
     .api_version = kVulkan11,
     .timeline_semaphores = false,
     .storage16 = false,
     .float16 = false,
     .subgroup_arithmetic = false,
     .unified_memory = false},
    // Real classes of edge GPUs. Every number and its source (public device reports, the vendor's
    // documentation, the project's reference table): docs/DEVICE_PROFILES.md. Where a class spans
    // a range the profile takes its low end; 1 GiB allocations where no class value was found.
    // Bifrost (Mali-G52/G57 on Android): Vulkan 1.1 drivers, no subgroup arithmetic on old ones.
    {.name = "mali-bifrost",
     .max_storage_buffer_range = k128MiB,
     .max_texel_buffer_elements = uint64_t(1) << 27,
     .max_memory_allocation_size = k1GiB,
     .max_memory_allocation_count = 4096,  // the least Vulkan allows
     .max_per_stage_storage_buffers = 35,
     .shared_memory = 32768,
     .max_workgroup_invocations = 512,
     .api_version = kVulkan11,
     .timeline_semaphores = false,
     .subgroup_arithmetic = false},
    // Valhall (Mali-G710 and later): Vulkan 1.3 drivers with subgroup arithmetic (size 16).
    {.name = "mali-valhall",
     .max_storage_buffer_range = k128MiB,
     .max_texel_buffer_elements = uint64_t(1) << 27,
     .max_memory_allocation_size = k1GiB,
     .max_memory_allocation_count = 4096,  // the least Vulkan allows
     .max_per_stage_storage_buffers = 35,
     .shared_memory = 32768,
     .max_workgroup_invocations = 512,
     .api_version = kVulkan13},
    // Adreno 6xx (Snapdragon 845-888): Vulkan 1.1 drivers, 2^27-byte bindings, subgroups of 64/128.
    {.name = "adreno-6xx",
     .max_storage_buffer_range = k128MiB,
     .max_texel_buffer_elements = uint64_t(1) << 27,
     .max_memory_allocation_size = k1GiB,
     .max_memory_allocation_count = 4096,  // the least Vulkan allows
     .max_per_stage_storage_buffers = 24,
     .shared_memory = 32768,
     .max_workgroup_invocations = 1024,
     .api_version = kVulkan11,
     .timeline_semaphores = false},
    // Adreno 7xx (Snapdragon 8 Gen 1-3): Vulkan 1.3 drivers, the same binding limits.
    {.name = "adreno-7xx",
     .max_storage_buffer_range = k128MiB,
     .max_texel_buffer_elements = uint64_t(1) << 27,
     .max_memory_allocation_size = k1GiB,
     .max_memory_allocation_count = 4096,  // the least Vulkan allows
     .max_per_stage_storage_buffers = 24,
     .shared_memory = 32768,
     .max_workgroup_invocations = 1024,
     .api_version = kVulkan13},
    // Jetson Orin (Ampere iGPU, NVIDIA L4T driver): 4 GiB bindings, 48 KiB shared memory.
    {.name = "jetson-orin",
     .max_storage_buffer_range = uint64_t(0xFFFFFFFF),
     .max_texel_buffer_elements = uint64_t(1) << 27,
     .max_per_stage_storage_buffers = 1048576,
     .shared_memory = 49152,
     .max_workgroup_invocations = 1024,
     .api_version = kVulkan13},
    // Not a real device: 1 MiB bindings (texel views of 64 Ki texels) and 16 MiB allocations, so
    // that tests split the embedding, lm_head and other large bindings on small, fast models.
    {.name = "tiny-bindings",
     .max_storage_buffer_range = uint64_t(1) << 20,
     .max_texel_buffer_elements = 65536,
     .max_memory_allocation_size = uint64_t(16) << 20,
     .max_memory_allocation_count = 1024},
};

template <class T>
void clamp(T& value, const std::optional<T>& ceiling) {
  if (ceiling) value = std::min(value, *ceiling);
}

[[noreturn]] void unknown_profile(const std::string& name) {
  std::string known;
  for (const std::string& n : device_profile_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error("VKSSM_DEVICE_PROFILE='" + name + "' is not a known device profile (known: " + known + ")");
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
    clamp(caps.max_memory_allocation_count, p.max_memory_allocation_count);
    clamp(caps.max_per_stage_storage_buffers, p.max_per_stage_storage_buffers);
    clamp(caps.shared_memory, p.shared_memory);
    clamp(caps.max_workgroup_invocations, p.max_workgroup_invocations);
    // The Vulkan version by major.minor: a device's 1.3.230 under a 1.3 class stays 1.3.230.
    if (p.api_version && (caps.api_version & ~0xFFFu) > *p.api_version) caps.api_version = *p.api_version;
    caps.timeline_semaphores = caps.timeline_semaphores && p.timeline_semaphores;
    caps.storage16 = caps.storage16 && p.storage16;
    caps.float16 = caps.float16 && p.float16;
    caps.subgroup_arithmetic = caps.subgroup_arithmetic && p.subgroup_arithmetic;
    if (caps.api_version < VK_API_VERSION_1_2) {  // what probe_device finds on a Vulkan 1.1 device
      caps.timeline_semaphores = false;
      caps.float16 = false;
      caps.storage8 = false;
    }
    caps.unified_memory = caps.unified_memory && p.unified_memory;
    caps.profile = p.name;
    return;
  }
  unknown_profile(name);
}

uint32_t device_profile_api_version(const std::string& name) {
  if (name.empty()) return UINT32_MAX;
  for (const DeviceProfile& p : kProfiles)
    if (name == p.name) return p.api_version.value_or(UINT32_MAX);
  unknown_profile(name);
}

}  // namespace vkssm

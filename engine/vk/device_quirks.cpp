#include "engine/vk/device_quirks.h"

#include <cstdio>

#include "engine/vk/vulkan_context.h"

namespace vkssm {
namespace {

constexpr uint32_t kNvidia = 0x10DE, kArm = 0x13B5, kQualcomm = 0x5143;

constexpr uint32_t make_version(uint32_t major, uint32_t minor, uint32_t patch) {
  return (major << 22) | (minor << 12) | patch;
}

// Sources and the reasoning behind each entry: docs/DEVICE_PROFILES.md, "Driver quirks".
const std::vector<DeviceQuirk> kQuirks = {
    {.id = "mali-16bit-storage",
     .family = DriverFamily::Arm,
     .vendor_id = kArm,
     .driver_below = {32, 0, 0, 0},  // r32p0
     .api_below = make_version(1, 0, 82),
     .no_storage16 = true,
     .reason = "16-bit storage is broken on ARM Mali drivers before r32 (Vulkan 1.0.82)",
     .source = "https://github.com/Tencent/ncnn/blob/master/src/gpu.cpp (\"the 16bit_storage implementation of "
               "arm mali driver is buggy\")"},
    {.id = "mali-g720-fp16",
     .family = DriverFamily::Arm,
     .vendor_id = kArm,
     .device_name_contains = "Mali-G720",
     .no_storage16 = true,
     .no_float16 = true,
     .reason = "wrong results with fp16 storage/arithmetic on Mali-G720 (r49p1 driver), CPU results correct",
     .source = "https://github.com/Tencent/ncnn/issues/6818"},
    {.id = "adreno-pipeline-cache",
     .family = DriverFamily::Qualcomm,
     .vendor_id = kQualcomm,
     .api_below = make_version(1, 0, 66),
     .no_pipeline_cache = true,
     .reason = "old Adreno drivers (Vulkan < 1.0.66) corrupt pipelines shared through a pipeline cache",
     .source = "https://github.com/Tencent/ncnn/blob/master/src/gpu.cpp (bug_corrupted_online_pipeline_cache)"},
    {.id = "adreno-fp16-without-storage16",
     .family = DriverFamily::Qualcomm,
     .vendor_id = kQualcomm,
     .only_without_storage16 = true,
     .no_float16 = true,
     .reason = "fp16 arithmetic without 16-bit storage is unreliable on Adreno drivers",
     .source = "https://github.com/Tencent/ncnn/blob/master/src/gpu.cpp (fp16 arithmetic on Adreno only for "
               "the 630/640/650 device ids)"},
};

// Decoded parts compared in order of significance.
int compare(const uint32_t a[4], const uint32_t b[4]) {
  for (int i = 0; i < 4; ++i)
    if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

bool all_zero(const uint32_t a[4]) { return !a[0] && !a[1] && !a[2] && !a[3]; }

}  // namespace

DriverFamily driver_family(uint32_t vendor_id, uint32_t driver_id) {
  switch (driver_id) {
    case VK_DRIVER_ID_NVIDIA_PROPRIETARY: return DriverFamily::Nvidia;
    case VK_DRIVER_ID_ARM_PROPRIETARY: return DriverFamily::Arm;
    case VK_DRIVER_ID_QUALCOMM_PROPRIETARY: return DriverFamily::Qualcomm;
    case VK_DRIVER_ID_MESA_RADV:
    case VK_DRIVER_ID_INTEL_OPEN_SOURCE_MESA:
    case VK_DRIVER_ID_MESA_LLVMPIPE:
    case VK_DRIVER_ID_MESA_TURNIP:
    case VK_DRIVER_ID_MESA_V3DV:
    case VK_DRIVER_ID_MESA_PANVK:
    case VK_DRIVER_ID_MESA_VENUS:
    case VK_DRIVER_ID_MESA_DOZEN:
    case VK_DRIVER_ID_MESA_NVK:
    case VK_DRIVER_ID_IMAGINATION_OPEN_SOURCE_MESA: return DriverFamily::Mesa;
    default: break;
  }
  if (driver_id != 0) return DriverFamily::Other;  // a driver that names itself, none of the above
  switch (vendor_id) {  // no VkDriverId (a Vulkan 1.1 device): the vendor's own driver
    case kNvidia: return DriverFamily::Nvidia;
    case kArm: return DriverFamily::Arm;
    case kQualcomm: return DriverFamily::Qualcomm;
    case VK_VENDOR_ID_MESA: return DriverFamily::Mesa;
    default: return DriverFamily::Other;
  }
}

DriverVersion decode_driver_version(uint32_t vendor_id, uint32_t driver_id, uint32_t v) {
  DriverVersion d;
  d.family = driver_family(vendor_id, driver_id);
  char buf[64];
  if (d.family == DriverFamily::Nvidia) {
    d.part[0] = v >> 22;
    d.part[1] = (v >> 14) & 0xFF;
    d.part[2] = (v >> 6) & 0xFF;
    d.part[3] = v & 0x3F;
    std::snprintf(buf, sizeof buf, "NVIDIA %u.%u.%u.%u", d.part[0], d.part[1], d.part[2], d.part[3]);
  } else {
    d.part[0] = v >> 22;  // all 10 bits: Qualcomm's 512 sets the top one
    d.part[1] = (v >> 12) & 0x3FF;
    d.part[2] = v & 0xFFF;
    switch (d.family) {
      case DriverFamily::Arm: std::snprintf(buf, sizeof buf, "ARM r%up%u", d.part[0], d.part[1]); break;
      case DriverFamily::Qualcomm:
        std::snprintf(buf, sizeof buf, "Qualcomm %u.%u.%u", d.part[0], d.part[1], d.part[2]);
        break;
      case DriverFamily::Mesa: std::snprintf(buf, sizeof buf, "Mesa %u.%u.%u", d.part[0], d.part[1], d.part[2]); break;
      default: std::snprintf(buf, sizeof buf, "%u.%u.%u", d.part[0], d.part[1], d.part[2]); break;
    }
  }
  d.text = buf;
  return d;
}

const std::vector<DeviceQuirk>& device_quirk_table() { return kQuirks; }

bool quirk_matches(const DeviceQuirk& q, const DeviceCaps& caps) {
  if (caps.vendor_id != q.vendor_id || driver_family(caps.vendor_id, caps.driver_id) != q.family) return false;
  if (q.device_name_contains && caps.name.find(q.device_name_contains) == std::string::npos) return false;
  if (q.only_without_storage16 && caps.storage16) return false;
  const bool has_driver_range = !all_zero(q.driver_from) || !all_zero(q.driver_below);
  if (!has_driver_range && !q.api_below) return true;  // every driver
  const DriverVersion d = decode_driver_version(caps.vendor_id, caps.driver_id, caps.driver_version);
  const bool in_range = has_driver_range && compare(d.part, q.driver_from) >= 0 &&
                        (all_zero(q.driver_below) || compare(d.part, q.driver_below) < 0);
  return in_range || (q.api_below && caps.api_version < q.api_below);
}

void apply_device_quirks(DeviceCaps& caps) {
  for (const DeviceQuirk& q : kQuirks) {
    if (!quirk_matches(q, caps)) continue;
    if (q.no_storage16) caps.storage16 = false;
    if (q.no_float16) caps.float16 = false;
    if (q.no_pipeline_cache) caps.pipeline_cache_on_disk = false;
    caps.quirks.emplace_back(q.id);
  }
}

}  // namespace vkssm

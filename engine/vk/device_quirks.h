#pragma once
// Driver quirks: known driver bugs, per vendor and driver version, and what vkssm avoids on them.
// apply_device_quirks() runs after the capability probe and before any device profile
// (device_profiles.h), and turns off what a matching entry names; `vkssm devices` lists the
// entries that applied. The table, with the public report behind each entry, is in
// device_quirks.cpp and docs/DEVICE_PROFILES.md.
#include <cstdint>
#include <string>
#include <vector>

namespace vkssm {

struct DeviceCaps;

// Who wrote the driver decides how driverVersion is encoded.
enum class DriverFamily { Nvidia, Arm, Qualcomm, Mesa, Other };

// The family from the PCI vendor id and, where the device reports one, its VkDriverId: Mesa's
// turnip (Adreno) and panvk (Mali) carry Qualcomm's and ARM's vendor ids with Mesa's versioning.
DriverFamily driver_family(uint32_t vendor_id, uint32_t driver_id);

// driverVersion split the way its family writes it, in order of significance:
//   NVIDIA    10.8.8.6 bits: 550.54.14.0
//   ARM       VK_MAKE_VERSION(rX, pY, 0): r32p1 is 32.1.0
//   Qualcomm  VK_MAKE_VERSION with major 512 (bit 31 set): 512.615.0, the driver is the middle
//   Mesa      VK_MAKE_VERSION of the Mesa release: 24.2.8
//   other     VK_MAKE_VERSION
struct DriverVersion {
  DriverFamily family = DriverFamily::Other;
  uint32_t part[4] = {0, 0, 0, 0};
  std::string text;  // "NVIDIA 550.54.14.0", "ARM r32p1", "Qualcomm 512.615.0", "Mesa 24.2.8", "0.1.2"
};
DriverVersion decode_driver_version(uint32_t vendor_id, uint32_t driver_id, uint32_t driver_version);

// One entry of the table: the driver it matches, what it turns off, why, and where it was reported.
struct DeviceQuirk {
  const char* id;  // short name shown by `vkssm devices`, e.g. "mali-16bit-storage"
  DriverFamily family;
  uint32_t vendor_id;
  const char* device_name_contains = nullptr;  // nullptr: any device of the vendor
  // The driver versions it matches: decoded parts compared in order, [from, below); a zero
  // `below` means no upper bound. api_below (a VK_MAKE_VERSION, 0 = unused) matches too, for
  // reports that name the driver by the Vulkan version it reported.
  uint32_t driver_from[4] = {0, 0, 0, 0};
  uint32_t driver_below[4] = {0, 0, 0, 0};
  uint32_t api_below = 0;
  bool only_without_storage16 = false;  // matches only where 16-bit storage is off (after the above)
  // What it turns off.
  bool no_storage16 = false;
  bool no_float16 = false;
  bool no_pipeline_cache = false;
  const char* reason;
  const char* source;  // a public report (issue URL or source file)
};

// The table, in the order entries are applied.
const std::vector<DeviceQuirk>& device_quirk_table();

// Whether `q` matches the device `caps` describes (vendor, driver family, name, version).
bool quirk_matches(const DeviceQuirk& q, const DeviceCaps& caps);

// Applies every matching entry to `caps` (features off, the on-disk pipeline cache off) and
// records their ids in caps.quirks.
void apply_device_quirks(DeviceCaps& caps);

}  // namespace vkssm

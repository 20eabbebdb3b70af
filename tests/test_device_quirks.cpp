// Driver quirks (engine/vk/device_quirks.h): driverVersion decoded per vendor, each entry of the
// table matched on made-up capabilities (vendor id, driver id, driver version, device name) and
// what it turns off, including the on-disk pipeline cache. And the instance / device extension
// choices for portability drivers (engine/vk/vulkan_extensions.h).
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/vk/device_profiles.h"
#include "engine/vk/device_quirks.h"
#include "engine/vk/vulkan_context.h"
#include "engine/vk/vulkan_extensions.h"

namespace vkssm {
namespace {

using testing::ElementsAre;
// Empty lists are written ElementsAre(): IsEmpty() needs libgmock, which the tests do not link.

constexpr uint32_t kArm = 0x13B5, kQualcomm = 0x5143, kNvidia = 0x10DE;

uint32_t make_version(uint32_t major, uint32_t minor, uint32_t patch) { return (major << 22) | (minor << 12) | patch; }

// A device as the probe would describe it, every feature on.
DeviceCaps device(const char* name, uint32_t vendor, uint32_t driver_id, uint32_t driver_version,
                  uint32_t api = VK_API_VERSION_1_3) {
  DeviceCaps c;
  c.name = name;
  c.vendor_id = vendor;
  c.driver_id = driver_id;
  c.driver_version = driver_version;
  c.api_version = api;
  c.storage16 = c.float16 = true;
  return c;
}

TEST(DriverVersion, DecodedPerVendor) {
  // NVIDIA: 10.8.8.6 bits.
  const uint32_t nv = (550u << 22) | (54u << 14) | (14u << 6) | 3u;
  EXPECT_EQ(decode_driver_version(kNvidia, 0, nv).text, "NVIDIA 550.54.14.3");
  EXPECT_EQ(decode_driver_version(kNvidia, VK_DRIVER_ID_NVIDIA_PROPRIETARY, nv).text, "NVIDIA 550.54.14.3");
  // ARM's own driver: rXpY as major.minor.
  EXPECT_EQ(decode_driver_version(kArm, 0, make_version(32, 1, 0)).text, "ARM r32p1");
  // Qualcomm's own driver: major 512 (bit 31), the driver build in the middle.
  const DriverVersion q = decode_driver_version(kQualcomm, VK_DRIVER_ID_QUALCOMM_PROPRIETARY, make_version(512, 615, 0));
  EXPECT_EQ(q.text, "Qualcomm 512.615.0");
  EXPECT_EQ(q.part[1], 615u);
  // Mesa drivers on the same hardware (turnip, panvk) and lavapipe: the Mesa release.
  EXPECT_EQ(decode_driver_version(kQualcomm, VK_DRIVER_ID_MESA_TURNIP, make_version(24, 2, 8)).text, "Mesa 24.2.8");
  EXPECT_EQ(decode_driver_version(kArm, VK_DRIVER_ID_MESA_PANVK, make_version(25, 0, 1)).text, "Mesa 25.0.1");
  EXPECT_EQ(decode_driver_version(VK_VENDOR_ID_MESA, 0, make_version(24, 2, 8)).text, "Mesa 24.2.8");
  EXPECT_EQ(decode_driver_version(0x1002, 0, make_version(2, 0, 300)).text, "2.0.300");
  EXPECT_EQ(driver_family(kArm, VK_DRIVER_ID_MESA_PANVK), DriverFamily::Mesa);
  EXPECT_EQ(driver_family(kArm, 0), DriverFamily::Arm);
}

TEST(DeviceQuirks, EveryEntryNamesAPublicSource) {
  ASSERT_EQ(device_quirk_table().size(), 4u);
  for (const DeviceQuirk& q : device_quirk_table()) {
    EXPECT_EQ(std::string(q.source).rfind("https://", 0), 0u) << q.id;
    EXPECT_TRUE(q.no_storage16 || q.no_float16 || q.no_pipeline_cache) << q.id;
  }
}

TEST(DeviceQuirks, OldMaliDriversLose16BitStorage) {
  DeviceCaps old = device("Mali-G52 MC2", kArm, VK_DRIVER_ID_ARM_PROPRIETARY, make_version(26, 0, 0));
  apply_device_quirks(old);
  EXPECT_THAT(old.quirks, ElementsAre("mali-16bit-storage"));
  EXPECT_FALSE(old.storage16);
  EXPECT_TRUE(old.float16);
  // Reported as Vulkan 1.0.66, whatever the driver number says.
  DeviceCaps by_api = device("Mali-G72", kArm, 0, make_version(40, 0, 0), make_version(1, 0, 66));
  apply_device_quirks(by_api);
  EXPECT_THAT(by_api.quirks, ElementsAre("mali-16bit-storage"));
  // r32p0 and later keep it, and so does Mesa's panvk on the same GPU, whatever its version.
  DeviceCaps fixed = device("Mali-G57 MC2", kArm, VK_DRIVER_ID_ARM_PROPRIETARY, make_version(32, 0, 0));
  apply_device_quirks(fixed);
  EXPECT_THAT(fixed.quirks, ElementsAre());
  EXPECT_TRUE(fixed.storage16);
  DeviceCaps panvk = device("Mali-G52 (Panfrost)", kArm, VK_DRIVER_ID_MESA_PANVK, make_version(24, 0, 0));
  apply_device_quirks(panvk);
  EXPECT_THAT(panvk.quirks, ElementsAre());
}

TEST(DeviceQuirks, MaliG720KeepsFp32OnEveryDriver) {
  DeviceCaps g720 = device("Mali-G720 MC8", kArm, VK_DRIVER_ID_ARM_PROPRIETARY, make_version(49, 1, 0));
  apply_device_quirks(g720);
  EXPECT_THAT(g720.quirks, ElementsAre("mali-g720-fp16"));
  EXPECT_FALSE(g720.storage16);
  EXPECT_FALSE(g720.float16);
  DeviceCaps g710 = device("Mali-G710 MC10", kArm, VK_DRIVER_ID_ARM_PROPRIETARY, make_version(49, 1, 0));
  apply_device_quirks(g710);
  EXPECT_THAT(g710.quirks, ElementsAre());
}

TEST(DeviceQuirks, OldAdrenoDriversGetNoPipelineCache) {
  DeviceCaps old = device("Adreno (TM) 540", kQualcomm, 0, make_version(512, 313, 0), make_version(1, 0, 61));
  apply_device_quirks(old);
  EXPECT_THAT(old.quirks, ElementsAre("adreno-pipeline-cache"));
  EXPECT_FALSE(old.pipeline_cache_on_disk);
  // ... which turns the cache file off: nothing is read or written.
  EXPECT_EQ(pipeline_cache_file(old, "cache"), "");
  DeviceCaps recent = device("Adreno (TM) 740", kQualcomm, VK_DRIVER_ID_QUALCOMM_PROPRIETARY,
                             make_version(512, 676, 0), make_version(1, 3, 128));
  recent.device_id = 0x43050a01;
  apply_device_quirks(recent);
  EXPECT_THAT(recent.quirks, ElementsAre());
  EXPECT_EQ(pipeline_cache_file(recent, "cache"), "cache/pipelines-5143-43050a01-802a4000.bin");
  // turnip (Mesa) on an old Adreno reports a low Vulkan version too, but is not Qualcomm's driver.
  DeviceCaps turnip = device("Turnip Adreno (TM) 540", kQualcomm, VK_DRIVER_ID_MESA_TURNIP,
                             make_version(24, 2, 8), make_version(1, 0, 61));
  apply_device_quirks(turnip);
  EXPECT_THAT(turnip.quirks, ElementsAre());
}

TEST(DeviceQuirks, AdrenoFp16ArithmeticNeeds16BitStorage) {
  DeviceCaps no16 = device("Adreno (TM) 618", kQualcomm, VK_DRIVER_ID_QUALCOMM_PROPRIETARY, make_version(512, 502, 0));
  no16.storage16 = false;
  apply_device_quirks(no16);
  EXPECT_THAT(no16.quirks, ElementsAre("adreno-fp16-without-storage16"));
  EXPECT_FALSE(no16.float16);
  DeviceCaps both = device("Adreno (TM) 618", kQualcomm, VK_DRIVER_ID_QUALCOMM_PROPRIETARY, make_version(512, 502, 0));
  apply_device_quirks(both);
  EXPECT_THAT(both.quirks, ElementsAre());
  EXPECT_TRUE(both.float16);
}

TEST(DeviceQuirks, NoneOnOtherVendors) {
  for (DeviceCaps c : {device("NVIDIA Orin (nvgpu)", kNvidia, VK_DRIVER_ID_NVIDIA_PROPRIETARY, 0),
                       device("llvmpipe", VK_VENDOR_ID_MESA, VK_DRIVER_ID_MESA_LLVMPIPE, make_version(1, 0, 0),
                              make_version(1, 0, 2))}) {
    apply_device_quirks(c);
    EXPECT_THAT(c.quirks, ElementsAre()) << c.name;
    EXPECT_TRUE(c.storage16 && c.float16 && c.pipeline_cache_on_disk) << c.name;
  }
}

// ---- portability (MoltenVK-style drivers) --------------------------------------------------------

TEST(VulkanExtensions, PortabilityEnumerationWhenTheLoaderHasIt) {
  const InstanceExtensionChoice plain = choose_instance_extensions({"VK_KHR_surface", "VK_EXT_debug_utils"}, false);
  EXPECT_THAT(plain.enable, ElementsAre());
  EXPECT_EQ(plain.create_flags, 0u);
  const InstanceExtensionChoice apple =
      choose_instance_extensions({"VK_EXT_debug_utils", "VK_KHR_portability_enumeration"}, true);
  EXPECT_THAT(apple.enable, ElementsAre("VK_EXT_debug_utils", "VK_KHR_portability_enumeration"));
  EXPECT_EQ(apple.create_flags, uint32_t(VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR));
  // Debug utils asked for but not listed: not enabled (instance creation would fail).
  EXPECT_THAT(choose_instance_extensions({}, true).enable, ElementsAre());
}

TEST(VulkanExtensions, PortabilitySubsetWheneverTheDeviceListsIt) {
  EXPECT_THAT(choose_device_extensions({"VK_KHR_swapchain"}, true), ElementsAre());
  EXPECT_THAT(choose_device_extensions({"VK_KHR_portability_subset", "VK_KHR_swapchain"}, false),
              ElementsAre("VK_KHR_portability_subset"));
  EXPECT_THAT(choose_device_extensions({"VK_EXT_memory_budget", "VK_KHR_portability_subset"}, true),
              ElementsAre("VK_KHR_portability_subset", "VK_EXT_memory_budget"));
  EXPECT_THAT(choose_device_extensions({"VK_EXT_memory_budget"}, false), ElementsAre());
}

}  // namespace
}  // namespace vkssm

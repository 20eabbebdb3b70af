#pragma once
// Which instance and device extensions vkssm enables, decided from the names the loader or the
// device lists. Pure functions, so the decisions are unit-tested without a Vulkan driver.
#include <cstdint>
#include <string>
#include <vector>

namespace vkssm {

struct InstanceExtensionChoice {
  std::vector<std::string> enable;
  // VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR when VK_KHR_portability_enumeration is
  // enabled: without it the loader hides portability drivers (MoltenVK) from enumeration.
  uint32_t create_flags = 0;
};

// `available`: the instance extensions the loader lists; `debug_utils`: the validation messenger
// is wanted (enabled only when listed).
InstanceExtensionChoice choose_instance_extensions(const std::vector<std::string>& available, bool debug_utils);

// `available`: the device's extensions. VK_KHR_portability_subset must be enabled whenever the
// device lists it (the spec requires it of a portability implementation); VK_EXT_memory_budget
// when `memory_budget` asks for it and it is listed.
std::vector<std::string> choose_device_extensions(const std::vector<std::string>& available, bool memory_budget);

}  // namespace vkssm

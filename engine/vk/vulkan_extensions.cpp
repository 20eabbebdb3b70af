#include "engine/vk/vulkan_extensions.h"

#include <algorithm>

#include <volk.h>

namespace vkssm {
namespace {

bool listed(const std::vector<std::string>& names, const char* name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

InstanceExtensionChoice choose_instance_extensions(const std::vector<std::string>& available, bool debug_utils) {
  InstanceExtensionChoice c;
  if (debug_utils && listed(available, VK_EXT_DEBUG_UTILS_EXTENSION_NAME))
    c.enable.emplace_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
  if (listed(available, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME)) {
    c.enable.emplace_back(VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME);
    c.create_flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
  }
  return c;
}

std::vector<std::string> choose_device_extensions(const std::vector<std::string>& available, bool memory_budget) {
  std::vector<std::string> enable;
  // Named by string: the define lives in vulkan_beta.h, which volk does not include by default.
  if (listed(available, "VK_KHR_portability_subset")) enable.emplace_back("VK_KHR_portability_subset");
  if (memory_budget && listed(available, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME))
    enable.emplace_back(VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
  return enable;
}

}  // namespace vkssm

#pragma once
// VK_CHECK turns a failed Vulkan call into a vkssm::Error that names the call and the result.
#include <string>

#include <volk.h>

#include "host/error.h"

namespace vkssm {

const char* vk_result_name(VkResult r);

#define VK_CHECK(call)                                                                  \
  do {                                                                                  \
    VkResult vk_check_result_ = (call);                                                 \
    if (vk_check_result_ != VK_SUCCESS)                                                 \
      throw ::vkssm::Error(std::string(#call) + " failed: " +                           \
                           ::vkssm::vk_result_name(vk_check_result_));                  \
  } while (0)

}  // namespace vkssm

#pragma once
// Device profiles for testing: VKSSM_DEVICE_PROFILE=NAME clamps the probed DeviceCaps to a class of
// real devices, so the engine takes the fallbacks it would take there (split bindings, fences
// instead of timeline semaphores, fp32 weights, shared-memory reductions). A profile can only
// lower limits and turn features off: the real device's limits stay the ceiling.
#include <string>
#include <vector>

namespace vkssm {

struct DeviceCaps;

// The profile names, in table order (for messages and `vkssm devices`).
std::vector<std::string> device_profile_names();

// Clamps `caps` to the profile `name` ("" leaves it as probed). An unknown name throws
// vkssm::Error listing the known ones.
void apply_device_profile(DeviceCaps& caps, const std::string& name);

// The highest Vulkan version the profile `name` lets the engine use (UINT32_MAX: the device's).
// The context creates its instance with at most this apiVersion, so a Vulkan 1.1 profile runs,
// validation layer included, as on a Vulkan 1.1 device. An unknown name throws as above.
uint32_t device_profile_api_version(const std::string& name);

// The profile named by $VKSSM_DEVICE_PROFILE ("" when unset or empty).
std::string device_profile_from_env();

}  // namespace vkssm

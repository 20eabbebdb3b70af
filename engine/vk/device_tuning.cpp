#include "engine/vk/device_tuning.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "engine/vk/vulkan_context.h"

namespace vkssm {

Tuning tuning_for(const DeviceCaps& caps) {
  Tuning t;
  if (caps.is_cpu()) {
    t = {8, 32, 256, 256, true};
  } else {
    const uint32_t local = std::min<uint32_t>(64, caps.max_workgroup_invocations);
    t = {local, 1, local, local, false};
  }
  if (const char* env = std::getenv("VKSSM_TUNE")) {
    unsigned v[5];
    if (std::sscanf(env, "%u,%u,%u,%u,%u", &v[0], &v[1], &v[2], &v[3], &v[4]) == 5 && v[0] && v[1] && v[2] &&
        v[3] && v[0] <= caps.max_workgroup_invocations)
      t = {v[0], v[1], v[2], v[3], v[4] != 0};
  }
  return t;
}

}  // namespace vkssm

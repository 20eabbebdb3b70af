#include "engine/vk/driver_keepalive.h"

#include <mutex>

#include <volk.h>

namespace vkssm {
namespace {

// The keep-alive instance. It is never destroyed: the process's exit frees it. With a static
// destructor destroying it, every program crashed at exit on NVIDIA's driver (seen on an H200,
// driver 580; by then the driver has run its own exit handlers). The handle stays in static
// storage, so leak checkers see the loader's and driver's memory as reachable.
class KeepAlive {
 public:
  void ensure() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (instance_ != VK_NULL_HANDLE || !vkCreateInstance || !vkGetInstanceProcAddr) return;
    VkApplicationInfo app{};
    app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
    app.pApplicationName = "vkssm";
    app.apiVersion = VK_API_VERSION_1_1;
    VkInstanceCreateInfo ci{};
    ci.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
    ci.pApplicationInfo = &app;
    VkInstance instance = VK_NULL_HANDLE;
    if (vkCreateInstance(&ci, nullptr, &instance) != VK_SUCCESS) return;
    instance_ = instance;
  }

 private:
  std::mutex mutex_;
  VkInstance instance_ = VK_NULL_HANDLE;
};

KeepAlive g_keep_alive;

}  // namespace

void keep_vulkan_drivers_loaded() { g_keep_alive.ensure(); }

}  // namespace vkssm

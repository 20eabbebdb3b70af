#include "engine/vk/driver_keepalive.h"

#include <mutex>

#include <volk.h>

namespace vkssm {
namespace {

// The keep-alive instance; destroyed when the process exits (after main returns, once every
// model the program held in automatic storage is gone; an instance still alive then keeps its
// own reference to the drivers).
class KeepAlive {
 public:
  ~KeepAlive() {
    if (instance_ != VK_NULL_HANDLE && destroy_) destroy_(instance_, nullptr);
  }
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
    destroy_ = reinterpret_cast<PFN_vkDestroyInstance>(vkGetInstanceProcAddr(instance, "vkDestroyInstance"));
    instance_ = instance;
  }

 private:
  std::mutex mutex_;
  VkInstance instance_ = VK_NULL_HANDLE;
  PFN_vkDestroyInstance destroy_ = nullptr;
};

KeepAlive g_keep_alive;

}  // namespace

void keep_vulkan_drivers_loaded() { g_keep_alive.ensure(); }

}  // namespace vkssm

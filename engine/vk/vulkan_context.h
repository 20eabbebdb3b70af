#pragma once
// The Vulkan instance, the chosen physical device with what it can do, the logical device and its
// compute queue, and the pipeline cache. Everything else in engine/ borrows these.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <volk.h>

#include "engine/vkssm.hpp"

namespace vkssm {

// What the shaders may rely on; decided once by probing the device.
struct DeviceCaps {
  std::string name;
  VkPhysicalDeviceType type = VK_PHYSICAL_DEVICE_TYPE_OTHER;
  uint32_t api_version = 0;
  uint32_t vendor_id = 0;
  bool storage16 = false;   // storageBuffer16BitAccess
  bool float16 = false;     // shaderFloat16 arithmetic
  bool storage8 = false;    // storageBuffer8BitAccess
  uint32_t subgroup_size = 1;
  uint32_t shared_memory = 0;
  uint32_t max_workgroup_invocations = 0;
  uint32_t max_workgroup_count_x = 0;
  uint64_t max_storage_buffer_range = 0;
  uint64_t max_texel_buffer_elements = 0;
  bool texel_rgba32f = false, texel_rgba16f = false;  // usable as uniform texel buffers
  uint64_t min_storage_buffer_offset_alignment = 1;
  uint64_t min_texel_buffer_offset_alignment = 1;
  uint64_t max_memory_allocation_size = UINT64_MAX;  // maintenance3 (core 1.1)
  uint32_t max_per_stage_storage_buffers = UINT32_MAX;
  bool subgroup_arithmetic = false;  // subgroup ARITHMETIC operations in the compute stage
  std::string profile;               // VKSSM_DEVICE_PROFILE applied ("" = as probed)
  uint64_t device_local_bytes = 0;
  bool timeline_semaphores = false;  // Vulkan 1.2 timelineSemaphore
  bool timestamps = false;
  float timestamp_period_ns = 1.0f;
  bool is_cpu() const { return type == VK_PHYSICAL_DEVICE_TYPE_CPU; }
};

class VulkanContext {
 public:
  struct Options {
    int device = -1;  // -1: $VKSSM_DEVICE, else best
    bool validation = false;
    std::string cache_dir;
    std::string profile;  // a device profile (engine/vk/device_profiles.h); "" = $VKSSM_DEVICE_PROFILE
  };
  // Throws vkssm::Error: no loader, no device, device index out of range, Vulkan < 1.1.
  explicit VulkanContext(const Options& options);
  ~VulkanContext();
  VulkanContext(const VulkanContext&) = delete;
  VulkanContext& operator=(const VulkanContext&) = delete;

  VkDevice device() const { return device_; }
  VkPhysicalDevice physical_device() const { return physical_; }
  VkQueue queue() const { return queue_; }
  uint32_t queue_family() const { return queue_family_; }
  VkCommandPool command_pool() const { return command_pool_; }
  VkPipelineCache pipeline_cache() const { return pipeline_cache_; }
  const DeviceCaps& caps() const { return caps_; }
  int device_index() const { return device_index_; }

  // A memory type with all of `required` (and `preferred` too when one exists). Throws if none.
  uint32_t find_memory_type(uint32_t type_bits, VkMemoryPropertyFlags required,
                            VkMemoryPropertyFlags preferred = 0) const;
  VkMemoryPropertyFlags memory_type_flags(uint32_t type_index) const;

  // Records `record` into a one-time command buffer, submits it and waits. Load time only.
  void run_once(const std::function<void(VkCommandBuffer)>& record);

  // Writes the pipeline cache to the cache folder (best effort; failures are ignored).
  void save_pipeline_cache();

 private:
  void create_instance(bool validation);
  void choose_device(int requested);
  void create_device();
  void load_pipeline_cache();
  std::string cache_file() const;
  void release();

  VkInstance instance_ = VK_NULL_HANDLE;
  VkDebugUtilsMessengerEXT messenger_ = VK_NULL_HANDLE;
  PFN_vkDestroyDebugUtilsMessengerEXT destroy_messenger_ = nullptr;
  VkPhysicalDevice physical_ = VK_NULL_HANDLE;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  uint32_t queue_family_ = 0;
  VkCommandPool command_pool_ = VK_NULL_HANDLE;
  VkPipelineCache pipeline_cache_ = VK_NULL_HANDLE;
  VkPhysicalDeviceMemoryProperties memory_props_{};
  DeviceCaps caps_;
  int device_index_ = 0;
  std::string cache_dir_;
  std::string profile_;
};

// Probes one physical device (used by the context and by list_devices()).
DeviceCaps probe_device(VkPhysicalDevice pd);

// The Khronos validation layer's name, as the loader knows it.
inline constexpr const char* kValidationLayer = "VK_LAYER_KHRONOS_validation";

// Whether the instance enables the validation layer: when it was asked for (LoadOptions::validation
// or VKSSM_VALIDATION=1) and is installed. Asked for but not installed throws vkssm::Error naming
// the layer: running unchecked would pass off an unvalidated run as a validated one.
bool use_validation_layer(bool requested, bool layer_installed);

}  // namespace vkssm

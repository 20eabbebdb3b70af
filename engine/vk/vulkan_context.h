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

// How device-local buffers are filled at load ($VKSSM_UPLOAD overrides the automatic choice).
enum class UploadPath {
  Staged,   // a host-visible staging buffer and a copy on the device (discrete cards)
  Mapped,   // unified memory: mapped and written in place, non-coherent memory flushed
  Flushed,  // as Mapped, flushing every write as if the memory were not host-coherent (tests)
};
const char* upload_path_name(UploadPath p);

// What the shaders may rely on; decided once by probing the device.
struct DeviceCaps {
  std::string name;
  VkPhysicalDeviceType type = VK_PHYSICAL_DEVICE_TYPE_OTHER;
  uint32_t api_version = 0;
  uint32_t vendor_id = 0;
  uint32_t device_id = 0;
  uint32_t driver_version = 0;  // raw VkPhysicalDeviceProperties::driverVersion (device_quirks.h decodes it)
  uint32_t driver_id = 0;       // VkDriverId where the device reports one (Vulkan 1.2), else 0
  std::string driver_info;      // its driverName and driverInfo ("llvmpipe Mesa 22.3.6 ..."), else ""
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
  uint32_t max_memory_allocation_count = UINT32_MAX;  // live vkAllocateMemory allocations (4096 on many devices)
  uint32_t max_per_stage_storage_buffers = UINT32_MAX;
  bool subgroup_arithmetic = false;  // subgroup ARITHMETIC operations in the compute stage
  std::string profile;               // VKSSM_DEVICE_PROFILE applied ("" = as probed)
  std::vector<std::string> quirks;   // driver quirks applied (engine/vk/device_quirks.h)
  bool pipeline_cache_on_disk = true;  // off where a quirk says the driver corrupts cache data
  uint64_t device_local_bytes = 0;
  // Unified memory: a memory type is both DEVICE_LOCAL and HOST_VISIBLE on a device that is not a
  // discrete card (Jetson, Mali, Adreno, integrated GPUs, lavapipe). Discrete cards with a
  // host-visible BAR window are not counted: there the window is small and reads cross the bus.
  bool unified_memory = false;
  uint64_t non_coherent_atom_size = 1;  // flush granularity of non-coherent mapped memory
  // What the automatic capacity may spend: with VK_EXT_memory_budget the device-local heaps'
  // heapBudget - heapUsage at probe time, otherwise their size.
  bool memory_budget_ext = false;
  uint64_t memory_available = 0;
  UploadPath upload = UploadPath::Staged;  // decided by the context from the above and $VKSSM_UPLOAD
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

  // What the load-time uploads did (GpuBuffer): bytes through staging buffers, bytes written in
  // place, and flushes of non-coherent ranges. Tests read it to see which path ran.
  struct UploadCounters {
    uint64_t staged_bytes = 0, mapped_bytes = 0, flushes = 0;
  };
  UploadCounters& upload_counters() { return upload_counters_; }
  const UploadCounters& upload_counters() const { return upload_counters_; }
  // Bytes of all live GpuBuffers on this device (their sizes), for the memory plan.
  uint64_t& buffer_bytes() { return buffer_bytes_; }
  // Live memory allocations on this device (one per GpuBuffer), held within maxMemoryAllocationCount.
  uint32_t& allocations() { return allocations_; }

  // The weights of the model built on this context, in upload order. A model too large for one
  // binding's worth of streams runs as shards (engine/vulkan_sharded_model.h) that share one
  // context and one copy of the weights: the first shard's uploads are listed here, and while
  // `replay` is on, WeightUploader hands the later shards non-owning aliases of the listed
  // buffers, in the same order, instead of uploading again.
  struct SharedWeights {
    struct Entry {
      std::string what;
      VkBuffer buffer = VK_NULL_HANDLE;
      uint64_t size = 0;
    };
    std::vector<Entry> entries;
    bool replay = false;
    size_t next = 0;  // the entry the next upload replays
  };
  SharedWeights& shared_weights() { return shared_weights_; }

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
  UploadCounters upload_counters_;
  uint64_t buffer_bytes_ = 0;
  uint32_t allocations_ = 0;
  SharedWeights shared_weights_;
  int device_index_ = 0;
  std::string cache_dir_;
  std::string profile_;
  uint32_t instance_api_ = 0;  // the apiVersion the instance was created with
};

// Probes one physical device (used by the context and by list_devices()). Structures of Vulkan
// 1.2 are only queried when both the device and `instance_api` (the instance's apiVersion) are
// 1.2 or newer, so a Vulkan 1.1 instance or device never sees them.
DeviceCaps probe_device(VkPhysicalDevice pd, uint32_t instance_api);

// The device index a load asks for: `option` when >= 0, else $VKSSM_DEVICE, else -1 (none named).
// A VKSSM_DEVICE that is not a number throws vkssm::Error naming it.
int requested_device_index(int option);
// The error for a device index the machine does not have (opening it, or BackendKind::Auto).
std::string device_index_out_of_range(int index, size_t count);

// The upload path for `caps` under $VKSSM_UPLOAD=`setting` ("" or "auto": Mapped on unified
// memory, else Staged; "staged", "mapped", "flushed"). An unknown value, or mapped/flushed
// without unified memory, throws vkssm::Error naming VKSSM_UPLOAD.
UploadPath choose_upload_path(const DeviceCaps& caps, const std::string& setting);

// The pipeline cache file for a device under `cache_dir` (""; then $VKSSM_CACHE_DIR,
// $XDG_CACHE_HOME/vkssm or ~/.cache/vkssm), one per vendor, device and driver version; "" when
// there is nowhere to keep it or a driver quirk turned the cache off.
std::string pipeline_cache_file(const DeviceCaps& caps, const std::string& cache_dir);

// The Khronos validation layer's name, as the loader knows it.
inline constexpr const char* kValidationLayer = "VK_LAYER_KHRONOS_validation";

// Whether the instance enables the validation layer: when it was asked for (LoadOptions::validation
// or VKSSM_VALIDATION=1) and is installed. Asked for but not installed throws vkssm::Error naming
// the layer: running unchecked would pass off an unvalidated run as a validated one.
bool use_validation_layer(bool requested, bool layer_installed);

}  // namespace vkssm

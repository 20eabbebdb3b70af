#include "engine/vk/vulkan_context.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "engine/vk/device_profiles.h"
#include "engine/vk/device_quirks.h"
#include "engine/vk/driver_keepalive.h"
#include "engine/vk/vk_check.h"
#include "engine/vk/vk_handle.h"
#include "engine/vk/vulkan_extensions.h"

namespace vkssm {

namespace {

std::atomic<uint64_t> g_validation_messages{0};

const char* const kNoDevice =
    "no Vulkan device found (on a machine without a GPU, install mesa-vulkan-drivers for the CPU "
    "driver lavapipe)";

VKAPI_ATTR VkBool32 VKAPI_CALL on_validation_message(
    VkDebugUtilsMessageSeverityFlagBitsEXT severity, VkDebugUtilsMessageTypeFlagsEXT,
    const VkDebugUtilsMessengerCallbackDataEXT* data, void*) {
  if (severity >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
    g_validation_messages++;
    std::fprintf(stderr, "vkssm: Vulkan validation: %s\n", data->pMessage);
  }
  return VK_FALSE;
}

// volk finds libvulkan at run time; do it once per process.
void init_loader() {
  static std::once_flag once;
  static VkResult result = VK_SUCCESS;
  std::call_once(once, [] { result = volkInitialize(); });
  if (result != VK_SUCCESS)
    throw Error("no Vulkan loader found (libvulkan.so.1); install libvulkan1 and a driver "
                "(mesa-vulkan-drivers provides the CPU driver lavapipe)");
}

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::strcmp(v, "0") != 0;
}

bool layer_available(const char* name) {
  uint32_t n = 0;
  vkEnumerateInstanceLayerProperties(&n, nullptr);
  std::vector<VkLayerProperties> layers(n);
  vkEnumerateInstanceLayerProperties(&n, layers.data());
  for (auto& l : layers)
    if (std::strcmp(l.layerName, name) == 0) return true;
  return false;
}

bool device_extension_available(VkPhysicalDevice pd, const char* name) {
  uint32_t n = 0;
  vkEnumerateDeviceExtensionProperties(pd, nullptr, &n, nullptr);
  std::vector<VkExtensionProperties> exts(n);
  vkEnumerateDeviceExtensionProperties(pd, nullptr, &n, exts.data());
  for (auto& e : exts)
    if (std::strcmp(e.extensionName, name) == 0) return true;
  return false;
}

std::vector<std::string> instance_extension_names() {
  uint32_t n = 0;
  vkEnumerateInstanceExtensionProperties(nullptr, &n, nullptr);
  std::vector<VkExtensionProperties> exts(n);
  vkEnumerateInstanceExtensionProperties(nullptr, &n, exts.data());
  std::vector<std::string> names;
  for (auto& e : exts) names.emplace_back(e.extensionName);
  return names;
}

std::vector<std::string> device_extension_names(VkPhysicalDevice pd) {
  uint32_t n = 0;
  vkEnumerateDeviceExtensionProperties(pd, nullptr, &n, nullptr);
  std::vector<VkExtensionProperties> exts(n);
  vkEnumerateDeviceExtensionProperties(pd, nullptr, &n, exts.data());
  std::vector<std::string> names;
  for (auto& e : exts) names.emplace_back(e.extensionName);
  return names;
}

bool extension_available(const char* name) {
  uint32_t n = 0;
  vkEnumerateInstanceExtensionProperties(nullptr, &n, nullptr);
  std::vector<VkExtensionProperties> exts(n);
  vkEnumerateInstanceExtensionProperties(nullptr, &n, exts.data());
  for (auto& e : exts)
    if (std::strcmp(e.extensionName, name) == 0) return true;
  return false;
}

int type_rank(VkPhysicalDeviceType t) {
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 0;
  }
}

const char* type_name(VkPhysicalDeviceType t) {
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu";
    default: return "other";
  }
}

// The apiVersion the instance asks for: 1.2 where the loader has it, at most `ceiling` (a device
// profile's Vulkan version), so a 1.1 profile gets a 1.1 instance and the validation layer checks
// the application against Vulkan 1.1.
uint32_t instance_api_version(uint32_t ceiling) {
  uint32_t v = volkGetInstanceVersion() < VK_API_VERSION_1_2 ? VK_API_VERSION_1_1 : VK_API_VERSION_1_2;
  return std::max<uint32_t>(VK_API_VERSION_1_1, std::min(v, ceiling));
}

VkInstance create_bare_instance(bool validation, bool debug_utils, uint32_t api_version) {
  VkApplicationInfo app{};
  app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
  app.pApplicationName = "vkssm";
  app.pEngineName = "vkssm";
  app.apiVersion = api_version;
  std::vector<const char*> layers, exts;
  if (validation) layers.push_back(kValidationLayer);
  // Portability drivers (MoltenVK) are only listed with VK_KHR_portability_enumeration enabled.
  const InstanceExtensionChoice choice = choose_instance_extensions(instance_extension_names(), debug_utils);
  for (const std::string& e : choice.enable) exts.push_back(e.c_str());
  VkInstanceCreateInfo ci{};
  ci.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
  ci.flags = choice.create_flags;
  ci.pApplicationInfo = &app;
  ci.enabledLayerCount = uint32_t(layers.size());
  ci.ppEnabledLayerNames = layers.data();
  ci.enabledExtensionCount = uint32_t(exts.size());
  ci.ppEnabledExtensionNames = exts.data();
  VkInstance instance = VK_NULL_HANDLE;
  VkResult r = vkCreateInstance(&ci, nullptr, &instance);
  if (r == VK_ERROR_INCOMPATIBLE_DRIVER) throw Error(kNoDevice);  // the loader found no driver
  VK_CHECK(r);
  keep_vulkan_drivers_loaded();  // see driver_keepalive.h: some drivers cannot be reloaded often
  // Load through the loader's trampolines (not volkLoadInstanceOnly + volkLoadDevice): the global
  // function pointers then dispatch on the handle, so several instances and devices, even on
  // different drivers, can live in one process.
  volkLoadInstance(instance);
  return instance;
}

std::vector<VkPhysicalDevice> enumerate(VkInstance instance) {
  uint32_t n = 0;
  VK_CHECK(vkEnumeratePhysicalDevices(instance, &n, nullptr));
  std::vector<VkPhysicalDevice> devices(n);
  VK_CHECK(vkEnumeratePhysicalDevices(instance, &n, devices.data()));
  return devices;
}

int best_device(const std::vector<VkPhysicalDevice>& devices, uint32_t instance_api) {
  int best = -1, best_rank = -1;
  for (size_t i = 0; i < devices.size(); ++i) {
    DeviceCaps c = probe_device(devices[i], instance_api);
    if (c.api_version < VK_API_VERSION_1_1) continue;
    if (type_rank(c.type) > best_rank) {
      best_rank = type_rank(c.type);
      best = int(i);
    }
  }
  return best;
}

}  // namespace

int requested_device_index(int option) {
  if (option >= 0) return option;
  const char* env = std::getenv("VKSSM_DEVICE");
  if (env && *env) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (*end != 0 || v < 0) throw Error(std::string("VKSSM_DEVICE='") + env + "' is not a device index");
    return int(v);
  }
  return -1;
}

std::string device_index_out_of_range(int index, size_t count) {
  return "device index " + std::to_string(index) + " out of range: " + std::to_string(count) +
         " Vulkan device(s) found (see `vkssm devices`)";
}

uint64_t validation_message_count() { return g_validation_messages.load(); }

DeviceCaps probe_device(VkPhysicalDevice pd, uint32_t instance_api) {
  DeviceCaps c;
  VkPhysicalDeviceProperties props{};
  vkGetPhysicalDeviceProperties(pd, &props);
  c.name = props.deviceName;
  c.type = props.deviceType;
  c.api_version = props.apiVersion;
  c.vendor_id = props.vendorID;
  c.device_id = props.deviceID;
  c.driver_version = props.driverVersion;
  // Vulkan 1.2 structures only where both the instance and the device are 1.2 or newer.
  const bool vulkan12 = std::min(props.apiVersion, instance_api) >= VK_API_VERSION_1_2;
  c.shared_memory = props.limits.maxComputeSharedMemorySize;
  c.max_workgroup_invocations = props.limits.maxComputeWorkGroupInvocations;
  c.max_workgroup_count_x = props.limits.maxComputeWorkGroupCount[0];
  c.max_storage_buffer_range = props.limits.maxStorageBufferRange;
  c.max_memory_allocation_count = props.limits.maxMemoryAllocationCount;
  c.max_texel_buffer_elements = props.limits.maxTexelBufferElements;
  VkFormatProperties fp{};
  vkGetPhysicalDeviceFormatProperties(pd, VK_FORMAT_R32G32B32A32_SFLOAT, &fp);
  c.texel_rgba32f = fp.bufferFeatures & VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT;
  vkGetPhysicalDeviceFormatProperties(pd, VK_FORMAT_R16G16B16A16_SFLOAT, &fp);
  c.texel_rgba16f = fp.bufferFeatures & VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT;
  c.min_storage_buffer_offset_alignment = props.limits.minStorageBufferOffsetAlignment;
  c.min_texel_buffer_offset_alignment = props.limits.minTexelBufferOffsetAlignment;
  c.max_per_stage_storage_buffers = props.limits.maxPerStageDescriptorStorageBuffers;
  c.timestamps = props.limits.timestampComputeAndGraphics && props.limits.timestampPeriod > 0;
  c.timestamp_period_ns = props.limits.timestampPeriod;

  VkPhysicalDeviceSubgroupProperties subgroup{};
  subgroup.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES;
  VkPhysicalDeviceMaintenance3Properties m3{};
  m3.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES;
  subgroup.pNext = &m3;
  VkPhysicalDeviceDriverProperties driver{};  // who wrote the driver decides its version encoding
  driver.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES;
  if (vulkan12) m3.pNext = &driver;
  VkPhysicalDeviceProperties2 props2{};
  props2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2;
  props2.pNext = &subgroup;
  vkGetPhysicalDeviceProperties2(pd, &props2);
  c.driver_id = uint32_t(driver.driverID);
  if (vulkan12) c.driver_info = std::string(driver.driverName) + " " + driver.driverInfo;
  c.subgroup_size = std::max(1u, subgroup.subgroupSize);
  c.subgroup_arithmetic = (subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                          (subgroup.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);
  if (m3.maxMemoryAllocationSize) c.max_memory_allocation_size = m3.maxMemoryAllocationSize;

  VkPhysicalDevice16BitStorageFeatures s16{};

  s16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES;
  VkPhysicalDevice8BitStorageFeatures s8{};
  s8.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES;
  VkPhysicalDeviceShaderFloat16Int8Features f16{};
  f16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES;
  VkPhysicalDeviceTimelineSemaphoreFeatures timeline{};
  timeline.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_TIMELINE_SEMAPHORE_FEATURES;
  VkPhysicalDeviceFeatures2 feats{};
  feats.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
  feats.pNext = &s16;
  if (vulkan12) {  // 8-bit storage, float16 and timelines are core from 1.2
    s16.pNext = &s8;
    s8.pNext = &f16;
    f16.pNext = &timeline;
  }
  vkGetPhysicalDeviceFeatures2(pd, &feats);
  c.storage16 = s16.storageBuffer16BitAccess;
  c.storage8 = s8.storageBuffer8BitAccess;
  c.float16 = f16.shaderFloat16;
  c.timeline_semaphores = timeline.timelineSemaphore;

  c.non_coherent_atom_size = std::max<uint64_t>(1, props.limits.nonCoherentAtomSize);
  c.memory_budget_ext = device_extension_available(pd, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
  VkPhysicalDeviceMemoryBudgetPropertiesEXT budget{};
  budget.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT;
  VkPhysicalDeviceMemoryProperties2 mem2{};
  mem2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2;
  if (c.memory_budget_ext) mem2.pNext = &budget;
  vkGetPhysicalDeviceMemoryProperties2(pd, &mem2);
  const VkPhysicalDeviceMemoryProperties& mem = mem2.memoryProperties;
  for (uint32_t i = 0; i < mem.memoryHeapCount; ++i) {
    if (!(mem.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)) continue;
    c.device_local_bytes += mem.memoryHeaps[i].size;
    if (!c.memory_budget_ext) c.memory_available += mem.memoryHeaps[i].size;
    else if (budget.heapBudget[i] > budget.heapUsage[i]) c.memory_available += budget.heapBudget[i] - budget.heapUsage[i];
  }
  const VkMemoryPropertyFlags both = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT | VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT;
  for (uint32_t i = 0; i < mem.memoryTypeCount; ++i)
    if ((mem.memoryTypes[i].propertyFlags & both) == both && c.type != VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU)
      c.unified_memory = true;
  return c;
}

const char* upload_path_name(UploadPath p) {
  switch (p) {
    case UploadPath::Staged: return "staged";
    case UploadPath::Mapped: return "mapped";
    case UploadPath::Flushed: return "flushed";
  }
  return "?";
}

UploadPath choose_upload_path(const DeviceCaps& caps, const std::string& setting) {
  if (setting.empty() || setting == "auto") return caps.unified_memory ? UploadPath::Mapped : UploadPath::Staged;
  if (setting == "staged") return UploadPath::Staged;
  if (setting != "mapped" && setting != "flushed")
    throw Error("VKSSM_UPLOAD='" + setting + "' is not an upload path (known: auto, staged, mapped, flushed)");
  if (!caps.unified_memory)
    throw Error("VKSSM_UPLOAD='" + setting + "' writes device memory in place, but " + caps.name +
                " has no unified memory (no memory type both DEVICE_LOCAL and HOST_VISIBLE on a device that is "
                "not discrete" + (caps.profile.empty() ? "" : ", under device profile " + caps.profile) + ")");
  return setting == "mapped" ? UploadPath::Mapped : UploadPath::Flushed;
}

std::vector<DeviceInfo> list_devices() { return list_devices(device_profile_from_env()); }

std::vector<DeviceInfo> list_devices(const std::string& profile) {
  init_loader();
  const uint32_t instance_api = instance_api_version(device_profile_api_version(profile));
  VkInstance instance = create_bare_instance(false, false, instance_api);
  std::vector<DeviceInfo> out;
  try {
    auto devices = enumerate(instance);
    for (size_t i = 0; i < devices.size(); ++i) {
      DeviceCaps c = probe_device(devices[i], instance_api);
      apply_device_quirks(c);            // as the context does: quirks first,
      apply_device_profile(c, profile);  // then the limits the engine would use there
      DeviceInfo d;
      d.index = int(i);
      d.name = c.name;
      d.type = type_name(c.type);
      d.api_version = c.api_version;
      d.storage16 = c.storage16;
      d.float16 = c.float16;
      d.storage8 = c.storage8;
      d.subgroup_size = c.subgroup_size;
      d.shared_memory = c.shared_memory;
      d.max_workgroup_invocations = c.max_workgroup_invocations;
      d.device_local_bytes = c.device_local_bytes;
      // lavapipe reports driverVersion 0.0.1; its Mesa release is in driverInfo.
      d.driver = decode_driver_version(c.vendor_id, c.driver_id, c.driver_version).text +
                 (c.driver_info.empty() ? "" : " (" + c.driver_info + ")");
      d.quirks = c.quirks;
      d.profile = c.profile;
      d.max_storage_buffer_range = c.max_storage_buffer_range;
      d.max_texel_buffer_elements = c.max_texel_buffer_elements;
      d.max_memory_allocation_size = c.max_memory_allocation_size;
      d.max_memory_allocation_count = c.max_memory_allocation_count;
      d.max_per_stage_storage_buffers = c.max_per_stage_storage_buffers;
      d.subgroup_arithmetic = c.subgroup_arithmetic;
      d.timeline_semaphores = c.timeline_semaphores;
      d.pipeline_cache_on_disk = c.pipeline_cache_on_disk;
      out.push_back(d);
    }
    int best = best_device(devices, instance_api);
    if (best >= 0) out[best].is_default = true;
  } catch (...) {
    vkDestroyInstance(instance, nullptr);
    throw;
  }
  vkDestroyInstance(instance, nullptr);
  return out;
}

VulkanContext::VulkanContext(const Options& options) {
  init_loader();
  try {
    profile_ = options.profile.empty() ? device_profile_from_env() : options.profile;
    create_instance(options.validation || env_flag("VKSSM_VALIDATION"));
    choose_device(requested_device_index(options.device));
    create_device();
    cache_dir_ = options.cache_dir;
    load_pipeline_cache();
  } catch (...) {
    release();  // the destructor does not run for a constructor that throws
    throw;
  }
}

bool use_validation_layer(bool requested, bool layer_installed) {
  if (requested && !layer_installed)
    throw Error(std::string("Vulkan validation was asked for (LoadOptions::validation or VKSSM_VALIDATION=1), but "
                            "the layer ") + kValidationLayer + " is not installed (Debian/Ubuntu: "
                "vulkan-validationlayers); install it, or run without validation (VKSSM_VALIDATION=0)");
  return requested;
}

void VulkanContext::create_instance(bool validation) {
  const bool use_validation = use_validation_layer(validation, validation && layer_available(kValidationLayer));
  bool debug_utils = use_validation && extension_available(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
  instance_api_ = instance_api_version(device_profile_api_version(profile_));
  instance_ = create_bare_instance(use_validation, debug_utils, instance_api_);
  if (debug_utils) {
    VkDebugUtilsMessengerCreateInfoEXT mi{};
    mi.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT;
    mi.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                         VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
    mi.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                     VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                     VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
    mi.pfnUserCallback = on_validation_message;
    // Extension entry points are per instance: keep this instance's own.
    destroy_messenger_ = reinterpret_cast<PFN_vkDestroyDebugUtilsMessengerEXT>(
        vkGetInstanceProcAddr(instance_, "vkDestroyDebugUtilsMessengerEXT"));
    auto create = reinterpret_cast<PFN_vkCreateDebugUtilsMessengerEXT>(
        vkGetInstanceProcAddr(instance_, "vkCreateDebugUtilsMessengerEXT"));
    if (create && destroy_messenger_) VK_CHECK(create(instance_, &mi, nullptr, &messenger_));
  }
}

void VulkanContext::choose_device(int requested) {
  auto devices = enumerate(instance_);
  if (devices.empty())
    throw Error(kNoDevice);
  int index = requested;
  if (index >= int(devices.size())) throw Error(device_index_out_of_range(index, devices.size()));
  if (index < 0) index = best_device(devices, instance_api_);
  if (index < 0) throw Error("no Vulkan device supports Vulkan 1.1, which vkssm needs");
  caps_ = probe_device(devices[index], instance_api_);
  apply_device_quirks(caps_);  // known driver bugs first; a profile only lowers what is left
  apply_device_profile(caps_, profile_);
  const char* upload = std::getenv("VKSSM_UPLOAD");
  caps_.upload = choose_upload_path(caps_, upload ? upload : "");
  if (caps_.api_version < VK_API_VERSION_1_1)
    throw Error("device " + std::to_string(index) + " (" + caps_.name + ") supports only Vulkan " +
                std::to_string(VK_API_VERSION_MAJOR(caps_.api_version)) + "." +
                std::to_string(VK_API_VERSION_MINOR(caps_.api_version)) + "; vkssm needs 1.1");
  physical_ = devices[index];
  device_index_ = index;
  vkGetPhysicalDeviceMemoryProperties(physical_, &memory_props_);
}

void VulkanContext::create_device() {
  uint32_t n = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(physical_, &n, nullptr);
  std::vector<VkQueueFamilyProperties> families(n);
  vkGetPhysicalDeviceQueueFamilyProperties(physical_, &n, families.data());
  // Prefer a compute queue without graphics (often a dedicated async-compute engine).
  int chosen = -1;
  for (uint32_t i = 0; i < n; ++i) {
    if (!(families[i].queueFlags & VK_QUEUE_COMPUTE_BIT)) continue;
    if (chosen < 0 || !(families[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)) chosen = int(i);
  }
  if (chosen < 0) throw Error("device " + caps_.name + " has no compute queue");
  queue_family_ = uint32_t(chosen);
  if (families[chosen].timestampValidBits == 0) caps_.timestamps = false;

  float priority = 1.0f;
  VkDeviceQueueCreateInfo qi{};
  qi.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO;
  qi.queueFamilyIndex = queue_family_;
  qi.queueCount = 1;
  qi.pQueuePriorities = &priority;

  // Only features the probe found are enabled; the fp32 path needs none of them.
  VkPhysicalDevice16BitStorageFeatures s16{};
  s16.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES;
  s16.storageBuffer16BitAccess = caps_.storage16;
  // Step completion is a timeline semaphore where the device has them (fences otherwise).
  VkPhysicalDeviceTimelineSemaphoreFeatures timeline{};
  timeline.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_TIMELINE_SEMAPHORE_FEATURES;
  if (instance_api_ < VK_API_VERSION_1_2) caps_.timeline_semaphores = false;  // 1.1 instance
  timeline.timelineSemaphore = caps_.timeline_semaphores;
  if (caps_.timeline_semaphores) s16.pNext = &timeline;
  // VK_EXT_memory_budget: the budget the automatic stream capacity reads (probe_device);
  // VK_KHR_portability_subset wherever the device lists it (the spec requires it then).
  const std::vector<std::string> ext_names =
      choose_device_extensions(device_extension_names(physical_), caps_.memory_budget_ext);
  std::vector<const char*> exts;
  for (const std::string& e : ext_names) exts.push_back(e.c_str());
  VkDeviceCreateInfo ci{};
  ci.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO;
  ci.pNext = &s16;
  ci.enabledExtensionCount = uint32_t(exts.size());
  ci.ppEnabledExtensionNames = exts.data();
  ci.queueCreateInfoCount = 1;
  ci.pQueueCreateInfos = &qi;
  VK_CHECK(vkCreateDevice(physical_, &ci, nullptr, &device_));
  vkGetDeviceQueue(device_, queue_family_, 0, &queue_);

  VkCommandPoolCreateInfo pi{};

  pi.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
  pi.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  pi.queueFamilyIndex = queue_family_;
  VK_CHECK(vkCreateCommandPool(device_, &pi, nullptr, &command_pool_));
}

std::string VulkanContext::cache_file() const { return pipeline_cache_file(caps_, cache_dir_); }

std::string pipeline_cache_file(const DeviceCaps& caps, const std::string& cache_dir) {
  if (!caps.pipeline_cache_on_disk) return "";  // a driver quirk: its cache data cannot be trusted
  std::string dir = cache_dir;
  if (dir.empty()) {
    if (const char* env = std::getenv("VKSSM_CACHE_DIR")) dir = env;
  }
  if (dir.empty()) {
    if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) dir = std::string(xdg) + "/vkssm";
    else if (const char* home = std::getenv("HOME"); home && *home) dir = std::string(home) + "/.cache/vkssm";
  }
  if (dir.empty()) return "";
  // One file per device and driver: a cache from another driver would be ignored anyway.
  char name[96];
  std::snprintf(name, sizeof name, "/pipelines-%04x-%04x-%08x.bin", caps.vendor_id, caps.device_id,
                caps.driver_version);
  return dir + name;
}

void VulkanContext::load_pipeline_cache() {
  // A driver that corrupts pipelines shared through a cache gets none, on disk or in memory.
  if (!caps_.pipeline_cache_on_disk) return;
  std::vector<char> data;
  std::string file = cache_file();
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (in) data.assign(std::istreambuf_iterator<char>(in), {});
  }
  VkPipelineCacheCreateInfo ci{};
  ci.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO;
  ci.initialDataSize = data.size();
  ci.pInitialData = data.empty() ? nullptr : data.data();
  // A stale or corrupt cache must not stop loading: fall back to an empty one.
  if (vkCreatePipelineCache(device_, &ci, nullptr, &pipeline_cache_) != VK_SUCCESS) {
    ci.initialDataSize = 0;
    ci.pInitialData = nullptr;
    VK_CHECK(vkCreatePipelineCache(device_, &ci, nullptr, &pipeline_cache_));
  }
}

void VulkanContext::save_pipeline_cache() {
  std::string file = cache_file();
  if (file.empty() || pipeline_cache_ == VK_NULL_HANDLE) return;
  size_t size = 0;
  if (vkGetPipelineCacheData(device_, pipeline_cache_, &size, nullptr) != VK_SUCCESS) return;
  std::vector<char> data(size);
  if (vkGetPipelineCacheData(device_, pipeline_cache_, &size, data.data()) != VK_SUCCESS) return;
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(file).parent_path(), ec);
  std::string tmp = file + ".tmp" + std::to_string(reinterpret_cast<uintptr_t>(this));
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) return;
    out.write(data.data(), std::streamsize(size));
  }
  std::filesystem::rename(tmp, file, ec);  // atomic: concurrent processes never see half a file
}

uint32_t VulkanContext::find_memory_type(uint32_t type_bits, VkMemoryPropertyFlags required,
                                         VkMemoryPropertyFlags preferred) const {
  int fallback = -1;
  for (uint32_t i = 0; i < memory_props_.memoryTypeCount; ++i) {
    if (!(type_bits & (1u << i))) continue;
    VkMemoryPropertyFlags f = memory_props_.memoryTypes[i].propertyFlags;
    if ((f & required) != required) continue;
    if ((f & preferred) == preferred) return i;
    if (fallback < 0) fallback = int(i);
  }
  if (fallback < 0) throw Error("device " + caps_.name + " has no suitable memory type");
  return uint32_t(fallback);
}

VkMemoryPropertyFlags VulkanContext::memory_type_flags(uint32_t type_index) const {
  return memory_props_.memoryTypes[type_index].propertyFlags;
}

void VulkanContext::run_once(const std::function<void(VkCommandBuffer)>& record) {
  CommandBuffers cbs(device_, command_pool_);  // freed, and the fence destroyed, however this ends
  VkCommandBuffer cb = cbs.allocate();
  VkCommandBufferBeginInfo bi{};
  bi.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
  bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  VK_CHECK(vkBeginCommandBuffer(cb, &bi));
  record(cb);
  VK_CHECK(vkEndCommandBuffer(cb));
  VkFenceCreateInfo fi{};
  fi.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
  DeviceHandle<VkFence> fence(device_, vkDestroyFence);
  VK_CHECK(vkCreateFence(device_, &fi, nullptr, fence.out()));
  VkSubmitInfo si{};
  si.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
  si.commandBufferCount = 1;
  si.pCommandBuffers = &cb;
  VK_CHECK(vkQueueSubmit(queue_, 1, &si, fence.get()));
  const VkFence f = fence.get();
  VK_CHECK(vkWaitForFences(device_, 1, &f, VK_TRUE, UINT64_MAX));
}

VulkanContext::~VulkanContext() { release(); }

void VulkanContext::release() {
  if (device_) {
    vkDeviceWaitIdle(device_);
    if (pipeline_cache_) vkDestroyPipelineCache(device_, pipeline_cache_, nullptr);
    if (command_pool_) vkDestroyCommandPool(device_, command_pool_, nullptr);
    vkDestroyDevice(device_, nullptr);
    device_ = VK_NULL_HANDLE;
    pipeline_cache_ = VK_NULL_HANDLE;
    command_pool_ = VK_NULL_HANDLE;
  }
  if (instance_) {
    if (messenger_) destroy_messenger_(instance_, messenger_, nullptr);
    vkDestroyInstance(instance_, nullptr);
    messenger_ = VK_NULL_HANDLE;
    instance_ = VK_NULL_HANDLE;
  }
}

const char* vk_result_name(VkResult r) {
  switch (r) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_NOT_READY: return "VK_NOT_READY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    default: return "VkResult error";
  }
}

}  // namespace vkssm

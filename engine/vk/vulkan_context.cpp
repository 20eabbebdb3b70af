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
#include "engine/vk/vk_check.h"
#include "engine/vk/vk_handle.h"

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

VkInstance create_bare_instance(bool validation, bool debug_utils) {
  VkApplicationInfo app{};
  app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
  app.pApplicationName = "vkssm";
  app.pEngineName = "vkssm";
  app.apiVersion = VK_API_VERSION_1_2;
  if (volkGetInstanceVersion() < VK_API_VERSION_1_2) app.apiVersion = VK_API_VERSION_1_1;
  std::vector<const char*> layers, exts;
  if (validation) layers.push_back(kValidationLayer);
  if (debug_utils) exts.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
  VkInstanceCreateInfo ci{};
  ci.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
  ci.pApplicationInfo = &app;
  ci.enabledLayerCount = uint32_t(layers.size());
  ci.ppEnabledLayerNames = layers.data();
  ci.enabledExtensionCount = uint32_t(exts.size());
  ci.ppEnabledExtensionNames = exts.data();
  VkInstance instance = VK_NULL_HANDLE;
  VkResult r = vkCreateInstance(&ci, nullptr, &instance);
  if (r == VK_ERROR_INCOMPATIBLE_DRIVER) throw Error(kNoDevice);  // the loader found no driver
  VK_CHECK(r);
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

int best_device(const std::vector<VkPhysicalDevice>& devices) {
  int best = -1, best_rank = -1;
  for (size_t i = 0; i < devices.size(); ++i) {
    DeviceCaps c = probe_device(devices[i]);
    if (c.api_version < VK_API_VERSION_1_1) continue;
    if (type_rank(c.type) > best_rank) {
      best_rank = type_rank(c.type);
      best = int(i);
    }
  }
  return best;
}

int requested_device(int option) {
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

}  // namespace

uint64_t validation_message_count() { return g_validation_messages.load(); }

DeviceCaps probe_device(VkPhysicalDevice pd) {
  DeviceCaps c;
  VkPhysicalDeviceProperties props{};
  vkGetPhysicalDeviceProperties(pd, &props);
  c.name = props.deviceName;
  c.type = props.deviceType;
  c.api_version = props.apiVersion;
  c.vendor_id = props.vendorID;
  c.shared_memory = props.limits.maxComputeSharedMemorySize;
  c.max_workgroup_invocations = props.limits.maxComputeWorkGroupInvocations;
  c.max_workgroup_count_x = props.limits.maxComputeWorkGroupCount[0];
  c.max_storage_buffer_range = props.limits.maxStorageBufferRange;
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
  VkPhysicalDeviceProperties2 props2{};
  props2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2;
  props2.pNext = &subgroup;
  vkGetPhysicalDeviceProperties2(pd, &props2);
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
  if (c.api_version >= VK_API_VERSION_1_2) {  // 8-bit storage, float16 and timelines are core from 1.2
    s16.pNext = &s8;
    s8.pNext = &f16;
    f16.pNext = &timeline;
  }
  vkGetPhysicalDeviceFeatures2(pd, &feats);
  c.storage16 = s16.storageBuffer16BitAccess;
  c.storage8 = s8.storageBuffer8BitAccess;
  c.float16 = f16.shaderFloat16;
  c.timeline_semaphores = timeline.timelineSemaphore;

  VkPhysicalDeviceMemoryProperties mem{};
  vkGetPhysicalDeviceMemoryProperties(pd, &mem);
  for (uint32_t i = 0; i < mem.memoryHeapCount; ++i)
    if (mem.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) c.device_local_bytes += mem.memoryHeaps[i].size;
  return c;
}

std::vector<DeviceInfo> list_devices() {
  init_loader();
  const std::string profile = device_profile_from_env();
  VkInstance instance = create_bare_instance(false, false);
  std::vector<DeviceInfo> out;
  try {
    auto devices = enumerate(instance);
    for (size_t i = 0; i < devices.size(); ++i) {
      DeviceCaps c = probe_device(devices[i]);
      apply_device_profile(c, profile);  // the limits the engine would use there
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
      out.push_back(d);
    }
    int best = best_device(devices);
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
    choose_device(requested_device(options.device));
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
  instance_ = create_bare_instance(use_validation, debug_utils);
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
  if (index >= int(devices.size()))
    throw Error("device index " + std::to_string(index) + " out of range: " +
                std::to_string(devices.size()) + " Vulkan device(s) found (see `vkssm devices`)");
  if (index < 0) index = best_device(devices);
  if (index < 0) throw Error("no Vulkan device supports Vulkan 1.1, which vkssm needs");
  caps_ = probe_device(devices[index]);
  apply_device_profile(caps_, profile_);
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
  if (volkGetInstanceVersion() < VK_API_VERSION_1_2) caps_.timeline_semaphores = false;  // 1.1 instance
  timeline.timelineSemaphore = caps_.timeline_semaphores;
  if (caps_.timeline_semaphores) s16.pNext = &timeline;
  VkDeviceCreateInfo ci{};
  ci.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO;
  ci.pNext = &s16;
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

std::string VulkanContext::cache_file() const {
  std::string dir = cache_dir_;
  if (dir.empty()) {
    if (const char* env = std::getenv("VKSSM_CACHE_DIR")) dir = env;
  }
  if (dir.empty()) {
    if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) dir = std::string(xdg) + "/vkssm";
    else if (const char* home = std::getenv("HOME"); home && *home) dir = std::string(home) + "/.cache/vkssm";
  }
  if (dir.empty()) return "";
  // One file per device and driver: a cache from another driver would be ignored anyway.
  VkPhysicalDeviceProperties p{};
  vkGetPhysicalDeviceProperties(physical_, &p);
  char name[96];
  std::snprintf(name, sizeof name, "/pipelines-%04x-%04x-%08x.bin", p.vendorID, p.deviceID, p.driverVersion);
  return dir + name;
}

void VulkanContext::load_pipeline_cache() {
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

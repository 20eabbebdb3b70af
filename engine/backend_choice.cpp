#include "engine/backend_choice.h"

#include <atomic>

#include "engine/vk/vulkan_context.h"

namespace vkssm {

namespace {

std::atomic<uint64_t> g_auto_resolutions{0};

// The same order VulkanContext picks its default device in: discrete > integrated > virtual.
// CPU implementations never get here (Auto leaves them to the cpu backend).
int gpu_rank(const std::string& type) {
  if (type == "discrete") return 3;
  if (type == "integrated") return 2;
  if (type == "virtual") return 1;
  return 0;  // "other"
}

// DeviceInfo::api_version is the packed VK_API_VERSION value.
std::string api_text(uint32_t v) {
  return std::to_string(VK_API_VERSION_MAJOR(v)) + "." + std::to_string(VK_API_VERSION_MINOR(v));
}

// Why no device qualified, naming each one.
std::string no_gpu_reason(const std::vector<DeviceInfo>& devices) {
  bool all_cpu = true;
  for (const DeviceInfo& d : devices) all_cpu = all_cpu && d.type == "cpu";
  if (all_cpu && devices.size() == 1)
    return "the only Vulkan device, " + devices[0].name + ", is a CPU implementation";
  std::string names;
  for (const DeviceInfo& d : devices) names += (names.empty() ? "" : ", ") + d.name;
  if (all_cpu) return "every Vulkan device (" + names + ") is a CPU implementation";
  std::string why;
  for (const DeviceInfo& d : devices)
    why += (why.empty() ? "" : "; ") + d.name +
           (d.type == "cpu" ? std::string(": a CPU implementation") : ": Vulkan " + api_text(d.api_version));
  return "no Vulkan GPU supports Vulkan 1.1, which vkssm needs (" + why + ")";
}

}  // namespace

const char* backend_name(BackendKind b) {
  switch (b) {
    case BackendKind::Vulkan: return "vulkan";
    case BackendKind::Reference: return "reference";
    case BackendKind::Cpu: return "cpu";
    case BackendKind::Auto: break;
  }
  return "auto";
}

std::optional<BackendKind> backend_from_name(const std::string& name) {
  for (BackendKind b : {BackendKind::Auto, BackendKind::Vulkan, BackendKind::Reference, BackendKind::Cpu})
    if (name == backend_name(b)) return b;
  return std::nullopt;
}

VulkanProbe probe_vulkan() {
  VulkanProbe p;
  try {
    // No device profile: a profile clamps limits, it does not change what kind of device it is.
    p.devices = list_devices("");
  } catch (const Error& e) {
    p.error = e.what();
  }
  return p;
}

BackendKind host_backend() {
#if VKSSM_CPU_FAST
  return BackendKind::Cpu;
#else
  return BackendKind::Reference;
#endif
}

BackendChoice choose_backend(const VulkanProbe& probe, int requested, const std::string& requested_by) {
  BackendChoice c;
  if (requested >= 0) {
    // The caller named a device: Vulkan on it, whatever its type, with the errors opening it gives.
    if (!probe.error.empty()) throw Error(probe.error);
    if (size_t(requested) >= probe.devices.size())
      throw Error(device_index_out_of_range(requested, probe.devices.size()));
    const DeviceInfo& d = probe.devices[size_t(requested)];
    c.backend = BackendKind::Vulkan;
    c.device = requested;
    c.why = "device " + std::to_string(requested) + ", " + d.name + " (" + d.type + "), named by " + requested_by;
    c.reason = "vulkan: " + c.why;
    return c;
  }
  const DeviceInfo* best = nullptr;
  for (const DeviceInfo& d : probe.devices) {
    if (d.type == "cpu" || d.api_version < VK_API_VERSION_1_1) continue;
    if (!best || gpu_rank(d.type) > gpu_rank(best->type)) best = &d;
  }
  if (best) {
    c.backend = BackendKind::Vulkan;
    c.device = best->index;
    c.why = best->name + " (" + best->type + ")";
    c.reason = "vulkan: " + c.why;
    return c;
  }
  c.backend = host_backend();
  if (!probe.error.empty()) c.why = "no Vulkan driver (" + probe.error + ")";
  else if (probe.devices.empty()) c.why = "no Vulkan device (the Vulkan loader lists none)";
  else c.why = no_gpu_reason(probe.devices);
  c.reason = std::string(backend_name(c.backend)) + ": " + c.why;
  return c;
}

BackendChoice choose_auto_backend(int device) {
  // requested_device_index() reads $VKSSM_DEVICE when `device` is -1 (and rejects a bad value).
  const int requested = requested_device_index(device);
  // "the device option": LoadOptions::device, --device, the C and Python `device`.
  const std::string by = device >= 0 ? "the device option" : "VKSSM_DEVICE";
  return choose_backend(probe_vulkan(), requested, by);
}

ResolvedBackend resolve_backend(const LoadOptions& options) {
  ResolvedBackend r{options, "requested"};
  if (options.backend != BackendKind::Auto) return r;
  g_auto_resolutions++;
  const BackendChoice c = choose_auto_backend(options.device);
  r.options.backend = c.backend;
  if (c.backend == BackendKind::Vulkan) r.options.device = c.device;
  r.reason = c.reason;
  return r;
}

uint64_t auto_backend_resolutions() { return g_auto_resolutions.load(); }

void set_backend_reason(const Model& model, const std::string& reason) {
  // Every backend keeps its ModelInfo as a plain member that info() hands out read-only; only the
  // load knows why this backend was chosen, so it fills in that one field once, before the model
  // is returned to anyone.
  const_cast<ModelInfo&>(model.info()).backend_reason = reason;
}

}  // namespace vkssm

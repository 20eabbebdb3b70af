#pragma once
// BackendKind::Auto: which backend a load runs on, and why. A GPU is worth the load-time cost of
// pipelines and uploads; a CPU implementation of Vulkan (lavapipe, SwiftShader) is not, because
// the cpu backend runs the same model on the same cores with kernels made for them. So Auto takes
// Vulkan on the best device that is not a CPU, and the cpu backend otherwise. A device named
// explicitly (LoadOptions::device, $VKSSM_DEVICE) is what the caller asked for, CPU type or not.
//
// choose_backend() is a pure function of the probed devices so the tests can feed it any list;
// resolve_backend() probes and is what every load goes through (create_on_backend()).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/vkssm.hpp"

namespace vkssm {

// What Vulkan offers on this machine, as list_devices() sees it without a device profile.
struct VulkanProbe {
  std::vector<DeviceInfo> devices;
  std::string error;  // why there is no Vulkan at all (no loader, no driver, instance failed); "" = probed
};

// The devices, or the error that listing them threw.
VulkanProbe probe_vulkan();

// The backend that takes over when there is no GPU: cpu, or the reference in a build without the
// cpu backend (VKSSM_CPU_FAST off).
BackendKind host_backend();

// Auto's decision. `requested` is the device index the caller named (-1: none) and
// `requested_by` what named it ("the device option", "VKSSM_DEVICE"), for the reason. A named
// device that does not exist throws the error opening it would (index out of range, no Vulkan).
BackendChoice choose_backend(const VulkanProbe& probe, int requested, const std::string& requested_by);

// The options a load runs with (Auto replaced by the backend it chose, and the device it chose)
// and ModelInfo::backend_reason: "requested" unless Auto chose.
struct ResolvedBackend {
  LoadOptions options;
  std::string reason;
};
ResolvedBackend resolve_backend(const LoadOptions& options);

// How many loads so far resolved BackendKind::Auto: the tests fail any test that loads a model
// without naming its backend (tests/test_main.cpp), so the suite keeps exercising Vulkan on
// lavapipe instead of silently moving to the cpu backend.
uint64_t auto_backend_resolutions();

// Every model is built here (the registry's loaders, the bench's random models, the tests'
// create_<arch>()): Auto resolved, the backend's constructor, the reason recorded in ModelInfo.
void set_backend_reason(const Model& model, const std::string& reason);
template <class Weights, class CpuFn, class VulkanFn>
std::unique_ptr<Model> create_on_backend(const Weights& weights, const LoadOptions& options, CpuFn create_cpu,
                                         VulkanFn create_vulkan) {
  const ResolvedBackend r = resolve_backend(options);
  std::unique_ptr<Model> model = r.options.backend == BackendKind::Vulkan ? create_vulkan(weights, r.options)
                                                                          : create_cpu(weights, r.options);
  set_backend_reason(*model, r.reason);
  return model;
}

}  // namespace vkssm

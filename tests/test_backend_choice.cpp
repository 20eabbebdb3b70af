// BackendKind::Auto's decision (engine/backend_choice.h) over synthetic device lists, so every case
// is checked on any machine: GPUs beside CPU implementations, CPU implementations alone, no Vulkan,
// devices named explicitly. Then a real load under Auto, which records the same reason.
#include <gtest/gtest.h>

#include "engine/backend_choice.h"
#include "models/mamba1/mamba1_model.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

using testing_helpers::error_of;
using testing_helpers::ScopedEnv;

constexpr uint32_t kVulkan10 = 1u << 22;
constexpr uint32_t kVulkan13 = (1u << 22) | (3u << 12);

DeviceInfo device(int index, const std::string& name, const std::string& type, uint32_t api = kVulkan13) {
  DeviceInfo d;
  d.index = index;
  d.name = name;
  d.type = type;
  d.api_version = api;
  return d;
}

const std::string kLavapipe = "llvmpipe (LLVM 15.0.6, 256 bits)";
const std::string kHost = backend_name(host_backend());  // "cpu" (or "reference" without the cpu backend)

VulkanProbe probe(std::vector<DeviceInfo> devices) {
  VulkanProbe p;
  p.devices = std::move(devices);
  return p;
}

TEST(BackendChoice, DiscreteGpuBesideLavapipeRunsVulkanOnTheGpu) {
  const BackendChoice c =
      choose_backend(probe({device(0, kLavapipe, "cpu"), device(1, "Test GPU", "discrete")}), -1, "");
  EXPECT_EQ(c.backend, BackendKind::Vulkan);
  EXPECT_EQ(c.device, 1);
  EXPECT_EQ(c.why, "Test GPU (discrete)");
  EXPECT_EQ(c.reason, "vulkan: Test GPU (discrete)");
}

TEST(BackendChoice, TheBestGpuWins) {
  const BackendChoice c = choose_backend(probe({device(0, "Integrated", "integrated"), device(1, kLavapipe, "cpu"),
                                                device(2, "Discrete", "discrete"), device(3, "Virtual", "virtual")}),
                                         -1, "");
  EXPECT_EQ(c.backend, BackendKind::Vulkan);
  EXPECT_EQ(c.device, 2);
  EXPECT_EQ(c.reason, "vulkan: Discrete (discrete)");
  // A device of type "other" is not a CPU: it runs Vulkan when nothing better is there.
  EXPECT_EQ(choose_backend(probe({device(0, kLavapipe, "cpu"), device(1, "Odd", "other")}), -1, "").reason,
            "vulkan: Odd (other)");
}

TEST(BackendChoice, LavapipeAloneRunsOnTheCpuBackend) {
  const BackendChoice c = choose_backend(probe({device(0, kLavapipe, "cpu")}), -1, "");
  EXPECT_EQ(c.backend, host_backend());
#if VKSSM_CPU_FAST
  EXPECT_EQ(c.backend, BackendKind::Cpu);
#endif
  EXPECT_EQ(c.why, "the only Vulkan device, " + kLavapipe + ", is a CPU implementation");
  EXPECT_EQ(c.reason, kHost + ": the only Vulkan device, " + kLavapipe + ", is a CPU implementation");
}

TEST(BackendChoice, SeveralCpuImplementationsAreNamed) {
  const BackendChoice c =
      choose_backend(probe({device(0, kLavapipe, "cpu"), device(1, "SwiftShader Device (Subzero)", "cpu")}), -1, "");
  EXPECT_EQ(c.backend, host_backend());
  EXPECT_EQ(c.reason, kHost + ": every Vulkan device (" + kLavapipe +
                          ", SwiftShader Device (Subzero)) is a CPU implementation");
}

// A GPU that only has Vulkan 1.0 cannot run vkssm: it does not count as a GPU to run on.
TEST(BackendChoice, AGpuWithoutVulkan11IsPassedOverAndSaid) {
  const BackendChoice c =
      choose_backend(probe({device(0, "Old GPU", "discrete", kVulkan10), device(1, kLavapipe, "cpu")}), -1, "");
  EXPECT_EQ(c.backend, host_backend());
  EXPECT_EQ(c.reason, kHost + ": no Vulkan GPU supports Vulkan 1.1, which vkssm needs (Old GPU: Vulkan 1.0; " +
                          kLavapipe + ": a CPU implementation)");
}

TEST(BackendChoice, NoVulkanRunsOnTheCpuBackendWithTheReason) {
  VulkanProbe none;
  none.error = "no Vulkan loader found (libvulkan.so.1); install libvulkan1 and a driver";
  const BackendChoice c = choose_backend(none, -1, "");
  EXPECT_EQ(c.backend, host_backend());
  EXPECT_EQ(c.reason, kHost + ": no Vulkan driver (no Vulkan loader found (libvulkan.so.1); install libvulkan1 "
                              "and a driver)");
  // A loader that lists no device at all.
  EXPECT_EQ(choose_backend(probe({}), -1, "").reason, kHost + ": no Vulkan device (the Vulkan loader lists none)");
}

// A device named explicitly is what the caller asked for: Vulkan on it, even a CPU implementation
// beside a GPU.
TEST(BackendChoice, ANamedDeviceRunsVulkanWhateverItsType) {
  const VulkanProbe both = probe({device(0, kLavapipe, "cpu"), device(1, "Test GPU", "discrete")});
  BackendChoice c = choose_backend(both, 0, "the device option");
  EXPECT_EQ(c.backend, BackendKind::Vulkan);
  EXPECT_EQ(c.device, 0);
  EXPECT_EQ(c.reason, "vulkan: device 0, " + kLavapipe + " (cpu), named by the device option");
  c = choose_backend(probe({device(0, kLavapipe, "cpu")}), 0, "VKSSM_DEVICE");
  EXPECT_EQ(c.backend, BackendKind::Vulkan);
  EXPECT_EQ(c.reason, "vulkan: device 0, " + kLavapipe + " (cpu), named by VKSSM_DEVICE");
  c = choose_backend(both, 1, "the device option");
  EXPECT_EQ(c.device, 1);
  EXPECT_EQ(c.reason, "vulkan: device 1, Test GPU (discrete), named by the device option");
}

// The errors opening the named device would give.
TEST(BackendChoice, ANamedDeviceThatIsNotThereIsTheUsualError) {
  const VulkanProbe both = probe({device(0, kLavapipe, "cpu"), device(1, "Test GPU", "discrete")});
  EXPECT_EQ(error_of([&] { choose_backend(both, 2, "the device option"); }),
            "device index 2 out of range: 2 Vulkan device(s) found (see `vkssm devices`)");
  VulkanProbe none;
  none.error = "no Vulkan device found (on a machine without a GPU, install mesa-vulkan-drivers for the CPU driver "
               "lavapipe)";
  EXPECT_EQ(error_of([&] { choose_backend(none, 0, "VKSSM_DEVICE"); }), none.error);
}

TEST(BackendChoice, BadVkssmDeviceIsNamed) {
  ScopedEnv env("VKSSM_DEVICE", "first");
  EXPECT_EQ(error_of([] { choose_auto_backend(); }), "VKSSM_DEVICE='first' is not a device index");
}

TEST(BackendChoice, NamesAreTheCliSpellings) {
  EXPECT_STREQ(backend_name(BackendKind::Vulkan), "vulkan");
  EXPECT_STREQ(backend_name(BackendKind::Reference), "reference");
  EXPECT_STREQ(backend_name(BackendKind::Cpu), "cpu");
  EXPECT_STREQ(backend_name(BackendKind::Auto), "auto");
  EXPECT_EQ(LoadOptions{}.backend, BackendKind::Auto);
}

// A named backend is loaded as asked and says "requested"; nothing is probed.
TEST(BackendChoice, ANamedBackendIsRequested) {
  const uint64_t before = auto_backend_resolutions();
  LoadOptions o;
  o.backend = BackendKind::Reference;
  o.device = 3;
  const ResolvedBackend r = resolve_backend(o);
  EXPECT_EQ(r.options.backend, BackendKind::Reference);
  EXPECT_EQ(r.options.device, 3);
  EXPECT_EQ(r.reason, "requested");
  EXPECT_EQ(auto_backend_resolutions(), before);
  const Mamba1Weights w = random_mamba1(testing_helpers::small_mamba1_config(20), 1);
  EXPECT_EQ(create_mamba1(w, testing_helpers::on_vulkan())->info().backend_reason, "requested");
}

// A load under Auto runs where choose_auto_backend() says, records its reason, and computes what
// that backend computes when named.
TEST(BackendChoice, AutoBackendLoadRunsWhereTheChoiceSays) {
  const BackendChoice choice = choose_auto_backend();
  const Mamba1Weights w = random_mamba1(testing_helpers::small_mamba1_config(20), 1);
  const uint64_t before = auto_backend_resolutions();
  auto automatic = create_mamba1(w, LoadOptions{});
  EXPECT_EQ(auto_backend_resolutions(), before + 1);
  EXPECT_EQ(automatic->info().backend, backend_name(choice.backend));
  EXPECT_EQ(automatic->info().backend_reason, choice.reason);
  LoadOptions named;
  named.backend = choice.backend;
  auto explicit_model = create_mamba1(w, named);
  EXPECT_EQ(explicit_model->info().device_name, automatic->info().device_name);
  const int32_t slot = 0;
  std::vector<float> a(20), b(20);
  for (int32_t tok : {3, 7, 19}) {
    automatic->step(&tok, &slot, 1, a.data());
    explicit_model->step(&tok, &slot, 1, b.data());
    EXPECT_EQ(a, b);
  }
}

}  // namespace
}  // namespace vkssm

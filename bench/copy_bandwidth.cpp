#include <chrono>
#include <cstdint>

#include "bench/copy_bandwidth.h"
#include "engine/vk/gpu_buffer.h"
#include "engine/vk/vulkan_context.h"

namespace vkssm {

CopyBandwidth measure_copy_bandwidth(int device, uint64_t bytes, int reps) {
  VulkanContext ctx(VulkanContext::Options{device, false, "", ""});
  GpuBuffer a(ctx, bytes, GpuBuffer::Kind::DeviceLocal, "bandwidth source");
  GpuBuffer b(ctx, bytes, GpuBuffer::Kind::DeviceLocal, "bandwidth destination");
  a.fill_zero();
  auto copy = [&] {
    ctx.run_once([&](VkCommandBuffer cb) {
      VkBufferCopy region{0, 0, bytes};
      vkCmdCopyBuffer(cb, a.handle(), b.handle(), 1, &region);
    });
  };
  copy();  // warm-up: first touch of the pages
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    copy();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s < best) best = s;
  }
  CopyBandwidth r;
  r.device = ctx.caps().name;
  r.bytes_per_second = 2.0 * double(bytes) / best;
  r.read_bytes_per_second = r.bytes_per_second / 2.0;
  return r;
}

}  // namespace vkssm

#include <algorithm>
#include <chrono>
#include <cmath>
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
  // `count` copies in one submit, each waiting for the one before: on a fast GPU one copy of a
  // few hundred MB takes about 0.1 ms, less than a submit-and-wait round trip (about 1.3 ms seen
  // on an NVIDIA H200), so timing single copies measured the round trip, not the memory.
  auto copies = [&](int count) {
    ctx.run_once([&](VkCommandBuffer cb) {
      VkBufferCopy region{0, 0, bytes};
      VkMemoryBarrier barrier{VK_STRUCTURE_TYPE_MEMORY_BARRIER, nullptr, VK_ACCESS_TRANSFER_WRITE_BIT,
                              VK_ACCESS_TRANSFER_WRITE_BIT};
      for (int i = 0; i < count; ++i) {
        if (i > 0)
          vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1,
                               &barrier, 0, nullptr, 0, nullptr);
        vkCmdCopyBuffer(cb, a.handle(), b.handle(), 1, &region);
      }
    });
  };
  auto seconds_of = [&](int count) {
    auto t0 = std::chrono::steady_clock::now();
    copies(count);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  seconds_of(1);  // warm-up: first touch of the pages
  // Enough copies per submit for about 0.2 s, so the round trip is a few percent at most.
  const int count = int(std::min(256.0, std::max(1.0, std::ceil(0.2 / seconds_of(1)))));
  double best = 1e30;
  for (int i = 0; i < reps; ++i) best = std::min(best, seconds_of(count) / count);
  CopyBandwidth r;
  r.device = ctx.caps().name;
  r.bytes_per_second = 2.0 * double(bytes) / best;
  r.read_bytes_per_second = r.bytes_per_second / 2.0;
  return r;
}

}  // namespace vkssm

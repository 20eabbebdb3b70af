// read_bandwidth.h in Highway, dispatched at run time like matmul.cpp (see there why): the loads
// must be as wide as the kernels' own, or the roofline would measure the loop, not the memory.
#include "engine/cpu/read_bandwidth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

#include "engine/cpu/hwy_targets.h"
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "engine/cpu/read_bandwidth.cpp"
#include <hwy/foreach_target.h>  // re-includes this file once per target
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace vkssm {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// The sum of x[0, n) (n a multiple of 4 vectors), in four independent accumulators so that the
// adds never wait on each other and only the loads set the pace.
float SumFloats(const float* x, size_t n) {
  const hn::ScalableTag<float> df;
  const size_t lanes = hn::Lanes(df);
  auto a0 = hn::Zero(df), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 4 * lanes <= n; i += 4 * lanes) {
    a0 = hn::Add(a0, hn::LoadU(df, x + i));
    a1 = hn::Add(a1, hn::LoadU(df, x + i + lanes));
    a2 = hn::Add(a2, hn::LoadU(df, x + i + 2 * lanes));
    a3 = hn::Add(a3, hn::LoadU(df, x + i + 3 * lanes));
  }
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
}

}  // namespace HWY_NAMESPACE
}  // namespace vkssm
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace vkssm {

HWY_EXPORT(SumFloats);

double measure_read_bandwidth(ThreadPool& pool, size_t bytes, int reps) {
  // Chunks of 64 KiB: small enough for every thread to get many, large enough that claiming one
  // costs nothing next to reading it.
  constexpr size_t kChunk = 16384;  // floats
  const size_t n = std::max<size_t>(1, bytes / sizeof(float) / kChunk) * kChunk;
  std::vector<float> data(n, 1.0f);  // written once: every page is real memory, not the zero page
  std::atomic<int> sink{0};
  auto pass = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(n / kChunk, 1, [&](size_t c0, size_t c1, int) {
      const float s = HWY_DYNAMIC_DISPATCH(SumFloats)(data.data() + c0 * kChunk, (c1 - c0) * kChunk);
      if (s < 0) sink.fetch_add(1);  // never true; keeps the sum (and the reads) from being dropped
    });
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  pass();
  double best = 1e30;
  for (int i = 0; i < reps; ++i) best = std::min(best, pass());
  return double(n * sizeof(float)) / best;
}

}  // namespace vkssm
#endif  // HWY_ONCE

#pragma once
// The host's memory read bandwidth: the roofline the cpu backend's decode is compared with
// (vkssm_bench --backend cpu). A step of the cpu backend reads every weight once, so tokens/s
// cannot exceed read bandwidth / weight bytes per step; this measures that bandwidth with the
// same threads and the same SIMD loads the kernels use.
#include <cstddef>

#include "engine/cpu/thread_pool.h"

namespace vkssm {

// Bytes per second read by `pool`'s threads summing a buffer of `bytes` (far larger than the
// caches, so the reads come from memory), best of `reps` passes after one that pages it in.
double measure_read_bandwidth(ThreadPool& pool, size_t bytes = size_t(256) << 20, int reps = 5);

}  // namespace vkssm

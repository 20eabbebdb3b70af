#pragma once
// The instruction set the cpu backend's kernels run with: the best one this CPU has among those
// the kernels are compiled for (Highway's dynamic dispatch), unless $VKSSM_CPU_SIMD names a
// lesser one: to compare targets on one machine, or to run e.g. the AVX2 kernels on an AVX-512
// CPU (the tests do). The choice is made once per process, before any kernel runs, because
// CpuMatrix packs weights in panels as wide as the chosen target's vectors.
#include <cstdint>
#include <string>

namespace vkssm {

// Applies $VKSSM_CPU_SIMD the first time it is called (ThreadPool and CpuMatrix call it); throws
// vkssm::Error naming the variable and the choices when it names no target of this CPU.
void choose_simd_target();

// The target the kernels run with ("AVX2", "AVX3", "NEON", ...); calls choose_simd_target().
const char* simd_target_name();

// The target bit named `name` (case-insensitive) among `available` (Highway target bits): throws
// vkssm::Error listing the available names otherwise. What choose_simd_target() applies.
int64_t simd_target_named(const std::string& name, int64_t available);

}  // namespace vkssm

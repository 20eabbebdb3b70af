#pragma once
// Included by every engine/cpu kernel file before Highway. The kernels keep small register tiles
// in arrays of vectors (e.g. 4 weight rows x 2 streams of accumulators), which the sizeless
// vector types of SVE and RVV do not allow; NEON covers every arm64 core (and is what those
// cores run without SVE), so these targets are simply not compiled.
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128 | HWY_RVV)
#endif

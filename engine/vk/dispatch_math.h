#pragma once
// Small integer helpers for sizing dispatches and passing spec constants.
#include <cstdint>
#include <cstring>

namespace vkssm {

inline uint32_t ceil_div(uint64_t a, uint64_t b) { return uint32_t((a + b - 1) / b); }

// A float as the 32 bits a float specialization constant is given as.
inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// The largest power of two <= v (tree reductions in shared memory need one).
inline uint32_t floor_pow2(uint32_t v) {
  uint32_t p = 1;
  while (p * 2 <= v) p *= 2;
  return p;
}

}  // namespace vkssm

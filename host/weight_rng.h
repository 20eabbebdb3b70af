#pragma once
// Deterministic random weights for tests and the bench: splitmix64 is tiny, well mixed and gives
// the same numbers on every platform (std:: distributions do not).
#include <cstdint>
#include <vector>

namespace vkssm {

struct WeightRng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform(float lo, float hi) {  // [lo, hi)
    return lo + (hi - lo) * float(double(next() >> 11) * (1.0 / 9007199254740992.0));
  }
  std::vector<float> fill(int64_t n, float lo, float hi) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = uniform(lo, hi);
    return v;
  }
};

}  // namespace vkssm

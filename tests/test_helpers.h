#pragma once
// Small helpers shared by the test files.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>

#include "host/error.h"

namespace vkssm::testing_helpers {

// The message of the vkssm::Error that f throws, or "(no error)".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Largest |got - want| / max(1, |want|): relative for large logits, absolute near zero.
inline float max_rel_error(const float* got, const float* want, int64_t n) {
  float worst = 0;
  for (int64_t i = 0; i < n; ++i)
    worst = std::max(worst, std::fabs(got[i] - want[i]) / std::max(1.0f, std::fabs(want[i])));
  return worst;
}

}  // namespace vkssm::testing_helpers

#pragma once
// Small helpers shared by the test files.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>

#include "host/error.h"
#include "models/mamba1/mamba1_model.h"

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

// Sets an environment variable for one scope (the old value comes back after).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (had_) setenv(name_, old_.c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

// Options for the Vulkan backend. Tests name the backend they test: tests/test_main.cpp fails a
// test that leaves it to BackendKind::Auto, which on lavapipe alone takes the cpu backend.
inline LoadOptions on_vulkan(int max_streams = LoadOptions{}.max_streams) {
  LoadOptions o;
  o.backend = BackendKind::Vulkan;
  o.max_streams = max_streams;
  return o;
}

// A tiny Mamba-1 shape for tests that exercise the API rather than the numerics' edge cases.
inline Mamba1Config small_mamba1_config(int64_t vocab) {
  Mamba1Config c;
  c.d_model = 16;
  c.n_layer = 2;
  c.vocab_size = vocab;
  c.d_state = 4;
  c.d_conv = 4;
  c.expand = 2;
  c.d_inner = 32;
  c.dt_rank = 2;
  return c;
}

}  // namespace vkssm::testing_helpers

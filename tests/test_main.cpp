// Test entry point: any Khronos validation message during a test fails the run, and so does a
// model loaded without naming its backend outside the tests of the auto choice. CTest runs each
// test in its own process (gtest_discover_tests), so the failing test is the one named.
#include <cstdio>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "engine/backend_choice.h"
#include "engine/vkssm.hpp"

namespace {
bool g_validation_failed = false;
bool g_auto_backend_failed = false;

class ValidationListener : public testing::EmptyTestEventListener {
  uint64_t before_ = 0;
  void OnTestStart(const testing::TestInfo&) override { before_ = vkssm::validation_message_count(); }
  void OnTestEnd(const testing::TestInfo& info) override {
    uint64_t now = vkssm::validation_message_count();
    if (now != before_) {
      std::fprintf(stderr, "FAILED: %s.%s produced %llu Vulkan validation message(s)\n",
                   info.test_suite_name(), info.name(), (unsigned long long)(now - before_));
      g_validation_failed = true;
    }
  }
};

// A test that loads a model without naming its backend runs wherever BackendKind::Auto points,
// which on lavapipe is the cpu backend: the Vulkan path would stop being tested without anyone
// noticing. So every test names its backend, and only the tests of the auto choice itself (with
// "AutoBackend" in their name) may leave it to Auto.
class AutoBackendListener : public testing::EmptyTestEventListener {
  uint64_t before_ = 0;
  void OnTestStart(const testing::TestInfo&) override { before_ = vkssm::auto_backend_resolutions(); }
  void OnTestEnd(const testing::TestInfo& info) override {
    const uint64_t now = vkssm::auto_backend_resolutions();
    const std::string name = std::string(info.test_suite_name()) + "." + info.name();
    if (now != before_ && name.find("AutoBackend") == std::string::npos) {
      std::fprintf(stderr, "FAILED: %s loaded %llu model(s) with BackendKind::Auto; name the backend it tests\n",
                   name.c_str(), (unsigned long long)(now - before_));
      g_auto_backend_failed = true;
    }
  }
};
}  // namespace

int main(int argc, char** argv) {
  // Validation on for every test (an explicit VKSSM_VALIDATION=0 turns it off), and a pipeline
  // cache of the tests' own so they never touch the user's.
  setenv("VKSSM_VALIDATION", "1", 0);
  setenv("VKSSM_CACHE_DIR", VKSSM_TEST_CACHE_DIR, 0);
  testing::InitGoogleTest(&argc, argv);
  testing::UnitTest::GetInstance()->listeners().Append(new ValidationListener);
  testing::UnitTest::GetInstance()->listeners().Append(new AutoBackendListener);
  int rc = RUN_ALL_TESTS();
  return (rc != 0 || g_validation_failed || g_auto_backend_failed) ? 1 : 0;
}

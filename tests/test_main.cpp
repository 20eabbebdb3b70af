// Test entry point: any Khronos validation message during a test fails the run. CTest runs each
// test in its own process (gtest_discover_tests), so the failing test is the one named.
#include <cstdio>
#include <cstdlib>

#include <gtest/gtest.h>

#include "engine/vkssm.hpp"

namespace {
bool g_validation_failed = false;

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
}  // namespace

int main(int argc, char** argv) {
  // Validation on for every test (an explicit VKSSM_VALIDATION=0 turns it off), and a pipeline
  // cache of the tests' own so they never touch the user's.
  setenv("VKSSM_VALIDATION", "1", 0);
  setenv("VKSSM_CACHE_DIR", VKSSM_TEST_CACHE_DIR, 0);
  testing::InitGoogleTest(&argc, argv);
  testing::UnitTest::GetInstance()->listeners().Append(new ValidationListener);
  int rc = RUN_ALL_TESTS();
  return (rc != 0 || g_validation_failed) ? 1 : 0;
}

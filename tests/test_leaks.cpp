// Stream-pool cycles that must not leak: CI runs these under AddressSanitizer + LeakSanitizer
// (scripts/setup.sh builds build-asan and runs *Leaks* there). In the normal build they check
// that the cycles leave the pool as it was. Model create/use/destroy cycles (snapshot, restore,
// fork, rollback, submit) of every architecture are ContractLeaks in tests/test_contract.cpp.
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "engine/stream_pool.h"
#include "engine/vkssm.hpp"
#include "models/mamba1/mamba1_model.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

constexpr int64_t kVocab = 40;

std::unique_ptr<Model> make_model(BackendKind backend, int rollback = 0) {
  LoadOptions opt;
  opt.backend = backend;
  opt.max_streams = 4;
  opt.rollback_depth = rollback;
  return create_mamba1(random_mamba1(testing_helpers::small_mamba1_config(kVocab), 3), opt);
}

class Leaks : public testing::TestWithParam<BackendKind> {};

// 10,000 open/close/fork cycles through the pool, with device-side forks and some stepping.
TEST_P(Leaks, TenThousandOpenCloseForkCycles) {
  auto model = make_model(GetParam());
  StreamPool pool(*model);
  const StreamHandle keep = pool.open();
  const int32_t t0 = 5;
  pool.feed(keep, &t0, 1);
  pool.step(false);  // a stepped stream, so forks copy real state
  for (int i = 0; i < 10000; ++i) {
    const StreamHandle a = pool.open();
    const StreamHandle b = pool.fork(keep);
    if (i % 1000 == 0) {
      const int32_t t = int32_t(i % kVocab);
      pool.feed(a, &t, 1);
      pool.feed(b, &t, 1);
      EXPECT_EQ(pool.step(false).size(), 2u);
    }
    pool.close(a);
    pool.close(b);
  }
  EXPECT_EQ(pool.open_count(), 1);
}

INSTANTIATE_TEST_SUITE_P(Backends, Leaks, testing::Values(BackendKind::Reference, BackendKind::Vulkan),
                         [](const testing::TestParamInfo<BackendKind>& i) {
                           return std::string(i.param == BackendKind::Reference ? "Cpu" : "Vulkan");
                         });

}  // namespace
}  // namespace vkssm

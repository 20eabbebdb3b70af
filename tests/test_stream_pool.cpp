// StreamPool: streams that join and leave a batch at any step, fed from several threads, give the
// same logits as each stream run alone through the CPU reference; bad handles and ids are refused.
#include <algorithm>
#include <atomic>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/stream_pool.h"
#include "engine/vkssm.hpp"
#include "models/mamba1/mamba1_model.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

using testing::HasSubstr;
using testing_helpers::error_of;
using testing_helpers::max_rel_error;

constexpr int64_t kVocab = 40;
constexpr uint64_t kSeed = 11;

Mamba1Config small_config() { return testing_helpers::small_mamba1_config(kVocab); }

const Mamba1Weights& weights() {
  static const Mamba1Weights w = random_mamba1(small_config(), kSeed);
  return w;
}

std::unique_ptr<Model> make_model(BackendKind backend = BackendKind::Vulkan, int streams = 4) {
  LoadOptions opt;
  opt.backend = backend;
  opt.max_streams = streams;
  return create_mamba1(weights(), opt);
}

std::vector<int32_t> ids(int n, int salt) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[size_t(i)] = int32_t((i * 7 + salt * 13 + 3) % kVocab);
  return v;
}

// The logits [T][V] of `tokens` run alone, from a zero state, through the CPU reference.
std::vector<float> solo(const std::vector<int32_t>& tokens) {
  Mamba1CpuReference ref(weights());
  auto state = ref.new_state();
  std::vector<float> out(tokens.size() * kVocab);
  for (size_t t = 0; t < tokens.size(); ++t) ref.step(state, tokens[t], out.data() + t * kVocab);
  return out;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  EXPECT_LT(max_rel_error(got.data(), want.data(), int64_t(want.size())), 1e-3f) << what;
}

// Steps until no stream has input; appends each result's logits to out[stream slot].
void drain(StreamPool& pool, std::map<uint32_t, std::vector<float>>& out) {
  for (;;) {
    auto results = pool.step();
    if (results.empty()) return;
    for (auto& r : results) out[r.stream.slot].insert(out[r.stream.slot].end(), r.logits.begin(), r.logits.end());
  }
}

TEST(StreamPool, InterleavedJoinsAndLeavesMatchSoloRuns) {
  auto model = make_model();
  StreamPool pool(*model);
  ASSERT_EQ(pool.capacity(), 4);

  constexpr int kStreams = 6;
  std::vector<std::vector<int32_t>> tokens;
  for (int s = 0; s < kStreams; ++s) tokens.push_back(ids(6 + 3 * s, s));

  // Each stream is opened at a random step, receives its tokens in random chunks, and is closed a
  // random number of steps after its last token was stepped.
  std::mt19937 rng(1234);
  struct Live {
    StreamHandle handle;
    size_t fed = 0;       // tokens handed to feed()
    int idle_steps = 0;   // steps to wait once drained before closing
    bool open = false, done = false;
  };
  std::vector<Live> live(kStreams);
  std::vector<std::vector<float>> got(kStreams);
  int next = 0, pool_steps = 0, max_batch = 0;
  const uint64_t steps_before = model->counters().steps;

  for (int iter = 0; iter < 1000 && std::any_of(live.begin(), live.end(), [](auto& l) { return !l.done; }); ++iter) {
    // Join: maybe open the next stream if a slot is free.
    if (next < kStreams && pool.open_count() < pool.capacity() && rng() % 3 != 0) {
      live[size_t(next)].handle = pool.open();
      live[size_t(next)].open = true;
      live[size_t(next)].idle_steps = int(rng() % 3);
      ++next;
    }
    // Feed a random chunk to each open stream that still has tokens to give.
    for (int s = 0; s < kStreams; ++s) {
      Live& l = live[size_t(s)];
      if (!l.open || l.fed == tokens[size_t(s)].size() || rng() % 2 == 0) continue;
      const size_t n = std::min<size_t>(1 + rng() % 4, tokens[size_t(s)].size() - l.fed);
      pool.feed(l.handle, tokens[size_t(s)].data() + l.fed, n);
      l.fed += n;
    }
    auto results = pool.step();
    if (!results.empty()) ++pool_steps;
    max_batch = std::max(max_batch, int(results.size()));
    for (auto& r : results) {
      int s = -1;
      for (int k = 0; k < kStreams; ++k)
        if (live[size_t(k)].open && live[size_t(k)].handle == r.stream) s = k;
      ASSERT_GE(s, 0) << "a result for a stream that is not open";
      const size_t t = got[size_t(s)].size() / kVocab;
      EXPECT_EQ(r.token_fed, tokens[size_t(s)][t]);
      got[size_t(s)].insert(got[size_t(s)].end(), r.logits.begin(), r.logits.end());
    }
    // Leave: close drained streams once their idle time is up.
    for (int s = 0; s < kStreams; ++s) {
      Live& l = live[size_t(s)];
      if (!l.open || l.fed < tokens[size_t(s)].size() || pool.pending(l.handle) > 0) continue;
      if (l.idle_steps-- > 0) continue;
      pool.close(l.handle);
      l.open = false;
      l.done = true;
    }
  }

  EXPECT_EQ(pool.open_count(), 0);
  EXPECT_GE(max_batch, 3) << "streams never shared a step";
  EXPECT_EQ(model->counters().steps - steps_before, uint64_t(pool_steps)) << "one Model::step per pool step";
  for (int s = 0; s < kStreams; ++s) expect_close(got[size_t(s)], solo(tokens[size_t(s)]), "stream " + std::to_string(s));
}

TEST(StreamPool, CapacityExceeded) {
  auto model = make_model();
  StreamPool pool(*model);
  for (int i = 0; i < 4; ++i) pool.open();
  EXPECT_EQ(error_of([&] { pool.open(); }), "stream capacity of 4 exceeded (all 4 streams are open)");
  EXPECT_THAT(error_of([&] { pool.fork(StreamHandle{0, 0}); }), HasSubstr("stream capacity of 4 exceeded"));
  EXPECT_EQ(pool.open_count(), 4);
}

TEST(StreamPool, ClosedAndStaleHandlesAreRefused) {
  auto model = make_model();
  StreamPool pool(*model);
  const StreamHandle a = pool.open();
  pool.close(a);
  const std::vector<int32_t> t = {1, 2};
  for (auto use : std::vector<std::function<void()>>{
           [&] { pool.close(a); }, [&] { pool.reset(a); }, [&] { pool.fork(a); },
           [&] { pool.snapshot(a); }, [&] { pool.feed(a, t.data(), t.size()); }, [&] { pool.pending(a); }})
    EXPECT_THAT(error_of(use), HasSubstr("stream handle is closed or stale"));

  // The slot is reused by the next stream; the old handle must not reach it.
  const StreamHandle b = pool.open();
  EXPECT_EQ(b.slot, a.slot);
  EXPECT_NE(b.generation, a.generation);
  EXPECT_THAT(error_of([&] { pool.feed(a, t.data(), t.size()); }), HasSubstr("stream handle is closed or stale"));
  EXPECT_THAT(error_of([&] { pool.close(a); }), HasSubstr("stream handle is closed or stale"));
  EXPECT_EQ(pool.pending(b), 0u);
  EXPECT_THAT(error_of([&] { pool.pending(StreamHandle{99, 0}); }), HasSubstr("stream handle is closed or stale"));
  EXPECT_EQ(pool.open_count(), 1);
}

TEST(StreamPool, BadTokenIdLeavesQueuesUnchanged) {
  auto model = make_model();
  StreamPool pool(*model);
  const StreamHandle a = pool.open();
  const std::vector<int32_t> good = {1, 2, 3};
  pool.feed(a, good.data(), good.size());
  const std::vector<int32_t> bad = {4, 5, int32_t(kVocab)};
  EXPECT_EQ(error_of([&] { pool.feed(a, bad.data(), bad.size()); }), "token id 40 out of range [0, 40)");
  const int32_t negative = -1;
  EXPECT_EQ(error_of([&] { pool.feed(a, &negative, 1); }), "token id -1 out of range [0, 40)");
  EXPECT_EQ(pool.pending(a), 3u);

  // The queue still holds exactly the good tokens.
  std::map<uint32_t, std::vector<float>> out;
  drain(pool, out);
  expect_close(out[a.slot], solo(good), "stream a");
}

TEST(StreamPool, ForkContinuesLikeTheOriginal) {
  auto model = make_model();
  StreamPool pool(*model);
  const auto all = ids(12, 3);
  const std::vector<int32_t> head(all.begin(), all.begin() + 7), tail(all.begin() + 7, all.end());

  const StreamHandle a = pool.open();
  pool.feed(a, head.data(), head.size());
  std::map<uint32_t, std::vector<float>> out;
  drain(pool, out);

  const StreamHandle b = pool.fork(a);
  EXPECT_NE(b.slot, a.slot);
  EXPECT_EQ(pool.pending(b), 0u);
  out.clear();
  pool.feed(a, tail.data(), tail.size());
  pool.feed(b, tail.data(), tail.size());
  drain(pool, out);

  const auto want = solo(all);
  const std::vector<float> want_tail(want.begin() + ptrdiff_t(head.size()) * kVocab, want.end());
  expect_close(out[a.slot], want_tail, "original");
  expect_close(out[b.slot], want_tail, "fork");
}

TEST(StreamPool, SnapshotRestoreContinuesLikeAStraightRun) {
  auto model = make_model();
  StreamPool pool(*model);
  const auto all = ids(10, 5);
  const std::vector<int32_t> head(all.begin(), all.begin() + 4), tail(all.begin() + 4, all.end());

  const StreamHandle a = pool.open();
  pool.feed(a, head.data(), head.size());
  std::map<uint32_t, std::vector<float>> out;
  drain(pool, out);
  const auto blob = pool.snapshot(a);
  pool.close(a);

  // A bad blob opens nothing.
  std::vector<uint8_t> broken = blob;
  broken[broken.size() / 2] ^= 0x5a;
  EXPECT_NE(error_of([&] { pool.restore(broken.data(), broken.size()); }), "(no error)");
  EXPECT_EQ(pool.open_count(), 0);

  const StreamHandle b = pool.restore(blob.data(), blob.size());
  EXPECT_EQ(pool.open_count(), 1);
  out.clear();
  pool.feed(b, tail.data(), tail.size());
  drain(pool, out);
  const auto want = solo(all);
  expect_close(out[b.slot], std::vector<float>(want.begin() + ptrdiff_t(head.size()) * kVocab, want.end()), "restored");
}

TEST(StreamPool, ConcurrentFeedersWhileStepping) {
  auto model = make_model();
  StreamPool pool(*model);
  constexpr int kThreads = 4, kTokens = 50;
  std::vector<StreamHandle> handles;
  std::vector<std::vector<int32_t>> tokens;
  for (int i = 0; i < kThreads; ++i) {
    handles.push_back(pool.open());
    tokens.push_back(ids(kTokens, 10 + i));
  }

  std::atomic<int> finished{0};
  std::vector<std::thread> feeders;
  for (int i = 0; i < kThreads; ++i)
    feeders.emplace_back([&, i] {
      for (int32_t t : tokens[size_t(i)]) {
        pool.feed(handles[size_t(i)], &t, 1);
        std::this_thread::yield();
      }
      finished++;
    });

  std::map<uint32_t, std::vector<float>> out;
  // Step until every feeder is done and every queue is empty.
  for (;;) {
    const bool all_fed = finished.load() == kThreads;
    auto results = pool.step();
    for (auto& r : results) out[r.stream.slot].insert(out[r.stream.slot].end(), r.logits.begin(), r.logits.end());
    if (all_fed && results.empty()) break;
  }
  for (auto& f : feeders) f.join();

  for (int i = 0; i < kThreads; ++i) {
    EXPECT_EQ(pool.pending(handles[size_t(i)]), 0u);
    expect_close(out[handles[size_t(i)].slot], solo(tokens[size_t(i)]), "stream " + std::to_string(i));
  }
}

TEST(StreamPool, StepWithoutLogitsStillAdvances) {
  auto model = make_model();
  StreamPool pool(*model);
  const auto all = ids(6, 2);
  const StreamHandle a = pool.open();
  pool.feed(a, all.data(), 3);
  while (!pool.step(false).empty()) {
  }
  pool.feed(a, all.data() + 3, 3);
  auto r = pool.step(true);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].token_fed, all[3]);
  const auto want = solo(all);
  EXPECT_LT(max_rel_error(r[0].logits.data(), want.data() + 3 * kVocab, kVocab), 1e-3f);
  EXPECT_TRUE(pool.step(true).size() == 1u);
}

TEST(StreamPool, ManyOpenCloseAndForkCycles) {
  // The CPU backend: the cycles test the pool's bookkeeping, not the device copies.
  auto model = make_model(BackendKind::Cpu);
  StreamPool pool(*model);
  for (int i = 0; i < 10000; ++i) {
    const StreamHandle h = pool.open();
    if (i % 7 == 0) {
      const int32_t t = int32_t(i % kVocab);
      pool.feed(h, &t, 1);
    }
    pool.close(h);
  }
  EXPECT_EQ(pool.open_count(), 0);
  for (int i = 0; i < 1000; ++i) {
    const StreamHandle a = pool.open();
    const StreamHandle b = pool.fork(a);
    pool.close(a);
    pool.close(b);
  }
  EXPECT_EQ(pool.open_count(), 0);
  EXPECT_TRUE(pool.step().empty());
}

}  // namespace
}  // namespace vkssm

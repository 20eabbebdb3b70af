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
#include "host/sampling.h"
#include "models/mamba1/mamba1_model.h"
#include "models/s4d/s4d_model.h"
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

std::unique_ptr<Model> make_model(BackendKind backend = BackendKind::Vulkan, int streams = 4, int rollback = 0) {
  LoadOptions opt;
  opt.backend = backend;
  opt.max_streams = streams;
  opt.rollback_depth = rollback;
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
  const float frame = 0.0f;
  for (auto use : std::vector<std::function<void()>>{
           [&] { pool.close(a); }, [&] { pool.reset(a); }, [&] { pool.fork(a); },
           [&] { pool.snapshot(a); }, [&] { pool.feed(a, t.data(), t.size()); }, [&] { pool.pending(a); },
           [&] { pool.rollback(a, 0); }, [&] { pool.rollback_available(a); }, [&] { pool.prefill(a); },
           [&] { pool.set_sampling(a, SamplingParams{}); }, [&] { pool.feed_frames(a, &frame, 1); }})
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
  auto model = make_model(BackendKind::Reference);
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

// ---- sampling, prefill, rollback: both backends -------------------------------------------------

class PoolFeatures : public testing::TestWithParam<BackendKind> {};

// step_sample() is one Model::step_sample per pool step with each stream's own parameters: a twin
// model given the same calls returns the same ids and logits, bit for bit. With feed_back a stream
// goes through its prompt first, then is fed the token sampled at the step before.
TEST_P(PoolFeatures, StepSampleIsOneModelStepSampleWithEachStreamsParameters) {
  auto model = make_model(GetParam());
  auto twin = make_model(GetParam());
  StreamPool pool(*model);
  const std::vector<SamplingParams> params = {{0.0f, 0, 1}, {0.9f, 0, 42}, {1.2f, 5, 7}};
  const std::vector<std::vector<int32_t>> prompts = {ids(3, 1), ids(1, 2), ids(5, 3)};
  std::vector<StreamHandle> h;
  for (size_t i = 0; i < 3; ++i) {
    h.push_back(pool.open());
    ASSERT_EQ(h[i].slot, i);
    pool.set_sampling(h[i], params[i]);
    pool.feed(h[i], prompts[i].data(), prompts[i].size());
  }
  std::vector<size_t> read(3, 0);
  std::vector<int32_t> last_sampled(3, -1);
  for (int t = 0; t < 8; ++t) {
    const auto results = pool.step_sample({.want_logits = true, .feed_back = true});
    ASSERT_EQ(results.size(), 3u) << "step " << t;
    std::vector<int32_t> tokens, slots, next(3, -1);
    std::vector<SamplingParams> ps;
    for (const StepResult& r : results) {
      tokens.push_back(r.token_fed);
      slots.push_back(int32_t(r.stream.slot));
      ps.push_back(params[r.stream.slot]);
    }
    std::vector<float> logits(3 * kVocab);
    twin->step_sample(tokens.data(), slots.data(), 3, ps.data(), next.data(), logits.data());
    for (size_t b = 0; b < 3; ++b) {
      const StepResult& r = results[b];
      const size_t i = r.stream.slot;
      EXPECT_EQ(r.stream, h[i]);
      EXPECT_EQ(r.sampled, next[b]) << "step " << t << " stream " << i;
      EXPECT_EQ(r.logits, std::vector<float>(logits.begin() + ptrdiff_t(b * kVocab),
                                             logits.begin() + ptrdiff_t((b + 1) * kVocab)));
      if (read[i] < prompts[i].size()) {
        EXPECT_EQ(r.token_fed, prompts[i][read[i]++]) << "step " << t << " stream " << i;
      } else {
        EXPECT_EQ(r.token_fed, last_sampled[i]) << "step " << t << " stream " << i;
      }
      last_sampled[i] = r.sampled;
      // A prompt token still queued comes first; otherwise exactly the sampled token is queued.
      EXPECT_EQ(pool.pending(h[i]), std::max<size_t>(prompts[i].size() - read[i], 1));
    }
  }
}

TEST_P(PoolFeatures, StepSampleDefaultsAndErrors) {
  auto model = make_model(GetParam());
  StreamPool pool(*model);
  const StreamHandle a = pool.open();
  const auto toks = ids(3, 7);
  pool.feed(a, toks.data(), toks.size());
  // A stream's default is greedy; logits only when asked for; no feed_back: the queue drains.
  auto r = pool.step_sample();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_TRUE(r[0].logits.empty());
  EXPECT_EQ(r[0].token_fed, toks[0]);
  r = pool.step_sample({.want_logits = true});
  ASSERT_EQ(r.size(), 1u);
  ASSERT_EQ(r[0].logits.size(), size_t(kVocab));
  EXPECT_EQ(r[0].sampled, argmax(r[0].logits.data(), int(kVocab)));
  EXPECT_EQ(pool.step(false).at(0).sampled, -1);  // step() samples nothing
  EXPECT_TRUE(pool.step_sample().empty());

  EXPECT_EQ(error_of([&] { pool.set_sampling(a, {-1.0f, 0, 0}); }),
            "sampling temperature must be finite and >= 0 (got -1.000000)");
  EXPECT_EQ(error_of([&] { pool.set_sampling(a, {1.0f, -3, 0}); }), "sampling top_k must be >= 0 (got -3)");
  if (GetParam() == BackendKind::Vulkan) {
    EXPECT_EQ(error_of([&] { pool.set_sampling(a, {1.0f, 257, 0}); }),
              "sampling top_k 257 exceeds the device sampler's limit of 256");
  }
  pool.set_sampling(a, {0.0f, 1000, 0});  // greedy ignores top_k

  // A fork takes the stream's sampling parameters (and the model's draw counter): fed the same
  // token, both pick the same one.
  pool.set_sampling(a, {1.5f, 0, 99});
  const StreamHandle b = pool.fork(a);
  const int32_t tok = 5;
  pool.feed(a, &tok, 1);
  pool.feed(b, &tok, 1);
  r = pool.step_sample();
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].sampled, r[1].sampled);
  // Re-opened slots start greedy again.
  pool.close(b);
  const StreamHandle c = pool.open();
  pool.feed(c, &tok, 1);
  r = pool.step_sample({.want_logits = true});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].sampled, argmax(r[0].logits.data(), int(kVocab)));
}

// prefill() leaves the state stepping leaves, in fewer submits, and keeps the last token queued
// for the next batched step.
TEST_P(PoolFeatures, PrefillRunsAllButTheLastQueuedToken) {
  auto model = make_model(GetParam());
  auto stepped = make_model(GetParam());
  StreamPool pool(*model), ref(*stepped);
  const auto prompt = ids(20, 4), other = ids(3, 5);
  const StreamHandle a = pool.open(), b = pool.open();
  pool.feed(a, prompt.data(), prompt.size());
  pool.feed(b, other.data(), other.size());
  const StepCounters before = model->counters();
  EXPECT_EQ(pool.prefill(a), 19u);
  const StepCounters after = model->counters();
  EXPECT_EQ(after.steps - before.steps, 19u);
  if (GetParam() == BackendKind::Vulkan) {
    EXPECT_EQ(after.submits - before.submits, 1u);
  }
  EXPECT_EQ(pool.pending(a), 1u);
  EXPECT_EQ(pool.pending(b), 3u);
  EXPECT_EQ(pool.prefill(a), 0u);  // one token left: nothing to prefill
  EXPECT_EQ(pool.prefill(b), 2u);

  const StreamHandle ra = ref.open();
  ref.feed(ra, prompt.data(), 19);
  while (!ref.step(false).empty()) {
  }
  EXPECT_EQ(pool.snapshot(a), ref.snapshot(ra));

  const auto results = pool.step();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].token_fed, prompt[19]);
  EXPECT_EQ(results[1].token_fed, other[2]);
  const auto want = solo(prompt);
  expect_close(results[0].logits, std::vector<float>(want.end() - kVocab, want.end()), "prefilled stream");
  const auto want_b = solo(other);
  expect_close(results[1].logits, std::vector<float>(want_b.end() - kVocab, want_b.end()), "other stream");
  EXPECT_EQ(pool.prefill(a), 0u);  // empty queue
}

TEST_P(PoolFeatures, RollbackUndoesAStreamsSteps) {
  auto model = make_model(GetParam(), 4, 3);
  StreamPool pool(*model);
  const StreamHandle a = pool.open();
  const auto toks = ids(5, 6);
  pool.feed(a, toks.data(), toks.size());
  for (int t = 0; t < 3; ++t) pool.step(false);
  const auto after3 = pool.snapshot(a);
  while (!pool.step(false).empty()) {
  }
  EXPECT_EQ(pool.rollback_available(a), 3);
  const int32_t queued = 9;
  pool.feed(a, &queued, 1);
  pool.rollback(a, 2);
  EXPECT_EQ(pool.snapshot(a), after3);
  EXPECT_EQ(pool.pending(a), 1u);  // input is not part of the rollback
  EXPECT_EQ(pool.rollback_available(a), 1);

  EXPECT_EQ(error_of([&] { pool.rollback(a, 2); }),
            "rollback of 2 steps on slot 0: only 1 steps since its last reset, restore or fork");
  EXPECT_EQ(error_of([&] { pool.rollback(a, 4); }),
            "rollback of 4 steps on slot 0 exceeds the rollback depth of 3 (LoadOptions::rollback_depth)");
  EXPECT_EQ(error_of([&] { pool.rollback(a, -1); }), "rollback of -1 steps: must be >= 0");
  EXPECT_EQ(pool.snapshot(a), after3);
  const StreamHandle b = pool.fork(a);
  EXPECT_EQ(pool.rollback_available(b), 0);
  pool.reset(a);
  EXPECT_EQ(pool.rollback_available(a), 0);
}

TEST_P(PoolFeatures, FramesOnATokenModelAreRefused) {
  auto model = make_model(GetParam());
  StreamPool pool(*model);
  const StreamHandle a = pool.open();
  const float frame[2] = {0.5f, 1.0f};
  EXPECT_EQ(error_of([&] { pool.feed_frames(a, frame, 1); }),
            "feed_frames: model 'mamba' takes token ids (feed), not input frames");
  EXPECT_EQ(pool.pending(a), 0u);
  EXPECT_TRUE(pool.step().empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, PoolFeatures, testing::Values(BackendKind::Reference, BackendKind::Vulkan),
                         [](const testing::TestParamInfo<BackendKind>& i) {
                           return std::string(i.param == BackendKind::Reference ? "Cpu" : "Vulkan");
                         });

// ---- frame models (S4D, cpu backend) ------------------------------------------------------------

S4DConfig frame_config() {
  S4DConfig c;
  c.d_input = 3;
  c.d_model = 8;
  c.d_state = 4;
  c.n_layers = 2;
  c.d_output = 5;
  return c;
}

TEST(StreamPoolFrames, QueuedFramesStepLikeTheReference) {
  const S4DWeights w = random_s4d(frame_config(), 3);
  LoadOptions opt;
  opt.backend = BackendKind::Reference;
  opt.max_streams = 3;
  auto model = create_s4d(w, opt);
  StreamPool pool(*model);
  const int64_t I = w.cfg.d_input, O = w.cfg.d_output;

  std::vector<std::vector<float>> frames(2);
  for (size_t s = 0; s < 2; ++s)
    for (int64_t k = 0; k < (s == 0 ? 4 : 2) * I; ++k) frames[s].push_back(0.1f * float((k * 7 + int64_t(s) * 5) % 11) - 0.5f);
  const StreamHandle a = pool.open(), b = pool.open();
  pool.feed_frames(a, frames[0].data(), 1);  // in two parts: the queue holds whole frames
  pool.feed_frames(a, frames[0].data() + I, 3);
  pool.feed_frames(b, frames[1].data(), 2);
  EXPECT_EQ(pool.pending(a), 4u);
  EXPECT_EQ(pool.pending(b), 2u);

  std::vector<std::vector<float>> got(2);
  int steps = 0;
  for (;; ++steps) {
    const auto results = pool.step();
    if (results.empty()) break;
    for (const StepResult& r : results) {
      EXPECT_EQ(r.token_fed, -1);
      EXPECT_EQ(r.sampled, -1);
      ASSERT_EQ(r.logits.size(), size_t(O));
      got[r.stream.slot].insert(got[r.stream.slot].end(), r.logits.begin(), r.logits.end());
    }
  }
  EXPECT_EQ(steps, 4);
  // The cpu backend is the reference itself: equal bit for bit.
  S4DCpuReference ref(w);
  for (size_t s = 0; s < 2; ++s) {
    std::vector<float> state(ref.state_floats(), 0.0f), want;
    for (size_t f = 0; f < frames[s].size() / size_t(I); ++f) {
      std::vector<float> out(static_cast<size_t>(O));
      ref.step(state.data(), frames[s].data() + f * size_t(I), out.data());
      want.insert(want.end(), out.begin(), out.end());
    }
    EXPECT_EQ(got[s], want) << "stream " << s;
  }

  // A frame model takes no tokens.
  const int32_t tok = 1;
  EXPECT_EQ(error_of([&] { pool.feed(a, &tok, 1); }),
            "feed: model 's4d' takes input frames (feed_frames), not token ids");
  EXPECT_EQ(error_of([&] { pool.step_sample(); }),
            "step_sample: model 's4d' takes input frames and has no tokens to sample; use step()");
  EXPECT_EQ(error_of([&] { pool.prefill(a); }), "prefill: model 's4d' takes input frames, not a token prompt");
  EXPECT_EQ(error_of([&] { pool.feed_frames(a, nullptr, 1); }), "feed_frames: frames is null but n = 1");
  EXPECT_EQ(pool.pending(a), 0u);
  pool.feed_frames(a, frames[0].data(), 1);
  const auto r = pool.step(false);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_TRUE(r[0].logits.empty());
}

}  // namespace
}  // namespace vkssm

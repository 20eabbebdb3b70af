// Per-stream state snapshot / restore / fork and state files, on both backends: a stream that
// is saved and restored (or forked) continues exactly like one that never stopped.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/vkssm.hpp"
#include "host/npy.h"
#include "host/state_file.h"
#include "models/mamba1/mamba1_model.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

namespace fs = std::filesystem;
using testing::HasSubstr;
using testing::StartsWith;
using testing_helpers::error_of;
using testing_helpers::max_rel_error;

constexpr int64_t kVocab = 40;

Mamba1Config small_config() { return testing_helpers::small_mamba1_config(kVocab); }

std::unique_ptr<Model> make_model(BackendKind backend, uint64_t seed = 7, int streams = 4) {
  LoadOptions opt;
  opt.backend = backend;
  opt.max_streams = streams;
  return create_mamba1(random_mamba1(small_config(), seed), opt);
}

std::vector<int32_t> ids(int n, int salt) {
  std::vector<int32_t> v(n);
  for (int i = 0; i < n; ++i) v[i] = int32_t((i * 7 + salt * 13 + 3) % kVocab);
  return v;
}

// Feeds `tokens` to `slot` one at a time; returns the logits [T][V].
std::vector<float> feed(Model& m, int slot, const std::vector<int32_t>& tokens) {
  std::vector<float> out(tokens.size() * kVocab);
  for (size_t t = 0; t < tokens.size(); ++t) m.step(&tokens[t], &slot, 1, out.data() + t * kVocab);
  return out;
}

std::vector<int32_t> slice(const std::vector<int32_t>& v, size_t from, size_t to) {
  return std::vector<int32_t>(v.begin() + from, v.begin() + to);
}

// The logits of positions [from, end) of `all`.
std::vector<float> tail_of(const std::vector<float>& all, size_t from) {
  return std::vector<float>(all.begin() + from * kVocab, all.end());
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, float tol) {
  ASSERT_EQ(got.size(), want.size());
  EXPECT_LT(max_rel_error(got.data(), want.data(), int64_t(want.size())), tol);
}

class StateTest : public testing::TestWithParam<BackendKind> {};

TEST_P(StateTest, RestoredStreamContinuesLikeTheStraightRun) {
  const std::vector<int32_t> doc = ids(32, 1);
  auto straight = make_model(GetParam());
  const std::vector<float> want = tail_of(feed(*straight, 0, doc), 20);

  auto m = make_model(GetParam());
  feed(*m, 0, slice(doc, 0, 20));
  const std::vector<uint8_t> blob = m->snapshot(0);
  // magic, version, header bytes, fingerprint, "mamba", 4 dims, payload bytes, payload, checksum
  EXPECT_EQ(blob.size(), 8 + 4 + 4 + 8 + (4 + 5) + (4 + 4 * 8) + 8 + m->info().state_bytes_per_stream + 8);

  m->restore(3, blob.data(), blob.size());  // another slot of the same model
  expect_close(feed(*m, 3, slice(doc, 20, 32)), want, 1e-5f);
  auto other = make_model(GetParam());      // a fresh model
  other->restore(1, blob.data(), blob.size());
  expect_close(feed(*other, 1, slice(doc, 20, 32)), want, 1e-5f);
  expect_close(feed(*m, 0, slice(doc, 20, 32)), want, 1e-5f);  // the snapshot left slot 0 alone
}

TEST_P(StateTest, ForkedStreamsFollowTheirOwnContinuations) {
  const std::vector<int32_t> prefix = ids(10, 2), cont_a = ids(8, 3), cont_b = ids(8, 4);
  auto run_straight = [&](const std::vector<int32_t>& cont) {
    auto m = make_model(GetParam());
    std::vector<int32_t> all = prefix;
    all.insert(all.end(), cont.begin(), cont.end());
    return tail_of(feed(*m, 0, all), prefix.size());
  };
  const std::vector<float> want_a = run_straight(cont_a), want_b = run_straight(cont_b);

  auto m = make_model(GetParam());
  feed(*m, 0, prefix);
  m->fork(0, 2);
  m->fork(0, 0);  // a no-op
  std::vector<float> got_a(cont_a.size() * kVocab), got_b(cont_b.size() * kVocab), both(2 * kVocab);
  const int32_t slots[2] = {0, 2};
  for (size_t t = 0; t < cont_a.size(); ++t) {
    const int32_t tokens[2] = {cont_a[t], cont_b[t]};
    m->step(tokens, slots, 2, both.data());
    std::memcpy(got_a.data() + t * kVocab, both.data(), kVocab * 4);
    std::memcpy(got_b.data() + t * kVocab, both.data() + kVocab, kVocab * 4);
  }
  expect_close(got_a, want_a, 1e-5f);
  expect_close(got_b, want_b, 1e-5f);
}

TEST_P(StateTest, FreshSlotIsZerosAndRestoringItMakesASlotFresh) {
  auto m = make_model(GetParam());
  const std::vector<int32_t> doc = ids(6, 5);
  feed(*m, 1, doc);
  m->reset(1);
  const std::vector<uint8_t> zeros = m->snapshot(1);
  const std::vector<float> payload = decode_state(zeros.data(), zeros.size(),
      {mamba1_fingerprint(random_mamba1(small_config(), 7)), "mamba", {2, 32, 4, 4}, 2 * 32 * (4 + 4)});
  for (float x : payload) ASSERT_EQ(x, 0.0f);

  auto fresh = make_model(GetParam());
  const std::vector<float> want = feed(*fresh, 0, doc);
  feed(*m, 0, ids(5, 6));
  m->restore(0, zeros.data(), zeros.size());
  expect_close(feed(*m, 0, doc), want, 1e-5f);
  // Forking a fresh slot over a used one makes it fresh too.
  feed(*m, 2, ids(5, 6));
  m->fork(1, 2);
  expect_close(feed(*m, 2, doc), want, 1e-5f);
}

TEST_P(StateTest, BadStatesAreRejectedAndChangeNothing) {
  auto m = make_model(GetParam());
  const std::vector<int32_t> doc = ids(16, 7);
  auto straight = make_model(GetParam());
  const std::vector<float> want = tail_of(feed(*straight, 0, doc), 8);
  feed(*m, 0, slice(doc, 0, 8));
  feed(*m, 1, slice(doc, 0, 8));
  const std::vector<uint8_t> good = m->snapshot(0);

  auto rejected = [&](std::vector<uint8_t> blob) {
    std::string e = error_of([&] { m->restore(0, blob.data(), blob.size()); });
    EXPECT_THAT(e, StartsWith("state: "));
    return e;
  };
  for (size_t pos : {size_t(0), size_t(9), size_t(13), size_t(17), size_t(30), size_t(50), good.size() / 2,
                     good.size() - 9, good.size() - 1}) {
    std::vector<uint8_t> bad = good;
    bad[pos] ^= 0x20;
    SCOPED_TRACE("flipped byte " + std::to_string(pos));
    rejected(bad);
  }
  std::vector<uint8_t> payload_flip = good;
  payload_flip[good.size() / 2] ^= 1;
  EXPECT_THAT(rejected(payload_flip), HasSubstr("state: checksum mismatch: the data is corrupt"));
  EXPECT_THAT(rejected(std::vector<uint8_t>(good.begin(), good.end() - 1)), HasSubstr("truncated"));
  EXPECT_THAT(rejected({'V', 'K', 'S'}), HasSubstr("too small"));
  EXPECT_THAT(rejected({}), HasSubstr("too small"));

  std::vector<uint8_t> v2 = good;
  const uint32_t two = 2;
  std::memcpy(v2.data() + 8, &two, 4);
  const uint64_t sum = fnv1a64(v2.data(), v2.size() - 8);
  std::memcpy(v2.data() + v2.size() - 8, &sum, 8);
  EXPECT_THAT(rejected(v2), HasSubstr("state: format version 2 is not supported (this vkssm reads version 1)"));

  auto other = make_model(GetParam(), 8);
  feed(*other, 0, ids(3, 1));
  EXPECT_THAT(rejected(other->snapshot(0)), HasSubstr("state: saved from a different model"));
  EXPECT_THAT(error_of([&] { m->restore(4, good.data(), good.size()); }), HasSubstr("slot 4 out of range [0, 4)"));
  EXPECT_THAT(error_of([&] { (void)m->snapshot(-1); }), HasSubstr("slot -1 out of range [0, 4)"));
  EXPECT_THAT(error_of([&] { m->fork(0, 4); }), HasSubstr("slot 4 out of range [0, 4)"));

  // Nothing changed: both streams continue as if no restore had been tried.
  expect_close(feed(*m, 1, slice(doc, 8, 16)), want, 1e-5f);
  expect_close(feed(*m, 0, slice(doc, 8, 16)), want, 1e-5f);
}

INSTANTIATE_TEST_SUITE_P(Backends, StateTest, testing::Values(BackendKind::Vulkan, BackendKind::Cpu),
                         [](const testing::TestParamInfo<BackendKind>& i) {
                           return std::string(i.param == BackendKind::Vulkan ? "Vulkan" : "Cpu");
                         });

TEST(StateCrossBackend, SnapshotsMoveBetweenCpuAndVulkan) {
  const std::vector<int32_t> doc = ids(24, 8);
  auto straight = make_model(BackendKind::Cpu);
  const std::vector<float> want = tail_of(feed(*straight, 0, doc), 14);
  for (bool cpu_first : {true, false}) {
    SCOPED_TRACE(cpu_first ? "cpu -> vulkan" : "vulkan -> cpu");
    auto a = make_model(cpu_first ? BackendKind::Cpu : BackendKind::Vulkan);
    auto b = make_model(cpu_first ? BackendKind::Vulkan : BackendKind::Cpu);
    feed(*a, 0, slice(doc, 0, 14));
    const std::vector<uint8_t> blob = a->snapshot(0);
    b->restore(2, blob.data(), blob.size());
    expect_close(feed(*b, 2, slice(doc, 14, 24)), want, 1e-4f);
  }
}

TEST(StateFile, RoundTripAndMissingFile) {
  const fs::path dir = fs::path(testing::TempDir()) / ("vkssm_state_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto m = make_model(BackendKind::Cpu);
  feed(*m, 0, ids(5, 9));
  const std::vector<uint8_t> blob = m->snapshot(0);
  const std::string path = (dir / "s.vkstate").string();
  save_state_file(path, blob);
  EXPECT_EQ(load_state_file(path), blob);
  const std::string missing = (dir / "missing.vkstate").string();
  EXPECT_THAT(error_of([&] { load_state_file(missing); }), HasSubstr(missing));
  EXPECT_THAT(error_of([&] { save_state_file((dir / "no" / "x").string(), blob); }),
              HasSubstr((dir / "no" / "x").string()));
  fs::remove_all(dir);
}

// `vkssm logits --save-state` then `--load-state` with the remaining ids equals one run.
TEST(StateCli, SaveThenLoadEqualsOneRun) {
  const fs::path dir = fs::path(testing::TempDir()) / ("vkssm_state_cli_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string model = (dir / "model").string();
  save_mamba1_hf(random_mamba1(small_config(), 7), model, DType::F32);
  const std::string cli = (fs::read_symlink("/proc/self/exe").parent_path() / "vkssm").string();
  auto run = [&](const std::string& args) {
    const std::string cmd = "'" + cli + "' logits --backend cpu --model '" + model + "' " + args + " >'" +
                            (dir / "log").string() + "' 2>&1";
    const int status = std::system(cmd.c_str());
    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  const std::string state = (dir / "s.vkstate").string();
  ASSERT_EQ(run("--ids 1,2,3,4,5,6,7 --out '" + (dir / "all.npy").string() + "'"), 0);
  ASSERT_EQ(run("--ids 1,2,3,4 --out '" + (dir / "a.npy").string() + "' --save-state '" + state + "'"), 0);
  ASSERT_EQ(run("--ids 5,6,7 --out '" + (dir / "b.npy").string() + "' --load-state '" + state + "'"), 0);
  const NpyArray all = read_npy_f32((dir / "all.npy").string());
  const NpyArray b = read_npy_f32((dir / "b.npy").string());
  ASSERT_EQ(b.shape, (std::vector<int64_t>{3, kVocab}));
  EXPECT_EQ(b.data, std::vector<float>(all.data.begin() + 4 * kVocab, all.data.end()));
  EXPECT_EQ(run("--ids 1 --ids 2 --out '" + (dir / "o").string() + "' --save-state '" + state + "'"), 2);
  EXPECT_EQ(run("--ids 1 --out '" + (dir / "c.npy").string() + "' --load-state '" + (dir / "none").string() + "'"), 1);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace vkssm

// State files: a snapshot blob to and from a file, and `vkssm logits --save-state / --load-state`.
// (Snapshot, restore and fork themselves are part of the cross-architecture contract,
// tests/test_contract.cpp, for every architecture on both backends.)
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
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
using testing_helpers::error_of;

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

TEST(StateFile, RoundTripAndMissingFile) {
  const fs::path dir = fs::path(testing::TempDir()) / ("vkssm_state_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto m = make_model(BackendKind::Reference);
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
    const std::string cmd = "'" + cli + "' logits --backend reference --model '" + model + "' " + args + " >'" +
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

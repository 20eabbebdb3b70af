// The `vkssm` command-line tool, run as a separate process: exit codes, messages, and that
// `vkssm logits` writes exactly what the library computes.
//
// The binary is $VKSSM_CLI, else `vkssm` next to this test binary (both are built into bin/).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/vkssm.hpp"
#include "host/npy.h"
#include "host/sampling.h"
#include "models/mamba1/mamba1_model.h"

namespace vkssm {
namespace {

namespace fs = std::filesystem;
using testing::HasSubstr;

std::string cli_path() {
  if (const char* env = std::getenv("VKSSM_CLI"); env && *env) return env;
  return (fs::read_symlink("/proc/self/exe").parent_path() / "vkssm").string();
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct CliResult {
  int code = -1;  // exit status; -1 when the process did not exit normally (a crash)
  std::string out, err;
};

class CliTest : public testing::Test {
 protected:
  void SetUp() override {
    const testing::TestInfo* t = testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(testing::TempDir()) /
           ("vkssm_cli_" + std::to_string(::getpid()) + "_" + t->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  CliResult run(const std::vector<std::string>& args) {
    std::string cmd = shell_quote(cli_path());
    // (Appending piece by piece: `" " + std::string&&` trips a GCC 12 -Wrestrict false positive.)
    for (const std::string& a : args) cmd.append(" ").append(shell_quote(a));
    cmd.append(" >").append(shell_quote((dir_ / "stdout").string()));
    cmd.append(" 2>").append(shell_quote((dir_ / "stderr").string()));
    int status = std::system(cmd.c_str());
    CliResult r;
    if (status != -1 && WIFEXITED(status)) r.code = WEXITSTATUS(status);
    r.out = read_text(dir_ / "stdout");
    r.err = read_text(dir_ / "stderr");
    return r;
  }

  // A small random Mamba-1 checkpoint in f32 (vocabulary 40), without a tokenizer.
  std::string make_model() {
    Mamba1Config cfg;
    cfg.d_model = 16;
    cfg.n_layer = 2;
    cfg.vocab_size = 40;
    cfg.d_state = 4;
    cfg.d_inner = 32;
    cfg.dt_rank = 2;
    std::string path = (dir_ / "model").string();
    save_mamba1_hf(random_mamba1(cfg, 7), path, DType::F32);
    return path;
  }

  // Runs three streams of lengths 3, 1 and 5 through `vkssm logits` (batches of 3, 2, 2, 1, 1 at
  // the successive positions) and compares each stream-i.npy with that stream run alone through
  // the library in a single slot. `rel_tol` 0 demands bit-identical values.
  void expect_streams_match_solo_runs(BackendKind backend, float rel_tol) {
    const std::string model_path = make_model();
    const std::vector<std::vector<int32_t>> streams = {{1, 2, 39}, {7}, {0, 5, 5, 12, 38}};
    const std::string out = (dir_ / "streams").string();  // does not exist yet: the tool creates it
    const std::string backend_name = backend == BackendKind::Cpu ? "cpu" : "vulkan";
    CliResult r = run({"logits", "--model", model_path, "--backend", backend_name, "--ids", "1,2,39",
                       "--ids", "7", "--ids", "0,5,5,12,38", "--out", out});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.err, testing::Not(HasSubstr("validation"))) << r.err;

    LoadOptions opt;
    opt.backend = backend;
    opt.max_streams = 1;
    std::unique_ptr<Model> model = load_model(model_path, opt);
    const int32_t slot = 0;
    for (size_t s = 0; s < streams.size(); ++s) {
      SCOPED_TRACE("stream " + std::to_string(s));
      const std::vector<int32_t>& ids = streams[s];
      model->reset(slot);
      std::vector<float> want(ids.size() * 40);
      for (size_t t = 0; t < ids.size(); ++t) model->step(&ids[t], &slot, 1, want.data() + t * 40);

      NpyArray got = read_npy_f32((fs::path(out) / ("stream-" + std::to_string(s) + ".npy")).string());
      ASSERT_EQ(got.shape, (std::vector<int64_t>{static_cast<int64_t>(ids.size()), 40}));
      if (rel_tol == 0.0f) {
        EXPECT_EQ(got.data, want);
        continue;
      }
      for (size_t i = 0; i < want.size(); ++i) {
        // Relative to the row's largest logit, so a value near zero is not held to 1e-5 of itself.
        const size_t row = i / 40 * 40;
        float scale = 0.0f;
        for (size_t j = row; j < row + 40; ++j) scale = std::max(scale, std::fabs(want[j]));
        ASSERT_NEAR(got.data[i], want[i], rel_tol * scale) << "position " << i / 40 << ", token " << i % 40;
      }
    }
    EXPECT_FALSE(fs::exists(fs::path(out) / "stream-3.npy"));
  }

  fs::path dir_;
};

TEST_F(CliTest, HelpPrintsUsageAndSucceeds) {
  CliResult r = run({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("Usage: vkssm COMMAND"));
  EXPECT_THAT(r.out, HasSubstr("generate"));
  for (const char* cmd : {"devices", "info", "logits", "generate"}) {
    CliResult c = run({cmd, "-h"});
    EXPECT_EQ(c.code, 0) << cmd;
    EXPECT_THAT(c.out, HasSubstr(std::string("Usage: vkssm ") + cmd)) << cmd;
    EXPECT_EQ(c.err, "") << cmd;
  }
  EXPECT_THAT(run({"logits", "--help"}).out, HasSubstr("--ids IDS"));
  EXPECT_THAT(run({"logits", "--help"}).out, HasSubstr("stream-0.npy"));
}

TEST_F(CliTest, NoArgumentsIsAUsageError) {
  CliResult r = run({});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("Usage: vkssm"));
}

TEST_F(CliTest, UnknownCommandIsAUsageError) {
  CliResult r = run({"frobnicate"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("unknown command 'frobnicate'"));
}

TEST_F(CliTest, BadOptionsAreUsageErrors) {
  CliResult r = run({"logits", "--model", "m", "--ids", "1", "--out", "x.npy", "--bogus", "1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("unknown option '--bogus'"));

  r = run({"logits", "--ids", "1", "--out", "x.npy"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("missing required option --model"));

  r = run({"logits", "--model"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("option --model requires a value"));

  r = run({"logits", "--model", "m", "--model", "m", "--ids", "1", "--out", "x.npy"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("given twice"));

  // --ids is the one option that may repeat (in logits; generate takes a single prompt).
  r = run({"logits", "--model", "m", "--ids", "1", "--out", "x.npy", "--out", "y.npy"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("option --out given twice"));

  r = run({"generate", "--model", "m", "--ids", "1", "--ids", "2", "-n", "1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("option --ids given twice"));

  r = run({"logits", "--model", "m", "--ids", "1", "--ids", "2,x", "--out", "d"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("bad item 'x'"));

  r = run({"logits", "--model", "m", "--ids", "1", "--out", "x.npy", "--backend", "metal"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--backend"));

  r = run({"generate", "--model", "m", "--ids", "1", "-n", "-1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("-n: expected an integer"));

  r = run({"generate", "--model", "m", "--ids", "1", "--prompt", "x", "-n", "1"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("exactly one of --ids and --prompt"));

  r = run({"generate", "--model", "m", "--ids", "1", "-n", "1", "--temperature", "nan"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--temperature"));
}

TEST_F(CliTest, MalformedIdsAreUsageErrorsNamingTheFlag) {
  for (const char* ids : {"1,,2", "abc", "", "1,", "-1", "1, 2", "99999999999"}) {
    CliResult r = run({"logits", "--model", "m", "--ids", ids, "--out", "x.npy"});
    EXPECT_EQ(r.code, 2) << "'" << ids << "'";
    EXPECT_THAT(r.err, HasSubstr("--ids")) << "'" << ids << "'";
  }
}

TEST_F(CliTest, MissingModelIsARuntimeErrorNamingThePath) {
  std::string missing = (dir_ / "no-such-model").string();
  CliResult r = run({"info", "--model", missing, "--backend", "cpu"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("vkssm: error:"));
  EXPECT_THAT(r.err, HasSubstr(missing));
}

TEST_F(CliTest, LogitsMatchTheLibraryExactly) {
  std::string model_path = make_model();
  std::string out = (dir_ / "logits.npy").string();
  const std::vector<int32_t> ids = {1, 2, 39, 0};
  CliResult r = run({"logits", "--model", model_path, "--backend", "cpu", "--ids", "1,2,39,0", "--out", out});
  ASSERT_EQ(r.code, 0) << r.err;

  NpyArray got = read_npy_f32(out);
  ASSERT_EQ(got.shape, (std::vector<int64_t>{4, 40}));

  LoadOptions opt;
  opt.backend = BackendKind::Cpu;
  std::unique_ptr<Model> model = load_model(model_path, opt);
  const int32_t slot = 0;
  std::vector<float> want(ids.size() * 40);
  for (size_t t = 0; t < ids.size(); ++t) model->step(&ids[t], &slot, 1, want.data() + t * 40);
  EXPECT_EQ(got.data, want);
}

TEST_F(CliTest, SeveralStreamsMatchEachStreamRunAloneOnCpu) {
  expect_streams_match_solo_runs(BackendKind::Cpu, 0.0f);
}

// Batch composition changes which shader path computes a row, so the GPU agrees to rounding.
TEST_F(CliTest, SeveralStreamsMatchEachStreamRunAloneOnVulkan) {
  expect_streams_match_solo_runs(BackendKind::Vulkan, 1e-5f);
}

TEST_F(CliTest, SeveralStreamsRefuseAnOutputThatIsAFile) {
  std::string model_path = make_model();
  std::string out = (dir_ / "taken").string();
  { std::ofstream(out) << "not a folder"; }
  CliResult r = run({"logits", "--model", model_path, "--backend", "cpu", "--ids", "1,2", "--ids", "3",
                     "--out", out});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("vkssm: error:"));
  EXPECT_THAT(r.err, HasSubstr("'" + out + "' exists and is not a folder"));
  EXPECT_EQ(read_text(out), "not a folder");
}

TEST_F(CliTest, SeveralStreamsReportAnIdPastTheVocabularyByStream) {
  std::string model_path = make_model();
  std::string out = (dir_ / "streams").string();
  CliResult r = run({"logits", "--model", model_path, "--backend", "cpu", "--ids", "1,2", "--ids", "3,40",
                     "--out", out});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("token id 40 at position 1 of stream 1 (--ids) is out of range"));
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(CliTest, TokenIdPastTheVocabularyIsReported) {
  std::string model_path = make_model();
  std::string out = (dir_ / "logits.npy").string();
  CliResult r = run({"logits", "--model", model_path, "--backend", "cpu", "--ids", "1,40", "--out", out});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("vkssm: error:"));
  EXPECT_THAT(r.err, HasSubstr("out of range"));
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(CliTest, GreedyGenerateFollowsTheArgmaxChain) {
  std::string model_path = make_model();
  CliResult r = run({"generate", "--model", model_path, "--backend", "cpu", "--ids", "3,5", "-n", "4"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("tokens/s"));

  LoadOptions opt;
  opt.backend = BackendKind::Cpu;
  std::unique_ptr<Model> model = load_model(model_path, opt);
  const int32_t slot = 0;
  std::vector<float> logits(40);
  std::string want = "3 5";
  for (int32_t id : {3, 5}) model->step(&id, &slot, 1, logits.data());
  for (int i = 0; i < 4; ++i) {
    int32_t next = argmax(logits.data(), 40);
    want.append(" ").append(std::to_string(next));
    model->step(&next, &slot, 1, logits.data());
  }
  EXPECT_EQ(r.out, want + "\n");
}

TEST_F(CliTest, SeededSamplingIsReproducible) {
  std::string model_path = make_model();
  std::vector<std::string> args = {"generate", "--model", model_path, "--backend", "cpu", "--ids", "1",
                                   "-n", "8", "--temperature", "1.5", "--top-k", "10", "--seed", "42"};
  CliResult a = run(args), b = run(args);
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
}

TEST_F(CliTest, PromptNeedsATokenizer) {
  std::string model_path = make_model();
  CliResult r = run({"generate", "--model", model_path, "--backend", "cpu", "--prompt", "hi", "-n", "1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("has no tokenizer"));
}

TEST_F(CliTest, InfoDescribesTheModel) {
  std::string model_path = make_model();
  CliResult r = run({"info", "--model", model_path, "--backend", "cpu"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("architecture:     mamba"));
  EXPECT_THAT(r.out, HasSubstr("vocabulary:       40"));
  EXPECT_THAT(r.out, HasSubstr("layers:           2"));
  EXPECT_THAT(r.out, HasSubstr("backend:          cpu"));
  EXPECT_THAT(r.out, HasSubstr("tokenizer:        none"));
}

TEST_F(CliTest, DevicesListsWithoutCrashing) {
  CliResult r = run({"devices"});
  EXPECT_EQ(r.code, 0) << r.err;
  // Each device is listed as "[index] name"; a machine without any says so.
  EXPECT_TRUE(r.out.rfind("[0] ", 0) == 0 || r.out == "no Vulkan devices found\n") << r.out;
}

}  // namespace
}  // namespace vkssm

// The `vkssm` command-line tool, run as a separate process: exit codes, messages, and that
// `vkssm logits` writes exactly what the library computes.
//
// The binary is $VKSSM_CLI, else `vkssm` next to this test binary (both are built into bin/).
#include <sys/wait.h>
#include <unistd.h>

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

// The `vkssm` command-line tool, run as a separate process: exit codes, messages, and that
// `vkssm logits` writes exactly what the library computes.
//
// The binary is $VKSSM_CLI, else `vkssm` next to this test binary (both are built into bin/).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/vk/device_profiles.h"
#include "engine/vkssm.hpp"
#include "host/npy.h"
#include "host/quant.h"
#include "host/sampling.h"
#include "models/mamba1/mamba1_model.h"
#include "tests/gguf_writer.h"

namespace vkssm {
namespace {

namespace fs = std::filesystem;
using testing::HasSubstr;
using testing::Not;

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

  // `input`, when given, is written to a file that becomes the tool's standard input.
  CliResult run(const std::vector<std::string>& args, const std::string* input = nullptr) {
    return run_env("", args, input);
  }
  // The same with `env` ("NAME=value NAME=value ", shell words) set for the tool only.
  CliResult run_env(const std::string& env, const std::vector<std::string>& args, const std::string* input = nullptr) {
    std::string cmd = env + shell_quote(cli_path());
    // (Appending piece by piece: `" " + std::string&&` trips a GCC 12 -Wrestrict false positive.)
    for (const std::string& a : args) cmd.append(" ").append(shell_quote(a));
    if (input) {
      std::ofstream(dir_ / "stdin", std::ios::binary) << *input;
      cmd.append(" <").append(shell_quote((dir_ / "stdin").string()));
    }
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
    const std::string backend_name = backend == BackendKind::Reference ? "reference" : "vulkan";
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

  r = run({"logits", "--model", "m", "--ids", "1", "--out", "x.npy", "--weights", "q5_0"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--weights: expected auto, f32, f16, q8_0, q4_0, q4_k, q5_k or q6_k, got 'q5_0'"));

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
  CliResult r = run({"info", "--model", missing, "--backend", "reference"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("vkssm: error:"));
  EXPECT_THAT(r.err, HasSubstr(missing));
}

TEST_F(CliTest, LogitsMatchTheLibraryExactly) {
  std::string model_path = make_model();
  std::string out = (dir_ / "logits.npy").string();
  const std::vector<int32_t> ids = {1, 2, 39, 0};
  CliResult r = run({"logits", "--model", model_path, "--backend", "reference", "--ids", "1,2,39,0", "--out", out});
  ASSERT_EQ(r.code, 0) << r.err;

  NpyArray got = read_npy_f32(out);
  ASSERT_EQ(got.shape, (std::vector<int64_t>{4, 40}));

  LoadOptions opt;
  opt.backend = BackendKind::Reference;
  std::unique_ptr<Model> model = load_model(model_path, opt);
  const int32_t slot = 0;
  std::vector<float> want(ids.size() * 40);
  for (size_t t = 0; t < ids.size(); ++t) model->step(&ids[t], &slot, 1, want.data() + t * 40);
  EXPECT_EQ(got.data, want);
}

TEST_F(CliTest, SeveralStreamsMatchEachStreamRunAloneOnCpu) {
  expect_streams_match_solo_runs(BackendKind::Reference, 0.0f);
}

// Batch composition changes which shader path computes a row, so the GPU agrees to rounding.
TEST_F(CliTest, SeveralStreamsMatchEachStreamRunAloneOnVulkan) {
  expect_streams_match_solo_runs(BackendKind::Vulkan, 1e-5f);
}

TEST_F(CliTest, SeveralStreamsRefuseAnOutputThatIsAFile) {
  std::string model_path = make_model();
  std::string out = (dir_ / "taken").string();
  { std::ofstream(out) << "not a folder"; }
  CliResult r = run({"logits", "--model", model_path, "--backend", "reference", "--ids", "1,2", "--ids", "3",
                     "--out", out});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("vkssm: error:"));
  EXPECT_THAT(r.err, HasSubstr("'" + out + "' exists and is not a folder"));
  EXPECT_EQ(read_text(out), "not a folder");
}

TEST_F(CliTest, SeveralStreamsReportAnIdPastTheVocabularyByStream) {
  std::string model_path = make_model();
  std::string out = (dir_ / "streams").string();
  CliResult r = run({"logits", "--model", model_path, "--backend", "reference", "--ids", "1,2", "--ids", "3,40",
                     "--out", out});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("token id 40 at position 1 of stream 1 (--ids) is out of range"));
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(CliTest, TokenIdPastTheVocabularyIsReported) {
  std::string model_path = make_model();
  std::string out = (dir_ / "logits.npy").string();
  CliResult r = run({"logits", "--model", model_path, "--backend", "reference", "--ids", "1,40", "--out", out});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("vkssm: error:"));
  EXPECT_THAT(r.err, HasSubstr("out of range"));
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(CliTest, GreedyGenerateFollowsTheArgmaxChain) {
  std::string model_path = make_model();
  CliResult r = run({"generate", "--model", model_path, "--backend", "reference", "--ids", "3,5", "-n", "4"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("tokens/s"));

  LoadOptions opt;
  opt.backend = BackendKind::Reference;
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
  std::vector<std::string> args = {"generate", "--model", model_path, "--backend", "reference", "--ids", "1",
                                   "-n", "8", "--temperature", "1.5", "--top-k", "10", "--seed", "42"};
  CliResult a = run(args), b = run(args);
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
}

TEST_F(CliTest, PromptNeedsATokenizer) {
  std::string model_path = make_model();
  CliResult r = run({"generate", "--model", model_path, "--backend", "reference", "--prompt", "hi", "-n", "1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("has no tokenizer"));
}

TEST_F(CliTest, InfoDescribesTheModel) {
  std::string model_path = make_model();
  CliResult r = run({"info", "--model", model_path, "--backend", "reference"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("architecture:     mamba"));
  EXPECT_THAT(r.out, HasSubstr("vocabulary:       40"));
  EXPECT_THAT(r.out, HasSubstr("layers:           2"));
  EXPECT_THAT(r.out, HasSubstr("backend:          reference"));
  EXPECT_THAT(r.out, HasSubstr("tokenizer:        none"));
}

// The memory plan of the tiny model (V 40, 2 layers, E 32, N 4, K 4: 2 x 32 x (4 + 4) floats =
// 2048 bytes of state a stream) for 3 streams with a rollback ring of 2 steps, on Vulkan.
TEST_F(CliTest, InfoPrintsTheMemoryPlan) {
  std::string model_path = make_model();
  CliResult r = run({"info", "--model", model_path, "--backend", "vulkan", "--streams", "3", "--rollback", "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("backend:          vulkan\nbackend reason:   requested\n"));
  LoadOptions opt;
  opt.backend = BackendKind::Vulkan;
  opt.max_streams = 3;
  opt.rollback_depth = 2;
  const MemoryPlan m = load_model(model_path, opt)->info().memory;
  ASSERT_EQ(m.weights.size(), 1u);
  EXPECT_EQ(m.weights[0].first, "f32");
  auto line = [](const std::string& label, uint64_t bytes) {
    return label + " (" + std::to_string(bytes) + " bytes)";
  };
  EXPECT_THAT(r.out, HasSubstr("state per stream: 2.00 KiB (2048 bytes)\n"));
  EXPECT_THAT(r.out, HasSubstr(std::string("unified memory:   ") + (m.unified_memory ? "yes" : "no") + " (uploads " +
                               m.upload + ")\n"));
  EXPECT_THAT(r.out, HasSubstr("weights memory:   f32 "));
  EXPECT_THAT(r.out, HasSubstr("(" + std::to_string(m.weights[0].second) + " bytes)\n"));
  EXPECT_THAT(r.out, HasSubstr("streams:          3 (requested)\n"));
  EXPECT_THAT(r.out, HasSubstr(line("state memory:     6.00 KiB", 3 * 2048) + ", 2048 bytes per stream\n"));
  // [64 step rows][40] on the device and [3][40] twice on the host, fp32.
  EXPECT_THAT(r.out, HasSubstr(line("logits memory:    10.94 KiB", (64 * 40 + 2 * 3 * 40) * 4) + "\n"));
  EXPECT_THAT(r.out, HasSubstr(line("rollback memory:  12.00 KiB", 3 * 2 * 2048) + "\n"));
  const uint64_t named = m.weights[0].second + 3 * 2048 + (64 * 40 + 2 * 3 * 40) * 4 + 3 * 2 * 2048;
  EXPECT_EQ(m.total_bytes, named + m.other_bytes);
  EXPECT_GT(m.other_bytes, 0u);  // activations and step inputs
  EXPECT_THAT(r.out, HasSubstr("(" + std::to_string(m.total_bytes) + " bytes)\n"));
  EXPECT_THAT(r.out, HasSubstr("total memory:     "));

  // As many streams as the device holds: the plan says why.
  r = run({"info", "--model", model_path, "--backend", "vulkan", "--streams", "0"});
  ASSERT_EQ(r.code, 0) << r.err;
  opt.max_streams = 0;
  opt.rollback_depth = 0;
  const MemoryPlan a = load_model(model_path, opt)->info().memory;
  EXPECT_THAT(r.out, HasSubstr("streams:          " + std::to_string(a.capacity) + " (" + a.capacity_reason + ": " +
                               a.capacity_detail + ")\n"));
  EXPECT_THAT(r.out, HasSubstr("memory budget:    "));
  EXPECT_THAT(r.out, HasSubstr("(" + std::to_string(a.budget_bytes) + " bytes)\n"));
}

TEST_F(CliTest, DevicesListsWithoutCrashing) {
  CliResult r = run({"devices"});
  EXPECT_EQ(r.code, 0) << r.err;
  // Each device is listed as "[index] name"; a machine without any says so. Either way the last
  // line says where --backend auto runs.
  EXPECT_TRUE(r.out.rfind("[0] ", 0) == 0 || r.out.rfind("no Vulkan devices", 0) == 0) << r.out;
  EXPECT_THAT(r.out, testing::ContainsRegex("\nauto backend: (vulkan|cpu) \u2014 [^\n]+\n$"));
}

// Every device shows its decoded driver version and the driver quirks applied (lavapipe: none).
TEST_F(CliTest, DevicesShowDriverAndQuirks) {
  CliResult r = run({"devices"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\n    driver:                    "));
  EXPECT_THAT(r.out, HasSubstr("\n    quirks:                    none\n"));
  EXPECT_THAT(r.out, Not(HasSubstr("fallbacks:")));
}

// Under a profile: the clamped limits and features, and the fallbacks the engine takes with them.
TEST_F(CliTest, DevicesUnderAProfileShowEffectiveLimitsAndFallbacks) {
  CliResult r = run({"devices", "--profile", "vulkan-1.1-minimal"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* line : {"    Vulkan API:                1.1.", "    16-bit storage:            no\n",
                           "    fp16 arithmetic:           no\n", "    profile:                   vulkan-1.1-minimal\n",
                           "    maxStorageBufferRange:     134217728\n", "    maxTexelBufferElements:    65536\n",
                           "    maxMemoryAllocationSize:   1073741824\n", "    maxMemoryAllocationCount:  4096\n",
                           "    storage buffers per stage: 10\n",
                           "    shared memory:             16.00 KiB\n", "    max workgroup invocations: 128\n",
                           "    subgroup arithmetic:       no\n", "    timeline semaphores:       no\n",
                           "      step completion:         fences\n",
                           "      matvec reductions:       shared memory (at most 32 threads)\n",
                           "      fp16 weights:            only with --weights f16 (packed in 32-bit words; no 16-bit "
                           "storage)\n",
                           "      large tensors:           split into bindings of at most 128.00 MiB\n",
                           "      pipeline cache on disk:  yes\n"})
    EXPECT_THAT(r.out, HasSubstr(line));
  // lavapipe has timeline semaphores and subgroup arithmetic, which a Vulkan 1.3 class keeps.
  r = run({"devices", "--profile", "adreno-7xx"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("      step completion:         timeline semaphore\n"));
  EXPECT_THAT(r.out, HasSubstr("      matvec reductions:       subgroup adds\n"));
  EXPECT_THAT(r.out, HasSubstr("    storage buffers per stage: 24\n"));
}

TEST_F(CliTest, DevicesRefuseAnUnknownProfileListingTheKnownOnes) {
  CliResult r = run({"devices", "--profile", "adreno-9000"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "vkssm: --profile 'adreno-9000' is not a known device profile (known: android-baseline-2022, "
            "vulkan-1.1-minimal, mali-bifrost, mali-valhall, adreno-6xx, adreno-7xx, jetson-orin, tiny-bindings)\n"
            "Run 'vkssm devices --help' for usage.\n");
  EXPECT_EQ(r.out, "");
}

// ---- --backend auto (the default) --------------------------------------------------------------

namespace {

const std::string kTinyShakespeare = std::string(VKSSM_SOURCE_DIR) + "/models/mamba1/tiny-shakespeare";

// The Vulkan loader lists only the drivers these files name (VK_DRIVER_FILES, and
// VK_ICD_FILENAMES for older loaders), so a machine with a GPU looks like one with lavapipe alone,
// or with no driver at all, to the tool it runs.
std::string only_drivers(const std::string& icd_files) {
  return "VK_DRIVER_FILES=" + shell_quote(icd_files) + " VK_ICD_FILENAMES=" + shell_quote(icd_files) + " ";
}

// This machine's lavapipe driver manifest (mesa-vulkan-drivers).
std::string lavapipe_icd() {
#if defined(__aarch64__)
  const std::string arch = "aarch64";
#else
  const std::string arch = "x86_64";
#endif
  return "/usr/share/vulkan/icd.d/lvp_icd." + arch + ".json";
}

}  // namespace

// The Vulkan path stays tested because tests name it; what the default does is tested here, with
// the loader shown lavapipe alone: the tiny model runs on the cpu backend, and info says why.
TEST_F(CliTest, AutoBackendInfoOnLavapipeAloneSaysCpuAndWhy) {
  ASSERT_TRUE(fs::exists(lavapipe_icd())) << lavapipe_icd() << " (mesa-vulkan-drivers) is needed";
  const std::string env = only_drivers(lavapipe_icd());
  CliResult r = run_env(env, {"info", "--model", kTinyShakespeare, "--threads", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\nbackend:          cpu\n"));
  EXPECT_THAT(r.out, testing::ContainsRegex("\nbackend reason:   cpu: the only Vulkan device, llvmpipe \\([^\n]*\\), "
                                            "is a CPU implementation\n"));
#if VKSSM_CPU_FAST
  EXPECT_THAT(r.out, HasSubstr("\ndevice:           host CPU (cpu: 1 threads, "));
#endif
  // `vkssm devices` says the same as its last line.
  r = run_env(env, {"devices"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, testing::ContainsRegex("\nauto backend: cpu \u2014 the only Vulkan device, llvmpipe \\([^\n]*\\), "
                                            "is a CPU implementation\n$"));
  // generate says it on stderr before it runs.
  r = run_env(env, {"generate", "--model", kTinyShakespeare, "--prompt", "ROMEO:", "-n", "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, testing::ContainsRegex("^vkssm: auto backend: cpu: the only Vulkan device, llvmpipe"));
}

// A device named explicitly is what the user asked for: Vulkan on it, CPU implementation or not.
TEST_F(CliTest, AutoBackendTakesANamedDeviceEvenOfCpuType) {
  const std::string env = only_drivers(lavapipe_icd());
  CliResult r = run_env(env, {"info", "--model", kTinyShakespeare, "--device", "0"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\nbackend:          vulkan\n"));
  EXPECT_THAT(r.out, testing::ContainsRegex("\nbackend reason:   vulkan: device 0, llvmpipe \\([^\n]*\\) \\(cpu\\), "
                                            "named by the device option\n"));
  r = run_env(env + "VKSSM_DEVICE=0 ", {"info", "--model", kTinyShakespeare});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, testing::ContainsRegex("\nbackend reason:   vulkan: device 0, llvmpipe \\([^\n]*\\) \\(cpu\\), "
                                            "named by VKSSM_DEVICE\n"));
  // A device that is not there is the error opening it gives.
  r = run_env(env, {"info", "--model", kTinyShakespeare, "--device", "3"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "vkssm: error: device index 3 out of range: 1 Vulkan device(s) found (see `vkssm devices`)\n");
  // An explicit backend is "requested".
  r = run_env(env, {"info", "--model", kTinyShakespeare, "--backend", "reference"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\nbackend:          reference\nbackend reason:   requested\n"));
}

// No Vulkan driver at all: auto runs on the cpu backend and says why; devices says so too.
TEST_F(CliTest, AutoBackendWithoutAnyVulkanDriverRunsOnTheCpu) {
  const std::string env = only_drivers((dir_ / "no_such_icd.json").string());
  CliResult r = run_env(env, {"info", "--model", kTinyShakespeare});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\nbackend:          cpu\n"));
  EXPECT_THAT(r.out, HasSubstr("\nbackend reason:   cpu: no Vulkan driver (no Vulkan device found (on a machine "
                               "without a GPU, install mesa-vulkan-drivers for the CPU driver lavapipe))\n"));
  r = run_env(env, {"devices"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "no Vulkan devices: no Vulkan device found (on a machine without a GPU, install mesa-vulkan-drivers for "
            "the CPU driver lavapipe)\n"
            "auto backend: cpu \u2014 no Vulkan driver (no Vulkan device found (on a machine without a GPU, install "
            "mesa-vulkan-drivers for the CPU driver lavapipe))\n");
}

TEST_F(CliTest, ThreadsMustBeAPositiveCount) {
  CliResult r = run({"info", "--model", "m", "--threads", "0"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--threads"));
  r = run({"generate", "--model", "m", "--ids", "1", "-n", "1", "--threads", "x"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--threads"));
  EXPECT_THAT(run({"info", "--help"}).out, HasSubstr("--threads N"));
  EXPECT_THAT(run({"info", "--help"}).out, HasSubstr("auto (default: Vulkan on a GPU, else cpu)"));
}

// CI (scripts/setup.sh) loops over this list, so every profile gets its leg.
TEST_F(CliTest, DevicesListProfilesOnePerLine) {
  CliResult r = run({"devices", "--list-profiles"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::string want;
  for (const std::string& name : device_profile_names()) want += name + "\n";
  EXPECT_EQ(r.out, want);
}

// ---- frame models (S4D): --inputs -----------------------------------------------------------------

namespace {

const std::string kS4DTiny = std::string(VKSSM_SOURCE_DIR) + "/tests/data/s4d_tiny";
const std::string kS4DInputs = std::string(VKSSM_SOURCE_DIR) + "/tests/data/s4d_tiny_inputs.npy";

// The outputs [T, d_output] of `frames` ([T, d_input]) from a zero state, through the library.
std::vector<float> s4d_library_outputs(const std::vector<float>& frames, int64_t d_input) {
  LoadOptions opt;
  opt.backend = BackendKind::Reference;
  std::unique_ptr<Model> model = load_model(kS4DTiny, opt);
  const int64_t d_out = model->info().d_output;
  const size_t T = frames.size() / size_t(d_input);
  const int32_t slot = 0;
  std::vector<float> out(T * size_t(d_out));
  for (size_t t = 0; t < T; ++t) model->step_frames(frames.data() + t * d_input, &slot, 1, out.data() + t * d_out);
  return out;
}

// Rows [begin, end) of the tiny inputs as their own .npy.
std::string write_rows(const fs::path& dir, const std::string& name, int64_t begin, int64_t end) {
  NpyArray in = read_npy_f32(kS4DInputs);
  const std::string path = (dir / name).string();
  write_npy_f32(path, in.data.data() + begin * 3, {end - begin, 3});
  return path;
}

}  // namespace

TEST_F(CliTest, InputsGiveTheLibraryOutputsExactly) {
  const std::string out = (dir_ / "out.npy").string();
  CliResult r = run({"logits", "--model", kS4DTiny, "--backend", "reference", "--inputs", kS4DInputs, "--out", out});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("wrote " + out + " [24, 5]"));
  NpyArray got = read_npy_f32(out);
  ASSERT_EQ(got.shape, (std::vector<int64_t>{24, 5}));
  EXPECT_EQ(got.data, s4d_library_outputs(read_npy_f32(kS4DInputs).data, 3));
}

TEST_F(CliTest, SeveralInputStreamsMatchEachStreamRunAlone) {
  // Lengths 5, 2 and 9: batches of 3, 3, 2, 2, 2, 1, 1, 1, 1 at the successive steps.
  const std::vector<std::pair<int64_t, int64_t>> rows = {{0, 5}, {5, 7}, {10, 19}};
  std::vector<std::string> args = {"logits", "--model", kS4DTiny, "--backend", "reference"};
  for (size_t s = 0; s < rows.size(); ++s) {
    args.push_back("--inputs");
    args.push_back(write_rows(dir_, "in" + std::to_string(s) + ".npy", rows[s].first, rows[s].second));
  }
  const std::string out = (dir_ / "streams").string();
  args.push_back("--out");
  args.push_back(out);
  CliResult r = run(args);
  ASSERT_EQ(r.code, 0) << r.err;

  NpyArray in = read_npy_f32(kS4DInputs);
  for (size_t s = 0; s < rows.size(); ++s) {
    SCOPED_TRACE("stream " + std::to_string(s));
    std::vector<float> frames(in.data.begin() + rows[s].first * 3, in.data.begin() + rows[s].second * 3);
    NpyArray got = read_npy_f32((fs::path(out) / ("stream-" + std::to_string(s) + ".npy")).string());
    ASSERT_EQ(got.shape, (std::vector<int64_t>{rows[s].second - rows[s].first, 5}));
    EXPECT_EQ(got.data, s4d_library_outputs(frames, 3));
  }
  EXPECT_FALSE(fs::exists(fs::path(out) / "stream-3.npy"));
}

TEST_F(CliTest, InputsContinueFromASavedState) {
  const std::string head = write_rows(dir_, "head.npy", 0, 10), tail = write_rows(dir_, "tail.npy", 10, 24);
  const std::string state = (dir_ / "s.state").string();
  const std::string a = (dir_ / "a.npy").string(), b = (dir_ / "b.npy").string();
  CliResult r = run({"logits", "--model", kS4DTiny, "--backend", "reference", "--inputs", head, "--save-state", state,
                     "--out", a});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("saved the state after 10 frames"));
  r = run({"logits", "--model", kS4DTiny, "--backend", "reference", "--load-state", state, "--inputs", tail, "--out", b});
  ASSERT_EQ(r.code, 0) << r.err;

  std::vector<float> joined = read_npy_f32(a).data, rest = read_npy_f32(b).data;
  joined.insert(joined.end(), rest.begin(), rest.end());
  EXPECT_EQ(joined, s4d_library_outputs(read_npy_f32(kS4DInputs).data, 3));
}

TEST_F(CliTest, InputsAndIdsGoToTheRightKindOfModel) {
  const std::string out = (dir_ / "out.npy").string();
  CliResult r = run({"logits", "--model", kS4DTiny, "--backend", "reference", "--ids", "1,2", "--out", out});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("vkssm: error: model '" + kS4DTiny +
                               "' (s4d) takes input frames, not token ids: give --inputs FRAMES.npy "
                               "(float32 [T, 3])"));

  const std::string mamba = make_model();
  r = run({"logits", "--model", mamba, "--backend", "reference", "--inputs", kS4DInputs, "--out", out});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("model '" + mamba + "' (mamba) takes token ids, not input frames: give --ids"));
  EXPECT_FALSE(fs::exists(out));

  r = run({"logits", "--model", kS4DTiny, "--ids", "1", "--inputs", kS4DInputs, "--out", out});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("give --ids (token models) or --inputs (frame models), not both"));
  r = run({"logits", "--model", kS4DTiny, "--out", out});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("give --ids (token models) or --inputs (frame models)"));
  r = run({"logits", "--model", kS4DTiny, "--inputs", "a.npy", "--inputs", "b.npy", "--save-state", "s",
           "--out", out});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--save-state and --load-state need a single --ids or --inputs"));
}

TEST_F(CliTest, BadInputFilesAreNamed) {
  const std::string out = (dir_ / "out.npy").string();
  // Frames of the wrong width.
  const std::string wide = (dir_ / "wide.npy").string();
  const std::vector<float> values(8, 0.5f);
  write_npy_f32(wide, values.data(), {2, 4});
  CliResult r = run({"logits", "--model", kS4DTiny, "--backend", "reference", "--inputs", wide, "--out", out});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("--inputs '" + wide + "' has frames of 4 floats, but model '" + kS4DTiny +
                               "' takes d_input 3"));

  // Not 2-D.
  const std::string flat = (dir_ / "flat.npy").string();
  write_npy_f32(flat, values.data(), {8});
  r = run({"logits", "--model", kS4DTiny, "--backend", "reference", "--inputs", flat, "--out", out});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("--inputs '" + flat + "' has shape [8]; expected a 2-D float32 array [T, d_input]"));

  // No frames.
  const std::string empty = (dir_ / "empty.npy").string();
  write_npy_f32(empty, values.data(), {0, 3});
  r = run({"logits", "--model", kS4DTiny, "--backend", "reference", "--inputs", empty, "--out", out});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("--inputs '" + empty + "' holds no frames"));

  // Integers, not floats: the same bytes with the header saying '<i4'.
  const std::string ints = (dir_ / "ints.npy").string();
  write_npy_f32(ints, values.data(), {2, 4});
  std::string bytes = read_text(ints);
  bytes.replace(bytes.find("<f4"), 3, "<i4");
  std::ofstream(ints, std::ios::binary) << bytes;
  r = run({"logits", "--model", kS4DTiny, "--backend", "reference", "--inputs", ints, "--out", out});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("npy file '" + ints + "': unsupported dtype '<i4'"));

  r = run({"logits", "--model", kS4DTiny, "--backend", "reference", "--inputs", (dir_ / "none.npy").string(), "--out", out});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("none.npy"));
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(CliTest, InfoDescribesAFrameModel) {
  CliResult r = run({"info", "--model", kS4DTiny, "--backend", "reference"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("architecture:     s4d"));
  EXPECT_THAT(r.out, HasSubstr("d_input:          3 (floats per input frame)"));
  EXPECT_THAT(r.out, HasSubstr("d_output:         5 (floats per step)"));
  EXPECT_THAT(r.out, HasSubstr("state per stream: 768 B"));
  EXPECT_THAT(r.out, testing::Not(HasSubstr("vocabulary")));
  EXPECT_THAT(r.out, testing::Not(HasSubstr("tokenizer")));

  r = run({"generate", "--model", kS4DTiny, "--backend", "reference", "--ids", "1", "-n", "1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("takes input frames, not text"));
}

// `vkssm info` lists every tensor with its type in the file and its storage: a GGUF whose in_proj
// is Q4_K and out_proj Q6_K (blocks from host/quant.cpp), the rest F32. Twelve tensors: ten in the
// layer, the embeddings and norm_f (the lm_head is tied).
TEST_F(CliTest, InfoListsEachTensorsFileTypeAndStorage) {
  Mamba1Config cfg;
  cfg.d_model = 256;
  cfg.n_layer = 1;
  cfg.vocab_size = 40;
  cfg.d_state = 4;
  cfg.d_inner = 512;
  cfg.dt_rank = 16;
  gguf_test::ConvertedModel m = gguf_test::convert_mamba1(random_mamba1(cfg, 5), gguf_test::OutType::F32);
  gguf_test::quantize_tensor(m, "blk.0.ssm_in.weight", QuantType::Q4_K);
  gguf_test::quantize_tensor(m, "blk.0.ssm_out.weight", QuantType::Q6_K);
  const std::string gguf = (dir_ / "mixed.gguf").string();
  gguf_test::write_bytes(gguf, m.gguf.bytes());

  CliResult r = run({"info", "--model", gguf, "--backend", "vulkan", "--weights", "f16"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("tensors:          12 (type in the file, storage on the device)"));
  EXPECT_THAT(r.out, testing::ContainsRegex("backbone\\.layers\\.0\\.mixer\\.in_proj\\.weight +Q4_K in file, f16 on device"));
  EXPECT_THAT(r.out, testing::ContainsRegex("backbone\\.layers\\.0\\.mixer\\.out_proj\\.weight +Q6_K in file, f16 on device"));
  EXPECT_THAT(r.out, testing::ContainsRegex("backbone\\.layers\\.0\\.mixer\\.A_log +F32 in file, f32 on device"));
  EXPECT_THAT(r.out, testing::ContainsRegex("backbone\\.layers\\.0\\.mixer\\.conv1d\\.weight +F32 in file, f32 on device"));
  EXPECT_THAT(r.out, testing::ContainsRegex("backbone\\.embeddings\\.weight +F32 in file, f16 on device"));
  EXPECT_THAT(r.out, Not(HasSubstr("not on device")));

  // --weights auto (the default): the file's K-quant blocks stay blocks on the device.
  r = run({"info", "--model", gguf, "--backend", "vulkan"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, testing::ContainsRegex("backbone\\.layers\\.0\\.mixer\\.in_proj\\.weight +Q4_K in file, q4_k on device"));
  EXPECT_THAT(r.out, testing::ContainsRegex("backbone\\.layers\\.0\\.mixer\\.out_proj\\.weight +Q6_K in file, q6_k on device"));

  r = run({"info", "--model", gguf, "--backend", "reference"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("tensors:          12 (type in the file, storage on the cpu backend)"));
  EXPECT_THAT(r.out, testing::ContainsRegex("in_proj\\.weight +Q4_K in file, f32 on the cpu backend"));
}

TEST_F(CliTest, RunsALlamaCppGgufFile) {
  // The converter's output for a small random Mamba-1, with a four-token byte-level BPE vocabulary.
  Mamba1Config cfg;
  cfg.d_model = 16;
  cfg.n_layer = 2;
  cfg.vocab_size = 40;
  cfg.d_state = 4;
  cfg.d_inner = 32;
  cfg.dt_rank = 2;
  gguf_test::TokenizerMeta tok;
  tok.tokens = {"a", "b", "ab", "<|endoftext|>"};
  tok.token_types = {1, 1, 1, 3};
  tok.merges = {"a b"};
  tok.eos = 3;
  gguf_test::ConvertedModel m = gguf_test::convert_mamba1(random_mamba1(cfg, 9), gguf_test::OutType::F16, &tok);
  const std::string gguf = (dir_ / "tiny-F16.gguf").string();
  gguf_test::write_bytes(gguf, m.gguf.bytes());

  CliResult r = run({"info", "--model", gguf, "--backend", "reference"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("architecture:     mamba"));
  EXPECT_THAT(r.out, HasSubstr("vocabulary:       40"));
  EXPECT_THAT(r.out, HasSubstr("tokenizer:        vocabulary 4, eos 3"));

  const std::string out = (dir_ / "logits.npy").string();
  r = run({"logits", "--model", gguf, "--backend", "reference", "--ids", "1,2,39", "--out", out});
  ASSERT_EQ(r.code, 0) << r.err;
  LoadOptions opt;
  opt.backend = BackendKind::Reference;
  std::unique_ptr<Model> model = load_model(gguf, opt);
  std::vector<float> want(3 * 40);
  const int32_t slot = 0;
  const int32_t ids[] = {1, 2, 39};
  for (int t = 0; t < 3; ++t) model->step(&ids[t], &slot, 1, want.data() + t * 40);
  EXPECT_EQ(read_npy_f32(out).data, want);

  r = run({"generate", "--model", gguf, "--backend", "reference", "--prompt", "abba", "-n", "2"});
  EXPECT_EQ(r.code, 0) << r.err;
}


// ---- vkssm listen -------------------------------------------------------------------------------

const std::string kCommandModel = std::string(VKSSM_SOURCE_DIR) + "/models/s4d/speech-commands";
std::string demo_wav(int i) { return kCommandModel + "/demo/command-" + std::to_string(i) + ".wav"; }

// The default model is found next to the executable (not the current directory); three demo
// files are three concurrent streams, each line STREAM, SECONDS, WORD, SCORE.
TEST_F(CliTest, ListenPrintsEachStreamsCommands) {
  CliResult r = run({"listen", "--backend", "reference", demo_wav(1), demo_wav(0), demo_wav(2)});
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<std::string> stream0;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    std::vector<std::string> f;
    std::istringstream fields(line);
    for (std::string x; std::getline(fields, x, '\t');) f.push_back(x);
    ASSERT_EQ(f.size(), 4u) << line;
    EXPECT_TRUE(f[0] == "0" || f[0] == "1" || f[0] == "2") << line;
    if (f[0] == "0") stream0.push_back(f[2]);
    EXPECT_GT(std::stod(f[1]), 0.0);
    EXPECT_GT(std::stod(f[3]), 0.0);
  }
  EXPECT_EQ(stream0, (std::vector<std::string>{"yes", "no", "up", "down"}));
  EXPECT_THAT(r.err, HasSubstr("listen: 3 streams, "));
  EXPECT_THAT(r.err, HasSubstr("real-time factor"));
  EXPECT_THAT(r.err, HasSubstr("per-hop latency p50"));
}

// --frames-per-step: the same lines; the summary says the latency is per step of that many hops.
TEST_F(CliTest, ListenFramesPerStepPrintsTheSameDetections) {
  CliResult one = run({"listen", "--backend", "vulkan", demo_wav(1), demo_wav(3)});
  CliResult four = run({"listen", "--backend", "vulkan", "--frames-per-step", "4", demo_wav(1), demo_wav(3)});
  ASSERT_EQ(one.code, 0) << one.err;
  ASSERT_EQ(four.code, 0) << four.err;
  EXPECT_EQ(four.out, one.out);
  EXPECT_THAT(four.err, testing::MatchesRegex(".* \\([0-9]+ steps of 4 hops: the latency is per step\\)\n"));
  CliResult bad = run({"listen", "--frames-per-step", "65", demo_wav(1)});
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.err, HasSubstr("--frames-per-step"));
}

TEST_F(CliTest, ListenJsonNamesTheInput) {
  CliResult r = run({"listen", "--backend", "reference", "--json", demo_wav(1)});
  ASSERT_EQ(r.code, 0) << r.err;
  std::string first = r.out.substr(0, r.out.find('\n'));
  EXPECT_THAT(first, testing::MatchesRegex("\\{\"stream\":0,\"input\":\".*command-1\\.wav\",\"word\":\"yes\","
                                           "\"time\":[0-9.]+,\"score\":[0-9.]+\\}"));
}

// A bad input is named, the other streams go on, and the exit code says something failed.
TEST_F(CliTest, ListenReportsBadInputsAndGoesOn) {
  const std::string truncated = (dir_ / "cut.wav").string();
  {
    std::ifstream in(demo_wav(1), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(truncated, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  const std::string text = (dir_ / "notes.wav").string();
  std::ofstream(text) << "not audio at all";
  const std::string missing = (dir_ / "missing.wav").string();
  CliResult r = run({"listen", "--backend", "reference", truncated, demo_wav(1), text, missing});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("vkssm: error: " + truncated + ": truncated: the data chunk holds"));
  EXPECT_THAT(r.err, HasSubstr("vkssm: error: " + text + ": not a WAV file (no RIFF/WAVE header)"));
  EXPECT_THAT(r.err, HasSubstr("vkssm: error: " + missing + ": cannot open"));
  EXPECT_THAT(r.out, HasSubstr("1\t"));  // the good file (input 1) was heard
  EXPECT_THAT(r.out, HasSubstr("\tyes\t"));
  EXPECT_THAT(r.err, HasSubstr("listen: 1 streams, "));
}

// Raw 16 kHz s16le on standard input gives what the same audio gives as a WAV file.
TEST_F(CliTest, ListenReadsRawAudioFromStandardInput) {
  const std::string raw = (dir_ / "audio.raw").string();
  {
    std::ifstream in(demo_wav(3), std::ios::binary);  // 16 kHz mono 16-bit: the data is raw s16le
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(raw, std::ios::binary) << bytes.substr(44);
  }
  CliResult file = run({"listen", "--backend", "reference", demo_wav(3)});
  ASSERT_EQ(file.code, 0) << file.err;
  std::string cmd = shell_quote(cli_path()) + " listen --backend reference - <" + shell_quote(raw) + " >" +
                    shell_quote((dir_ / "stdin.out").string()) + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_FALSE(file.out.empty());
  EXPECT_EQ(read_text(dir_ / "stdin.out"), file.out);
}

TEST_F(CliTest, ListenUsageErrors) {
  CliResult r = run({"listen"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("give at least one INPUT (a WAV file or '-')"));
  r = run({"listen", "--seconds", "3", demo_wav(0)});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--seconds goes with --bench"));
  r = run({"listen", "-", "-"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("standard input ('-') can be given once"));
  r = run({"listen", "--threshold", "0", demo_wav(0)});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--threshold: expected a number in (0, 1], got '0'"));
  r = run({"listen", "--json=1", demo_wav(0)});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("option --json takes no value"));
  r = run({"listen", "--model", (dir_ / "nothing").string(), demo_wav(0)});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("config.json: cannot open"));
}


// ---- vkssm tokenize / detokenize ------------------------------------------------------------

const std::string kNeoxTokenizer = std::string(VKSSM_SOURCE_DIR) + "/tests/data/gpt-neox-20b-tokenizer-subset.json";

class CliTokenizeTest : public CliTest {
 protected:
  CliResult run_with_input(const std::vector<std::string>& args, const std::string& input) {
    return run(args, &input);
  }
  // The standard output of a run that must succeed with nothing on standard error.
  std::string output_of(const std::vector<std::string>& args, const std::string& input) {
    const CliResult r = run(args, &input);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.err, "");
    return r.out;
  }
};

TEST_F(CliTokenizeTest, PrintsCommaSeparatedIds) {
  const std::vector<std::string> tokenize = {"tokenize", "--tokenizer", kNeoxTokenizer};
  EXPECT_EQ(output_of(tokenize, "Hello world"), "12092,1533\n");
  // All of standard input is the text, its newline included; NFC first ("café", combining acute).
  EXPECT_EQ(output_of(tokenize, "cafe\xCC\x81\n"), "68,2320,860,187\n");
  EXPECT_EQ(output_of(tokenize, ""), "\n");
}

TEST_F(CliTokenizeTest, JsonlGivesOneArrayPerLine) {
  EXPECT_EQ(output_of({"tokenize", "--tokenizer", kNeoxTokenizer, "--jsonl"},
                      "\"Hello\"\n\"cafe\\u0301\"\r\n\"<|endoftext|>\"\n\"\"\n"),
            "[12092]\n[68,2320,860]\n[0]\n[]\n");
  // Token 211 is the lone byte 0x80: not UTF-8, so U+FFFD in the JSON string.
  EXPECT_EQ(output_of({"detokenize", "--tokenizer", kNeoxTokenizer, "--jsonl"},
                      "[12092,1533]\n[]\n[211]\n[0,187]\n"),
            "\"Hello world\"\n\"\"\n\"\xEF\xBF\xBD\"\n\"<|endoftext|>\\n\"\n");
}

TEST_F(CliTokenizeTest, DetokenizeWritesTheTextsBytesExactly) {
  const std::vector<std::string> detokenize = {"detokenize", "--tokenizer", kNeoxTokenizer};
  EXPECT_EQ(output_of(detokenize, " 12092,1533\n"), "Hello world");
  EXPECT_EQ(output_of(detokenize, "14931,235,211"), "\xF0\x9F\x98\x80");
  EXPECT_EQ(output_of(detokenize, "\n"), "");
}

// tokenize then detokenize gives back the (NFC) text, byte for byte.
TEST_F(CliTokenizeTest, RoundTripsThroughBothCommands) {
  const std::string text = "  Tie\xCC\x82\xCC\x81ng Vi\xE1\xBB\x87t\t\xD7\xA6\xD7\x94\xD7\xB4\xD7\x9C\n<|endoftext|> \xE2\x84\x82\n";
  const std::string nfc = "  Ti\xE1\xBA\xBFng Vi\xE1\xBB\x87t\t\xD7\xA6\xD7\x94\xD7\xB4\xD7\x9C\n<|endoftext|> \xE2\x84\x82\n";
  const std::string ids = output_of({"tokenize", "--tokenizer", kNeoxTokenizer}, text);
  EXPECT_EQ(output_of({"detokenize", "--tokenizer", kNeoxTokenizer}, ids), nfc);
}

TEST_F(CliTokenizeTest, ModelFolderUsesItsTokenizer) {
  const std::string model = make_model();
  CliResult r = run_with_input({"tokenize", "--model", model}, "Hello");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("vkssm: error: model '" + model + "' has no tokenizer"));
  fs::copy_file(kNeoxTokenizer, fs::path(model) / "tokenizer.json");
  EXPECT_EQ(output_of({"tokenize", "--model", model}, "Hello world"), "12092,1533\n");
}

TEST_F(CliTokenizeTest, BadInputIsNamedByLine) {
  CliResult r = run_with_input({"tokenize", "--tokenizer", kNeoxTokenizer, "--jsonl"}, "\"Hello\"\n42\n\"x\"\n");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "[12092]\n");  // the lines before the bad one are answered
  EXPECT_THAT(r.err, HasSubstr("vkssm: error: standard input line 2: expected a JSON string, got 42"));
  r = run_with_input({"tokenize", "--tokenizer", kNeoxTokenizer, "--jsonl"}, "Hello\n");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("vkssm: error: standard input line 1: invalid JSON"));
  r = run_with_input({"detokenize", "--tokenizer", kNeoxTokenizer, "--jsonl"}, "[1]\n[1,\"a\"]\n");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("standard input line 2: expected a JSON array of token ids, got [1,\"a\"]"));
  r = run_with_input({"detokenize", "--tokenizer", kNeoxTokenizer, "--jsonl"}, "[5,50277]\n");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("standard input line 1: token id 50277 at position 1 is out of range for "
                               "vocabulary size 50277"));
  r = run_with_input({"detokenize", "--tokenizer", kNeoxTokenizer}, "1,x\n");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("vkssm: error: standard input: expected comma-separated token ids"));
}

TEST_F(CliTokenizeTest, UsageAndFileErrors) {
  CliResult r = run_with_input({"tokenize", "--jsonl"}, "");
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("give either --tokenizer FILE or --model PATH"));
  r = run_with_input({"detokenize", "--tokenizer", kNeoxTokenizer, "--model", "x"}, "");
  EXPECT_EQ(r.code, 2);
  const std::string missing = (dir_ / "missing.json").string();
  r = run_with_input({"tokenize", "--tokenizer", missing}, "");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("tokenizer file '" + missing + "' does not exist"));
  const std::string bad = (dir_ / "bad.json").string();
  std::ofstream(bad) << "{\"model\": ";
  r = run_with_input({"tokenize", "--tokenizer", bad}, "");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("tokenizer file '" + bad + "': invalid JSON"));
  EXPECT_THAT(run({"--help"}).out, HasSubstr("  detokenize  print the text of standard input's token ids"));
  EXPECT_THAT(run({"tokenize", "--help"}).out, HasSubstr("each output line the JSON array of its ids"));
}

}  // namespace
}  // namespace vkssm

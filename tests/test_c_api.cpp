// The C API (engine/vkssm.h) against the C++ API it wraps: same logits, sampled tokens and state
// blobs bit for bit, errors as status codes plus thread-local messages with the engine's exact
// text, a model fed from two host threads at once, the stream pool, and the header compiled as C99.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "engine/stream_pool.h"
#include "engine/vkssm.h"
#include "engine/vkssm.hpp"
#include "host/dtype.h"
#include "host/sampling.h"
#include "models/mamba1/mamba1_model.h"
#include "models/s4d/s4d_model.h"

namespace vkssm {
namespace {

namespace fs = std::filesystem;
using testing::HasSubstr;

constexpr int64_t kVocab = 64;

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

class CApiTest : public testing::Test {
 protected:
  void SetUp() override {
    const testing::TestInfo* t = testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(testing::TempDir()) /
           ("vkssm_c_api_" + std::to_string(::getpid()) + "_" + t->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);

    Mamba1Config cfg;
    cfg.d_model = 16;
    cfg.n_layer = 2;
    cfg.d_state = 4;
    cfg.d_conv = 4;
    cfg.dt_rank = 2;
    cfg.vocab_size = kVocab;
    cfg.expand = 2;
    cfg.d_inner = 32;
    cfg.tie_embeddings = true;
    model_path_ = (dir_ / "model").string();
    save_mamba1_hf(random_mamba1(cfg, 42), model_path_, DType::F32);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Loads the test model through the C API (default: Vulkan, two slots); fails the test on error.
  vkssm_model* load_c(int backend = 0, int streams = 2, int rollback = 0) {
    vkssm_load_options opts;
    vkssm_load_options_default(&opts);
    opts.backend = backend;
    opts.max_streams = streams;
    opts.rollback_depth = rollback;
    vkssm_model* m = nullptr;
    EXPECT_EQ(vkssm_model_load(model_path_.c_str(), &opts, &m), VKSSM_OK) << vkssm_last_error();
    EXPECT_NE(m, nullptr);
    return m;
  }
  // The same model through the C++ API.
  std::unique_ptr<Model> load_cpp(int backend = 0, int streams = 2, int rollback = 0) {
    LoadOptions lo;
    lo.backend = backend == 2 ? BackendKind::Cpu : backend == 1 ? BackendKind::Reference : BackendKind::Vulkan;
    lo.max_streams = streams;
    lo.rollback_depth = rollback;
    return load_model(model_path_, lo);
  }

  fs::path dir_;
  std::string model_path_;
};

TEST_F(CApiTest, DefaultOptionsMatchTheCppDefaults) {
  vkssm_load_options o;
  vkssm_load_options_default(&o);
  const LoadOptions d;
  EXPECT_EQ(d.backend, BackendKind::Auto);
  EXPECT_EQ(o.backend, 3);  // auto
  EXPECT_EQ(o.device, d.device);
  EXPECT_EQ(o.max_streams, d.max_streams);
  EXPECT_EQ(o.weights, 0);
  EXPECT_EQ(o.validation, 0);
  EXPECT_EQ(o.cache_dir, nullptr);
  EXPECT_EQ(o.rollback_depth, d.rollback_depth);
  EXPECT_EQ(o.rollback_depth, 0);
  EXPECT_EQ(o.cpu_threads, d.cpu_threads);
  EXPECT_EQ(o.cpu_threads, 0);
  EXPECT_EQ(o.frames_per_step, d.frames_per_step);
  EXPECT_EQ(o.frames_per_step, 1);
  vkssm_load_options_default(nullptr);  // NULL-safe
}

// Value 3 is BackendKind::Auto: the model runs where choose_auto_backend() says (on lavapipe alone,
// the cpu backend) and says why.
TEST_F(CApiTest, AutoBackendRunsWhereTheChoiceSays) {
  const BackendChoice choice = choose_auto_backend();
  vkssm_model* m = load_c(3);
  ASSERT_NE(m, nullptr);
  EXPECT_STREQ(vkssm_model_backend(m), backend_name(choice.backend));
  EXPECT_EQ(std::string(vkssm_model_backend_reason(m)), choice.reason);
  EXPECT_EQ(choice.reason, std::string(backend_name(choice.backend)) + ": " + choice.why);
  // And it computes what that backend computes when named.
  auto cpp = load_cpp(choice.backend == BackendKind::Vulkan ? 0 : 2);
  const int32_t slot = 0, tok = 5;
  std::vector<float> got(kVocab), want(kVocab);
  ASSERT_EQ(vkssm_model_step(m, &tok, &slot, 1, got.data()), VKSSM_OK) << vkssm_last_error();
  cpp->step(&tok, &slot, 1, want.data());
  EXPECT_EQ(got, want);
  vkssm_model_free(m);
}

// cpu_threads reaches the cpu backend, and the thread count does not change a bit of the logits.
TEST_F(CApiTest, CpuThreadsGiveIdenticalLogits) {
  std::vector<std::vector<float>> runs;
  for (int threads : {1, 2}) {
    vkssm_load_options opts;
    vkssm_load_options_default(&opts);
    opts.backend = 2;
    opts.cpu_threads = threads;
    opts.max_streams = 2;
    vkssm_model* m = nullptr;
    ASSERT_EQ(vkssm_model_load(model_path_.c_str(), &opts, &m), VKSSM_OK) << vkssm_last_error();
    EXPECT_STREQ(vkssm_model_backend(m), "cpu");
#if VKSSM_CPU_FAST
    EXPECT_THAT(vkssm_model_device_name(m), HasSubstr("(cpu: " + std::to_string(threads) + " thread"));
#endif
    // Two streams, five steps: every projection runs split across the threads.
    const int32_t slots[2] = {0, 1};
    const int32_t tokens[5][2] = {{3, 60}, {17, 0}, {63, 8}, {1, 1}, {42, 9}};
    std::vector<float> all;
    for (const auto& step : tokens) {
      std::vector<float> logits(2 * kVocab);
      ASSERT_EQ(vkssm_model_step(m, step, slots, 2, logits.data()), VKSSM_OK) << vkssm_last_error();
      all.insert(all.end(), logits.begin(), logits.end());
    }
    runs.push_back(all);
    vkssm_model_free(m);
  }
  EXPECT_EQ(runs[0], runs[1]);
}

TEST_F(CApiTest, LogitsAreBitIdenticalToTheCppApi) {
  vkssm_model* cm = load_c();  // Vulkan, named: on lavapipe auto would take the cpu backend
  ASSERT_NE(cm, nullptr);
  EXPECT_STREQ(vkssm_model_backend(cm), "vulkan");
  EXPECT_STREQ(vkssm_model_backend_reason(cm), "requested");
  auto cpp = load_cpp(0, 2);

  EXPECT_EQ(vkssm_model_vocab_size(cm), kVocab);
  EXPECT_EQ(vkssm_model_capacity(cm), 2);
  EXPECT_EQ(vkssm_model_state_bytes_per_stream(cm), cpp->info().state_bytes_per_stream);
  EXPECT_EQ(vkssm_model_weight_bytes(cm), cpp->info().weight_bytes);
  EXPECT_GT(vkssm_model_weight_bytes(cm), 0u);

  // Three steps of a batch of two streams, slots in reverse order.
  const int32_t slots[2] = {1, 0};
  const int32_t tokens[3][2] = {{3, 60}, {17, 0}, {63, 8}};
  for (int t = 0; t < 3; ++t) {
    std::vector<float> got(2 * kVocab, -1.0f), want(2 * kVocab, -2.0f);
    ASSERT_EQ(vkssm_model_step(cm, tokens[t], slots, 2, got.data()), VKSSM_OK) << vkssm_last_error();
    cpp->step(tokens[t], slots, 2, want.data());
    for (int64_t i = 0; i < 2 * kVocab; ++i)
      ASSERT_EQ(got[i], want[i]) << "step " << t << " logit " << i;
  }

  // After a reset, slot 0 starts over: the same as a fresh stream in the C++ model.
  ASSERT_EQ(vkssm_model_reset(cm, 0), VKSSM_OK) << vkssm_last_error();
  cpp->reset(0);
  const int32_t slot0 = 0, tok = 5;
  std::vector<float> got(kVocab), want(kVocab);
  ASSERT_EQ(vkssm_model_step(cm, &tok, &slot0, 1, got.data()), VKSSM_OK);
  cpp->step(&tok, &slot0, 1, want.data());
  EXPECT_EQ(got, want);
  // Logits are optional.
  EXPECT_EQ(vkssm_model_step(cm, &tok, &slot0, 1, nullptr), VKSSM_OK);
  vkssm_model_free(cm);
}

TEST_F(CApiTest, MissingPathIsAnErrorNamingThePath) {
  const std::string missing = (dir_ / "no_such_model").string();
  int not_a_model = 0;
  vkssm_model* m = reinterpret_cast<vkssm_model*>(&not_a_model);  // must be overwritten with NULL
  EXPECT_EQ(vkssm_model_load(missing.c_str(), nullptr, &m), VKSSM_ERROR);
  EXPECT_EQ(m, nullptr);
  EXPECT_THAT(vkssm_last_error(), HasSubstr(missing));
}

TEST_F(CApiTest, BadTokenAndSlotAreErrorsThatChangeNothing) {
  vkssm_model* m = load_c();
  ASSERT_NE(m, nullptr);
  const int32_t slot = 0, bad = static_cast<int32_t>(kVocab), good = 1;
  EXPECT_EQ(vkssm_model_step(m, &bad, &slot, 1, nullptr), VKSSM_ERROR);
  EXPECT_THAT(vkssm_last_error(), HasSubstr("out of range"));
  EXPECT_THAT(vkssm_last_error(), HasSubstr("token id 64"));
  const int32_t bad_slot = 2;
  EXPECT_EQ(vkssm_model_step(m, &good, &bad_slot, 1, nullptr), VKSSM_ERROR);
  EXPECT_THAT(vkssm_last_error(), HasSubstr("slot 2 out of range"));
  EXPECT_EQ(vkssm_model_reset(m, -1), VKSSM_ERROR);
  EXPECT_THAT(vkssm_last_error(), HasSubstr("slot -1 out of range"));
  EXPECT_EQ(vkssm_model_step(m, &good, &slot, 3, nullptr), VKSSM_ERROR);
  EXPECT_THAT(vkssm_last_error(), HasSubstr("capacity"));

  // The failed calls left slot 0 fresh: its first step equals a fresh slot 1's.
  std::vector<float> a(kVocab), b(kVocab);
  const int32_t slot1 = 1;
  ASSERT_EQ(vkssm_model_step(m, &good, &slot, 1, a.data()), VKSSM_OK);
  ASSERT_EQ(vkssm_model_step(m, &good, &slot1, 1, b.data()), VKSSM_OK);
  EXPECT_EQ(a, b);
  // Success does not clear the message (errno-style).
  EXPECT_THAT(vkssm_last_error(), HasSubstr("capacity"));
  vkssm_model_free(m);
}

TEST_F(CApiTest, NullArgumentsAreInvalidArguments) {
  const int32_t tok = 1, slot = 0;
  float logits[kVocab];
  EXPECT_EQ(vkssm_model_step(nullptr, &tok, &slot, 1, logits), VKSSM_INVALID_ARGUMENT);
  EXPECT_THAT(vkssm_last_error(), HasSubstr("vkssm_model_step: model is NULL"));
  EXPECT_EQ(vkssm_model_reset(nullptr, 0), VKSSM_INVALID_ARGUMENT);
  EXPECT_THAT(vkssm_last_error(), HasSubstr("vkssm_model_reset: model is NULL"));
  EXPECT_EQ(vkssm_model_vocab_size(nullptr), 0);
  EXPECT_THAT(vkssm_last_error(), HasSubstr("vkssm_model_vocab_size: model is NULL"));
  EXPECT_EQ(vkssm_model_capacity(nullptr), 0);
  EXPECT_EQ(vkssm_model_state_bytes_per_stream(nullptr), 0u);
  EXPECT_EQ(vkssm_model_weight_bytes(nullptr), 0u);
  vkssm_model_free(nullptr);

  vkssm_model* m = nullptr;
  EXPECT_EQ(vkssm_model_load(nullptr, nullptr, &m), VKSSM_INVALID_ARGUMENT);
  EXPECT_THAT(vkssm_last_error(), HasSubstr("path is NULL"));
  EXPECT_EQ(vkssm_model_load(model_path_.c_str(), nullptr, nullptr), VKSSM_INVALID_ARGUMENT);
  EXPECT_THAT(vkssm_last_error(), HasSubstr("out is NULL"));

  vkssm_load_options opts;
  vkssm_load_options_default(&opts);
  opts.backend = 7;
  EXPECT_EQ(vkssm_model_load(model_path_.c_str(), &opts, &m), VKSSM_INVALID_ARGUMENT);
  EXPECT_STREQ(vkssm_last_error(),
               "vkssm_model_load: backend must be 0 (vulkan), 1 (reference), 2 (cpu) or 3 (auto), got 7");
  opts.backend = 4;
  EXPECT_EQ(vkssm_model_load(model_path_.c_str(), &opts, &m), VKSSM_INVALID_ARGUMENT);
  EXPECT_STREQ(vkssm_last_error(),
               "vkssm_model_load: backend must be 0 (vulkan), 1 (reference), 2 (cpu) or 3 (auto), got 4");
  EXPECT_EQ(m, nullptr);
  opts.backend = 2;
  opts.cpu_threads = -1;
  EXPECT_EQ(vkssm_model_load(model_path_.c_str(), &opts, &m), VKSSM_INVALID_ARGUMENT);
  EXPECT_STREQ(vkssm_last_error(), "vkssm_model_load: cpu_threads must be 0 ($VKSSM_THREADS, else one per core) "
                                   "or in [1, 1024], got -1");
  opts.cpu_threads = 1025;
  EXPECT_EQ(vkssm_model_load(model_path_.c_str(), &opts, &m), VKSSM_INVALID_ARGUMENT);
  EXPECT_STREQ(vkssm_last_error(), "vkssm_model_load: cpu_threads must be 0 ($VKSSM_THREADS, else one per core) "
                                   "or in [1, 1024], got 1025");
  EXPECT_EQ(m, nullptr);
  opts.cpu_threads = 0;
  opts.frames_per_step = 0;
  EXPECT_EQ(vkssm_model_load(model_path_.c_str(), &opts, &m), VKSSM_INVALID_ARGUMENT);
  EXPECT_STREQ(vkssm_last_error(), "vkssm_model_load: frames_per_step must be within 1 .. 64, got 0");
  EXPECT_EQ(m, nullptr);
  opts.frames_per_step = 1;
  opts.backend = 1;
  opts.weights = 8;
  EXPECT_EQ(vkssm_model_load(model_path_.c_str(), &opts, &m), VKSSM_INVALID_ARGUMENT);
  EXPECT_THAT(vkssm_last_error(), HasSubstr("weights must be 0 (auto), 1 (f32), 2 (f16), 3 (q8_0), 4 (q4_0), "
                                            "5 (q4_k), 6 (q5_k) or 7 (q6_k), got 8"));
  opts.weights = 5;  // q4_k loads (this model's rows of 16 values stay f32)
  EXPECT_EQ(vkssm_model_load(model_path_.c_str(), &opts, &m), VKSSM_OK) << vkssm_last_error();
  vkssm_model_free(m);
  m = nullptr;
  opts.weights = 0;
  opts.max_streams = -1;
  EXPECT_EQ(vkssm_model_load(model_path_.c_str(), &opts, &m), VKSSM_ERROR);
  EXPECT_THAT(vkssm_last_error(), HasSubstr("max_streams must be at least 1"));
  EXPECT_EQ(m, nullptr);

  m = load_c();
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(vkssm_model_step(m, nullptr, &slot, 1, logits), VKSSM_INVALID_ARGUMENT);
  EXPECT_THAT(vkssm_last_error(), HasSubstr("tokens is NULL"));
  EXPECT_EQ(vkssm_model_step(m, &tok, nullptr, 1, logits), VKSSM_INVALID_ARGUMENT);
  EXPECT_THAT(vkssm_last_error(), HasSubstr("slots is NULL"));
  vkssm_model_free(m);
}

TEST_F(CApiTest, LastErrorIsPerThread) {
  EXPECT_EQ(vkssm_model_reset(nullptr, 0), VKSSM_INVALID_ARGUMENT);
  std::string seen_elsewhere = "unset";
  std::thread([&] { seen_elsewhere = vkssm_last_error(); }).join();
  EXPECT_EQ(seen_elsewhere, "");
  EXPECT_THAT(vkssm_last_error(), HasSubstr("vkssm_model_reset"));
}

TEST_F(CApiTest, TwoThreadsSteppingDifferentSlotsMatchSequentialRuns) {
  vkssm_model* m = load_c();
  ASSERT_NE(m, nullptr);
  constexpr int kSteps = 100;
  auto token = [](int slot, int t) { return static_cast<int32_t>((t * 7 + slot * 29 + 3) % kVocab); };

  // Each thread feeds its own slot and keeps every step's logits.
  std::vector<float> together[2];
  vkssm_status status[2] = {VKSSM_OK, VKSSM_OK};
  auto feed = [&](int32_t slot, std::vector<float>& out, vkssm_status& st) {
    out.assign(size_t(kSteps) * kVocab, 0.0f);
    for (int t = 0; t < kSteps && st == VKSSM_OK; ++t) {
      const int32_t tok = token(slot, t);
      st = vkssm_model_step(m, &tok, &slot, 1, out.data() + size_t(t) * kVocab);
    }
  };
  std::thread a(feed, 0, std::ref(together[0]), std::ref(status[0]));
  std::thread b(feed, 1, std::ref(together[1]), std::ref(status[1]));
  a.join();
  b.join();
  ASSERT_EQ(status[0], VKSSM_OK);
  ASSERT_EQ(status[1], VKSSM_OK);

  // The same streams again, one after the other.
  for (int32_t slot = 0; slot < 2; ++slot) {
    ASSERT_EQ(vkssm_model_reset(m, slot), VKSSM_OK) << vkssm_last_error();
    std::vector<float> alone;
    vkssm_status st = VKSSM_OK;
    feed(slot, alone, st);
    ASSERT_EQ(st, VKSSM_OK) << vkssm_last_error();
    EXPECT_EQ(alone, together[slot]) << "slot " << slot;
  }
  vkssm_model_free(m);
}

// ---- the newer Model features -------------------------------------------------------------------

const char* backend_name(int backend) { return backend == 1 ? "reference" : "vulkan"; }

std::vector<int32_t> some_tokens(int n, int salt) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[size_t(i)] = int32_t((i * 11 + salt * 17 + 1) % kVocab);
  return v;
}

TEST_F(CApiTest, GettersDescribeTheModel) {
  vkssm_model* m = load_c();
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(vkssm_model_d_input(m), 0);
  EXPECT_EQ(vkssm_model_d_output(m), kVocab);
  EXPECT_STREQ(vkssm_model_architecture(m), "mamba");
  EXPECT_EQ(vkssm_model_architecture(m), vkssm_model_architecture(m));  // one string for the model's life
  EXPECT_EQ(vkssm_model_in_flight(m), 0);
  vkssm_model_free(m);
}

TEST_F(CApiTest, StepSampleIsBitIdenticalToTheCppApi) {
  for (int backend : {1, 0}) {
    vkssm_model* cm = load_c(backend);
    ASSERT_NE(cm, nullptr);
    auto cpp = load_cpp(backend);
    const int32_t slots[2] = {1, 0};
    const vkssm_sampling cparams[2] = {{0.9f, 0, 42}, {1.3f, 7, 5}};
    const SamplingParams params[2] = {{0.9f, 0, 42}, {1.3f, 7, 5}};
    int32_t ctok[2] = {3, 60}, tok[2] = {3, 60};
    for (int t = 0; t < 6; ++t) {
      int32_t cnext[2] = {-1, -1}, next[2] = {-2, -2};
      std::vector<float> clogits(2 * kVocab, -1.0f), logits(2 * kVocab, -2.0f);
      // Every other step without logits: only the ids come back.
      float* cl = t % 2 ? nullptr : clogits.data();
      ASSERT_EQ(vkssm_model_step_sample(cm, ctok, slots, 2, cparams, cnext, cl), VKSSM_OK) << vkssm_last_error();
      cpp->step_sample(tok, slots, 2, params, next, logits.data());
      EXPECT_EQ(cnext[0], next[0]) << backend_name(backend) << " step " << t;
      EXPECT_EQ(cnext[1], next[1]) << backend_name(backend) << " step " << t;
      if (cl) {
        EXPECT_EQ(clogits, logits) << backend_name(backend) << " step " << t;
      }
      std::copy(cnext, cnext + 2, ctok);
      std::copy(next, next + 2, tok);
    }
    const vkssm_sampling bad = {-1.0f, 0, 0};
    int32_t out = 0;
    EXPECT_EQ(vkssm_model_step_sample(cm, ctok, slots, 1, &bad, &out, nullptr), VKSSM_ERROR);
    EXPECT_STREQ(vkssm_last_error(), "sampling temperature must be finite and >= 0 (got -1.000000)");
    const vkssm_sampling bad_k = {1.0f, -2, 0};
    EXPECT_EQ(vkssm_model_step_sample(cm, ctok, slots, 1, &bad_k, &out, nullptr), VKSSM_ERROR);
    EXPECT_STREQ(vkssm_last_error(), "sampling top_k must be >= 0 (got -2)");
    vkssm_model_free(cm);
  }
}

TEST_F(CApiTest, PrefillMatchesTheCppApi) {
  for (int backend : {1, 0}) {
    vkssm_model* cm = load_c(backend);
    ASSERT_NE(cm, nullptr);
    auto cpp = load_cpp(backend);
    const std::vector<int32_t> prompt = some_tokens(70, 1);  // more than one 64-row prefill step
    std::vector<float> got(kVocab, -1.0f), want(kVocab, -2.0f);
    ASSERT_EQ(vkssm_model_prefill(cm, 1, prompt.data(), int(prompt.size()), got.data()), VKSSM_OK)
        << vkssm_last_error();
    cpp->prefill(1, prompt.data(), int(prompt.size()), want.data());
    EXPECT_EQ(got, want) << backend_name(backend);
    ASSERT_EQ(vkssm_model_prefill(cm, 0, prompt.data(), 5, nullptr), VKSSM_OK);  // logits optional

    const int32_t bad[2] = {1, int32_t(kVocab)};
    EXPECT_EQ(vkssm_model_prefill(cm, 0, bad, 2, nullptr), VKSSM_ERROR);
    EXPECT_STREQ(vkssm_last_error(), "prompt token 1 (id 64) out of range [0, 64)");
    EXPECT_EQ(vkssm_model_prefill(cm, 0, bad, 0, nullptr), VKSSM_ERROR);
    EXPECT_STREQ(vkssm_last_error(), "prefill needs at least one token, got 0");
    EXPECT_EQ(vkssm_model_prefill(cm, 2, bad, 1, nullptr), VKSSM_ERROR);
    EXPECT_STREQ(vkssm_last_error(), "slot 2 out of range [0, 2)");
    vkssm_model_free(cm);
  }
}

TEST_F(CApiTest, RollbackUndoesStepsWithTheEnginesErrors) {
  for (int backend : {1, 0}) {
    vkssm_model* m = load_c(backend, 2, 2);
    ASSERT_NE(m, nullptr);
    const std::vector<int32_t> toks = some_tokens(3, 2);
    const int32_t slot = 0;
    ASSERT_EQ(vkssm_model_step(m, &toks[0], &slot, 1, nullptr), VKSSM_OK);
    size_t size = 0;
    ASSERT_EQ(vkssm_model_snapshot(m, 0, nullptr, 0, &size), VKSSM_OK) << vkssm_last_error();
    std::vector<uint8_t> after1(size), now(size);
    ASSERT_EQ(vkssm_model_snapshot(m, 0, after1.data(), after1.size(), &size), VKSSM_OK);
    ASSERT_EQ(vkssm_model_step(m, &toks[1], &slot, 1, nullptr), VKSSM_OK);
    ASSERT_EQ(vkssm_model_step(m, &toks[2], &slot, 1, nullptr), VKSSM_OK);
    int available = -1;
    ASSERT_EQ(vkssm_model_rollback_available(m, 0, &available), VKSSM_OK);
    EXPECT_EQ(available, 2);
    ASSERT_EQ(vkssm_model_rollback(m, 0, 2), VKSSM_OK) << vkssm_last_error();
    ASSERT_EQ(vkssm_model_snapshot(m, 0, now.data(), now.size(), &size), VKSSM_OK);
    EXPECT_EQ(now, after1) << backend_name(backend);
    ASSERT_EQ(vkssm_model_rollback_available(m, 0, &available), VKSSM_OK);
    EXPECT_EQ(available, 0);

    EXPECT_EQ(vkssm_model_rollback(m, 0, 1), VKSSM_ERROR);
    EXPECT_STREQ(vkssm_last_error(), "rollback of 1 steps on slot 0: only 0 steps since its last reset, restore or fork");
    EXPECT_EQ(vkssm_model_rollback(m, 0, 3), VKSSM_ERROR);
    EXPECT_STREQ(vkssm_last_error(),
                 "rollback of 3 steps on slot 0 exceeds the rollback depth of 2 (LoadOptions::rollback_depth)");
    EXPECT_EQ(vkssm_model_rollback(m, 0, -1), VKSSM_ERROR);
    EXPECT_STREQ(vkssm_last_error(), "rollback of -1 steps: must be >= 0");
    EXPECT_EQ(vkssm_model_rollback(m, 2, 1), VKSSM_ERROR);
    EXPECT_STREQ(vkssm_last_error(), "slot 2 out of range [0, 2)");
    available = -1;
    EXPECT_EQ(vkssm_model_rollback_available(m, -1, &available), VKSSM_ERROR);
    EXPECT_STREQ(vkssm_last_error(), "slot -1 out of range [0, 2)");
    EXPECT_EQ(available, -1);
    ASSERT_EQ(vkssm_model_snapshot(m, 0, now.data(), now.size(), &size), VKSSM_OK);
    EXPECT_EQ(now, after1);
    vkssm_model_free(m);
  }
  // Without a rollback depth at load, nothing can be undone.
  vkssm_model* m = load_c(1, 1, 0);
  ASSERT_NE(m, nullptr);
  const int32_t tok = 1, slot = 0;
  ASSERT_EQ(vkssm_model_step(m, &tok, &slot, 1, nullptr), VKSSM_OK);
  EXPECT_EQ(vkssm_model_rollback(m, 0, 1), VKSSM_ERROR);
  EXPECT_STREQ(vkssm_last_error(),
               "rollback of 1 steps on slot 0 exceeds the rollback depth of 0 (LoadOptions::rollback_depth)");
  vkssm_model_free(m);
  // A negative depth is the engine's error.
  vkssm_load_options opts;
  vkssm_load_options_default(&opts);
  opts.backend = 1;
  opts.rollback_depth = -1;
  EXPECT_EQ(vkssm_model_load(model_path_.c_str(), &opts, &m), VKSSM_ERROR);
  EXPECT_STREQ(vkssm_last_error(), "rollback_depth must be >= 0, got -1");
  EXPECT_EQ(m, nullptr);
}

TEST_F(CApiTest, SnapshotRestoreForkAreBitIdenticalToTheCppApi) {
  vkssm_model* cm = load_c();
  ASSERT_NE(cm, nullptr);
  auto cpp = load_cpp();
  const std::vector<int32_t> toks = some_tokens(4, 3);
  const int32_t slot0 = 0, slot1 = 1;
  for (int32_t t : toks) {
    ASSERT_EQ(vkssm_model_step(cm, &t, &slot0, 1, nullptr), VKSSM_OK);
    cpp->step(&t, &slot0, 1, nullptr);
  }
  const std::vector<uint8_t> want = cpp->snapshot(0);

  // Two calls: the size, then the blob.
  size_t size = 0;
  ASSERT_EQ(vkssm_model_snapshot(cm, 0, nullptr, 0, &size), VKSSM_OK) << vkssm_last_error();
  EXPECT_EQ(size, want.size());
  size = 0;
  ASSERT_EQ(vkssm_model_snapshot(cm, 1, nullptr, 0, &size), VKSSM_OK);  // the same size for every slot
  EXPECT_EQ(size, want.size());
  std::vector<uint8_t> blob(size + 3, 0xee);
  ASSERT_EQ(vkssm_model_snapshot(cm, 0, blob.data(), blob.size(), &size), VKSSM_OK);
  EXPECT_EQ(size, want.size());
  blob.resize(size);
  EXPECT_EQ(blob, want);
  // A buffer too small: nothing written, the size needed reported.
  std::vector<uint8_t> small(10, 0xab);
  size = 0;
  EXPECT_EQ(vkssm_model_snapshot(cm, 0, small.data(), small.size(), &size), VKSSM_INVALID_ARGUMENT);
  EXPECT_EQ(vkssm_last_error(), "vkssm_model_snapshot: buffer of 10 bytes is too small for the " +
                                    std::to_string(want.size()) + "-byte state blob");
  EXPECT_EQ(size, want.size());
  EXPECT_EQ(small, std::vector<uint8_t>(10, 0xab));
  EXPECT_EQ(vkssm_model_snapshot(cm, 2, nullptr, 0, &size), VKSSM_ERROR);
  EXPECT_STREQ(vkssm_last_error(), "slot 2 out of range [0, 2)");

  // Restore into slot 1, then both slots continue alike.
  ASSERT_EQ(vkssm_model_restore(cm, 1, blob.data(), blob.size()), VKSSM_OK) << vkssm_last_error();
  std::vector<float> a(kVocab), b(kVocab), c(kVocab);
  const int32_t next = 9;
  ASSERT_EQ(vkssm_model_step(cm, &next, &slot1, 1, b.data()), VKSSM_OK);
  // Fork slot 0 into slot 1 (overwriting the step just taken), then step both with the same token.
  ASSERT_EQ(vkssm_model_fork(cm, 0, 1), VKSSM_OK) << vkssm_last_error();
  ASSERT_EQ(vkssm_model_step(cm, &next, &slot0, 1, a.data()), VKSSM_OK);
  ASSERT_EQ(vkssm_model_step(cm, &next, &slot1, 1, c.data()), VKSSM_OK);
  cpp->step(&next, &slot0, 1, nullptr);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
  EXPECT_EQ(vkssm_model_fork(cm, 0, 2), VKSSM_ERROR);
  EXPECT_STREQ(vkssm_last_error(), "slot 2 out of range [0, 2)");

  // A damaged or truncated blob is refused and changes nothing.
  std::vector<uint8_t> now(want.size()), before(want.size());
  ASSERT_EQ(vkssm_model_snapshot(cm, 1, before.data(), before.size(), &size), VKSSM_OK);
  std::vector<uint8_t> broken = blob;
  broken[broken.size() / 2] ^= 0x5a;
  EXPECT_EQ(vkssm_model_restore(cm, 1, broken.data(), broken.size()), VKSSM_ERROR);
  EXPECT_STREQ(vkssm_last_error(), "state: checksum mismatch: the data is corrupt");
  EXPECT_EQ(vkssm_model_restore(cm, 1, blob.data(), 12), VKSSM_ERROR);
  EXPECT_STREQ(vkssm_last_error(), "state: only 12 bytes: too small to be a vkssm state");
  EXPECT_EQ(vkssm_model_restore(cm, 5, blob.data(), blob.size()), VKSSM_ERROR);
  EXPECT_STREQ(vkssm_last_error(), "slot 5 out of range [0, 2)");
  ASSERT_EQ(vkssm_model_snapshot(cm, 1, now.data(), now.size(), &size), VKSSM_OK);
  EXPECT_EQ(now, before);
  // The C++ model continued the same way: its blob equals the C model's slot 0.
  ASSERT_EQ(vkssm_model_snapshot(cm, 0, now.data(), now.size(), &size), VKSSM_OK);
  EXPECT_EQ(now, cpp->snapshot(0));
  vkssm_model_free(cm);
}

TEST_F(CApiTest, StateFilesRoundTrip) {
  vkssm_model* m = load_c(1);
  ASSERT_NE(m, nullptr);
  const std::vector<int32_t> toks = some_tokens(3, 4);
  const int32_t slot0 = 0;
  for (int32_t t : toks) ASSERT_EQ(vkssm_model_step(m, &t, &slot0, 1, nullptr), VKSSM_OK);
  const std::string file = (dir_ / "slot0.state").string();
  ASSERT_EQ(vkssm_model_snapshot_to_file(m, 0, file.c_str()), VKSSM_OK) << vkssm_last_error();
  size_t size = 0;
  ASSERT_EQ(vkssm_model_snapshot(m, 0, nullptr, 0, &size), VKSSM_OK);
  std::vector<uint8_t> blob(size);
  ASSERT_EQ(vkssm_model_snapshot(m, 0, blob.data(), blob.size(), &size), VKSSM_OK);
  EXPECT_EQ(load_state_file(file), blob);  // the file holds exactly the blob
  ASSERT_EQ(vkssm_model_restore_from_file(m, 1, file.c_str()), VKSSM_OK) << vkssm_last_error();
  std::vector<uint8_t> restored(size);
  ASSERT_EQ(vkssm_model_snapshot(m, 1, restored.data(), restored.size(), &size), VKSSM_OK);
  EXPECT_EQ(restored, blob);

  const std::string missing = (dir_ / "missing.state").string();
  EXPECT_EQ(vkssm_model_restore_from_file(m, 1, missing.c_str()), VKSSM_ERROR);
  EXPECT_EQ(vkssm_last_error(), "cannot open state file '" + missing + "': No such file or directory");
  const std::string unwritable = (dir_ / "no_dir" / "x.state").string();
  EXPECT_EQ(vkssm_model_snapshot_to_file(m, 0, unwritable.c_str()), VKSSM_ERROR);
  EXPECT_EQ(vkssm_last_error(), "cannot write state file '" + unwritable + "': No such file or directory");
  EXPECT_EQ(vkssm_model_snapshot_to_file(m, 3, file.c_str()), VKSSM_ERROR);
  EXPECT_STREQ(vkssm_last_error(), "slot 3 out of range [0, 2)");
  vkssm_model_free(m);
}

TEST_F(CApiTest, SubmitCollectMatchesSynchronousSteps) {
  for (int backend : {1, 0}) {
    vkssm_model* cm = load_c(backend);
    ASSERT_NE(cm, nullptr);
    auto cpp = load_cpp(backend);
    const std::vector<int32_t> a = some_tokens(4, 5), b = some_tokens(4, 6);
    const int32_t s0 = 0, s1 = 1;
    const vkssm_sampling cp = {0.7f, 0, 3};
    const SamplingParams p = {0.7f, 0, 3};
    for (size_t t = 0; t < a.size(); ++t) {
      // Two steps in flight: slot 0 with logits, slot 1 sampled without them.
      ASSERT_EQ(vkssm_model_submit(cm, &a[t], nullptr, &s0, 1, nullptr, 1), VKSSM_OK) << vkssm_last_error();
      ASSERT_EQ(vkssm_model_submit(cm, &b[t], nullptr, &s1, 1, &cp, 0), VKSSM_OK) << vkssm_last_error();
      EXPECT_EQ(vkssm_model_in_flight(cm), 2);
      EXPECT_EQ(vkssm_model_submit(cm, &a[t], nullptr, &s0, 1, nullptr, 1), VKSSM_ERROR);
      EXPECT_STREQ(vkssm_last_error(), "two steps are already in flight; collect() one first");
      if (backend == 0) {
        EXPECT_EQ(vkssm_model_step(cm, &a[t], &s0, 1, nullptr), VKSSM_ERROR);
        EXPECT_STREQ(vkssm_last_error(), "step while 2 submitted step(s) are not collected; call collect() first");
      }
      std::vector<float> got(kVocab, -1.0f), want(kVocab, -2.0f);
      int32_t next = -1, want_next = -2;
      ASSERT_EQ(vkssm_model_collect(cm, nullptr, got.data()), VKSSM_OK) << vkssm_last_error();
      EXPECT_EQ(vkssm_model_in_flight(cm), 1);
      ASSERT_EQ(vkssm_model_collect(cm, &next, nullptr), VKSSM_OK) << vkssm_last_error();
      cpp->step(&a[t], &s0, 1, want.data());
      cpp->step_sample(&b[t], &s1, 1, &p, &want_next, nullptr);
      EXPECT_EQ(got, want) << backend_name(backend) << " step " << t;
      EXPECT_EQ(next, want_next) << backend_name(backend) << " step " << t;
    }
    EXPECT_EQ(vkssm_model_in_flight(cm), 0);
    EXPECT_EQ(vkssm_model_collect(cm, nullptr, nullptr), VKSSM_ERROR);
    EXPECT_STREQ(vkssm_last_error(), "collect: no submitted step to collect");
    const int32_t bad = int32_t(kVocab);
    EXPECT_EQ(vkssm_model_submit(cm, &bad, nullptr, &s0, 1, nullptr, 0), VKSSM_ERROR);
    EXPECT_STREQ(vkssm_last_error(), "token id 64 out of range [0, 64)");
    const float frame = 0.5f;
    EXPECT_EQ(vkssm_model_submit_frames(cm, &frame, &s0, 1, 1, 0), VKSSM_ERROR);
    EXPECT_STREQ(vkssm_last_error(), "this model takes token ids (vkssm_model_submit), not input frames");
    EXPECT_EQ(vkssm_model_in_flight(cm), 0);
    vkssm_model_free(cm);
  }
}

TEST_F(CApiTest, FrameCallsOnATokenModelAreRefused) {
  vkssm_model* m = load_c();
  ASSERT_NE(m, nullptr);
  const float frame[4] = {0, 0, 0, 0};
  const int32_t slot = 0;
  EXPECT_EQ(vkssm_model_step_frames(m, frame, &slot, 1, nullptr), VKSSM_ERROR);
  EXPECT_STREQ(vkssm_last_error(), "model 'mamba' takes token ids (step), not input frames");
  vkssm_model_free(m);
}

// S4D through the C API: a frame model on the cpu backend.
TEST_F(CApiTest, FrameModelStepsLikeTheCppApi) {
  S4DConfig c;
  c.d_input = 3;
  c.d_model = 8;
  c.d_state = 4;
  c.n_layers = 2;
  c.d_output = 5;
  const S4DWeights w = random_s4d(c, 9);
  const std::string path = (dir_ / "s4d").string();
  save_s4d(w, path, DType::F32);
  vkssm_load_options opts;
  vkssm_load_options_default(&opts);
  opts.backend = 1;
  opts.max_streams = 2;
  opts.frames_per_step = 2;
  vkssm_model* m = nullptr;
  ASSERT_EQ(vkssm_model_load(path.c_str(), &opts, &m), VKSSM_OK) << vkssm_last_error();
  LoadOptions lo;
  lo.backend = BackendKind::Reference;
  lo.max_streams = 2;
  lo.frames_per_step = 2;
  auto cpp = load_model(path, lo);
  EXPECT_EQ(vkssm_model_vocab_size(m), 0);
  EXPECT_EQ(vkssm_model_d_input(m), 3);
  EXPECT_EQ(vkssm_model_d_output(m), 5);
  EXPECT_STREQ(vkssm_model_architecture(m), "s4d");

  const int32_t slots[2] = {1, 0};
  for (int t = 0; t < 3; ++t) {
    float frames[6];
    for (int k = 0; k < 6; ++k) frames[k] = 0.1f * float((k * 5 + t * 3) % 7) - 0.3f;
    std::vector<float> got(10, -1.0f), want(10, -2.0f);
    if (t == 1) {  // asynchronously
      ASSERT_EQ(vkssm_model_submit(m, nullptr, frames, slots, 2, nullptr, 1), VKSSM_OK) << vkssm_last_error();
      ASSERT_EQ(vkssm_model_collect(m, nullptr, got.data()), VKSSM_OK) << vkssm_last_error();
    } else {
      ASSERT_EQ(vkssm_model_step_frames(m, frames, slots, 2, got.data()), VKSSM_OK) << vkssm_last_error();
    }
    cpp->step_frames(frames, slots, 2, want.data());
    EXPECT_EQ(got, want) << "step " << t;
  }
  {  // two frames per stream in one step: outputs [stream][frame][5]
    float frames[12];
    for (int k = 0; k < 12; ++k) frames[k] = 0.07f * float((k * 3) % 11) - 0.2f;
    std::vector<float> got(20, -1.0f), want(20, -2.0f);
    ASSERT_EQ(vkssm_model_submit_frames(m, frames, slots, 2, 2, 1), VKSSM_OK) << vkssm_last_error();
    ASSERT_EQ(vkssm_model_collect(m, nullptr, got.data()), VKSSM_OK) << vkssm_last_error();
    cpp->submit({.frames = frames, .slots = slots, .batch = 2, .want_outputs = true, .frames_per_stream = 2});
    cpp->collect(nullptr, want.data());
    EXPECT_EQ(got, want);
    EXPECT_EQ(vkssm_model_submit_frames(m, frames, slots, 2, 3, 1), VKSSM_ERROR);
    EXPECT_STREQ(vkssm_last_error(), "submit: frames_per_stream 3 is outside 1 .. 2 (LoadOptions::frames_per_step)");
    EXPECT_EQ(vkssm_model_submit_frames(m, nullptr, slots, 2, 2, 1), VKSSM_INVALID_ARGUMENT);
    EXPECT_STREQ(vkssm_last_error(), "vkssm_model_submit_frames: frames is NULL");
    EXPECT_EQ(vkssm_model_in_flight(m), 0);
  }
  const int32_t tok = 0, slot = 0;
  EXPECT_EQ(vkssm_model_step(m, &tok, &slot, 1, nullptr), VKSSM_ERROR);
  EXPECT_STREQ(vkssm_last_error(), "model 's4d' takes input frames (step_frames), not token ids");
  const float frame[3] = {0.5f, -0.5f, 0.25f};
  EXPECT_EQ(vkssm_model_submit(m, &tok, nullptr, &slot, 1, nullptr, 0), VKSSM_INVALID_ARGUMENT);
  EXPECT_STREQ(vkssm_last_error(), "vkssm_model_submit: frames is NULL");

  // The pool queues frames.
  vkssm_pool* pool = nullptr;
  ASSERT_EQ(vkssm_pool_create(m, &pool), VKSSM_OK) << vkssm_last_error();
  vkssm_stream s = 0;
  ASSERT_EQ(vkssm_pool_open(pool, &s), VKSSM_OK);
  ASSERT_EQ(vkssm_pool_feed_frames(pool, s, frame, 1), VKSSM_OK) << vkssm_last_error();
  size_t pending = 0;
  ASSERT_EQ(vkssm_pool_pending(pool, s, &pending), VKSSM_OK);
  EXPECT_EQ(pending, 1u);
  EXPECT_EQ(vkssm_pool_feed(pool, s, &tok, 1), VKSSM_ERROR);
  EXPECT_STREQ(vkssm_last_error(), "feed: model 's4d' takes input frames (feed_frames), not token ids");
  vkssm_step_result results[2];
  float outputs[10];
  int count = -1;
  EXPECT_EQ(vkssm_pool_step_sample(pool, 0, results, nullptr, &count), VKSSM_ERROR);
  EXPECT_STREQ(vkssm_last_error(), "step_sample: model 's4d' takes input frames and has no tokens to sample; use step()");
  EXPECT_EQ(count, 0);
  ASSERT_EQ(vkssm_pool_step(pool, results, outputs, &count), VKSSM_OK) << vkssm_last_error();
  ASSERT_EQ(count, 1);
  EXPECT_EQ(results[0].stream, s);
  EXPECT_EQ(results[0].token_fed, -1);
  EXPECT_EQ(results[0].sampled, -1);
  std::vector<float> want(5);
  cpp->reset(0);
  cpp->step_frames(frame, &slot, 1, want.data());
  EXPECT_EQ(std::vector<float>(outputs, outputs + 5), want);
  vkssm_pool_free(pool);
  vkssm_model_free(m);
}

// ---- streams ------------------------------------------------------------------------------------

// The C pool and the C++ StreamPool, given the same calls, return the same results bit for bit.
TEST_F(CApiTest, PoolMatchesTheCppStreamPool) {
  for (int backend : {1, 0}) {
    vkssm_model* cm = load_c(backend, 3);
    ASSERT_NE(cm, nullptr);
    auto model = load_cpp(backend, 3);
    StreamPool cpp(*model);
    vkssm_pool* pool = nullptr;
    ASSERT_EQ(vkssm_pool_create(cm, &pool), VKSSM_OK) << vkssm_last_error();
    EXPECT_EQ(vkssm_pool_open_count(pool), 0);

    const std::vector<int32_t> pa = some_tokens(9, 7), pb = some_tokens(2, 8);
    vkssm_stream a = 0, b = 0;
    ASSERT_EQ(vkssm_pool_open(pool, &a), VKSSM_OK);
    ASSERT_EQ(vkssm_pool_open(pool, &b), VKSSM_OK);
    EXPECT_NE(a, 0u);
    EXPECT_NE(a, b);
    EXPECT_EQ(vkssm_pool_open_count(pool), 2);
    const StreamHandle ha = cpp.open(), hb = cpp.open();
    ASSERT_EQ(vkssm_pool_feed(pool, a, pa.data(), pa.size()), VKSSM_OK);
    ASSERT_EQ(vkssm_pool_feed(pool, b, pb.data(), pb.size()), VKSSM_OK);
    cpp.feed(ha, pa.data(), pa.size());
    cpp.feed(hb, pb.data(), pb.size());
    const vkssm_sampling sa = {0.8f, 10, 11};
    ASSERT_EQ(vkssm_pool_set_sampling(pool, a, &sa), VKSSM_OK);
    cpp.set_sampling(ha, {0.8f, 10, 11});

    // One plain step, a prefill, then generation with feed_back; logits on every other step.
    vkssm_step_result r[3];
    std::vector<float> outputs(3 * kVocab);
    int count = -1;
    ASSERT_EQ(vkssm_pool_step(pool, r, outputs.data(), &count), VKSSM_OK) << vkssm_last_error();
    auto want = cpp.step();
    ASSERT_EQ(count, int(want.size()));
    ASSERT_EQ(count, 2);
    for (int i = 0; i < count; ++i) {
      EXPECT_EQ(r[i].token_fed, want[size_t(i)].token_fed);
      EXPECT_EQ(r[i].sampled, -1);
      EXPECT_EQ(std::vector<float>(outputs.begin() + i * kVocab, outputs.begin() + (i + 1) * kVocab),
                want[size_t(i)].logits);
    }
    EXPECT_EQ(r[0].stream, a);
    EXPECT_EQ(r[1].stream, b);
    size_t consumed = 0, pending = 0;
    ASSERT_EQ(vkssm_pool_prefill(pool, a, &consumed), VKSSM_OK) << vkssm_last_error();
    EXPECT_EQ(consumed, cpp.prefill(ha));
    EXPECT_EQ(consumed, 7u);
    ASSERT_EQ(vkssm_pool_pending(pool, a, &pending), VKSSM_OK);
    EXPECT_EQ(pending, 1u);
    for (int t = 0; t < 5; ++t) {
      const bool with_logits = t % 2 == 0;
      ASSERT_EQ(vkssm_pool_step_sample(pool, 1, r, with_logits ? outputs.data() : nullptr, &count), VKSSM_OK)
          << vkssm_last_error();
      want = cpp.step_sample({.want_logits = with_logits, .feed_back = true});
      ASSERT_EQ(count, int(want.size()));
      ASSERT_EQ(count, 2) << "feed_back keeps both streams going";
      for (int i = 0; i < count; ++i) {
        EXPECT_EQ(r[i].token_fed, want[size_t(i)].token_fed) << backend_name(backend) << " step " << t;
        EXPECT_EQ(r[i].sampled, want[size_t(i)].sampled) << backend_name(backend) << " step " << t;
        if (with_logits) {
          EXPECT_EQ(std::vector<float>(outputs.begin() + i * kVocab, outputs.begin() + (i + 1) * kVocab),
                    want[size_t(i)].logits);
        }
      }
    }
    // Without feed_back the queues drain.
    ASSERT_EQ(vkssm_pool_step_sample(pool, 0, r, nullptr, &count), VKSSM_OK);
    EXPECT_EQ(count, 2);
    ASSERT_EQ(vkssm_pool_step(pool, r, nullptr, &count), VKSSM_OK);
    EXPECT_EQ(count, 0);
    vkssm_pool_free(pool);
    vkssm_model_free(cm);
  }
}

TEST_F(CApiTest, PoolStateCallsAndErrors) {
  vkssm_model* m = load_c(0, 2, 2);
  ASSERT_NE(m, nullptr);
  vkssm_pool* pool = nullptr;
  ASSERT_EQ(vkssm_pool_create(m, &pool), VKSSM_OK);
  vkssm_stream a = 0;
  ASSERT_EQ(vkssm_pool_open(pool, &a), VKSSM_OK);
  const std::vector<int32_t> toks = some_tokens(3, 9);
  ASSERT_EQ(vkssm_pool_feed(pool, a, toks.data(), toks.size()), VKSSM_OK);
  vkssm_step_result r[2];
  int count = 0;
  ASSERT_EQ(vkssm_pool_step(pool, r, nullptr, &count), VKSSM_OK);
  size_t size = 0;
  ASSERT_EQ(vkssm_pool_snapshot(pool, a, nullptr, 0, &size), VKSSM_OK) << vkssm_last_error();
  std::vector<uint8_t> after1(size), now(size);
  ASSERT_EQ(vkssm_pool_snapshot(pool, a, after1.data(), after1.size(), &size), VKSSM_OK);
  EXPECT_EQ(vkssm_pool_snapshot(pool, a, now.data(), 4, &size), VKSSM_INVALID_ARGUMENT);
  EXPECT_EQ(vkssm_last_error(), "vkssm_pool_snapshot: buffer of 4 bytes is too small for the " +
                                    std::to_string(after1.size()) + "-byte state blob");
  ASSERT_EQ(vkssm_pool_step(pool, r, nullptr, &count), VKSSM_OK);
  ASSERT_EQ(vkssm_pool_step(pool, r, nullptr, &count), VKSSM_OK);

  // Rollback.
  int available = -1;
  ASSERT_EQ(vkssm_pool_rollback_available(pool, a, &available), VKSSM_OK);
  EXPECT_EQ(available, 2);
  ASSERT_EQ(vkssm_pool_rollback(pool, a, 2), VKSSM_OK) << vkssm_last_error();
  ASSERT_EQ(vkssm_pool_snapshot(pool, a, now.data(), now.size(), &size), VKSSM_OK);
  EXPECT_EQ(now, after1);
  EXPECT_EQ(vkssm_pool_rollback(pool, a, 1), VKSSM_ERROR);
  EXPECT_STREQ(vkssm_last_error(), "rollback of 1 steps on slot 0: only 0 steps since its last reset, restore or fork");

  // Restore opens a stream; fork copies one; a bad blob opens nothing.
  vkssm_stream b = 0, c = 0;
  std::vector<uint8_t> broken = after1;
  broken[broken.size() / 2] ^= 0x5a;
  b = 77;
  EXPECT_EQ(vkssm_pool_restore(pool, broken.data(), broken.size(), &b), VKSSM_ERROR);
  EXPECT_STREQ(vkssm_last_error(), "state: checksum mismatch: the data is corrupt");
  EXPECT_EQ(b, 0u);
  EXPECT_EQ(vkssm_pool_open_count(pool), 1);
  ASSERT_EQ(vkssm_pool_restore(pool, after1.data(), after1.size(), &b), VKSSM_OK) << vkssm_last_error();
  ASSERT_EQ(vkssm_pool_snapshot(pool, b, now.data(), now.size(), &size), VKSSM_OK);
  EXPECT_EQ(now, after1);
  EXPECT_EQ(vkssm_pool_fork(pool, a, &c), VKSSM_ERROR);
  EXPECT_STREQ(vkssm_last_error(), "stream capacity of 2 exceeded (all 2 streams are open)");
  EXPECT_EQ(c, 0u);
  ASSERT_EQ(vkssm_pool_close(pool, b), VKSSM_OK);
  ASSERT_EQ(vkssm_pool_fork(pool, a, &c), VKSSM_OK) << vkssm_last_error();
  ASSERT_EQ(vkssm_pool_snapshot(pool, c, now.data(), now.size(), &size), VKSSM_OK);
  EXPECT_EQ(now, after1);
  ASSERT_EQ(vkssm_pool_reset(pool, c), VKSSM_OK);

  // Bad tokens, stale handles, handle 0.
  const int32_t bad = int32_t(kVocab);
  EXPECT_EQ(vkssm_pool_feed(pool, a, &bad, 1), VKSSM_ERROR);
  EXPECT_STREQ(vkssm_last_error(), "token id 64 out of range [0, 64)");
  const vkssm_sampling hot = {-2.0f, 0, 0};
  EXPECT_EQ(vkssm_pool_set_sampling(pool, a, &hot), VKSSM_ERROR);
  EXPECT_STREQ(vkssm_last_error(), "sampling temperature must be finite and >= 0 (got -2.000000)");
  const float frame = 1.0f;
  EXPECT_EQ(vkssm_pool_feed_frames(pool, a, &frame, 1), VKSSM_ERROR);
  EXPECT_STREQ(vkssm_last_error(), "feed_frames: model 'mamba' takes token ids (feed), not input frames");
  const vkssm_stream stale = b;  // closed above, its slot reused by c with the next generation
  EXPECT_EQ(stale & 0xffffffffu, c & 0xffffffffu);
  EXPECT_NE(stale, c);
  const std::string stale_msg = "stream handle is closed or stale (slot " + std::to_string((stale & 0xffffffffu) - 1) +
                                ", generation " + std::to_string(stale >> 32) + ")";
  size_t pending = 0;
  const vkssm_sampling greedy = {0.0f, 0, 0};
  vkssm_stream out = 0;
  const std::vector<std::function<vkssm_status()>> uses = {
      [&] { return vkssm_pool_close(pool, stale); },
      [&] { return vkssm_pool_reset(pool, stale); },
      [&] { return vkssm_pool_fork(pool, stale, &out); },
      [&] { return vkssm_pool_feed(pool, stale, toks.data(), 1); },
      [&] { return vkssm_pool_feed_frames(pool, stale, &frame, 1); },
      [&] { return vkssm_pool_pending(pool, stale, &pending); },
      [&] { return vkssm_pool_set_sampling(pool, stale, &greedy); },
      [&] { return vkssm_pool_prefill(pool, stale, nullptr); },
      [&] { return vkssm_pool_rollback(pool, stale, 0); },
      [&] { return vkssm_pool_rollback_available(pool, stale, &available); },
      [&] { return vkssm_pool_snapshot(pool, stale, nullptr, 0, &size); },
  };
  for (size_t i = 0; i < uses.size(); ++i) {
    EXPECT_EQ(uses[i](), VKSSM_ERROR) << "use " << i;
    EXPECT_EQ(vkssm_last_error(), stale_msg) << "use " << i;
  }
  EXPECT_EQ(vkssm_pool_feed(pool, 0, toks.data(), 1), VKSSM_INVALID_ARGUMENT);
  EXPECT_STREQ(vkssm_last_error(), "vkssm_pool_feed: stream 0 is not a stream handle");
  EXPECT_EQ(vkssm_pool_close(pool, uint64_t(5) << 32), VKSSM_INVALID_ARGUMENT);
  EXPECT_STREQ(vkssm_last_error(), "vkssm_pool_close: stream 21474836480 is not a stream handle");
  EXPECT_EQ(vkssm_pool_close(pool, 1000), VKSSM_ERROR);
  EXPECT_STREQ(vkssm_last_error(), "stream handle is closed or stale (slot 999, generation 0)");
  vkssm_pool_free(pool);
  vkssm_model_free(m);
}

// Threads feed their own streams while one thread steps the pool: every stream gets its tokens in
// order, as when run alone.
TEST_F(CApiTest, PoolFedFromSeveralThreads) {
  vkssm_model* m = load_c(0, 2);
  ASSERT_NE(m, nullptr);
  vkssm_pool* pool = nullptr;
  ASSERT_EQ(vkssm_pool_create(m, &pool), VKSSM_OK);
  vkssm_stream s[2];
  for (auto& h : s) ASSERT_EQ(vkssm_pool_open(pool, &h), VKSSM_OK);
  constexpr int kTokens = 30;
  std::vector<std::vector<int32_t>> toks = {some_tokens(kTokens, 1), some_tokens(kTokens, 2)};
  std::atomic<int> done{0};
  std::vector<std::thread> feeders;
  for (int i = 0; i < 2; ++i)
    feeders.emplace_back([&, i] {
      for (int32_t t : toks[size_t(i)]) {
        EXPECT_EQ(vkssm_pool_feed(pool, s[i], &t, 1), VKSSM_OK);
        std::this_thread::yield();
      }
      done++;
    });
  std::vector<std::vector<float>> got(2);
  std::vector<std::vector<int32_t>> fed(2);
  vkssm_step_result r[2];
  std::vector<float> outputs(2 * kVocab);
  for (;;) {
    const bool all_fed = done.load() == 2;
    int count = 0;
    ASSERT_EQ(vkssm_pool_step(pool, r, outputs.data(), &count), VKSSM_OK) << vkssm_last_error();
    for (int i = 0; i < count; ++i) {
      const size_t k = r[i].stream == s[0] ? 0 : 1;
      fed[k].push_back(r[i].token_fed);
      got[k].insert(got[k].end(), outputs.begin() + i * kVocab, outputs.begin() + (i + 1) * kVocab);
    }
    if (all_fed && count == 0) break;
  }
  for (auto& f : feeders) f.join();
  auto cpp = load_cpp(0, 2);
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(fed[k], toks[k]);
    std::vector<float> want(size_t(kTokens) * kVocab);
    const int32_t slot = int32_t(k);
    for (int t = 0; t < kTokens; ++t) cpp->step(&toks[k][size_t(t)], &slot, 1, want.data() + size_t(t) * kVocab);
    ASSERT_EQ(got[k].size(), want.size());
    EXPECT_LT(max_abs_diff(got[k], want), 1e-4f) << "stream " << k;
  }
  vkssm_pool_free(pool);
  vkssm_model_free(m);
}

TEST_F(CApiTest, NullArgumentsOfTheNewFunctions) {
  vkssm_model* m = load_c(1);
  ASSERT_NE(m, nullptr);
  vkssm_pool* pool = nullptr;
  ASSERT_EQ(vkssm_pool_create(m, &pool), VKSSM_OK);
  vkssm_stream s = 0;
  ASSERT_EQ(vkssm_pool_open(pool, &s), VKSSM_OK);
  const int32_t tok = 1, slot = 0;
  int32_t next = 0;
  int n = 0;
  size_t size = 0;
  float f[kVocab];
  uint8_t blob[8] = {};
  const vkssm_sampling sp = {0.0f, 0, 0};
  vkssm_step_result r[2];
  vkssm_stream out = 0;
  vkssm_model* no_model = nullptr;
  vkssm_pool* no_pool = nullptr;
  vkssm_pool* other_pool = pool;  // vkssm_pool_create sets it to NULL on failure
  const char* file = "x.state";
  struct Case {
    std::function<vkssm_status()> call;
    const char* message;
  };
  const std::vector<Case> cases = {
      {[&] { return vkssm_model_step_frames(no_model, f, &slot, 1, f); }, "vkssm_model_step_frames: model is NULL"},
      {[&] { return vkssm_model_step_frames(m, nullptr, &slot, 1, f); }, "vkssm_model_step_frames: frames is NULL"},
      {[&] { return vkssm_model_step_frames(m, f, nullptr, 1, f); }, "vkssm_model_step_frames: slots is NULL"},
      {[&] { return vkssm_model_step_sample(no_model, &tok, &slot, 1, &sp, &next, f); }, "vkssm_model_step_sample: model is NULL"},
      {[&] { return vkssm_model_step_sample(m, nullptr, &slot, 1, &sp, &next, f); }, "vkssm_model_step_sample: tokens is NULL"},
      {[&] { return vkssm_model_step_sample(m, &tok, nullptr, 1, &sp, &next, f); }, "vkssm_model_step_sample: slots is NULL"},
      {[&] { return vkssm_model_step_sample(m, &tok, &slot, 1, nullptr, &next, f); }, "vkssm_model_step_sample: params is NULL"},
      {[&] { return vkssm_model_step_sample(m, &tok, &slot, 1, &sp, nullptr, f); }, "vkssm_model_step_sample: next_tokens is NULL"},
      {[&] { return vkssm_model_prefill(no_model, 0, &tok, 1, f); }, "vkssm_model_prefill: model is NULL"},
      {[&] { return vkssm_model_prefill(m, 0, nullptr, 1, f); }, "vkssm_model_prefill: tokens is NULL"},
      {[&] { return vkssm_model_rollback(no_model, 0, 1); }, "vkssm_model_rollback: model is NULL"},
      {[&] { return vkssm_model_rollback_available(no_model, 0, &n); }, "vkssm_model_rollback_available: model is NULL"},
      {[&] { return vkssm_model_rollback_available(m, 0, nullptr); }, "vkssm_model_rollback_available: available is NULL"},
      {[&] { return vkssm_model_fork(no_model, 0, 1); }, "vkssm_model_fork: model is NULL"},
      {[&] { return vkssm_model_snapshot(no_model, 0, nullptr, 0, &size); }, "vkssm_model_snapshot: model is NULL"},
      {[&] { return vkssm_model_snapshot(m, 0, blob, 8, nullptr); }, "vkssm_model_snapshot: size is NULL"},
      {[&] { return vkssm_model_restore(no_model, 0, blob, 8); }, "vkssm_model_restore: model is NULL"},
      {[&] { return vkssm_model_restore(m, 0, nullptr, 8); }, "vkssm_model_restore: data is NULL"},
      {[&] { return vkssm_model_snapshot_to_file(no_model, 0, file); }, "vkssm_model_snapshot_to_file: model is NULL"},
      {[&] { return vkssm_model_snapshot_to_file(m, 0, nullptr); }, "vkssm_model_snapshot_to_file: path is NULL"},
      {[&] { return vkssm_model_restore_from_file(no_model, 0, file); }, "vkssm_model_restore_from_file: model is NULL"},
      {[&] { return vkssm_model_restore_from_file(m, 0, nullptr); }, "vkssm_model_restore_from_file: path is NULL"},
      {[&] { return vkssm_model_submit(no_model, &tok, nullptr, &slot, 1, nullptr, 1); }, "vkssm_model_submit: model is NULL"},
      {[&] { return vkssm_model_submit(m, nullptr, nullptr, &slot, 1, nullptr, 1); }, "vkssm_model_submit: tokens is NULL"},
      {[&] { return vkssm_model_submit(m, &tok, nullptr, nullptr, 1, nullptr, 1); }, "vkssm_model_submit: slots is NULL"},
      {[&] { return vkssm_model_collect(no_model, &next, f); }, "vkssm_model_collect: model is NULL"},
      {[&] { return vkssm_pool_create(no_model, &other_pool); }, "vkssm_pool_create: model is NULL"},
      {[&] { return vkssm_pool_create(m, nullptr); }, "vkssm_pool_create: out is NULL"},
      {[&] { return vkssm_pool_open(no_pool, &out); }, "vkssm_pool_open: pool is NULL"},
      {[&] { return vkssm_pool_open(pool, nullptr); }, "vkssm_pool_open: out is NULL"},
      {[&] { return vkssm_pool_close(no_pool, s); }, "vkssm_pool_close: pool is NULL"},
      {[&] { return vkssm_pool_reset(no_pool, s); }, "vkssm_pool_reset: pool is NULL"},
      {[&] { return vkssm_pool_fork(no_pool, s, &out); }, "vkssm_pool_fork: pool is NULL"},
      {[&] { return vkssm_pool_fork(pool, s, nullptr); }, "vkssm_pool_fork: out is NULL"},
      {[&] { return vkssm_pool_feed(no_pool, s, &tok, 1); }, "vkssm_pool_feed: pool is NULL"},
      {[&] { return vkssm_pool_feed(pool, s, nullptr, 1); }, "vkssm_pool_feed: tokens is NULL"},
      {[&] { return vkssm_pool_feed_frames(no_pool, s, f, 1); }, "vkssm_pool_feed_frames: pool is NULL"},
      {[&] { return vkssm_pool_feed_frames(pool, s, nullptr, 1); }, "vkssm_pool_feed_frames: frames is NULL"},
      {[&] { return vkssm_pool_pending(no_pool, s, &size); }, "vkssm_pool_pending: pool is NULL"},
      {[&] { return vkssm_pool_pending(pool, s, nullptr); }, "vkssm_pool_pending: out is NULL"},
      {[&] { return vkssm_pool_set_sampling(no_pool, s, &sp); }, "vkssm_pool_set_sampling: pool is NULL"},
      {[&] { return vkssm_pool_set_sampling(pool, s, nullptr); }, "vkssm_pool_set_sampling: params is NULL"},
      {[&] { return vkssm_pool_step(no_pool, r, f, &n); }, "vkssm_pool_step: pool is NULL"},
      {[&] { return vkssm_pool_step(pool, nullptr, f, &n); }, "vkssm_pool_step: results is NULL"},
      {[&] { return vkssm_pool_step(pool, r, f, nullptr); }, "vkssm_pool_step: count is NULL"},
      {[&] { return vkssm_pool_step_sample(no_pool, 1, r, f, &n); }, "vkssm_pool_step_sample: pool is NULL"},
      {[&] { return vkssm_pool_step_sample(pool, 1, nullptr, f, &n); }, "vkssm_pool_step_sample: results is NULL"},
      {[&] { return vkssm_pool_step_sample(pool, 1, r, f, nullptr); }, "vkssm_pool_step_sample: count is NULL"},
      {[&] { return vkssm_pool_prefill(no_pool, s, &size); }, "vkssm_pool_prefill: pool is NULL"},
      {[&] { return vkssm_pool_rollback(no_pool, s, 0); }, "vkssm_pool_rollback: pool is NULL"},
      {[&] { return vkssm_pool_rollback_available(no_pool, s, &n); }, "vkssm_pool_rollback_available: pool is NULL"},
      {[&] { return vkssm_pool_rollback_available(pool, s, nullptr); }, "vkssm_pool_rollback_available: available is NULL"},
      {[&] { return vkssm_pool_snapshot(no_pool, s, blob, 8, &size); }, "vkssm_pool_snapshot: pool is NULL"},
      {[&] { return vkssm_pool_snapshot(pool, s, blob, 8, nullptr); }, "vkssm_pool_snapshot: size is NULL"},
      {[&] { return vkssm_pool_restore(no_pool, blob, 8, &out); }, "vkssm_pool_restore: pool is NULL"},
      {[&] { return vkssm_pool_restore(pool, nullptr, 8, &out); }, "vkssm_pool_restore: data is NULL"},
      {[&] { return vkssm_pool_restore(pool, blob, 8, nullptr); }, "vkssm_pool_restore: out is NULL"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(c.call(), VKSSM_INVALID_ARGUMENT) << c.message;
    EXPECT_STREQ(vkssm_last_error(), c.message);
  }
  // Getters give 0 / NULL.
  EXPECT_EQ(vkssm_model_d_input(nullptr), 0);
  EXPECT_STREQ(vkssm_last_error(), "vkssm_model_d_input: model is NULL");
  EXPECT_EQ(vkssm_model_d_output(nullptr), 0);
  EXPECT_STREQ(vkssm_last_error(), "vkssm_model_d_output: model is NULL");
  EXPECT_EQ(vkssm_model_architecture(nullptr), nullptr);
  EXPECT_STREQ(vkssm_last_error(), "vkssm_model_architecture: model is NULL");
  EXPECT_EQ(vkssm_model_in_flight(nullptr), 0);
  EXPECT_STREQ(vkssm_last_error(), "vkssm_model_in_flight: model is NULL");
  EXPECT_EQ(vkssm_pool_open_count(nullptr), 0);
  EXPECT_STREQ(vkssm_last_error(), "vkssm_pool_open_count: pool is NULL");
  vkssm_pool_free(nullptr);
  // Outputs are cleared on failure; optional outputs may be NULL.
  out = 5;
  EXPECT_EQ(vkssm_pool_open(no_pool, &out), VKSSM_INVALID_ARGUMENT);
  EXPECT_EQ(out, 0u);
  n = 5;
  EXPECT_EQ(vkssm_pool_step(no_pool, r, nullptr, &n), VKSSM_INVALID_ARGUMENT);
  EXPECT_EQ(n, 0);
  EXPECT_EQ(vkssm_pool_prefill(pool, s, nullptr), VKSSM_OK);
  EXPECT_EQ(vkssm_model_collect(m, nullptr, nullptr), VKSSM_ERROR);  // NULL outputs are fine, none in flight
  EXPECT_STREQ(vkssm_last_error(), "collect: no submitted step to collect");
  EXPECT_EQ(other_pool, nullptr);
  EXPECT_EQ(vkssm_pool_open_count(pool), 1);
  vkssm_pool_free(pool);
  vkssm_model_free(m);
}

// engine/vkssm.h must stay plain C99: compile a program that calls every function with a C
// compiler (the one CMake found for the project's C sources), warnings as errors.
TEST(CApiHeader, CompilesAsC99) {
  const fs::path dir = fs::path(testing::TempDir()) / ("vkssm_c99_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path source = dir / "use_vkssm.c";
  std::ofstream(source) << R"C(
#include "engine/vkssm.h"
#include <stdio.h>

int use_everything(const char* path) {
  vkssm_load_options opts;
  vkssm_model* model = NULL;
  vkssm_pool* pool = NULL;
  vkssm_stream s = 0, t = 0;
  vkssm_step_result results[4];
  vkssm_sampling sp = {0.8f, 40, 1u};
  int32_t tok = 1, slot = 0, next = 0;
  float out[64], frame[4] = {0};
  unsigned char blob[64];
  size_t size = 0, pending = 0, consumed = 0;
  int n = 0, available = 0;
  vkssm_status st;
  vkssm_load_options_default(&opts);
  opts.rollback_depth = 2;
  opts.cpu_threads = 2;
  st = vkssm_model_load(path, &opts, &model);
  if (st != VKSSM_OK) { fprintf(stderr, "%s\n", vkssm_last_error()); return 1; }
  n += (int)vkssm_model_vocab_size(model) + (int)vkssm_model_d_input(model) + (int)vkssm_model_d_output(model);
  n += vkssm_model_capacity(model) + vkssm_model_in_flight(model);
  n += (int)vkssm_model_state_bytes_per_stream(model) + (int)vkssm_model_weight_bytes(model);
  puts(vkssm_model_architecture(model));
  puts(vkssm_model_backend(model));
  puts(vkssm_model_backend_reason(model));
  puts(vkssm_model_device_name(model));
  vkssm_model_reset(model, 0);
  vkssm_model_step(model, &tok, &slot, 1, out);
  vkssm_model_step_frames(model, frame, &slot, 1, out);
  vkssm_model_step_sample(model, &tok, &slot, 1, &sp, &next, NULL);
  vkssm_model_prefill(model, 0, &tok, 1, out);
  vkssm_model_rollback(model, 0, 1);
  vkssm_model_rollback_available(model, 0, &available);
  vkssm_model_fork(model, 0, 1);
  vkssm_model_snapshot(model, 0, NULL, 0, &size);
  vkssm_model_snapshot(model, 0, blob, sizeof blob, &size);
  vkssm_model_restore(model, 1, blob, size);
  vkssm_model_snapshot_to_file(model, 0, "a.state");
  vkssm_model_restore_from_file(model, 0, "a.state");
  vkssm_model_submit(model, &tok, NULL, &slot, 1, &sp, 1);
  vkssm_model_collect(model, &next, out);
  vkssm_pool_create(model, &pool);
  vkssm_pool_open(pool, &s);
  vkssm_pool_feed(pool, s, &tok, 1);
  vkssm_pool_feed_frames(pool, s, frame, 1);
  vkssm_pool_pending(pool, s, &pending);
  vkssm_pool_set_sampling(pool, s, &sp);
  vkssm_pool_prefill(pool, s, &consumed);
  vkssm_pool_step(pool, results, out, &n);
  vkssm_pool_step_sample(pool, 1, results, NULL, &n);
  vkssm_pool_rollback(pool, s, 1);
  vkssm_pool_rollback_available(pool, s, &available);
  vkssm_pool_snapshot(pool, s, blob, sizeof blob, &size);
  vkssm_pool_restore(pool, blob, size, &t);
  vkssm_pool_fork(pool, s, &t);
  vkssm_pool_reset(pool, s);
  n += vkssm_pool_open_count(pool) + (int)results[0].token_fed + (int)results[0].sampled + (int)(results[0].stream & 1u);
  vkssm_pool_close(pool, s);
  vkssm_pool_free(pool);
  vkssm_model_free(model);
  return n + (int)pending + (int)consumed + available + (st == VKSSM_INVALID_ARGUMENT) + (st == VKSSM_ERROR);
}
)C";
  const fs::path object = dir / "use_vkssm.o", log = dir / "cc.log";
  const std::string cmd = "'" + std::string(VKSSM_C_COMPILER) +
                          "' -std=c99 -pedantic-errors -Wall -Wextra -Werror -I '" + std::string(VKSSM_SOURCE_DIR) +
                          "' -c '" + source.string() + "' -o '" + object.string() + "' > '" + log.string() + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream in(log);
  const std::string diagnostics((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(rc, 0) << cmd << "\n" << diagnostics;
  EXPECT_TRUE(fs::exists(object));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace vkssm

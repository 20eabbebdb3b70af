// The C API (engine/vkssm.h) against the C++ API it wraps: same logits bit for bit, errors as
// status codes plus thread-local messages, and a model fed from two host threads at once.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "engine/vkssm.h"
#include "engine/vkssm.hpp"
#include "host/dtype.h"
#include "models/mamba1/mamba1_model.h"

namespace vkssm {
namespace {

namespace fs = std::filesystem;
using testing::HasSubstr;

constexpr int64_t kVocab = 64;

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

  // Loads the test model through the C API on Vulkan with two slots; fails the test on error.
  vkssm_model* load_c() {
    vkssm_load_options opts;
    vkssm_load_options_default(&opts);
    opts.backend = 0;
    opts.max_streams = 2;
    vkssm_model* m = nullptr;
    EXPECT_EQ(vkssm_model_load(model_path_.c_str(), &opts, &m), VKSSM_OK) << vkssm_last_error();
    EXPECT_NE(m, nullptr);
    return m;
  }

  fs::path dir_;
  std::string model_path_;
};

TEST_F(CApiTest, DefaultOptionsMatchTheCppDefaults) {
  vkssm_load_options o;
  vkssm_load_options_default(&o);
  const LoadOptions d;
  EXPECT_EQ(o.backend, 0);
  EXPECT_EQ(o.device, d.device);
  EXPECT_EQ(o.max_streams, d.max_streams);
  EXPECT_EQ(o.weights, 0);
  EXPECT_EQ(o.validation, 0);
  EXPECT_EQ(o.cache_dir, nullptr);
  vkssm_load_options_default(nullptr);  // NULL-safe
}

TEST_F(CApiTest, LogitsAreBitIdenticalToTheCppApi) {
  vkssm_model* cm = load_c();
  ASSERT_NE(cm, nullptr);
  LoadOptions lo;
  lo.max_streams = 2;
  auto cpp = load_model(model_path_, lo);

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
  EXPECT_THAT(vkssm_last_error(), HasSubstr("backend must be 0 (vulkan) or 1 (cpu), got 7"));
  opts.backend = 1;
  opts.weights = 3;
  EXPECT_EQ(vkssm_model_load(model_path_.c_str(), &opts, &m), VKSSM_INVALID_ARGUMENT);
  EXPECT_THAT(vkssm_last_error(), HasSubstr("got 3"));
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

}  // namespace
}  // namespace vkssm

// Falcon-Mamba (Mamba-1 with RMS-normalised dt, B and C) against the independent PyTorch reference
// (models/mamba1/reference_step.py wrote tests/data/falcon_mamba_tiny and its logits), from HF
// safetensors and from a GGUF file as llama.cpp's converter writes it, on both backends.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "engine/architecture.h"
#include "engine/vkssm.hpp"
#include "host/checkpoint.h"
#include "host/npy.h"
#include "models/mamba1/mamba1_model.h"
#include "tests/gguf_writer.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

namespace fs = std::filesystem;
using testing::HasSubstr;
using testing_helpers::error_of;
using testing_helpers::max_rel_error;

const std::string kModel = std::string(VKSSM_SOURCE_DIR) + "/tests/data/falcon_mamba_tiny";
const std::vector<int32_t> kIds = {0, 5, 36, 12, 3, 3, 9, 30, 1, 22, 31, 7, 8, 19, 2, 30};

// Logits of every token of kIds, fed one at a time to one stream from a zero state.
std::vector<float> run_ids(Model& model) {
  const int64_t V = model.info().vocab_size;
  std::vector<float> all(kIds.size() * V);
  const int32_t slot = 0;
  model.reset(slot);
  for (size_t t = 0; t < kIds.size(); ++t) model.step(&kIds[t], &slot, 1, all.data() + t * V);
  return all;
}

LoadOptions on(BackendKind backend) {
  LoadOptions opt;
  opt.backend = backend;
  opt.max_streams = 2;
  return opt;
}

class FalconMambaTest : public testing::TestWithParam<BackendKind> {
 protected:
  void SetUp() override {
    dir_ = fs::path(testing::TempDir()) / ("vkssm_falcon_" + std::to_string(int(GetParam())));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_P(FalconMambaTest, SafetensorsMatchTheReference) {
  const NpyArray ref = read_npy_f32(std::string(VKSSM_SOURCE_DIR) + "/tests/data/falcon_mamba_tiny_ref.npy");
  auto model = load_model(kModel, on(GetParam()));
  EXPECT_EQ(model->info().architecture, "falcon_mamba");
  const int64_t V = model->info().vocab_size;
  ASSERT_EQ(ref.shape, (std::vector<int64_t>{int64_t(kIds.size()), V}));
  const std::vector<float> got = run_ids(*model);
  for (size_t t = 0; t < kIds.size(); ++t)
    EXPECT_LT(max_rel_error(got.data() + t * V, ref.data.data() + t * V, V), 2e-5f) << "token " << t;
}

// The same model read as plain Mamba-1 (the normalisation left out) gives other logits: the test
// above does exercise the normalisation.
TEST_P(FalconMambaTest, TheNormalisationMatters) {
  Mamba1Weights w = load_mamba1(Checkpoint::open(kModel));
  auto falcon = create_mamba1(w, on(GetParam()));
  w.cfg.dt_b_c_rms = false;
  auto plain = create_mamba1(w, on(GetParam()));
  EXPECT_EQ(plain->info().architecture, "mamba");
  const std::vector<float> a = run_ids(*falcon), b = run_ids(*plain);
  EXPECT_GT(max_rel_error(a.data(), b.data(), int64_t(a.size())), 1e-2f);
  // Their states are not interchangeable either: the fingerprint covers the flag.
  const std::vector<uint8_t> blob = falcon->snapshot(0);
  EXPECT_THAT(error_of([&] { plain->restore(0, blob.data(), blob.size()); }), HasSubstr("state"));
}

// llama.cpp writes Falcon-Mamba as general.architecture = "mamba" with mamba.ssm.dt_b_c_rms =
// true, and takes the mixer's epsilon from mamba.attention.layer_norm_rms_epsilon.
TEST_P(FalconMambaTest, GgufAsLlamaCppWritesIt) {
  Mamba1Weights w = load_mamba1(Checkpoint::open(kModel));
  for (auto& L : w.layers)
    for (float& a : L.A_log) a = gguf_test::gguf_stable_a_log(a);  // survives A = -exp(A_log) exactly
  gguf_test::ConvertedModel m = gguf_test::convert_mamba1(w, gguf_test::OutType::F32);
  const std::string path = (dir_ / "falcon.gguf").string();
  gguf_test::write_bytes(path, m.gguf.bytes());

  const Checkpoint ckpt = Checkpoint::open(path);
  EXPECT_EQ(ckpt.config()["model_type"], "falcon_mamba");
  EXPECT_EQ(architecture_of(ckpt.config(), ckpt.config_source()).name, "falcon_mamba");
  const Mamba1Weights from_gguf = load_mamba1(ckpt);
  EXPECT_TRUE(from_gguf.cfg.dt_b_c_rms);
  EXPECT_FLOAT_EQ(from_gguf.cfg.mixer_rms_eps, w.cfg.norm_eps);

  // Against the safetensors weights with llama.cpp's epsilon: the same logits.
  w.cfg.mixer_rms_eps = w.cfg.norm_eps;
  auto want_model = create_mamba1(w, on(BackendKind::Reference));
  auto model = load_model(path, on(GetParam()));
  EXPECT_EQ(model->info().architecture, "falcon_mamba");
  const std::vector<float> got = run_ids(*model), want = run_ids(*want_model);
  EXPECT_LT(max_rel_error(got.data(), want.data(), int64_t(got.size())), 2e-5f);
  // And within 1e-3 of the reference run with HF's own epsilon (1e-6).
  const NpyArray ref = read_npy_f32(std::string(VKSSM_SOURCE_DIR) + "/tests/data/falcon_mamba_tiny_ref.npy");
  EXPECT_LT(max_rel_error(got.data(), ref.data.data(), int64_t(got.size())), 1e-3f);
}

INSTANTIATE_TEST_SUITE_P(Backends, FalconMambaTest, testing::Values(BackendKind::Reference, BackendKind::Vulkan),
                         [](const testing::TestParamInfo<BackendKind>& i) {
                           return std::string(i.param == BackendKind::Reference ? "reference" : "vulkan");
                         });

TEST(FalconMambaConfig, KeysAndErrors) {
  const std::string src = "/f/config.json";
  const nlohmann::json base = {{"model_type", "falcon_mamba"}, {"hidden_size", 16}, {"num_hidden_layers", 2},
                               {"vocab_size", 10}};
  Mamba1Config c = parse_mamba1_config(base, src);
  EXPECT_TRUE(c.dt_b_c_rms);
  EXPECT_FLOAT_EQ(c.mixer_rms_eps, 1e-6f);  // HF FalconMambaConfig's default
  nlohmann::json j = base;
  j["mixer_rms_eps"] = 1e-4;
  EXPECT_FLOAT_EQ(parse_mamba1_config(j, src).mixer_rms_eps, 1e-4f);
  j["mixer_rms_eps"] = 0;
  EXPECT_EQ(error_of([&] { parse_mamba1_config(j, src); }),
            "Falcon-Mamba mixer_rms_eps in /f/config.json must be a positive number, got 0.000000");
  j["mixer_rms_eps"] = "small";
  EXPECT_EQ(error_of([&] { parse_mamba1_config(j, src); }),
            "key 'mixer_rms_eps' in /f/config.json must be a number, got \"small\"");
  // Recognised by its class name alone too; plain Mamba configs stay Mamba.
  c = parse_mamba1_config({{"architectures", {"FalconMambaForCausalLM"}}, {"hidden_size", 16},
                           {"num_hidden_layers", 2}, {"vocab_size", 10}}, src);
  EXPECT_TRUE(c.dt_b_c_rms);
  EXPECT_FALSE(parse_mamba1_config({{"model_type", "mamba"}, {"hidden_size", 16}, {"num_hidden_layers", 2},
                                    {"vocab_size", 10}}, src).dt_b_c_rms);
}

TEST(FalconMambaConfig, Mamba2GgufWithTheFlagIsRefused) {
  const fs::path dir = fs::path(testing::TempDir()) / "vkssm_falcon_m2";
  fs::create_directories(dir);
  Mamba2Config c;
  c.d_model = 16;
  c.n_layer = 1;
  c.vocab_size = 10;
  c.d_state = 8;
  c.head_dim = 8;
  gguf_test::ConvertedModel m = gguf_test::convert_mamba2(random_mamba2(c, 1), gguf_test::OutType::F32);
  m.gguf.set_bool("mamba2.ssm.dt_b_c_rms", true);
  const std::string path = (dir / "m2.gguf").string();
  gguf_test::write_bytes(path, m.gguf.bytes());
  EXPECT_EQ(error_of([&] { Checkpoint::open(path); }),
            "GGUF file " + path + " sets mamba2.ssm.dt_b_c_rms, which vkssm reads for mamba files only");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace vkssm

// Mamba-1 config parsing and checkpoint loading: HF and original mamba_ssm forms, every dtype,
// tied and untied heads, and the errors for broken or foreign checkpoints.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "host/error.h"
#include "tests/test_helpers.h"
#include "host/safetensors.h"
#include "models/mamba1/mamba1_model.h"

namespace vkssm {
namespace {

using testing_helpers::error_of;
using testing_helpers::max_rel_error;

namespace fs = std::filesystem;
using nlohmann::json;
using testing::HasSubstr;

// A model small enough to save and load in milliseconds: D 32, E 64, N 4, K 3, R 2, V 37.
Mamba1Config small_config() {
  Mamba1Config c;
  c.d_model = 32;
  c.n_layer = 2;
  c.vocab_size = 37;
  c.d_state = 4;
  c.d_conv = 3;
  c.expand = 2;
  return c;
}


// Every weight vector of a model, in a fixed order, for element-wise comparisons.
std::vector<const std::vector<float>*> all_vectors(const Mamba1Weights& w) {
  std::vector<const std::vector<float>*> v = {&w.embeddings, &w.norm_f, &w.lm_head};
  for (const auto& L : w.layers)
    for (const auto* p : {&L.norm, &L.in_proj, &L.in_proj_b, &L.conv_w, &L.conv_b, &L.x_proj,
                          &L.dt_proj_w, &L.dt_proj_b, &L.A_log, &L.D, &L.out_proj, &L.out_proj_b})
      v.push_back(p);
  return v;
}

// Checks b == round(a) element-wise, where round is the storage rounding of the dtype.
void expect_same_weights(const Mamba1Weights& a, const Mamba1Weights& b,
                         const std::function<float(float)>& round = [](float x) { return x; }) {
  auto va = all_vectors(a), vb = all_vectors(b);
  ASSERT_EQ(va.size(), vb.size());
  for (size_t i = 0; i < va.size(); ++i) {
    ASSERT_EQ(va[i]->size(), vb[i]->size()) << "vector " << i;
    for (size_t k = 0; k < va[i]->size(); ++k)
      ASSERT_EQ(round((*va[i])[k]), (*vb[i])[k]) << "vector " << i << " element " << k;
  }
}

class Mamba1LoadingTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::path(testing::TempDir()) /
            ("vkssm_m1_" +
             std::string(testing::UnitTest::GetInstance()->current_test_info()->name())))
               .string();
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string file(const std::string& name) const { return (fs::path(dir_) / name).string(); }

  // Rewrites model.safetensors through `edit` (rename, drop or reshape tensors).
  void edit_tensors(const std::function<void(std::vector<TensorToWrite>&)>& edit) const {
    std::vector<TensorToWrite> tensors;
    {
      auto f = SafetensorsFile::open(file("model.safetensors"));
      for (const auto& t : f->tensors())
        tensors.push_back({t.name, t.dtype, t.shape,
                           std::vector<uint8_t>(t.data, t.data + t.nbytes)});
    }
    edit(tensors);
    write_safetensors(file("model.safetensors"), tensors);
  }
  void edit_config(const std::function<void(json&)>& edit) const {
    json j = read_json_file(file("config.json"));
    edit(j);
    std::ofstream(file("config.json")) << j.dump(2);
  }

  std::string dir_;
};

TEST_F(Mamba1LoadingTest, F32RoundTripIsExact) {
  Mamba1Weights w = random_mamba1(small_config(), 7);
  save_mamba1_hf(w, dir_, DType::F32);
  Mamba1Weights back = load_mamba1(Checkpoint::open(dir_));
  EXPECT_EQ(back.cfg.d_model, 32);
  EXPECT_EQ(back.cfg.n_layer, 2);
  EXPECT_EQ(back.cfg.vocab_size, 37);
  EXPECT_EQ(back.cfg.d_state, 4);
  EXPECT_EQ(back.cfg.d_conv, 3);
  EXPECT_EQ(back.cfg.d_inner, 64);
  EXPECT_EQ(back.cfg.dt_rank, 2);
  EXPECT_EQ(back.cfg.norm_eps, w.cfg.norm_eps);
  EXPECT_TRUE(back.cfg.tie_embeddings);
  EXPECT_TRUE(back.lm_head.empty());
  EXPECT_EQ(back.source_dtype, DType::F32);
  EXPECT_EQ(back.source, dir_);
  EXPECT_EQ(back.parameter_count(), w.parameter_count());
  expect_same_weights(w, back);
}

TEST_F(Mamba1LoadingTest, F16AndBf16RoundTripWithinStorageRounding) {
  Mamba1Weights w = random_mamba1(small_config(), 8);
  save_mamba1_hf(w, dir_, DType::F16);
  Mamba1Weights back = load_mamba1(Checkpoint::open(dir_));
  EXPECT_EQ(back.source_dtype, DType::F16);
  expect_same_weights(w, back, [](float x) { return half_to_float(float_to_half(x)); });

  fs::remove_all(dir_);
  save_mamba1_hf(w, dir_, DType::BF16);
  back = load_mamba1(Checkpoint::open(dir_));
  EXPECT_EQ(back.source_dtype, DType::BF16);
  EXPECT_EQ(read_json_file(file("config.json"))["torch_dtype"], "bfloat16");
  for (size_t i = 0; i < w.embeddings.size(); ++i)
    ASSERT_NEAR(back.embeddings[i], w.embeddings[i], std::fabs(w.embeddings[i]) / 256) << i;
}

TEST_F(Mamba1LoadingTest, UntiedHeadAndBiases) {
  Mamba1Config c = small_config();
  c.tie_embeddings = false;
  c.use_bias = true;
  c.use_conv_bias = false;
  Mamba1Weights w = random_mamba1(c, 9);
  ASSERT_EQ(w.lm_head.size(), size_t(37 * 32));
  ASSERT_EQ(w.layers[0].in_proj_b.size(), size_t(2 * 64));
  ASSERT_EQ(w.layers[0].conv_b, std::vector<float>(64, 0.0f));
  save_mamba1_hf(w, dir_);
  Checkpoint ck = Checkpoint::open(dir_);
  EXPECT_TRUE(ck.has("lm_head.weight"));
  EXPECT_TRUE(ck.has("backbone.layers.1.mixer.out_proj.bias"));
  EXPECT_FALSE(ck.has("backbone.layers.1.mixer.conv1d.bias"));
  Mamba1Weights back = load_mamba1(ck);
  EXPECT_FALSE(back.cfg.tie_embeddings);
  EXPECT_TRUE(back.cfg.use_bias);
  EXPECT_FALSE(back.cfg.use_conv_bias);
  EXPECT_EQ(&back.head(), &back.lm_head);
  expect_same_weights(w, back);
}

TEST_F(Mamba1LoadingTest, StoredCopyOfTiedHeadIsDropped) {
  Mamba1Weights w = random_mamba1(small_config(), 10);
  save_mamba1_hf(w, dir_);
  edit_tensors([](std::vector<TensorToWrite>& t) {
    for (size_t i = 0; i < t.size(); ++i)
      if (t[i].name == "backbone.embeddings.weight") {
        TensorToWrite head = t[i];
        head.name = "lm_head.weight";
        t.push_back(head);
        break;
      }
  });
  Mamba1Weights back = load_mamba1(Checkpoint::open(dir_));
  EXPECT_TRUE(back.lm_head.empty());
  EXPECT_EQ(&back.head(), &back.embeddings);
}

TEST_F(Mamba1LoadingTest, UntiedConfigWithoutHeadIsAnError) {
  save_mamba1_hf(random_mamba1(small_config(), 11), dir_);
  edit_config([](json& j) { j["tie_word_embeddings"] = false; });
  EXPECT_THAT(error_of([&] { load_mamba1(Checkpoint::open(dir_)); }),
              HasSubstr("missing tensor lm_head.weight in checkpoint " + dir_));
}

TEST_F(Mamba1LoadingTest, OriginalMambaSsmForm) {
  // state-spaces/mamba-* layout: d_model/n_layer/ssm_cfg, vocab padded, singular "embedding".
  Mamba1Config c = small_config();
  c.vocab_size = 40;  // 35 padded to a multiple of 8
  Mamba1Weights w = random_mamba1(c, 12);
  save_mamba1_hf(w, dir_);
  edit_tensors([](std::vector<TensorToWrite>& t) {
    for (auto& x : t)
      if (x.name == "backbone.embeddings.weight") x.name = "backbone.embedding.weight";
  });
  std::ofstream(file("config.json")) << R"({"d_model": 32, "n_layer": 2, "vocab_size": 35,
      "ssm_cfg": {"d_state": 4, "d_conv": 3, "expand": 2}, "rms_norm": true,
      "residual_in_fp32": true, "fused_add_norm": true, "pad_vocab_size_multiple": 8,
      "tie_embeddings": true})";
  Mamba1Weights back = load_mamba1(Checkpoint::open(dir_));
  EXPECT_EQ(back.cfg.vocab_size, 40);
  EXPECT_EQ(back.cfg.dt_rank, 2);
  expect_same_weights(w, back);
}

TEST_F(Mamba1LoadingTest, ParsesHfConfigWithAutoRank) {
  json j = {{"architectures", {"MambaForCausalLM"}}, {"model_type", "mamba"},
            {"hidden_size", 768}, {"num_hidden_layers", 24}, {"vocab_size", 50280},
            {"state_size", 16}, {"conv_kernel", 4}, {"expand", 2},
            {"intermediate_size", 1536}, {"time_step_rank", "auto"},
            {"layer_norm_epsilon", 1e-5}, {"use_bias", false}, {"use_conv_bias", true}};
  Mamba1Config c = parse_mamba1_config(j, "cfg.json");
  EXPECT_EQ(c.d_model, 768);
  EXPECT_EQ(c.n_layer, 24);
  EXPECT_EQ(c.vocab_size, 50280);
  EXPECT_EQ(c.d_inner, 1536);
  EXPECT_EQ(c.dt_rank, 48);
  EXPECT_TRUE(c.tie_embeddings);  // HF default
  j["hidden_size"] = 40;
  j.erase("intermediate_size");
  c = parse_mamba1_config(j, "cfg.json");
  EXPECT_EQ(c.dt_rank, 3);  // ceil(40 / 16)
  EXPECT_EQ(c.d_inner, 80);
  j["time_step_rank"] = 5;
  EXPECT_EQ(parse_mamba1_config(j, "cfg.json").dt_rank, 5);
}

TEST_F(Mamba1LoadingTest, ConfigErrors) {
  json hf = {{"model_type", "mamba"}, {"hidden_size", 64}, {"vocab_size", 100}};
  EXPECT_THAT(error_of([&] { parse_mamba1_config(hf, "/m/config.json"); }),
              HasSubstr("missing key 'num_hidden_layers' in /m/config.json"));
  hf["num_hidden_layers"] = 0;
  EXPECT_THAT(error_of([&] { parse_mamba1_config(hf, "/m/config.json"); }),
              HasSubstr("n_layer in /m/config.json must be between 1 and"));
  hf["num_hidden_layers"] = "two";
  EXPECT_THAT(error_of([&] { parse_mamba1_config(hf, "/m/config.json"); }),
              HasSubstr("key 'num_hidden_layers' in /m/config.json must be an integer"));
  // A config naming the model but lacking a dimension is reported as a missing key.
  EXPECT_THAT(error_of([&] { parse_mamba1_config({{"model_type", "mamba"}}, "/m/config.json"); }),
              HasSubstr("missing key 'hidden_size' in /m/config.json"));
  EXPECT_THAT(error_of([&] { parse_mamba1_config({{"d_model", 64}}, "/m/config.json"); }),
              HasSubstr("missing key 'n_layer' in /m/config.json"));
  json original = {{"d_model", 64}, {"n_layer", 2}, {"vocab_size", 10}, {"rms_norm", false}};
  EXPECT_THAT(error_of([&] { parse_mamba1_config(original, "/m/config.json"); }),
              HasSubstr("rms_norm: false"));
}

TEST_F(Mamba1LoadingTest, UnknownArchitectures) {
  const std::string tail = " in /m/config.json (vkssm supports: mamba, falcon_mamba, mamba2, s4d)";
  auto msg = [](const json& j) {
    return error_of([&] { parse_mamba1_config(j, "/m/config.json"); });
  };
  EXPECT_EQ(msg({{"model_type", "mamba2"}, {"hidden_size", 64}}),
            "unsupported architecture 'mamba2'" + tail);
  EXPECT_EQ(msg({{"model_type", "llama"}}), "unsupported architecture 'llama'" + tail);
  EXPECT_EQ(msg({{"architectures", {"LlamaForCausalLM"}}, {"hidden_size", 64}}),
            "unsupported architecture 'LlamaForCausalLM'" + tail);
  EXPECT_EQ(msg({{"d_model", 64}, {"n_layer", 2}, {"ssm_cfg", {{"layer", "Mamba2"}}}}),
            "unsupported architecture 'Mamba2'" + tail);
  EXPECT_EQ(msg({{"foo", 1}}), "unsupported architecture 'unknown'" + tail);
}

TEST_F(Mamba1LoadingTest, MissingLayerTensor) {
  save_mamba1_hf(random_mamba1(small_config(), 13), dir_);
  edit_tensors([](std::vector<TensorToWrite>& t) {
    std::erase_if(t, [](const TensorToWrite& x) {
      return x.name == "backbone.layers.1.mixer.dt_proj.bias";
    });
  });
  EXPECT_EQ(error_of([&] { load_mamba1(Checkpoint::open(dir_)); }),
            "tensor backbone.layers.1.mixer.dt_proj.bias not found in checkpoint " + dir_);
}

TEST_F(Mamba1LoadingTest, WronglyShapedXProj) {
  save_mamba1_hf(random_mamba1(small_config(), 14), dir_);
  edit_tensors([](std::vector<TensorToWrite>& t) {
    for (auto& x : t)
      if (x.name == "backbone.layers.0.mixer.x_proj.weight") {
        x = make_tensor(x.name, {10, 60}, std::vector<float>(600, 0.0f));
      }
  });
  EXPECT_EQ(error_of([&] { load_mamba1(Checkpoint::open(dir_)); }),
            "tensor backbone.layers.0.mixer.x_proj.weight in " + file("model.safetensors") +
                " has shape [10, 60], expected [10, 64]");
}

TEST_F(Mamba1LoadingTest, VocabMismatch) {
  save_mamba1_hf(random_mamba1(small_config(), 15), dir_);
  edit_config([](json& j) { j["vocab_size"] = 41; });
  std::string msg = error_of([&] { load_mamba1(Checkpoint::open(dir_)); });
  EXPECT_THAT(msg, HasSubstr("backbone.embeddings.weight"));
  EXPECT_THAT(msg, HasSubstr("has 37 rows"));
  EXPECT_THAT(msg, HasSubstr("vocab_size 41"));
}

TEST_F(Mamba1LoadingTest, BiasThatConfigDoesNotExpect) {
  Mamba1Config c = small_config();
  c.use_bias = true;
  save_mamba1_hf(random_mamba1(c, 16), dir_);
  edit_config([](json& j) { j["use_bias"] = false; });
  EXPECT_THAT(error_of([&] { load_mamba1(Checkpoint::open(dir_)); }),
              HasSubstr("has tensor backbone.layers.0.mixer.in_proj.bias but"));
}

TEST_F(Mamba1LoadingTest, RandomWeightsAreDeterministicAndPlausible) {
  Mamba1Weights a = random_mamba1(small_config(), 42);
  Mamba1Weights b = random_mamba1(small_config(), 42);
  Mamba1Weights c = random_mamba1(small_config(), 43);
  expect_same_weights(a, b);
  EXPECT_NE(a.embeddings, c.embeddings);
  // D 32, E 64, N 4, K 3, R 2, V 37, two layers, tied head, conv bias, no in/out bias.
  const int64_t per_layer = 32 + 128 * 32 + 64 * 3 + 64 + (2 + 8) * 64 + 64 * 2 + 64 + 64 * 4 +
                            64 + 32 * 64;
  EXPECT_EQ(a.parameter_count(), 37 * 32 + 32 + 2 * per_layer);
  EXPECT_EQ(a.layers[1].A_log[5], std::log(2.0f));  // row 1, n = 1: A = -2
  for (float bias : a.layers[0].dt_proj_b) {
    double dt = std::log1p(std::exp(double(bias)));  // softplus
    EXPECT_GE(dt, 0.999e-3);
    EXPECT_LE(dt, 1.001e-1);
  }
  for (const auto* v : all_vectors(a))
    for (float x : *v) ASSERT_TRUE(std::isfinite(x));
}

}  // namespace
}  // namespace vkssm

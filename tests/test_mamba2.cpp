// Mamba-2 on the CPU: config.json parsing (both dialects, their defaults, every refusal with its
// exact message), checkpoint loading and saving, the reference step against the independent
// PyTorch reference and against a closed form, and the cpu backend's state handling.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>

#include "engine/vkssm.hpp"
#include "host/checkpoint.h"
#include "host/npy.h"
#include "host/safetensors.h"
#include "host/state_file.h"
#include "models/mamba2/mamba2_model.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing_helpers::error_of;

const std::string kSrc = "/m/config.json";

std::vector<float> payload(const Model& m, int slot, const StateHeader& header) {
  const std::vector<uint8_t> blob = m.snapshot(slot);
  return decode_state(blob.data(), blob.size(), header);
}

std::string parse_error(const json& j) {
  return error_of([&] { parse_mamba2_config(j, kSrc); });
}

// d_model 24, E 48 = 6 heads of 8, 2 groups of 16-wide B/C.
json hf_config() {
  return {{"architectures", {"Mamba2ForCausalLM"}}, {"model_type", "mamba2"}, {"hidden_size", 24},
          {"num_hidden_layers", 2}, {"vocab_size", 40}, {"state_size", 16}, {"expand", 2},
          {"num_heads", 6}, {"head_dim", 8}, {"n_groups", 2}};
}

json original_config() {
  return {{"d_model", 24}, {"n_layer", 2}, {"vocab_size", 40}, {"pad_vocab_size_multiple", 8},
          {"ssm_cfg", {{"layer", "Mamba2"}, {"d_state", 16}, {"headdim", 8}, {"ngroups", 2}}}};
}

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

TEST(Mamba2ConfigParse, HfDefaultsAreTransformersDefaults) {
  const json j = {{"model_type", "mamba2"}, {"hidden_size", 256}, {"num_hidden_layers", 3}, {"vocab_size", 1000}};
  const Mamba2Config c = parse_mamba2_config(j, kSrc);
  EXPECT_EQ(c.d_model, 256);
  EXPECT_EQ(c.n_layer, 3);
  EXPECT_EQ(c.vocab_size, 1000);  // HF never pads
  EXPECT_EQ(c.d_state, 128);
  EXPECT_EQ(c.d_conv, 4);
  EXPECT_EQ(c.expand, 2.0);
  EXPECT_EQ(c.d_inner, 512);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.n_heads, 8);  // d_inner / head_dim
  EXPECT_EQ(c.n_groups, 8);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);
  EXPECT_FALSE(c.use_bias);
  EXPECT_TRUE(c.use_conv_bias);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.dt_min, 0.0f);
  EXPECT_TRUE(std::isinf(c.dt_max));
  EXPECT_EQ(c.conv_dim(), 512 + 2 * 8 * 128);
  EXPECT_EQ(c.in_proj_rows(), 2 * 512 + 2 * 8 * 128 + 8);
}

TEST(Mamba2ConfigParse, HfKeysAreRead) {
  json j = hf_config();
  j["conv_kernel"] = 3;
  j["layer_norm_epsilon"] = 1e-6;
  j["use_bias"] = true;
  j["use_conv_bias"] = false;
  j["tie_word_embeddings"] = false;
  j["chunk_size"] = 128;
  j["residual_in_fp32"] = true;
  j["rms_norm"] = true;
  j["intermediate_size"] = 48;
  const Mamba2Config c = parse_mamba2_config(j, kSrc);
  EXPECT_EQ(c.d_inner, 48);
  EXPECT_EQ(c.n_heads, 6);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.n_groups, 2);
  EXPECT_EQ(c.d_state, 16);
  EXPECT_EQ(c.d_conv, 3);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-6f);
  EXPECT_TRUE(c.use_bias);
  EXPECT_FALSE(c.use_conv_bias);
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_EQ(c.conv_dim(), 48 + 2 * 2 * 16);
  EXPECT_EQ(c.in_proj_rows(), 2 * 48 + 2 * 2 * 16 + 6);
}

TEST(Mamba2ConfigParse, FractionalExpandAsHfComputesIt) {
  json j = hf_config();
  j["hidden_size"] = 32;
  j["expand"] = 1.5;  // E = int(1.5 * 32) = 48
  const Mamba2Config c = parse_mamba2_config(j, kSrc);
  EXPECT_EQ(c.d_inner, 48);
  EXPECT_EQ(c.expand, 1.5);
}

TEST(Mamba2ConfigParse, OriginalFormDefaults) {
  // state-spaces/mamba2-130m's config.json as published.
  const json j = {{"d_model", 768}, {"d_intermediate", 0}, {"n_layer", 24}, {"vocab_size", 50277},
                  {"ssm_cfg", {{"layer", "Mamba2"}}}, {"attn_layer_idx", json::array()},
                  {"attn_cfg", json::object()}, {"rms_norm", true}, {"residual_in_fp32", true},
                  {"fused_add_norm", true}, {"pad_vocab_size_multiple", 16}, {"tie_embeddings", true}};
  const Mamba2Config c = parse_mamba2_config(j, kSrc);
  EXPECT_EQ(c.d_model, 768);
  EXPECT_EQ(c.n_layer, 24);
  EXPECT_EQ(c.vocab_size, 50288);  // padded up to a multiple of 16
  EXPECT_EQ(c.d_state, 128);
  EXPECT_EQ(c.d_conv, 4);
  EXPECT_EQ(c.d_inner, 1536);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.n_heads, 24);
  EXPECT_EQ(c.n_groups, 1);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);
  EXPECT_FALSE(c.use_bias);
  EXPECT_TRUE(c.use_conv_bias);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_TRUE(std::isinf(c.dt_max));

  // MambaConfig's own default pad multiple is 8; its own default ssm_cfg is empty.
  const json bare = {{"model_type", "mamba2"}, {"d_model", 64}, {"n_layer", 1}, {"vocab_size", 50277}};
  const Mamba2Config b = parse_mamba2_config(bare, kSrc);
  EXPECT_EQ(b.vocab_size, 50280);
  EXPECT_EQ(b.n_heads, 2);
}

TEST(Mamba2ConfigParse, OriginalFormKeysAreRead) {
  json j = original_config();
  j["ssm_cfg"]["d_conv"] = 2;
  j["ssm_cfg"]["bias"] = true;
  j["ssm_cfg"]["conv_bias"] = false;
  j["ssm_cfg"]["d_ssm"] = 48;  // = d_inner: no MLP part
  j["ssm_cfg"]["dt_limit"] = {0.001, 0.25};
  j["tie_embeddings"] = false;
  j["vocab_size"] = 37;
  const Mamba2Config c = parse_mamba2_config(j, kSrc);
  EXPECT_EQ(c.vocab_size, 40);
  EXPECT_EQ(c.d_state, 16);
  EXPECT_EQ(c.d_conv, 2);
  EXPECT_EQ(c.n_heads, 6);
  EXPECT_EQ(c.n_groups, 2);
  EXPECT_TRUE(c.use_bias);
  EXPECT_FALSE(c.use_conv_bias);
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_FLOAT_EQ(c.dt_min, 0.001f);
  EXPECT_FLOAT_EQ(c.dt_max, 0.25f);
}

TEST(Mamba2ConfigParse, TimeStepLimitInEveryWritersSpelling) {
  json j = hf_config();
  j["time_step_limit"] = {0.01, 0.5};
  Mamba2Config c = parse_mamba2_config(j, kSrc);
  EXPECT_FLOAT_EQ(c.dt_min, 0.01f);
  EXPECT_FLOAT_EQ(c.dt_max, 0.5f);

  j["time_step_limit"] = {0.0, {{"__float__", "Infinity"}}};  // transformers 5
  c = parse_mamba2_config(j, kSrc);
  EXPECT_EQ(c.dt_min, 0.0f);
  EXPECT_TRUE(std::isinf(c.dt_max));

  j["time_step_limit"] = nullptr;
  EXPECT_TRUE(std::isinf(parse_mamba2_config(j, kSrc).dt_max));

  // The bare Infinity token older transformers write, through the checkpoint's JSON reader.
  const fs::path file = fs::temp_directory_path() / ("vkssm_m2_inf_" + std::to_string(::getpid()) + ".json");
  {
    std::ofstream f(file);
    f << R"({"model_type": "mamba2", "hidden_size": 24, "num_hidden_layers": 1, "vocab_size": 40,
            "num_heads": 6, "head_dim": 8, "n_groups": 2, "time_step_limit": [0.0, Infinity]})";
  }
  c = parse_mamba2_config(read_json_file(file.string()), file.string());
  fs::remove(file);
  EXPECT_EQ(c.dt_min, 0.0f);
  EXPECT_TRUE(std::isinf(c.dt_max));
}

TEST(Mamba2ConfigParse, BadHfKeysAreNamedExactly) {
  struct Case {
    std::function<void(json&)> edit;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](json& j) { j = json::array(); }, "config /m/config.json is not a JSON object"},
      {[](json& j) { j["model_type"] = "mamba"; }, "unsupported architecture 'mamba' in /m/config.json (vkssm supports: mamba, falcon_mamba, mamba2, s4d)"},
      {[](json& j) { j.erase("hidden_size"); }, "missing key 'hidden_size' in /m/config.json"},
      {[](json& j) { j.erase("vocab_size"); }, "missing key 'vocab_size' in /m/config.json"},
      {[](json& j) { j["num_hidden_layers"] = "two"; },
       "key 'num_hidden_layers' in /m/config.json must be an integer, got \"two\""},
      {[](json& j) { j["state_size"] = 16.5; }, "key 'state_size' in /m/config.json must be an integer, got 16.5"},
      {[](json& j) { j["hidden_size"] = 0; }, "Mamba-2 d_model in /m/config.json must be between 1 and 65536, got 0"},
      {[](json& j) { j["num_hidden_layers"] = 5000; },
       "Mamba-2 n_layer in /m/config.json must be between 1 and 4096, got 5000"},
      {[](json& j) { j["vocab_size"] = -3; },
       "Mamba-2 vocab_size in /m/config.json must be between 1 and 8388608, got -3"},
      {[](json& j) { j["state_size"] = 0; }, "Mamba-2 d_state in /m/config.json must be between 1 and 4096, got 0"},
      {[](json& j) { j["conv_kernel"] = 65; }, "Mamba-2 d_conv in /m/config.json must be between 1 and 64, got 65"},
      {[](json& j) { j["head_dim"] = 0; }, "Mamba-2 head_dim in /m/config.json must be between 1 and 4096, got 0"},
      {[](json& j) { j["n_groups"] = 0; }, "Mamba-2 n_groups in /m/config.json must be between 1 and 4096, got 0"},
      {[](json& j) { j["expand"] = 0; },
       "Mamba-2 expand in /m/config.json must be a number above 0 and at most 64, got 0.0"},
      {[](json& j) { j["expand"] = "2"; }, "key 'expand' in /m/config.json must be a number, got \"2\""},
      {[](json& j) { j["num_heads"] = 5; },
       "Mamba-2 num_heads * head_dim (5 * 8) in /m/config.json must equal d_inner = expand * hidden_size (48)"},
      {[](json& j) { j["num_heads"] = 0; }, "Mamba-2 num_heads in /m/config.json must be between 1 and 65536, got 0"},
      {[](json& j) {
         j.erase("num_heads");
         j["head_dim"] = 10;
       },
       "Mamba-2 d_inner 48 in /m/config.json is not a multiple of head_dim 10"},
      {[](json& j) { j["n_groups"] = 4; }, "Mamba-2 num_heads 6 in /m/config.json is not a multiple of n_groups 4"},
      {[](json& j) { j["layer_norm_epsilon"] = 0; },
       "Mamba-2 norm epsilon in /m/config.json must be a positive number, got 0.000000"},
      {[](json& j) { j["layer_norm_epsilon"] = "tiny"; },
       "key 'layer_norm_epsilon' in /m/config.json must be a number, got \"tiny\""},
      {[](json& j) { j["use_bias"] = "yes"; }, "key 'use_bias' in /m/config.json must be true or false, got \"yes\""},
      {[](json& j) { j["tie_word_embeddings"] = 1; },
       "key 'tie_word_embeddings' in /m/config.json must be true or false, got 1"},
      {[](json& j) { j["chunk_size"] = 0; },
       "Mamba-2 chunk_size in /m/config.json must be between 1 and 1048576, got 0"},
      {[](json& j) { j["rms_norm"] = false; },
       "config /m/config.json sets rms_norm to false; vkssm runs Mamba-2 with its gated RMSNorm only"},
      {[](json& j) { j["time_step_limit"] = {0.5}; },
       "key 'time_step_limit' in /m/config.json must be a pair of numbers, got (array)"},
      {[](json& j) { j["time_step_limit"] = "wide"; },
       "key 'time_step_limit' in /m/config.json must be a pair of numbers, got \"wide\""},
      {[](json& j) { j["time_step_limit"] = {0.0, "big"}; },
       "element 1 of key 'time_step_limit' in /m/config.json must be a number, got \"big\""},
      {[](json& j) { j["time_step_limit"] = {{{"__float__", "NaN"}}, 1.0}; },
       "element 0 of key 'time_step_limit' in /m/config.json must be a number, got (object)"},
      {[](json& j) { j["time_step_limit"] = {0.2, 0.1}; },
       "key 'time_step_limit' in /m/config.json must satisfy 0 <= min < max, got [0.2, 0.1]"},
      {[](json& j) { j["time_step_limit"] = {-1.0, {{"__float__", "Infinity"}}}; },
       "key 'time_step_limit' in /m/config.json must satisfy 0 <= min < max, got [-1.0, Infinity]"},
  };
  for (const Case& k : cases) {
    json j = hf_config();
    k.edit(j);
    EXPECT_EQ(parse_error(j), k.message) << j.dump();
  }
}

TEST(Mamba2ConfigParse, BadOriginalKeysAreNamedExactly) {
  struct Case {
    std::function<void(json&)> edit;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](json& j) { j.erase("n_layer"); }, "missing key 'n_layer' in /m/config.json"},
      {[](json& j) {
         j["model_type"] = "mamba2";
         j["ssm_cfg"] = 3;
       },
       "key 'ssm_cfg' in /m/config.json must be an object, got 3"},
      {[](json& j) { j["ssm_cfg"]["layer"] = "Mamba1"; },
       "unsupported architecture 'Mamba1' in /m/config.json (vkssm supports: mamba, falcon_mamba, mamba2, s4d)"},
      {[](json& j) { j["ssm_cfg"]["headdim"] = 10; },
       "Mamba-2 d_inner 48 in /m/config.json is not a multiple of head_dim 10"},
      {[](json& j) { j["ssm_cfg"]["ngroups"] = 4; },
       "Mamba-2 num_heads 6 in /m/config.json is not a multiple of n_groups 4"},
      {[](json& j) { j["ssm_cfg"]["expand"] = 100; },
       "Mamba-2 expand in /m/config.json must be a number above 0 and at most 64, got 100.0"},
      {[](json& j) { j["ssm_cfg"]["d_ssm"] = 32; },
       "config /m/config.json sets ssm_cfg.d_ssm to 32, not d_inner 48 (the rest is an MLP beside the SSM); vkssm "
       "does not run it"},
      {[](json& j) { j["ssm_cfg"]["rmsnorm"] = false; },
       "config /m/config.json sets ssm_cfg.rmsnorm to false; vkssm runs Mamba-2 with its gated RMSNorm only"},
      {[](json& j) { j["ssm_cfg"]["norm_before_gate"] = true; },
       "config /m/config.json sets ssm_cfg.norm_before_gate to true; vkssm runs the gate before the norm only"},
      {[](json& j) { j["ssm_cfg"]["D_has_hdim"] = true; },
       "config /m/config.json sets ssm_cfg.D_has_hdim to true; vkssm runs Mamba-2 with one D per head only"},
      {[](json& j) { j["ssm_cfg"]["dt_limit"] = {1.0, 0.5}; },
       "key 'dt_limit' in /m/config.json must satisfy 0 <= min < max, got [1.0, 0.5]"},
      {[](json& j) { j["ssm_cfg"]["chunk_size"] = -1; },
       "Mamba-2 chunk_size in /m/config.json must be between 1 and 1048576, got -1"},
      {[](json& j) { j["rms_norm"] = false; },
       "config /m/config.json asks for LayerNorm (rms_norm: false); vkssm supports only RMSNorm models"},
      {[](json& j) { j["d_intermediate"] = 64; },
       "config /m/config.json sets d_intermediate to 64 (an MLP after each mixer); vkssm does not run it"},
      {[](json& j) { j["attn_layer_idx"] = {1}; },
       "config /m/config.json lists attention layers in attn_layer_idx; vkssm runs pure Mamba-2 models only"},
      {[](json& j) { j["attn_layer_idx"] = "none"; },
       "key 'attn_layer_idx' in /m/config.json must be a list, got \"none\""},
      {[](json& j) { j["pad_vocab_size_multiple"] = 0; },
       "Mamba-2 pad_vocab_size_multiple in /m/config.json must be between 1 and 65536, got 0"},
      {[](json& j) { j["tie_embeddings"] = "no"; },
       "key 'tie_embeddings' in /m/config.json must be true or false, got \"no\""},
  };
  for (const Case& k : cases) {
    json j = original_config();
    k.edit(j);
    EXPECT_EQ(parse_error(j), k.message) << j.dump();
  }
}

TEST(Mamba2ConfigParse, RandomWeightsCheckTheirConfig) {
  Mamba2Config c = parse_mamba2_config(hf_config(), kSrc);
  c.d_inner = 40;  // disagrees with expand * d_model
  EXPECT_EQ(error_of([&] { random_mamba2(c, 1); }),
            "Mamba-2 d_inner 40 in random_mamba2 config must equal int(expand * d_model) = 48");
}

// ---------------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------------

void expect_same(const Mamba2Weights& a, const Mamba2Weights& b) {
  EXPECT_EQ(a.cfg.d_model, b.cfg.d_model);
  EXPECT_EQ(a.cfg.n_layer, b.cfg.n_layer);
  EXPECT_EQ(a.cfg.vocab_size, b.cfg.vocab_size);
  EXPECT_EQ(a.cfg.d_state, b.cfg.d_state);
  EXPECT_EQ(a.cfg.d_conv, b.cfg.d_conv);
  EXPECT_EQ(a.cfg.expand, b.cfg.expand);
  EXPECT_EQ(a.cfg.d_inner, b.cfg.d_inner);
  EXPECT_EQ(a.cfg.n_heads, b.cfg.n_heads);
  EXPECT_EQ(a.cfg.head_dim, b.cfg.head_dim);
  EXPECT_EQ(a.cfg.n_groups, b.cfg.n_groups);
  EXPECT_EQ(a.cfg.norm_eps, b.cfg.norm_eps);
  EXPECT_EQ(a.cfg.dt_min, b.cfg.dt_min);
  EXPECT_EQ(a.cfg.dt_max, b.cfg.dt_max);
  EXPECT_EQ(a.cfg.tie_embeddings, b.cfg.tie_embeddings);
  EXPECT_EQ(a.cfg.use_bias, b.cfg.use_bias);
  EXPECT_EQ(a.cfg.use_conv_bias, b.cfg.use_conv_bias);
  EXPECT_EQ(a.embeddings, b.embeddings);
  EXPECT_EQ(a.norm_f, b.norm_f);
  EXPECT_EQ(a.lm_head, b.lm_head);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    SCOPED_TRACE("layer " + std::to_string(i));
    const Mamba2LayerWeights &x = a.layers[i], &y = b.layers[i];
    EXPECT_EQ(x.norm, y.norm);
    EXPECT_EQ(x.in_proj, y.in_proj);
    EXPECT_EQ(x.in_proj_b, y.in_proj_b);
    EXPECT_EQ(x.conv_w, y.conv_w);
    EXPECT_EQ(x.conv_b, y.conv_b);
    EXPECT_EQ(x.dt_bias, y.dt_bias);
    EXPECT_EQ(x.A_log, y.A_log);
    EXPECT_EQ(x.D, y.D);
    EXPECT_EQ(x.gate_norm, y.gate_norm);
    EXPECT_EQ(x.out_proj, y.out_proj);
    EXPECT_EQ(x.out_proj_b, y.out_proj_b);
  }
  EXPECT_EQ(mamba2_fingerprint(a), mamba2_fingerprint(b));
}

class Mamba2Files : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("vkssm_m2_" + std::to_string(::getpid()) + "_" +
                                        testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    Mamba2Config c = parse_mamba2_config(hf_config(), kSrc);
    c.tie_embeddings = false;
    c.use_bias = true;
    c.dt_min = 0.001f;
    c.dt_max = 0.5f;
    w_ = random_mamba2(c, 7);
    save_mamba2_hf(w_, dir_.string());
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string dir() const { return dir_.string(); }
  std::string file() const { return (dir_ / "model.safetensors").string(); }
  std::string config_path() const { return (dir_ / "config.json").string(); }

  // Rewrites model.safetensors through `edit`, which may rename, reshape or drop (empty name).
  void rewrite(const std::function<void(TensorToWrite&)>& edit) {
    std::vector<TensorToWrite> out;
    {
      auto f = SafetensorsFile::open(file());
      for (const TensorInfo& t : f->tensors()) {
        TensorToWrite w{t.name, t.dtype, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes)};
        edit(w);
        if (!w.name.empty()) out.push_back(std::move(w));
      }
    }
    write_safetensors(file(), out);
  }
  void edit_config(const std::function<void(json&)>& edit) {
    json j = read_json_file(config_path());
    edit(j);
    std::ofstream(config_path()) << j.dump(2);
  }
  std::string load_error() {
    return error_of([&] { load_mamba2(Checkpoint::open(dir())); });
  }

  fs::path dir_;
  Mamba2Weights w_;
};

TEST_F(Mamba2Files, SaveLoadRoundTripIsExact) {
  const Mamba2Weights back = load_mamba2(Checkpoint::open(dir()));
  expect_same(back, w_);
  EXPECT_FALSE(back.layers[0].in_proj_b.empty());
  EXPECT_FALSE(back.lm_head.empty());
  EXPECT_EQ(back.source, dir());
  EXPECT_EQ(back.source_dtype, DType::F32);

  // Tied, no biases, no conv bias, default time step limit, fractional expand.
  Mamba2Config c = parse_mamba2_config(hf_config(), kSrc);
  c.use_conv_bias = false;
  c.d_model = 32;
  c.expand = 1.5;
  c.d_inner = 0;
  const Mamba2Weights tied = random_mamba2(c, 8);
  const std::string dir2 = dir() + "_tied";
  save_mamba2_hf(tied, dir2);
  const Mamba2Weights back2 = load_mamba2(Checkpoint::open(dir2));
  fs::remove_all(dir2);
  expect_same(back2, tied);
  EXPECT_TRUE(back2.lm_head.empty());
  EXPECT_TRUE(back2.layers[0].in_proj_b.empty());
  EXPECT_EQ(back2.layers[0].conv_b, std::vector<float>(size_t(tied.cfg.conv_dim()), 0.0f));
}

TEST_F(Mamba2Files, OriginalTensorNamesLoad) {
  rewrite([](TensorToWrite& t) {
    if (t.name == "backbone.embeddings.weight") t.name = "backbone.embedding.weight";
  });
  std::ofstream(config_path()) << json{{"d_model", 24},
                                       {"n_layer", 2},
                                       {"vocab_size", 40},
                                       {"pad_vocab_size_multiple", 8},
                                       {"tie_embeddings", false},
                                       {"ssm_cfg",
                                        {{"layer", "Mamba2"},
                                         {"d_state", 16},
                                         {"headdim", 8},
                                         {"ngroups", 2},
                                         {"bias", true},
                                         {"dt_limit", {0.001, 0.5}}}}}
                                      .dump();
  expect_same(load_mamba2(Checkpoint::open(dir())), w_);
}

TEST_F(Mamba2Files, MissingTensorsAreNamed) {
  rewrite([](TensorToWrite& t) {
    if (t.name == "backbone.layers.1.mixer.D") t.name.clear();
  });
  EXPECT_EQ(load_error(), "tensor backbone.layers.1.mixer.D not found in checkpoint " + dir());
  SetUp();
  rewrite([](TensorToWrite& t) {
    if (t.name == "lm_head.weight") t.name.clear();
  });
  EXPECT_EQ(load_error(), "missing tensor lm_head.weight in checkpoint " + dir() + " (" + config_path() +
                              " says the embeddings are not tied)");
  SetUp();
  rewrite([](TensorToWrite& t) {
    if (t.name == "backbone.embeddings.weight") t.name.clear();
  });
  EXPECT_EQ(load_error(), "tensor backbone.embeddings.weight (or backbone.embedding.weight) not found in checkpoint " +
                              dir());
  SetUp();
  rewrite([](TensorToWrite& t) {
    if (t.name == "backbone.layers.0.mixer.out_proj.bias") t.name.clear();
  });
  EXPECT_EQ(load_error(), "tensor backbone.layers.0.mixer.out_proj.bias not found in checkpoint " + dir());
}

TEST_F(Mamba2Files, MisshapenTensorsAreNamed) {
  rewrite([](TensorToWrite& t) {
    if (t.name == "backbone.layers.0.mixer.A_log") t.shape = {1, 6};
  });
  EXPECT_EQ(load_error(), "tensor backbone.layers.0.mixer.A_log in " + file() + " has shape [1, 6], expected [6]");
  SetUp();
  rewrite([](TensorToWrite& t) {
    if (t.name == "backbone.layers.1.mixer.in_proj.weight") t.shape = {24, 166};
  });
  EXPECT_EQ(load_error(), "tensor backbone.layers.1.mixer.in_proj.weight in " + file() +
                              " has shape [24, 166], expected [166, 24]");
  SetUp();
  rewrite([](TensorToWrite& t) {
    if (t.name == "backbone.layers.0.mixer.norm.weight") t.shape = {2, 24};
  });
  EXPECT_EQ(load_error(), "tensor backbone.layers.0.mixer.norm.weight in " + file() +
                              " has shape [2, 24], expected [48]");
  SetUp();
  rewrite([](TensorToWrite& t) {
    if (t.name == "backbone.layers.0.mixer.conv1d.weight") t.shape = {112, 4};
  });
  EXPECT_EQ(load_error(), "tensor backbone.layers.0.mixer.conv1d.weight in " + file() +
                              " has shape [112, 4], expected [112, 1, 4]");
}

TEST_F(Mamba2Files, ConfigThatDisagreesWithTheTensorsIsNamed) {
  edit_config([](json& j) { j["use_bias"] = false; });
  EXPECT_EQ(load_error(), "checkpoint " + dir() + " has tensor backbone.layers.0.mixer.in_proj.bias but " +
                              config_path() + " sets use_bias to false");
  SetUp();
  edit_config([](json& j) { j["vocab_size"] = 41; });
  EXPECT_EQ(load_error(), "tensor backbone.embeddings.weight in " + file() + " has 40 rows but " + config_path() +
                              " gives vocab_size 41 (after padding)");
  SetUp();
  edit_config([](json& j) { j["n_groups"] = 1; });  // changes in_proj's row count
  EXPECT_EQ(load_error(), "tensor backbone.layers.0.mixer.in_proj.weight in " + file() +
                              " has shape [166, 24], expected [134, 24]");
  SetUp();
  edit_config([](json& j) { j["num_heads"] = 7; });
  EXPECT_EQ(load_error(), "Mamba-2 num_heads * head_dim (7 * 8) in " + config_path() +
                              " must equal d_inner = expand * hidden_size (48)");
}

// ---------------------------------------------------------------------------------------------
// The reference step
// ---------------------------------------------------------------------------------------------

const std::vector<int32_t> kTinyIds = {0, 5, 47, 12, 3, 3, 9, 40, 1, 22, 31, 7, 8, 19, 44, 2, 30, 11, 6, 25};

// tests/data/mamba2_tiny_ref.txt says how the checkpoint and the logits were made.
TEST(Mamba2Cpu, MatchesTheIndependentPyTorchReference) {
  const std::string data = std::string(VKSSM_SOURCE_DIR) + "/tests/data/";
  const NpyArray want = read_npy_f32(data + "mamba2_tiny_ref.npy");
  const Mamba2Weights w = load_mamba2(Checkpoint::open(data + "mamba2_tiny"));
  const int64_t V = w.cfg.vocab_size;
  ASSERT_EQ(want.shape, (std::vector<int64_t>{int64_t(kTinyIds.size()), V}));
  EXPECT_EQ(w.cfg.n_groups, 2);
  EXPECT_EQ(w.cfg.head_dim, 8);
  EXPECT_TRUE(w.cfg.use_bias);
  EXPECT_FALSE(w.lm_head.empty());
  EXPECT_TRUE(std::isinf(w.cfg.dt_max));

  const Mamba2CpuReference ref(w);
  std::vector<float> state(ref.state_floats(), 0.0f), got(size_t(V), 0.0f);
  float worst = 0;
  for (size_t t = 0; t < kTinyIds.size(); ++t) {
    ref.step(state.data(), kTinyIds[t], got.data());
    for (int64_t v = 0; v < V; ++v) worst = std::max(worst, std::fabs(got[size_t(v)] - want.data[t * V + v]));
  }
  EXPECT_LT(worst, 1e-4f);
  char text[32];
  std::snprintf(text, sizeof text, "%.3g", double(worst));
  RecordProperty("max_abs_diff", text);

  // The same through load_model and the cpu backend.
  LoadOptions opt;
  opt.backend = BackendKind::Reference;
  auto m = load_model(data + "mamba2_tiny", opt);
  EXPECT_EQ(m->info().architecture, "mamba2");
  EXPECT_EQ(m->info().backend, "reference");
  EXPECT_EQ(m->info().vocab_size, V);
  const int32_t slot = 1;
  float worst_model = 0;
  for (size_t t = 0; t < kTinyIds.size(); ++t) {
    m->step(&kTinyIds[t], &slot, 1, got.data());
    for (int64_t v = 0; v < V; ++v)
      worst_model = std::max(worst_model, std::fabs(got[size_t(v)] - want.data[t * V + v]));
  }
  EXPECT_EQ(worst_model, worst);
}

TEST(Mamba2Cpu, RejectsTokensOutsideTheVocabulary) {
  Mamba2Config c = parse_mamba2_config(hf_config(), kSrc);
  const Mamba2Weights w = random_mamba2(c, 2);
  const Mamba2CpuReference ref(w);
  std::vector<float> state(ref.state_floats(), 0.0f), logits(40);
  EXPECT_EQ(error_of([&] { ref.step(state.data(), 40, logits.data()); }),
            "token 40 is outside the vocabulary [0, 40)");
  EXPECT_EQ(error_of([&] { ref.step(state.data(), -1, logits.data()); }),
            "token -1 is outside the vocabulary [0, 40)");
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }
double softplus(double x) { return std::log1p(std::exp(x)); }

// One layer, two heads of one channel, one group, d_state 1, d_conv 1, and the same token every
// step: every projection is then constant and the state after t steps is a geometric series,
//   s_t = dt·x·B·(1 - dA^t) / (1 - dA),
// so each step's logits have a closed form. Head 0's dt is clamped by time_step_limit, head 1's
// is not.
TEST(Mamba2Cpu, MatchesTheClosedFormOfAConstantInput) {
  Mamba2Config c;
  c.d_model = 2;
  c.n_layer = 1;
  c.vocab_size = 2;
  c.d_state = 1;
  c.d_conv = 1;
  c.expand = 1;
  c.head_dim = 1;
  c.n_groups = 1;
  c.dt_min = 0.0f;
  c.dt_max = 0.05f;
  Mamba2Weights w = random_mamba2(c, 1);
  ASSERT_EQ(w.cfg.n_heads, 2);
  ASSERT_EQ(w.cfg.in_proj_rows(), 8);  // z0 z1 | x0 x1 B C | dt0 dt1
  const double eps = w.cfg.norm_eps;

  w.embeddings = {1.0f, 1.0f, 1.0f, -1.0f};
  Mamba2LayerWeights& L = w.layers[0];
  L.norm = {1.0f, 1.0f};
  const double a[8] = {1.0, -0.5, 0.8, -0.6, 0.5, 1.5, 3.0, -4.0};  // in_proj column 0; column 1 is 0
  for (int r = 0; r < 8; ++r) {
    L.in_proj[size_t(2 * r)] = float(a[r]);
    L.in_proj[size_t(2 * r + 1)] = 0.0f;
  }
  L.conv_w.assign(4, 1.0f);  // conv_dim = E + 2GN = 4 channels (x0 x1 B C), K = 1
  L.conv_b.assign(4, 0.0f);
  L.dt_bias = {0.5f, -0.25f};
  L.A_log = {float(std::log(2.0)), float(std::log(0.5))};  // A = -2, -0.5
  L.D = {0.3f, 0.7f};
  L.gate_norm = {1.25f, 0.75f};
  L.out_proj = {1.0f, 0.5f, -0.5f, 1.0f};
  w.norm_f = {1.0f, 1.0f};

  // Token 0's embedding [1, 1] has RMS 1.
  const double s = 1.0 / std::sqrt(1.0 + eps);
  const double z[2] = {silu(a[0] * s), silu(a[1] * s)};
  const double x[2] = {silu(a[2] * s), silu(a[3] * s)};
  const double B = silu(a[4] * s), C = silu(a[5] * s);
  const double dt[2] = {std::min(softplus(a[6] * s + 0.5), 0.05), std::min(softplus(a[7] * s - 0.25), 0.05)};
  ASSERT_EQ(dt[0], 0.05);  // clamped
  ASSERT_LT(dt[1], 0.05);  // not clamped
  const double A[2] = {-2.0, -0.5}, Dskip[2] = {0.3, 0.7}, gate_w[2] = {1.25, 0.75};

  const Mamba2CpuReference ref(w);
  std::vector<float> state(ref.state_floats(), 0.0f), logits(2);
  ASSERT_EQ(state.size(), size_t(4 * 1 + 2 * 1 * 1));  // conv [4][1], then ssm [2][1][1]
  for (int t = 1; t <= 7; ++t) {
    ref.step(state.data(), 0, logits.data());
    double g[2];
    for (int h = 0; h < 2; ++h) {
      const double dA = std::exp(dt[h] * A[h]);
      const double ssm = dt[h] * x[h] * B * (1.0 - std::pow(dA, t)) / (1.0 - dA);
      EXPECT_NEAR(state[size_t(4 + h)], ssm, 1e-7) << "step " << t << " head " << h;
      g[h] = (ssm * C + Dskip[h] * x[h]) * z[h];
    }
    const double rms = std::sqrt((g[0] * g[0] + g[1] * g[1]) / 2.0 + eps);
    const double n0 = g[0] / rms * gate_w[0], n1 = g[1] / rms * gate_w[1];
    const double r0 = 1.0 + (1.0 * n0 + 0.5 * n1), r1 = 1.0 + (-0.5 * n0 + 1.0 * n1);
    const double f = 1.0 / std::sqrt((r0 * r0 + r1 * r1) / 2.0 + eps);
    EXPECT_NEAR(logits[0], (r0 + r1) * f, 1e-5) << "step " << t;  // tied head: rows [1, 1], [1, -1]
    EXPECT_NEAR(logits[1], (r0 - r1) * f, 1e-5) << "step " << t;
  }
  // With d_conv 1 the conv state is the last conv input: x0 x1 B C before the SiLU.
  EXPECT_NEAR(state[0], a[2] * s, 1e-6);
  EXPECT_NEAR(state[3], a[5] * s, 1e-6);
}

// ---------------------------------------------------------------------------------------------
// The cpu backend
// ---------------------------------------------------------------------------------------------

TEST(Mamba2CpuBackend, DescribesTheModelAndItsState) {
  Mamba2Config c = parse_mamba2_config(hf_config(), kSrc);
  const Mamba2Weights w = random_mamba2(c, 4);
  LoadOptions opt;
  opt.backend = BackendKind::Reference;
  opt.max_streams = 2;
  auto m = create_mamba2(w, opt);
  const ModelInfo& info = m->info();
  EXPECT_EQ(info.architecture, "mamba2");
  EXPECT_EQ(info.backend, "reference");
  EXPECT_EQ(info.vocab_size, 40);
  EXPECT_EQ(info.d_output, 40);
  EXPECT_EQ(info.d_model, 24);
  EXPECT_EQ(info.n_layer, 2);
  EXPECT_EQ(info.weight_bytes, uint64_t(w.parameter_count()) * 4);
  // [L][conv_dim][K] + [L][H][P][N]
  EXPECT_EQ(info.state_bytes_per_stream, uint64_t(2 * (112 * 4 + 6 * 8 * 16) * 4));
  const StateHeader h = mamba2_state_header(w);
  EXPECT_EQ(h.architecture, "mamba2");
  EXPECT_EQ(h.shape, (std::vector<uint64_t>{2, 112, 4, 6, 8, 16}));
  EXPECT_EQ(h.payload_floats * 4, info.state_bytes_per_stream);
  EXPECT_EQ(h.fingerprint, mamba2_fingerprint(w));
}

TEST(Mamba2CpuBackend, SnapshotRestoreForkAndReset) {
  Mamba2Config c = parse_mamba2_config(hf_config(), kSrc);
  c.use_bias = true;
  const Mamba2Weights w = random_mamba2(c, 9);
  LoadOptions opt;
  opt.backend = BackendKind::Reference;
  opt.max_streams = 3;
  auto m = create_mamba2(w, opt);
  const StateHeader header = mamba2_state_header(w);
  const size_t conv_floats = 2 * 112 * 4;

  // Payload layout: conv states with the newest input last, shifting one column per step.
  const int32_t slot = 0;
  const int32_t first = 3, second = 17;
  m->step(&first, &slot, 1, nullptr);
  const std::vector<float> p1 = payload(*m, slot, header);
  ASSERT_EQ(p1.size(), header.payload_floats);
  m->step(&second, &slot, 1, nullptr);
  const std::vector<float> p2 = payload(*m, slot, header);
  int nonzero = 0;
  for (size_t ch = 0; ch < 2 * 112; ++ch) {
    EXPECT_EQ(p1[ch * 4 + 0], 0.0f);
    EXPECT_EQ(p1[ch * 4 + 2], 0.0f);
    EXPECT_EQ(p2[ch * 4 + 2], p1[ch * 4 + 3]) << "channel " << ch;
    nonzero += p1[ch * 4 + 3] != 0.0f;
  }
  EXPECT_EQ(nonzero, 2 * 112);
  nonzero = 0;
  for (size_t i = conv_floats; i < p2.size(); ++i) nonzero += p2[i] != 0.0f;
  EXPECT_EQ(nonzero, int(p2.size() - conv_floats));

  // Continuing from a restored (or forked) state gives bit-identical logits.
  const std::vector<uint8_t> blob = m->snapshot(slot);
  const std::vector<int32_t> more = {5, 39, 0, 12};
  std::vector<float> want(more.size() * 40), got(40);
  for (size_t t = 0; t < more.size(); ++t) m->step(&more[t], &slot, 1, want.data() + t * 40);
  const int32_t other = 2, third = 1;
  m->restore(other, blob.data(), blob.size());
  for (size_t t = 0; t < more.size(); ++t) {
    m->step(&more[t], &other, 1, got.data());
    EXPECT_EQ(std::vector<float>(got.begin(), got.end()),
              std::vector<float>(want.begin() + long(t * 40), want.begin() + long((t + 1) * 40)));
  }
  m->fork(other, third);
  EXPECT_EQ(m->snapshot(third), m->snapshot(other));
  EXPECT_EQ(m->snapshot(other), m->snapshot(slot));

  // Reset gives zeros; a blob of another model is refused and changes nothing.
  m->reset(third);
  const std::vector<float> zero = payload(*m, third, header);
  EXPECT_EQ(zero, std::vector<float>(header.payload_floats, 0.0f));
  auto other_model = create_mamba2(random_mamba2(c, 10), opt);
  const std::vector<uint8_t> foreign = other_model->snapshot(0);
  const std::string err = error_of([&] { m->restore(third, foreign.data(), foreign.size()); });
  EXPECT_TRUE(err.starts_with("state: saved from a different model")) << err;
  EXPECT_EQ(payload(*m, third, header), zero);

  // A Mamba-1 blob is refused by shape/architecture too.
  LoadOptions mopt = opt;
  auto m1 = create_mamba1(random_mamba1(testing_helpers::small_mamba1_config(40), 1), mopt);
  const std::vector<uint8_t> m1blob = m1->snapshot(0);
  EXPECT_TRUE(error_of([&] { m->restore(third, m1blob.data(), m1blob.size()); }).starts_with("state: "));
}

}  // namespace
}  // namespace vkssm

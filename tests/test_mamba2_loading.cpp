// Mamba-2 configs and checkpoints: both config.json dialects, defaults, and every bad input giving
// an exact error that names the key, tensor or file.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "engine/vkssm.hpp"
#include "host/safetensors.h"
#include "models/mamba2/mamba2_model.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing_helpers::error_of;

json hf_config() {
  return {{"architectures", {"Mamba2ForCausalLM"}}, {"model_type", "mamba2"}, {"hidden_size", 24},
          {"num_hidden_layers", 2}, {"vocab_size", 40}, {"state_size", 16}, {"expand", 2},
          {"num_heads", 4}, {"head_dim", 12}, {"n_groups", 2}};
}

TEST(Mamba2Config, HfFormWithDefaults) {
  const Mamba2Config c = parse_mamba2_config(hf_config(), "/m/config.json");
  EXPECT_EQ(c.d_model, 24);
  EXPECT_EQ(c.d_inner, 48);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.head_dim, 12);
  EXPECT_EQ(c.n_groups, 2);
  EXPECT_EQ(c.d_conv, 4);
  EXPECT_EQ(c.conv_dim(), 48 + 2 * 2 * 16);
  EXPECT_EQ(c.in_proj_rows(), 2 * 48 + 2 * 2 * 16 + 4);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.dt_min, 0.0f);
  EXPECT_TRUE(std::isinf(c.dt_max));
}

TEST(Mamba2Config, OriginalFormPadsTheVocabulary) {
  json j = {{"d_model", 24}, {"n_layer", 1}, {"vocab_size", 50277}, {"pad_vocab_size_multiple", 16},
            {"ssm_cfg", {{"layer", "Mamba2"}, {"d_state", 8}, {"headdim", 12}, {"ngroups", 1}}}};
  const Mamba2Config c = parse_mamba2_config(j, "/m/config.json");
  EXPECT_EQ(c.vocab_size, 50288);
  EXPECT_EQ(c.d_state, 8);
  EXPECT_EQ(c.n_heads, 4);
}

TEST(Mamba2Config, TimeStepLimitIsRead) {
  json j = hf_config();
  j["time_step_limit"] = {0.01, 0.5};
  const Mamba2Config c = parse_mamba2_config(j, "/m/config.json");
  EXPECT_FLOAT_EQ(c.dt_min, 0.01f);
  EXPECT_FLOAT_EQ(c.dt_max, 0.5f);
}

TEST(Mamba2Config, BadConfigsAreNamed) {
  auto msg = [](const json& j) { return error_of([&] { parse_mamba2_config(j, "/m/config.json"); }); };
  json j = hf_config();
  j["num_heads"] = 5;
  EXPECT_EQ(msg(j), "Mamba-2 num_heads * head_dim (5 * 12) in /m/config.json must equal d_inner = expand * "
                    "hidden_size (48)");
  j = hf_config();
  j["n_groups"] = 3;
  EXPECT_EQ(msg(j), "Mamba-2 num_heads 4 in /m/config.json is not a multiple of n_groups 3");
  j = hf_config();
  j.erase("hidden_size");
  EXPECT_EQ(msg(j), "missing key 'hidden_size' in /m/config.json");
  j = hf_config();
  j["state_size"] = "big";
  EXPECT_EQ(msg(j), "key 'state_size' in /m/config.json must be an integer, got \"big\"");
  j = hf_config();
  j["time_step_limit"] = {0.5};
  EXPECT_EQ(msg(j), "key 'time_step_limit' in /m/config.json must be a pair of numbers, got (array)");
  j = hf_config();
  j["rms_norm"] = false;
  EXPECT_EQ(msg(j), "config /m/config.json sets rms_norm to false; vkssm runs Mamba-2 with its gated RMSNorm only");
  j = hf_config();
  j["model_type"] = "mamba";
  EXPECT_EQ(msg(j), "unsupported architecture 'mamba' in /m/config.json (vkssm supports: mamba, falcon_mamba, mamba2, s4d)");
}

class Mamba2Checkpoint : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("vkssm_mamba2_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    Mamba2Config c = parse_mamba2_config(hf_config(), "test");
    c.tie_embeddings = false;
    w_ = random_mamba2(c, 3);
    save_mamba2_hf(w_, dir_.string());
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  Mamba2Weights w_;
};

TEST_F(Mamba2Checkpoint, SaveLoadRoundTrip) {
  const Mamba2Weights back = load_mamba2(Checkpoint::open(dir_.string()));
  EXPECT_EQ(back.embeddings, w_.embeddings);
  EXPECT_EQ(back.lm_head, w_.lm_head);
  ASSERT_EQ(back.layers.size(), w_.layers.size());
  EXPECT_EQ(back.layers[1].in_proj, w_.layers[1].in_proj);
  EXPECT_EQ(back.layers[1].gate_norm, w_.layers[1].gate_norm);
  EXPECT_EQ(back.layers[0].A_log, w_.layers[0].A_log);
  EXPECT_EQ(mamba2_fingerprint(back), mamba2_fingerprint(w_));
  // load_model dispatches on model_type.
  LoadOptions opt;
  opt.backend = BackendKind::Reference;
  EXPECT_EQ(load_model(dir_.string(), opt)->info().architecture, "mamba2");
}

TEST_F(Mamba2Checkpoint, MissingOrMisshapenTensorsAreNamed) {
  const std::string file = (dir_ / "model.safetensors").string();
  auto tensors_without = [&](const std::string& drop, const std::string& reshape) {
    auto f = SafetensorsFile::open(file);
    std::vector<TensorToWrite> out;
    for (const TensorInfo& t : f->tensors()) {
      if (t.name == drop) continue;
      TensorToWrite w{t.name, t.dtype, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes)};
      if (t.name == reshape) w.shape = {t.numel()};
      out.push_back(std::move(w));
    }
    return out;
  };
  auto rewritten = tensors_without("backbone.layers.1.mixer.dt_bias", "");
  write_safetensors(file, rewritten);
  EXPECT_EQ(error_of([&] { load_mamba2(Checkpoint::open(dir_.string())); }),
            "tensor backbone.layers.1.mixer.dt_bias not found in checkpoint " + dir_.string());
  SetUp();
  rewritten = tensors_without("", "backbone.layers.0.mixer.conv1d.weight");
  write_safetensors(file, rewritten);
  EXPECT_EQ(error_of([&] { load_mamba2(Checkpoint::open(dir_.string())); }),
            "tensor backbone.layers.0.mixer.conv1d.weight in " + file + " has shape [448], expected [112, 1, 4]");
}

}  // namespace
}  // namespace vkssm

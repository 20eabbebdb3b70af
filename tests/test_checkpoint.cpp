// Checkpoint: folder / single-file / sharded forms, config.json reading (with Infinity tokens),
// fp32 conversion and the exact wording of the errors users see most.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "host/checkpoint.h"
#include "host/error.h"

namespace vkssm {
namespace {

namespace fs = std::filesystem;
using testing::HasSubstr;

class CheckpointTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::path(testing::TempDir()) /
            ("vkssm_ck_" +
             std::string(testing::UnitTest::GetInstance()->current_test_info()->name())))
               .string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (fs::path(dir_) / name).string(); }
  void write_text(const std::string& name, const std::string& text) const {
    std::ofstream(path(name)) << text;
  }
  // config.json + model.safetensors holding a [2,3] F32 tensor "a" and a [4,4] F16 tensor "b".
  void write_simple_checkpoint() const {
    write_text("config.json", R"({"model_type": "test", "hidden_size": 3})");
    write_safetensors(path("model.safetensors"),
                      {make_tensor("a", {2, 3}, {1, 2, 3, 4, 5, 6}),
                       make_tensor("b", {4, 4}, std::vector<float>(16, 0.25f), DType::F16)});
  }
  static std::string error_of(const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  }

  std::string dir_;
};

TEST_F(CheckpointTest, FolderForm) {
  write_simple_checkpoint();
  Checkpoint ck = Checkpoint::open(dir_);
  EXPECT_EQ(ck.dir(), dir_);
  EXPECT_EQ(ck.config()["model_type"], "test");
  EXPECT_TRUE(ck.has("a"));
  EXPECT_FALSE(ck.has("c"));
  EXPECT_EQ(ck.load_f32("a", {2, 3}), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(ck.load_f32("b", {4, 4}), std::vector<float>(16, 0.25f));
  EXPECT_EQ(ck.main_dtype(), DType::F16);  // 32 bytes of F16 against 24 of F32
}

TEST_F(CheckpointTest, SafetensorsFileForm) {
  write_simple_checkpoint();
  Checkpoint ck = Checkpoint::open(path("model.safetensors"));
  EXPECT_EQ(ck.dir(), dir_);
  EXPECT_EQ(ck.config()["hidden_size"], 3);
  EXPECT_EQ(ck.load_f32("a", {2, 3})[5], 6.0f);
}

TEST_F(CheckpointTest, Bf16IsConverted) {
  write_text("config.json", "{}");
  write_safetensors(path("model.safetensors"),
                    {make_tensor("w", {3}, {1.0f, -0.5f, 3.0f}, DType::BF16)});
  Checkpoint ck = Checkpoint::open(dir_);
  EXPECT_EQ(ck.load_f32("w", {3}), (std::vector<float>{1.0f, -0.5f, 3.0f}));
  EXPECT_EQ(ck.main_dtype(), DType::BF16);
}

TEST_F(CheckpointTest, ShardedForm) {
  write_text("config.json", "{}");
  write_safetensors(path("model-00001-of-00002.safetensors"),
                    {make_tensor("a", {2}, {1, 2}), make_tensor("b", {1}, {3})});
  write_safetensors(path("model-00002-of-00002.safetensors"), {make_tensor("c", {2}, {4, 5})});
  write_text("model.safetensors.index.json", R"({
    "metadata": {"total_size": 20},
    "weight_map": {"a": "model-00001-of-00002.safetensors",
                   "b": "model-00001-of-00002.safetensors",
                   "c": "model-00002-of-00002.safetensors"}})");
  Checkpoint ck = Checkpoint::open(dir_);
  EXPECT_EQ(ck.load_f32("a", {2}), (std::vector<float>{1, 2}));
  EXPECT_EQ(ck.load_f32("b", {1}), (std::vector<float>{3}));
  EXPECT_EQ(ck.load_f32("c", {2}), (std::vector<float>{4, 5}));
  EXPECT_EQ(ck.find("c")->file, path("model-00002-of-00002.safetensors"));
}

TEST_F(CheckpointTest, IndexNamingMissingShard) {
  write_text("config.json", "{}");
  write_safetensors(path("s1.safetensors"), {make_tensor("a", {1}, {1})});
  write_text("model.safetensors.index.json",
             R"({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}})");
  std::string msg = error_of([&] { Checkpoint::open(dir_); });
  EXPECT_THAT(msg, HasSubstr("shard " + path("s2.safetensors") + " listed in " +
                             path("model.safetensors.index.json") + " does not exist"));
}

TEST_F(CheckpointTest, IndexNamingTensorAbsentFromShard) {
  write_text("config.json", "{}");
  write_safetensors(path("s1.safetensors"), {make_tensor("a", {1}, {1})});
  write_text("model.safetensors.index.json",
             R"({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors"}})");
  std::string msg = error_of([&] { Checkpoint::open(dir_); });
  EXPECT_THAT(msg, HasSubstr("tensor b listed in " + path("model.safetensors.index.json") +
                             " is missing from shard " + path("s1.safetensors")));
}

TEST_F(CheckpointTest, MissingConfigJson) {
  write_safetensors(path("model.safetensors"), {make_tensor("a", {1}, {1})});
  std::string msg = error_of([&] { Checkpoint::open(dir_); });
  EXPECT_THAT(msg, HasSubstr("no config.json (expected " + path("config.json") + ")"));
  msg = error_of([&] { Checkpoint::open(path("model.safetensors")); });
  EXPECT_THAT(msg, HasSubstr(path("config.json")));
}

TEST_F(CheckpointTest, MissingWeightsAndPath) {
  write_text("config.json", "{}");
  EXPECT_THAT(error_of([&] { Checkpoint::open(dir_); }),
              HasSubstr("has neither model.safetensors nor model.safetensors.index.json"));
  EXPECT_THAT(error_of([&] { Checkpoint::open(path("nowhere")); }),
              HasSubstr("checkpoint path " + path("nowhere") + " does not exist"));
}

TEST_F(CheckpointTest, ConfigWithInfinityTokens) {
  write_text("config.json", R"({"time_step_limit": [0.0, Infinity], "low": -Infinity,
                                "nan": NaN, "text": "Infinity and NaN stay \"Infinity\""})");
  nlohmann::json j = read_json_file(path("config.json"));
  EXPECT_EQ(j["time_step_limit"][0].get<double>(), 0.0);
  EXPECT_GE(j["time_step_limit"][1].get<double>(), 1e308);
  EXPECT_LE(j["low"].get<double>(), -1e308);
  EXPECT_TRUE(j["nan"].is_null());
  EXPECT_EQ(j["text"], "Infinity and NaN stay \"Infinity\"");
}

TEST_F(CheckpointTest, InvalidConfigJson) {
  write_text("config.json", R"({"a": 1,)");
  write_safetensors(path("model.safetensors"), {make_tensor("a", {1}, {1})});
  EXPECT_THAT(error_of([&] { Checkpoint::open(dir_); }),
              HasSubstr("invalid JSON in " + path("config.json")));
}

TEST_F(CheckpointTest, ShapeMismatchMessage) {
  write_simple_checkpoint();
  Checkpoint ck = Checkpoint::open(dir_);
  EXPECT_EQ(error_of([&] { ck.load_f32("a", {3, 2}); }),
            "tensor a in " + path("model.safetensors") + " has shape [2, 3], expected [3, 2]");
  EXPECT_EQ(error_of([&] { ck.load_f32("b", {4, 1, 4}); }),
            "tensor b in " + path("model.safetensors") + " has shape [4, 4], expected [4, 1, 4]");
}

TEST_F(CheckpointTest, MissingTensorMessage) {
  write_simple_checkpoint();
  Checkpoint ck = Checkpoint::open(dir_);
  EXPECT_EQ(ck.find("nope"), nullptr);
  EXPECT_EQ(error_of([&] { ck.load_f32("nope", {1}); }),
            "tensor nope not found in checkpoint " + dir_);
}

}  // namespace
}  // namespace vkssm

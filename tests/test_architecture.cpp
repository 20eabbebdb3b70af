// The architecture registry: which config.json names which architecture, and the error that
// lists what vkssm supports.
#include <gtest/gtest.h>

#include <string>

#include "engine/architecture.h"
#include "engine/vkssm.hpp"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

using nlohmann::json;
using testing_helpers::error_of;

std::string name_of(const json& config) { return architecture_of(config, "c.json").name; }

TEST(ArchitectureRegistry, ListsEveryArchitectureOnce) {
  EXPECT_EQ(supported_architectures(), (std::vector<std::string>{"mamba", "falcon_mamba", "mamba2", "s4d"}));
  EXPECT_EQ(architecture_names(), "mamba, falcon_mamba, mamba2, s4d");
  for (const Architecture* a : architectures()) {
    EXPECT_EQ(find_architecture(a->name), a);
    EXPECT_TRUE(a->load) << a->name;
    EXPECT_FALSE(a->description.empty()) << a->name;
    EXPECT_EQ(bool(a->random), !a->frame_model) << a->name << ": the bench times every token model";
  }
  EXPECT_EQ(find_architecture("llama"), nullptr);
}

TEST(ArchitectureRegistry, RecognisesEveryConfigForm) {
  EXPECT_EQ(name_of({{"model_type", "mamba"}}), "mamba");
  EXPECT_EQ(name_of({{"model_type", "falcon_mamba"}}), "falcon_mamba");
  EXPECT_EQ(name_of({{"model_type", "mamba2"}}), "mamba2");
  EXPECT_EQ(name_of({{"model_type", "s4d"}}), "s4d");
  EXPECT_EQ(name_of({{"architectures", {"MambaForCausalLM"}}}), "mamba");
  EXPECT_EQ(name_of({{"architectures", {"FalconMambaForCausalLM"}}}), "falcon_mamba");
  EXPECT_EQ(name_of({{"architectures", {"Mamba2ForCausalLM"}}}), "mamba2");
  EXPECT_EQ(name_of({{"architectures", {"S4DClassifier"}}}), "s4d");
  // mamba_ssm's MambaLMHeadModel serves both versions: ssm_cfg.layer decides, Mamba-1 by default.
  EXPECT_EQ(name_of({{"architectures", {"MambaLMHeadModel"}}, {"ssm_cfg", {{"layer", "Mamba2"}}}}), "mamba2");
  EXPECT_EQ(name_of({{"architectures", {"MambaLMHeadModel"}}, {"d_model", 8}}), "mamba");
  EXPECT_EQ(name_of({{"d_model", 8}, {"ssm_cfg", {{"layer", "Mamba1"}}}}), "mamba");
  EXPECT_EQ(name_of({{"d_model", 8}}), "mamba");
  EXPECT_EQ(name_of({{"hidden_size", 8}}), "mamba");
}

TEST(ArchitectureRegistry, UnsupportedNamesWhatTheConfigAsksFor) {
  const std::string tail = " in c.json (vkssm supports: mamba, falcon_mamba, mamba2, s4d)";
  auto error = [](const json& j) { return error_of([&] { architecture_of(j, "c.json"); }); };
  EXPECT_EQ(error({{"model_type", "llama"}}), "unsupported architecture 'llama'" + tail);
  EXPECT_EQ(error({{"model_type", 3}}), "unsupported architecture '3'" + tail);
  EXPECT_EQ(error({{"architectures", {"LlamaForCausalLM"}}}), "unsupported architecture 'LlamaForCausalLM'" + tail);
  EXPECT_EQ(error({{"d_model", 8}, {"ssm_cfg", {{"layer", "Mamba3"}}}}), "unsupported architecture 'Mamba3'" + tail);
  EXPECT_EQ(error({{"foo", 1}}), "unsupported architecture 'unknown'" + tail);
  EXPECT_EQ(error(json::array()), "unsupported architecture 'unknown'" + tail);
  // An architecture's own parser refuses another's config with the same message.
  EXPECT_EQ(error_of([] { require_architecture({{"model_type", "s4d"}}, "c.json", {"mamba"}); }),
            "unsupported architecture 's4d'" + tail);
}

}  // namespace
}  // namespace vkssm

// What llama.cpp's loader needs from the GGUF files `vkssm quantize` writes, and what vkssm makes
// of such files: the findings of running vkssm's files through llama.cpp itself (llama-bench,
// llama-quantize and a logits dump against libllama), kept here as checks on the bytes, since the
// tests cannot run llama.cpp.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "bench/quant_quality.h"
#include "engine/vkssm.hpp"
#include "engine/vulkan_step_model.h"
#include "host/checkpoint.h"
#include "host/gguf.h"
#include "host/gguf_vocab.h"
#include "host/gguf_writer.h"
#include "host/tokenizer.h"
#include "models/mamba1/mamba1_gguf.h"
#include "models/mamba1/mamba1_model.h"
#include "models/mamba2/mamba2_gguf.h"
#include "models/mamba2/mamba2_model.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

namespace fs = std::filesystem;

const std::string kTinyShakespeare = std::string(VKSSM_SOURCE_DIR) + "/models/mamba1/tiny-shakespeare";

std::string temp_path(const std::string& name) {
  return (fs::path(testing::TempDir()) / ("vkssm_llc_" + std::to_string(::getpid()) + "_" + name)).string();
}

LoadOptions options_for(BackendKind backend, WeightStorage weights = WeightStorage::Auto) {
  LoadOptions o;
  o.backend = backend;
  o.weights = weights;
  o.max_streams = 1;
  return o;
}

// Per token (row of V logits): max |got - want| / max |want|; the largest over the tokens.
double worst_row_error(const std::vector<float>& got, const std::vector<float>& want, int64_t V) {
  double worst = 0;
  for (size_t r = 0; r * size_t(V) < want.size(); ++r) {
    double diff = 0, scale = 0;
    for (int64_t i = 0; i < V; ++i) {
      const size_t k = r * size_t(V) + size_t(i);
      diff = std::max(diff, double(std::fabs(got[k] - want[k])));
      scale = std::max(scale, double(std::fabs(want[k])));
    }
    worst = std::max(worst, diff / scale);
  }
  return worst;
}

// A file for a model without a tokenizer carries llama.cpp's "no vocabulary" form. Without
// tokenizer.ggml.model llama.cpp refuses the file ("key not found in model:
// tokenizer.ggml.model"); with "none" but no {arch}.vocab_size it has 0 tokens and then refuses
// token_embd.weight's shape. vkssm reads the file back as having no tokenizer.
void expect_no_vocab_form(const std::string& path, const std::string& arch, int64_t vocab) {
  const auto f = GgufFile::open(path);
  const GgufValue* model = f->find("tokenizer.ggml.model");
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->type, GgufValueType::STRING);
  EXPECT_EQ(f->get_string("tokenizer.ggml.model"), "none");
  const GgufValue* size = f->find(arch + ".vocab_size");
  ASSERT_NE(size, nullptr) << arch;
  EXPECT_EQ(size->type, GgufValueType::UINT32);  // llama.cpp reads it as uint32_t, type-checked
  EXPECT_EQ(f->get_int(arch + ".vocab_size"), vocab);
  EXPECT_FALSE(f->has("tokenizer.ggml.tokens"));
  EXPECT_FALSE(f->has("tokenizer.ggml.pre"));

  EXPECT_EQ(load_tokenizer_for_path(path), nullptr);
  EXPECT_FALSE(gguf_vocab_from_file(*f).has_value());  // re-quantizing keeps "no tokenizer"
  const std::unique_ptr<Model> m = load_model(path, options_for(BackendKind::Reference));
  EXPECT_EQ(m->info().vocab_size, vocab);
  EXPECT_EQ(m->info().architecture, arch);
}

TEST(GgufForLlamaCpp, Mamba1WithoutTokenizerWritesTheNoVocabularyForm) {
  const Mamba1Weights w = random_mamba1(testing_helpers::small_mamba1_config(40), 7);
  const std::string path = temp_path("m1-novocab.gguf");
  write_mamba1_gguf(w, ggml_type::F32, "m1", std::nullopt, path);
  expect_no_vocab_form(path, "mamba", 40);
  fs::remove(path);
}

TEST(GgufForLlamaCpp, Mamba2WithoutTokenizerWritesTheNoVocabularyForm) {
  Mamba2Config c;
  c.d_model = 64;
  c.n_layer = 1;
  c.vocab_size = 72;
  c.d_state = 16;
  c.head_dim = 32;
  const Mamba2Weights w = random_mamba2(c, 8);
  const std::string path = temp_path("m2-novocab.gguf");
  write_mamba2_gguf(w, ggml_type::Q8_0, "m2", std::nullopt, path);
  expect_no_vocab_form(path, "mamba2", 72);
  fs::remove(path);
}

TEST(GgufForLlamaCpp, ByteTokenizerStaysGpt2WithoutTheNoVocabularyKeys) {
  const Checkpoint ckpt = Checkpoint::open(kTinyShakespeare);
  const std::string path = temp_path("tiny-vocab.gguf");
  write_mamba1_gguf(load_mamba1(ckpt), ggml_type::F32, "tiny", gguf_vocab_for_model(kTinyShakespeare, ckpt.config(), 256),
                    path);
  const auto f = GgufFile::open(path);
  EXPECT_EQ(f->get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_FALSE(f->has("mamba.vocab_size"));  // the token list gives llama.cpp the count
  fs::remove(path);
}

// A quantized file's matrices that the device does not keep as blocks (Mamba-1's x_proj where
// the conv + x_proj shader reads it as floats, while the texel work split of CPU drivers runs it
// as a matvec that keeps the file's blocks; Q5_0 or other fallback types) are dequantized, and
// those values (d·q) are mostly not fp16 values. Under --weights auto they stay fp32, so the
// Vulkan backend computes with the very weights the cpu backends use. Stored as fp16 they moved
// this trained model's logits by up to 3e-4 of the row's largest (Q8_0) and 8e-4 (Q4_K_M-style
// Q5_0 / Q4_K x_proj): the --weights f16 comparison below shows the check sees that.
TEST(GgufForLlamaCpp, QuantizedFileComputesTheSameOnVulkanAndTheReference) {
  const std::string path = temp_path("tiny-q8.gguf");
  write_mamba1_gguf(load_mamba1(Checkpoint::open(kTinyShakespeare)), ggml_type::Q8_0, "tiny", std::nullopt, path);
  const auto f = GgufFile::open(path);
  EXPECT_EQ(ggml_type_name(f->find_tensor("blk.0.ssm_x.weight")->type), "Q8_0");
  EXPECT_EQ(ggml_type_name(f->find_tensor("blk.0.ssm_in.weight")->type), "Q8_0");
  EXPECT_EQ(Checkpoint::open(path).main_dtype(), DType::F32);  // d·q values are not all fp16 values

  const std::unique_ptr<Model> vk = load_model(path, options_for(BackendKind::Vulkan));
  // The uploader's names ("layer 0 x_proj" or "layer 0 x_proj weight", as `vkssm info` maps them).
  const auto storage_of = [&](const std::string& what) {
    for (const TensorStorage& t : vk->info().tensors)
      if (t.name == what || t.name == what + " weight") return t.type;
    return std::string("missing");
  };
  const auto* step_model = dynamic_cast<const VulkanStepModel*>(vk.get());
  ASSERT_NE(step_model, nullptr);
  EXPECT_EQ(storage_of("layer 0 x_proj"), step_model->tuning().texel ? "q8_0" : "f32");  // texel: its matvec
  EXPECT_EQ(storage_of("layer 0 in_proj"), "q8_0");  // the file's own blocks

  std::vector<int32_t> text;
  for (const char c : std::string("ROMEO:\nWhat light through yonder window breaks?\n")) text.push_back(uint8_t(c));
  const std::vector<float> ref = sequence_logits(*load_model(path, options_for(BackendKind::Reference)), text);
  const std::vector<float> gpu = sequence_logits(*vk, text);
  EXPECT_LE(worst_row_error(gpu, ref, 256), 2e-5);
  const std::vector<float> half =
      sequence_logits(*load_model(path, options_for(BackendKind::Vulkan, WeightStorage::F16)), text);
  EXPECT_GT(worst_row_error(half, ref, 256), 5e-5);
  fs::remove(path);
}

}  // namespace
}  // namespace vkssm

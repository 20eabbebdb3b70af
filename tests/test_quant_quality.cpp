// The quality measurements of bench/quant_quality.h (KL, cross-entropy, windows) and the GGUF
// files `vkssm quantize` writes (host/gguf_writer.h, models/mamba1/mamba1_gguf.h): the file read
// back computes exactly what the original computes with the same blocks.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "bench/quant_quality.h"
#include "engine/vkssm.hpp"
#include "host/checkpoint.h"
#include "host/dtype.h"
#include "host/gguf.h"
#include "host/gguf_vocab.h"
#include "host/gguf_writer.h"
#include "host/quant.h"
#include "host/tokenizer.h"
#include "models/mamba1/mamba1_gguf.h"
#include "models/mamba1/mamba1_model.h"
#include "models/mamba2/mamba2_gguf.h"
#include "tests/gguf_writer.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

namespace fs = std::filesystem;
using namespace testing_helpers;

const std::string kTinyShakespeare = std::string(VKSSM_SOURCE_DIR) + "/models/mamba1/tiny-shakespeare";

std::string temp_path(const std::string& name) {
  return (fs::path(testing::TempDir()) / ("vkssm_qq_" + std::to_string(::getpid()) + "_" + name)).string();
}

LoadOptions cpu_with(WeightStorage w, int streams = 1, BackendKind backend = BackendKind::Reference) {
  LoadOptions o;
  o.backend = backend;
  o.weights = w;
  o.max_streams = streams;
  return o;
}

std::vector<int32_t> fixed_tokens(int n, int64_t vocab) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back(int32_t((int64_t(i) * 7919 + 12345) % vocab));
  return t;
}

// ---- bench/quant_quality.h ----

TEST(QuantQuality, MeanKlMatchesTheClosedForm) {
  // p uniform over two tokens, q = (1/4, 3/4): KL = ½ ln 2 + ½ ln(2/3) = ½ ln(4/3), at both positions.
  const std::vector<float> p = {0, 0, 5, 5}, q = {0, float(std::log(3.0)), 1, 1 + float(std::log(3.0))};
  EXPECT_NEAR(mean_kl(p, q, 2), 0.5 * std::log(4.0 / 3.0), 1e-7);
  EXPECT_EQ(mean_kl(p, p, 2), 0.0);
  EXPECT_EQ(error_of([&] { mean_kl(p, {0, 0}, 2); }),
            "mean_kl: logits of 4 and 2 values are not the same rows of 2");
}

TEST(QuantQuality, KlGrowsAsTheBlocksGetCoarser) {
  Mamba1Config c = small_mamba1_config(256);
  c.d_model = 64;  // rows of 64: whole Q8_0 / Q4_0 blocks, so in_proj and the embedding are quantized
  c.d_inner = 128;
  const Mamba1Weights w = random_mamba1(c, 11);
  const std::vector<int32_t> seq = fixed_tokens(12, c.vocab_size);
  const std::vector<float> f32 = sequence_logits(*create_mamba1(w, cpu_with(WeightStorage::F32)), seq);
  const std::vector<float> f32_again = sequence_logits(*create_mamba1(w, cpu_with(WeightStorage::F32)), seq);
  EXPECT_EQ(mean_kl(f32, f32_again, c.vocab_size), 0.0);  // same weights, same sums: exactly zero
  const double kl8 = mean_kl(f32, sequence_logits(*create_mamba1(w, cpu_with(WeightStorage::Q8_0)), seq), c.vocab_size);
  const double kl4 = mean_kl(f32, sequence_logits(*create_mamba1(w, cpu_with(WeightStorage::Q4_0)), seq), c.vocab_size);
  EXPECT_GT(kl8, 0.0);
  EXPECT_LT(kl8, 1e-4);
  EXPECT_GT(kl4, 10 * kl8);
}

TEST(QuantQuality, EvenWindowsSpanTheText) {
  std::vector<int32_t> text(20);
  for (int i = 0; i < 20; ++i) text[size_t(i)] = i;
  const auto w = even_windows(text, 3, 4);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0], (std::vector<int32_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(w[1], (std::vector<int32_t>{7, 8, 9, 10, 11}));  // start 15 * 1 / 2
  EXPECT_EQ(w[2], (std::vector<int32_t>{15, 16, 17, 18, 19}));
  EXPECT_EQ(error_of([&] { even_windows(text, 2, 20); }), "text of 20 tokens is shorter than one window of 21");
}

TEST(QuantQuality, BatchedCrossEntropyEqualsEachWindowAlone) {
  // Bytes of Shakespeare-like text (tiny-shakespeare is byte-level: id = byte).
  const std::string text = "ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east.";
  const std::vector<int32_t> ids(text.begin(), text.end());
  const auto windows = even_windows(ids, 3, 24);
  LoadOptions o = cpu_with(WeightStorage::F32, 3);
  const std::unique_ptr<Model> m = load_model(kTinyShakespeare, o);
  const double ce = mean_cross_entropy(*m, windows);
  double alone = 0;
  for (const auto& win : windows) {
    const std::vector<int32_t> in(win.begin(), win.end() - 1);
    const std::vector<float> logits = sequence_logits(*m, in);
    for (size_t t = 0; t + 1 < win.size(); ++t) {
      const float* row = logits.data() + t * 256;
      double mx = row[0], sum = 0;
      for (int i = 0; i < 256; ++i) mx = std::max(mx, double(row[i]));
      for (int i = 0; i < 256; ++i) sum += std::exp(double(row[i]) - mx);
      alone += mx + std::log(sum) - double(row[win[t + 1]]);
    }
  }
  alone /= double(3 * 24);
  EXPECT_NEAR(ce, alone, 1e-9);
  EXPECT_LT(ce, 2.5);  // a trained model: far below uniform's ln 256 = 5.55 nats
}

// ---- vkssm quantize ----

// `w` with every tensor as the GGUF stores and vkssm reads it back: each matrix through the
// file's type for `target`, A_log through A = -exp(A_log) and back.
Mamba1Weights as_stored(Mamba1Weights w, uint32_t target) {
  const auto through = [&](std::vector<float>& v, const std::string& name, const std::vector<int64_t>& shape) {
    const uint32_t type = gguf_export_type(target, name, shape);
    const std::vector<uint8_t> bytes = encode_tensor(type, v, shape.back(), name);
    if (type == ggml_type::F16)
      for (size_t i = 0; i < v.size(); ++i) v[i] = half_to_float(uint16_t(bytes[2 * i] | bytes[2 * i + 1] << 8));
    else if (type != ggml_type::F32)
      dequantize_row(QuantType(type), bytes.data(), v.data(), v.size());
  };
  const Mamba1Config& c = w.cfg;
  through(w.embeddings, "token_embd.weight", {c.vocab_size, c.d_model});
  for (Mamba1LayerWeights& L : w.layers) {
    through(L.in_proj, "blk.0.ssm_in.weight", {2 * c.d_inner, c.d_model});
    through(L.x_proj, "blk.0.ssm_x.weight", {c.dt_rank + 2 * c.d_state, c.d_inner});
    through(L.dt_proj_w, "blk.0.ssm_dt.weight", {c.d_inner, c.dt_rank});
    through(L.out_proj, "blk.0.ssm_out.weight", {c.d_model, c.d_inner});
    for (float& a : L.A_log) a = float(std::log(-double(-std::exp(a))));
  }
  return w;
}

// The GGUF of `w` loaded with --weights `storage` gives the logits of the original under the
// same storage, once the original holds what the file holds.
void expect_same_logits(const Mamba1Weights& w, uint32_t target, WeightStorage storage, const std::string& file,
                        BackendKind backend = BackendKind::Reference) {
  write_mamba1_gguf(w, target, "test", std::nullopt, file);
  const std::vector<int32_t> seq = fixed_tokens(10, w.cfg.vocab_size);
  const std::vector<float> from_file = sequence_logits(*load_model(file, cpu_with(storage, 1, backend)), seq);
  const std::vector<float> original = sequence_logits(*create_mamba1(as_stored(w, target), cpu_with(storage, 1, backend)), seq);
  // Without the file's rounding of dt_proj and A (and x_proj, where the storage rounds it
  // otherwise) the logits move, while with it they are the same to the bit: the match is no accident.
  const std::vector<float> unrounded = sequence_logits(*create_mamba1(w, cpu_with(storage, 1, backend)), seq);
  ASSERT_EQ(from_file.size(), original.size());
  double worst = 0, moved = 0;
  for (size_t i = 0; i < original.size(); ++i) {
    worst = std::max(worst, double(std::abs(from_file[i] - original[i])));
    moved = std::max(moved, double(std::abs(from_file[i] - unrounded[i])));
  }
  EXPECT_EQ(worst, 0.0) << ggml_type_name(target);
  EXPECT_GT(moved, 0.0) << ggml_type_name(target);
  fs::remove(file);
}

TEST(Quantize, TinyShakespeareFileComputesWhatTheOriginalDoes) {
  const Mamba1Weights w = load_mamba1(Checkpoint::open(kTinyShakespeare));
  expect_same_logits(w, ggml_type::Q8_0, WeightStorage::Q8_0, temp_path("q8.gguf"));
  expect_same_logits(w, ggml_type::Q4_0, WeightStorage::Q4_0, temp_path("q4.gguf"));
}

TEST(Quantize, OnVulkanTheFileComputesWhatTheOriginalDoes) {
  const Mamba1Weights w = load_mamba1(Checkpoint::open(kTinyShakespeare));
  expect_same_logits(w, ggml_type::Q8_0, WeightStorage::Q8_0, temp_path("vk-q8.gguf"), BackendKind::Vulkan);
}

TEST(Quantize, Q4KFileComputesWhatTheOriginalDoes) {
  // Rows of 256 (D) and 512 (E): whole Q4_K super-blocks, which llama.cpp and vkssm's --weights
  // q4_k keep alike (their fallbacks for other rows differ: Q5_0 in the file, Q8_0 on load).
  Mamba1Config c = small_mamba1_config(64);
  c.d_model = 256;
  c.d_inner = 512;
  c.dt_rank = 16;
  expect_same_logits(random_mamba1(c, 3), ggml_type::Q4_K, WeightStorage::Q4_K, temp_path("q4k.gguf"));
}

TEST(Quantize, Mamba2FileComputesWhatTheOriginalDoes) {
  Mamba2Config c;
  c.d_model = 64;
  c.n_layer = 2;
  c.vocab_size = 96;
  c.d_state = 16;
  c.d_inner = 128;
  c.n_heads = 4;
  c.head_dim = 32;
  c.n_groups = 2;
  c.tie_embeddings = false;
  c.use_bias = true;
  const Mamba2Weights w = random_mamba2(c, 5);
  const std::string file = temp_path("m2.gguf");
  write_mamba2_gguf(w, ggml_type::Q8_0, "m2", std::nullopt, file);
  const auto f = GgufFile::open(file);
  EXPECT_EQ(f->get_string("general.architecture"), "mamba2");
  EXPECT_EQ(f->get_int("mamba2.ssm.group_count"), 2);
  EXPECT_EQ(f->get_int("mamba2.ssm.time_step_rank"), 4);  // the head count
  EXPECT_EQ(ggml_type_name(f->find_tensor("blk.1.ssm_in.weight")->type), "Q8_0");
  EXPECT_EQ(ggml_type_name(f->find_tensor("blk.1.ssm_norm.weight")->type), "F32");
  EXPECT_EQ(f->find_tensor("blk.1.ssm_norm.weight")->shape(), (std::vector<int64_t>{2, 64}));
  EXPECT_EQ(f->find_tensor("blk.1.ssm_a")->shape(), (std::vector<int64_t>{4, 1}));
  EXPECT_EQ(ggml_type_name(f->find_tensor("output.weight")->type), "Q8_0");

  // Every matrix's rows are whole Q8_0 blocks, so the file holds exactly what --weights q8_0
  // computes with; only A_log passes through A = -exp(A_log) and back.
  Mamba2Weights stored = w;
  for (Mamba2LayerWeights& L : stored.layers)
    for (float& a : L.A_log) a = float(std::log(-double(-std::exp(a))));
  const std::vector<int32_t> seq = fixed_tokens(10, c.vocab_size);
  const std::vector<float> from_file = sequence_logits(*load_model(file, cpu_with(WeightStorage::Q8_0)), seq);
  const std::vector<float> original = sequence_logits(*create_mamba2(stored, cpu_with(WeightStorage::Q8_0)), seq);
  ASSERT_EQ(from_file.size(), original.size());
  for (size_t i = 0; i < original.size(); ++i) ASSERT_NEAR(from_file[i], original[i], 1e-6) << i;
  fs::remove(file);
}

TEST(Quantize, WritesTheConvertersNamesTypesAndMetadata) {
  const Checkpoint ckpt = Checkpoint::open(kTinyShakespeare);
  const Mamba1Weights w = load_mamba1(ckpt);
  const std::string path = temp_path("meta.gguf");
  write_mamba1_gguf(w, ggml_type::Q4_0, "tiny-shakespeare", gguf_vocab_for_model(kTinyShakespeare, ckpt.config(), 256),
                    path);
  const auto f = GgufFile::open(path);
  EXPECT_EQ(f->get_string("general.architecture"), "mamba");
  EXPECT_EQ(f->get_string("general.name"), "tiny-shakespeare");
  EXPECT_EQ(f->get_int("general.file_type"), 2);  // MOSTLY_Q4_0
  EXPECT_EQ(f->get_int("general.quantization_version"), 2);
  EXPECT_EQ(f->get_int("mamba.context_length"), 1 << 20);
  EXPECT_EQ(f->get_int("mamba.embedding_length"), 128);
  EXPECT_EQ(f->get_int("mamba.block_count"), 4);
  EXPECT_EQ(f->get_int("mamba.ssm.conv_kernel"), 4);
  EXPECT_EQ(f->get_int("mamba.ssm.inner_size"), 256);
  EXPECT_EQ(f->get_int("mamba.ssm.state_size"), 16);
  EXPECT_EQ(f->get_int("mamba.ssm.time_step_rank"), 8);
  EXPECT_FLOAT_EQ(float(f->get_float("mamba.attention.layer_norm_rms_epsilon")), 1e-5f);
  EXPECT_FALSE(f->get_bool("mamba.ssm.dt_b_c_rms"));
  EXPECT_EQ(f->get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f->get_string("tokenizer.ggml.pre"), "gpt-2");
  const std::vector<std::string>& tokens = f->get_string_array("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 256u);
  EXPECT_EQ(tokens['A'], "A");
  EXPECT_EQ(tokens[' '], "\xC4\xA0");   // GPT-2's byte-level spelling of a space, U+0120
  EXPECT_EQ(tokens['\n'], "\xC4\x8A");  // and of a newline, U+010A
  EXPECT_TRUE(f->get_string_array("tokenizer.ggml.merges").empty());

  const auto type_of = [&](const std::string& name) {
    const GgufTensor* t = f->find_tensor(name);
    return t ? ggml_type_name(t->type) : std::string("missing");
  };
  EXPECT_EQ(type_of("token_embd.weight"), "Q4_0");
  EXPECT_EQ(type_of("blk.0.attn_norm.weight"), "F32");
  EXPECT_EQ(type_of("blk.0.ssm_in.weight"), "Q4_0");
  EXPECT_EQ(type_of("blk.0.ssm_conv1d.weight"), "F32");
  EXPECT_EQ(type_of("blk.0.ssm_conv1d.bias"), "F32");
  EXPECT_EQ(type_of("blk.0.ssm_x.weight"), "Q4_0");
  EXPECT_EQ(type_of("blk.0.ssm_dt.weight"), "F16");  // rows of dt_rank 8: no whole block
  EXPECT_EQ(type_of("blk.0.ssm_dt.bias"), "F32");
  EXPECT_EQ(type_of("blk.0.ssm_a"), "F32");
  EXPECT_EQ(type_of("blk.0.ssm_d"), "F32");
  EXPECT_EQ(type_of("blk.3.ssm_out.weight"), "Q4_0");
  EXPECT_EQ(type_of("output_norm.weight"), "F32");
  EXPECT_EQ(type_of("output.weight"), "missing");  // tied: llama.cpp reuses token_embd
  EXPECT_EQ(f->tensors().size(), 1u + 4u * 10u + 1u);
  EXPECT_EQ(f->find_tensor("blk.0.ssm_conv1d.weight")->shape(), (std::vector<int64_t>{256, 4}));
  EXPECT_EQ(f->find_tensor("blk.0.ssm_a")->shape(), (std::vector<int64_t>{256, 16}));
  const std::vector<float> a = f->to_f32(*f->find_tensor("blk.0.ssm_a"));
  EXPECT_EQ(a[0], -std::exp(w.layers[0].A_log[0]));  // A itself, as the converter stores it

  // The tokenizer reads back as the byte tokenizer it came from.
  const std::unique_ptr<Tokenizer> tok = load_tokenizer_for_path(path);
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->encode("ROMEO:\n thee"), (std::vector<int32_t>{'R', 'O', 'M', 'E', 'O', ':', '\n', ' ', 't', 'h', 'e', 'e'}));
  fs::remove(path);
}

// The same keys (in the same order, with the same value types and values) and the same tensors
// (names, shapes, types) as tests/gguf_writer.h's emulation of convert_hf_to_gguf.py --outtype q8_0,
// for Mamba-1 and Falcon-Mamba.
TEST(Quantize, MatchesTheConverterEmulation) {
  for (const bool falcon : {false, true}) {
    Mamba1Config c = small_mamba1_config(64);
    c.d_model = 64;
    c.d_inner = 128;
    c.dt_b_c_rms = falcon;
    const Mamba1Weights w = random_mamba1(c, 9);
    const std::string ours = temp_path("ours.gguf"), theirs = temp_path("theirs.gguf");
    write_mamba1_gguf(w, ggml_type::Q8_0, "vkssm test model", std::nullopt, ours);
    gguf_test::ConvertedModel m = gguf_test::convert_mamba1(w, gguf_test::OutType::Q8_0);
    // Without a tokenizer the converter stores its built-in GPT-NeoX vocabulary, which vkssm
    // cannot know is right; vkssm writes llama.cpp's no-vocabulary form (_set_vocab_none) instead.
    m.gguf.set_string("tokenizer.ggml.model", "none");
    m.gguf.set_u32("mamba.vocab_size", 64);
    gguf_test::write_bytes(theirs, m.gguf.bytes());
    const auto a = GgufFile::open(ours), b = GgufFile::open(theirs);
    ASSERT_EQ(a->metadata().size(), b->metadata().size());
    for (size_t i = 0; i < a->metadata().size(); ++i) {
      const auto& [key, va] = a->metadata()[i];
      const auto& [key_b, vb] = b->metadata()[i];
      EXPECT_EQ(key, key_b);
      EXPECT_EQ(va.type, vb.type) << key;
      EXPECT_EQ(va.u, vb.u) << key;
      EXPECT_EQ(va.f, vb.f) << key;
      EXPECT_EQ(va.str, vb.str) << key;
    }
    ASSERT_EQ(a->tensors().size(), b->tensors().size());
    for (size_t i = 0; i < a->tensors().size(); ++i) {
      EXPECT_EQ(a->tensors()[i].name, b->tensors()[i].name);
      EXPECT_EQ(a->tensors()[i].ne, b->tensors()[i].ne) << a->tensors()[i].name;
      EXPECT_EQ(a->tensors()[i].type, b->tensors()[i].type) << a->tensors()[i].name;
    }
    fs::remove(ours);
    fs::remove(theirs);
  }
}

TEST(Quantize, TypeChoiceFollowsLlamaCpp) {
  EXPECT_EQ(gguf_export_type(ggml_type::Q4_K, "blk.0.ssm_in.weight", {1536, 768}), ggml_type::Q4_K);
  EXPECT_EQ(gguf_export_type(ggml_type::Q4_K, "blk.0.ssm_in.weight", {256, 128}), ggml_type::Q5_0);
  EXPECT_EQ(gguf_export_type(ggml_type::Q6_K, "blk.0.ssm_in.weight", {256, 128}), ggml_type::Q8_0);
  EXPECT_EQ(gguf_export_type(ggml_type::Q4_K, "blk.0.ssm_dt.weight", {1536, 48}), ggml_type::F16);
  EXPECT_EQ(gguf_export_type(ggml_type::Q8_0, "blk.0.ssm_dt.weight", {1536, 48}), ggml_type::F16);
  EXPECT_EQ(gguf_export_type(ggml_type::Q8_0, "blk.0.ssm_conv1d.weight", {1536, 4}), ggml_type::F32);
  EXPECT_EQ(gguf_export_type(ggml_type::Q8_0, "blk.0.ssm_a", {1536, 16}), ggml_type::F32);
  EXPECT_EQ(gguf_export_type(ggml_type::F16, "token_embd.weight", {50280, 768}), ggml_type::F16);
  EXPECT_EQ(error_of([] { encode_tensor(ggml_type::Q8_0, std::vector<float>(48), 48, "tensor x"); }),
            "tensor x: rows of 48 values are not whole Q8_0 blocks of 32");
}

TEST(Quantize, CommandWritesAFileVkssmLoads) {
  const std::string cli = (fs::read_symlink("/proc/self/exe").parent_path() / "vkssm").string();
  const std::string out = temp_path("cli.gguf"), log = temp_path("cli.log");
  const std::string cmd = "'" + cli + "' quantize --model '" + kTinyShakespeare + "' --type q8_0 --out '" + out +
                          "' >'" + log + "' 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_EQ(GgufFile::open(out)->get_int("general.file_type"), 7);  // MOSTLY_Q8_0
  EXPECT_EQ(load_model(out, cpu_with(WeightStorage::Q8_0))->info().vocab_size, 256);
  // A GGUF source: re-quantized, its tokenizer copied.
  const std::string again = temp_path("cli-q4.gguf");
  const std::string requant = "'" + cli + "' quantize --model '" + out + "' --type q4_0 --out '" + again + "' >'" + log +
                              "' 2>&1";
  ASSERT_EQ(std::system(requant.c_str()), 0);
  const auto f = GgufFile::open(again);
  EXPECT_EQ(f->get_int("general.file_type"), 2);
  EXPECT_EQ(f->get_string_array("tokenizer.ggml.tokens"), GgufFile::open(out)->get_string_array("tokenizer.ggml.tokens"));
  fs::remove(again);
  const std::string bad = "'" + cli + "' quantize --model '" + kTinyShakespeare + "' --type q9 --out '" + out +
                          "' >'" + log + "' 2>&1";
  EXPECT_EQ(WEXITSTATUS(std::system(bad.c_str())), 2);
  std::ifstream in(log);
  const std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(err.find("--type 'q9' is not one of f32, f16, q4_0"), std::string::npos) << err;
  fs::remove(out);
  fs::remove(log);
}

}  // namespace
}  // namespace vkssm

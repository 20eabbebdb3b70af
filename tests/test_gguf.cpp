// llama.cpp GGUF files: the reader (dequantisation against hand-computed values, typed metadata,
// the exact message for each kind of bad file), GGUF checkpoints against safetensors checkpoints
// of the same stored weights (bit-equal logits on the cpu backend and on Vulkan), and the
// tokenizer carried in a GGUF's metadata against the tokenizer.json it came from.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/vkssm.hpp"
#include "host/checkpoint.h"
#include "host/gguf.h"
#include "host/quant.h"
#include "host/tokenizer.h"
#include "models/mamba1/mamba1_model.h"
#include "models/mamba2/mamba2_model.h"
#include "tests/gguf_writer.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

namespace fs = std::filesystem;
using namespace gguf_test;
using testing_helpers::error_of;

class GgufTest : public testing::Test {
 public:
  void SetUp() override {
    dir_ = fs::path(testing::TempDir()) /
           ("vkssm_gguf_" + std::string(testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

 protected:
  std::string write(const std::string& name, const std::vector<uint8_t>& bytes) const {
    write_bytes(path(name), bytes);
    return path(name);
  }
  std::string write(const std::string& name, GgufBuilder& b) const { return write(name, b.bytes()); }

  fs::path dir_;
};

// A Mamba-1 shape whose matrices (rows of 32 or 64) take Q8_0, with dt_proj's rows of 2 falling
// back to F16 in a Q8_0 file, as the converter does.
Mamba1Config q8_friendly_mamba1(bool tied) {
  Mamba1Config c;
  c.d_model = 32;
  c.n_layer = 2;
  c.vocab_size = 48;
  c.d_state = 4;
  c.d_conv = 4;
  c.expand = 2;
  c.d_inner = 64;
  c.dt_rank = 2;
  c.tie_embeddings = tied;
  return c;
}

Mamba1Weights gguf_stable(Mamba1Weights w) {
  for (auto& L : w.layers)
    for (float& a : L.A_log) a = gguf_stable_a_log(a);
  return w;
}

std::vector<int32_t> kTokens = {3, 17, 0, 47, 47, 9, 30};

// Logits of every token of kTokens, fed one at a time from a zero state.
std::vector<float> run_tokens(Model& m) {
  const int64_t V = m.info().vocab_size;
  std::vector<float> all(kTokens.size() * size_t(V));
  const int32_t slot = 0;
  for (size_t t = 0; t < kTokens.size(); ++t) m.step(&kTokens[t], &slot, 1, all.data() + t * size_t(V));
  return all;
}

void expect_same_weights(const Mamba1Weights& a, const Mamba1Weights& b) {
  EXPECT_EQ(a.cfg.d_model, b.cfg.d_model);
  EXPECT_EQ(a.cfg.n_layer, b.cfg.n_layer);
  EXPECT_EQ(a.cfg.vocab_size, b.cfg.vocab_size);
  EXPECT_EQ(a.cfg.d_state, b.cfg.d_state);
  EXPECT_EQ(a.cfg.d_conv, b.cfg.d_conv);
  EXPECT_EQ(a.cfg.d_inner, b.cfg.d_inner);
  EXPECT_EQ(a.cfg.dt_rank, b.cfg.dt_rank);
  EXPECT_EQ(a.cfg.norm_eps, b.cfg.norm_eps);
  EXPECT_EQ(a.cfg.tie_embeddings, b.cfg.tie_embeddings);
  EXPECT_EQ(a.cfg.use_bias, b.cfg.use_bias);
  EXPECT_EQ(a.cfg.use_conv_bias, b.cfg.use_conv_bias);
  EXPECT_EQ(a.embeddings, b.embeddings);
  EXPECT_EQ(a.norm_f, b.norm_f);
  EXPECT_EQ(a.lm_head, b.lm_head);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    SCOPED_TRACE("layer " + std::to_string(i));
    const auto &x = a.layers[i], &y = b.layers[i];
    EXPECT_EQ(x.norm, y.norm);
    EXPECT_EQ(x.in_proj, y.in_proj);
    EXPECT_EQ(x.in_proj_b, y.in_proj_b);
    EXPECT_EQ(x.conv_w, y.conv_w);
    EXPECT_EQ(x.conv_b, y.conv_b);
    EXPECT_EQ(x.x_proj, y.x_proj);
    EXPECT_EQ(x.dt_proj_w, y.dt_proj_w);
    EXPECT_EQ(x.dt_proj_b, y.dt_proj_b);
    EXPECT_EQ(x.A_log, y.A_log);
    EXPECT_EQ(x.D, y.D);
    EXPECT_EQ(x.out_proj, y.out_proj);
    EXPECT_EQ(x.out_proj_b, y.out_proj_b);
  }
}

// ---------------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------------

// One tensor of the given type and raw bytes in an otherwise empty file.
GgufBuilder one_tensor(uint32_t type, int64_t n, std::vector<uint8_t> data) {
  GgufBuilder b;
  b.set_string("general.architecture", "test");
  b.add_tensor("t", {n}, type, std::move(data));
  return b;
}

TEST_F(GgufTest, DequantisesQ8_0BlocksAsHandComputed) {
  // Block 0: d = 0.5 (fp16 0x3800), q = -127, -1, 0, 1, ..., 29 (j - 2 for j >= 1).
  // Block 1: d = -2 (fp16 0xC000), q = 3 everywhere but q[31] = 127.
  std::vector<uint8_t> data = {0x00, 0x38};
  for (int j = 0; j < 32; ++j) data.push_back(uint8_t(int8_t(j == 0 ? -127 : j - 2)));
  data.insert(data.end(), {0x00, 0xC0});
  for (int j = 0; j < 32; ++j) data.push_back(uint8_t(int8_t(j == 31 ? 127 : 3)));
  GgufBuilder b = one_tensor(ggml_type::Q8_0, 64, data);
  auto f = GgufFile::open(write("q8.gguf", b));
  const std::vector<float> v = f->to_f32(f->tensors()[0]);
  ASSERT_EQ(v.size(), 64u);
  EXPECT_EQ(v[0], -63.5f);
  EXPECT_EQ(v[1], -0.5f);
  EXPECT_EQ(v[2], 0.0f);
  EXPECT_EQ(v[3], 0.5f);
  EXPECT_EQ(v[31], 14.5f);
  EXPECT_EQ(v[32], -6.0f);
  EXPECT_EQ(v[62], -6.0f);
  EXPECT_EQ(v[63], -254.0f);
}

TEST_F(GgufTest, DequantisesQ4_0BlocksAsHandComputed) {
  // d = 0.25 (fp16 0x3400); byte j holds element j in its low nibble, element j + 16 in its high.
  // Low nibbles 0..15 -> (q - 8) * 0.25 = -2, -1.75, ..., 1.75; high nibbles 15 - j.
  std::vector<uint8_t> data = {0x00, 0x34};
  for (int j = 0; j < 16; ++j) data.push_back(uint8_t(j | ((15 - j) << 4)));
  GgufBuilder b = one_tensor(ggml_type::Q4_0, 32, data);
  auto f = GgufFile::open(write("q4.gguf", b));
  const std::vector<float> v = f->to_f32(f->tensors()[0]);
  ASSERT_EQ(v.size(), 32u);
  EXPECT_EQ(v[0], -2.0f);
  EXPECT_EQ(v[1], -1.75f);
  EXPECT_EQ(v[8], 0.0f);
  EXPECT_EQ(v[15], 1.75f);
  EXPECT_EQ(v[16], 1.75f);  // high nibble of byte 0: 15
  EXPECT_EQ(v[23], 0.0f);   // byte 7: 8
  EXPECT_EQ(v[31], -2.0f);  // byte 15: 0
}

TEST_F(GgufTest, DequantisesQ4_1Q5_0Q5_1AsHandComputed) {
  {  // Q4_1: d = 0.5, m = -1 (0xBC00); nibbles as Q4_0: value = q * 0.5 - 1.
    std::vector<uint8_t> data = {0x00, 0x38, 0x00, 0xBC};
    for (int j = 0; j < 16; ++j) data.push_back(uint8_t(j | ((15 - j) << 4)));
    GgufBuilder b = one_tensor(ggml_type::Q4_1, 32, data);
    auto f = GgufFile::open(write("q41.gguf", b));
    const std::vector<float> v = f->to_f32(f->tensors()[0]);
    EXPECT_EQ(v[0], -1.0f);
    EXPECT_EQ(v[3], 0.5f);
    EXPECT_EQ(v[16], 6.5f);
    EXPECT_EQ(v[31], -1.0f);
  }
  {  // Q5_0: d = 1; fifth bits qh: bit j for element j. Value = q - 16.
    std::vector<uint8_t> data = {0x00, 0x3C};
    put(data, 0x80000001u, 4);  // element 0 and element 31 get the fifth bit
    for (int j = 0; j < 16; ++j) data.push_back(uint8_t(0x0F | (0x02 << 4)));
    GgufBuilder b = one_tensor(ggml_type::Q5_0, 32, data);
    auto f = GgufFile::open(write("q50.gguf", b));
    const std::vector<float> v = f->to_f32(f->tensors()[0]);
    EXPECT_EQ(v[0], 15.0f);   // 0x1F - 16
    EXPECT_EQ(v[1], -1.0f);   // 0x0F - 16
    EXPECT_EQ(v[16], -14.0f); // 0x02 - 16
    EXPECT_EQ(v[31], 2.0f);   // 0x12 - 16
  }
  {  // Q5_1: d = 2, m = 0.5 (0x3800); value = q * 2 + 0.5.
    std::vector<uint8_t> data = {0x00, 0x40, 0x00, 0x38};
    put(data, 0x00010000u, 4);  // element 16's fifth bit
    for (int j = 0; j < 16; ++j) data.push_back(uint8_t(0x01 | (0x03 << 4)));
    GgufBuilder b = one_tensor(ggml_type::Q5_1, 32, data);
    auto f = GgufFile::open(write("q51.gguf", b));
    const std::vector<float> v = f->to_f32(f->tensors()[0]);
    EXPECT_EQ(v[0], 2.5f);
    EXPECT_EQ(v[16], 38.5f);  // 0x13 = 19
    EXPECT_EQ(v[17], 6.5f);
  }
}

TEST_F(GgufTest, ReadsF32F16Bf16AndNamesAnUnreadableType) {
  GgufBuilder b;
  b.set_string("general.architecture", "test");
  std::vector<uint8_t> f32, f16, bf16;
  put_f32(f32, 1.5f);
  put_f32(f32, -3.0f);
  put(f16, 0x3E00, 2);  // 1.5
  put(f16, 0xC200, 2);  // -3
  put(bf16, 0x3FC0, 2);  // 1.5
  put(bf16, 0xC040, 2);  // -3
  b.add_tensor("a", {2}, ggml_type::F32, f32);
  b.add_tensor("b", {2}, ggml_type::F16, f16);
  b.add_tensor("c", {2}, ggml_type::BF16, bf16);
  b.add_tensor("k", {256}, 16, std::vector<uint8_t>(66, 0));  // IQ2_XXS: a valid block
  const std::string p = write("types.gguf", b);
  auto f = GgufFile::open(p);
  for (const char* name : {"a", "b", "c"}) EXPECT_EQ(f->to_f32(*f->find_tensor(name)), (std::vector<float>{1.5f, -3.0f}));
  EXPECT_EQ(f->find_tensor("k")->nbytes, 66u);
  EXPECT_EQ(error_of([&] { f->to_f32(*f->find_tensor("k")); }),
            "tensor 'k' in GGUF file " + p +
                " has ggml type IQ2_XXS, which vkssm cannot read (it reads F32, F16, BF16, Q4_0, Q4_1, Q5_0, "
                "Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL)");
}

TEST_F(GgufTest, TypedMetadataAccessNamesKeyAndFile) {
  GgufBuilder b;
  b.set_string("s", "text");
  b.set_u32("u", 7);
  b.set_f32("f", 0.5f);
  b.set_bool("b", true);
  b.set_string_array("sa", {"x", "y"});
  b.set_i32_array("ia", {-1, 2});
  b.version = 2;  // same layout as 3
  const std::string p = write("meta.gguf", b);
  auto f = GgufFile::open(p);
  EXPECT_EQ(f->version(), 2u);
  EXPECT_EQ(f->get_string("s"), "text");
  EXPECT_EQ(f->get_int("u"), 7);
  EXPECT_EQ(f->get_float("f"), 0.5);
  EXPECT_TRUE(f->get_bool("b"));
  EXPECT_EQ(f->get_string_array("sa"), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(f->get_int_array("ia"), (std::vector<int64_t>{-1, 2}));
  EXPECT_EQ(error_of([&] { f->get_int("missing"); }), "GGUF file " + p + " has no metadata key 'missing'");
  EXPECT_EQ(error_of([&] { f->get_int("s"); }),
            "metadata key 's' in GGUF file " + p + " has type STRING, expected an integer");
  EXPECT_EQ(error_of([&] { f->get_string("u"); }),
            "metadata key 'u' in GGUF file " + p + " has type UINT32, expected STRING");
  EXPECT_EQ(error_of([&] { f->get_string_array("ia"); }),
            "metadata key 'ia' in GGUF file " + p + " has type ARRAY of INT32, expected ARRAY of STRING");
}

// ---- bad files, each with its message ----

// A valid Mamba-1 GGUF (F32, tied) to corrupt.
ConvertedModel small_model_gguf() {
  return convert_mamba1(gguf_stable(random_mamba1(testing_helpers::small_mamba1_config(40), 5)), OutType::F32);
}

TEST_F(GgufTest, TruncatedFilesNameWhereTheyEnd) {
  ConvertedModel m = small_model_gguf();
  const std::vector<uint8_t> full = m.gguf.bytes();
  const GgufBuilder::Layout L = m.gguf.layout;
  auto cut = [&](size_t n) { return std::vector<uint8_t>(full.begin(), full.begin() + long(n)); };

  std::string p = write("h.gguf", cut(6));
  EXPECT_EQ(error_of([&] { GgufFile::open(p); }),
            "GGUF file " + p + " is truncated: it ends inside the header (6 bytes; the magic and version alone take 8)");
  p = write("h2.gguf", cut(20));
  EXPECT_EQ(error_of([&] { GgufFile::open(p); }),
            "GGUF file " + p + " is truncated: it ends inside the header (8 more bytes needed at offset 16, 4 left)");
  // Inside the last metadata value (general.quantization_version, a u32): 2 of its 4 bytes.
  const size_t last = m.gguf.kvs.size() - 1;
  ASSERT_EQ(m.gguf.kvs[last].key, "general.quantization_version");
  const size_t value_at = L.kv_offsets[last] + 8 + m.gguf.kvs[last].key.size() + 4;
  p = write("kv.gguf", cut(value_at + 2));
  EXPECT_EQ(error_of([&] { GgufFile::open(p); }),
            "GGUF file " + p + " is truncated: it ends inside metadata entry " + std::to_string(last) + " of " +
                std::to_string(m.gguf.kvs.size()) + " (key 'general.quantization_version') (4 more bytes needed at offset " +
                std::to_string(value_at) + ", 2 left)");
  // Inside the second tensor info, just after its name (token_embd.weight comes first).
  const size_t first_info = 8 + 17 + 4 + 2 * 8 + 4 + 8;
  p = write("ti.gguf", cut(L.tensor_info_start + first_info + 8 + 22 + 2));
  const std::string n_tensors = std::to_string(m.gguf.tensors.size());
  EXPECT_EQ(error_of([&] { GgufFile::open(p); }),
            "GGUF file " + p + " is truncated: it ends inside tensor info 1 of " + n_tensors +
                " ('blk.0.attn_norm.weight') (4 more bytes needed at offset " +
                std::to_string(L.tensor_info_start + first_info + 30) + ", 2 left)");
  // Inside the data: the first tensor (token_embd, 40 x 16 fp32 = 2560 bytes) loses its end.
  p = write("data.gguf", cut(L.data_start + 100));
  EXPECT_EQ(error_of([&] { GgufFile::open(p); }),
            "GGUF file " + p + ": tensor 'token_embd.weight' runs past the end of the file: its 2560 bytes "
                               "start at offset 0 of a data section of 100 bytes");
}

TEST_F(GgufTest, RefusesBadMagicVersionsAndCounts) {
  ConvertedModel m = small_model_gguf();
  std::vector<uint8_t> bytes = m.gguf.bytes();
  bytes[0] = 'g';
  std::string p = write("magic.gguf", bytes);
  EXPECT_EQ(error_of([&] { GgufFile::open(p); }),
            p + " is not a GGUF file: it starts with bytes 0x67 0x47 0x55 0x46, not \"GGUF\"");

  m.gguf.version = 1;
  p = write("v1.gguf", m.gguf);
  EXPECT_EQ(error_of([&] { GgufFile::open(p); }),
            "GGUF file " + p + ": GGUF version 1 is not supported (vkssm reads versions 2 and 3)");
  m.gguf.version = 0x03000000;
  p = write("be.gguf", m.gguf);
  EXPECT_EQ(error_of([&] { GgufFile::open(p); }),
            "GGUF file " + p + ": big-endian GGUF (version field 0x03000000); vkssm reads little-endian files only");
  m.gguf.version = 3;

  // A header claiming 2^40 metadata entries and nothing after it: no huge allocation, just the end.
  bytes = m.gguf.bytes();
  bytes.resize(24);
  for (int i = 16; i < 24; ++i) bytes[size_t(i)] = i == 21 ? 0x01 : 0x00;
  p = write("count.gguf", bytes);
  EXPECT_EQ(error_of([&] { GgufFile::open(p); }),
            "GGUF file " + p + " is truncated: it ends inside metadata entry 0 of 1099511627776 (8 more bytes "
                               "needed at offset 24, 0 left)");
  // An array claiming 2^62 UINT32 elements: 2^64 bytes, past what a u64 holds.
  m.gguf.set("huge", kArray, {});
  put(m.gguf.find("huge")->payload, kUint32, 4);
  put(m.gguf.find("huge")->payload, uint64_t(1) << 62, 8);
  p = write("array.gguf", m.gguf);
  EXPECT_THAT(error_of([&] { GgufFile::open(p); }),
              testing::StartsWith("GGUF file " + p + " is truncated: it ends inside metadata entry " +
                                  std::to_string(m.gguf.kvs.size() - 1) + " of " + std::to_string(m.gguf.kvs.size()) +
                                  " (key 'huge') (18446744073709551615 more bytes needed at offset "));
}

TEST_F(GgufTest, RefusesMalformedMetadataAndTensorInfos) {
  auto open_error = [&](ConvertedModel& m, const std::string& name) {
    const std::string p = write(name, m.gguf);
    return std::make_pair(p, error_of([&] { GgufFile::open(p); }));
  };
  {
    ConvertedModel m = small_model_gguf();
    m.gguf.find("mamba.block_count")->type = 13;
    auto [p, e] = open_error(m, "vtype.gguf");
    EXPECT_EQ(e, "GGUF file " + p + ": metadata key 'mamba.block_count' has unknown value type 13");
  }
  {
    ConvertedModel m = small_model_gguf();
    m.gguf.kvs.push_back(m.gguf.kvs[1]);
    auto [p, e] = open_error(m, "dupkey.gguf");
    EXPECT_EQ(e, "GGUF file " + p + ": metadata key 'general.type' appears twice");
  }
  {
    ConvertedModel m = small_model_gguf();
    m.gguf.set_u32("general.alignment", 24);
    auto [p, e] = open_error(m, "align.gguf");
    EXPECT_EQ(e, "GGUF file " + p + ": general.alignment must be a power of two, got 24");
  }
  {
    ConvertedModel m = small_model_gguf();
    m.gguf.tensor("blk.0.ssm_in.weight")->type = 99;
    auto [p, e] = open_error(m, "ttype.gguf");
    EXPECT_EQ(e, "GGUF file " + p + ": tensor 'blk.0.ssm_in.weight' has unknown ggml type 99");
  }
  {
    ConvertedModel m = small_model_gguf();
    m.gguf.tensor("blk.0.ssm_in.weight")->type = ggml_type::Q8_0;  // rows of 16
    auto [p, e] = open_error(m, "block.gguf");
    EXPECT_EQ(e, "GGUF file " + p + ": tensor 'blk.0.ssm_in.weight' has type Q8_0 but its row length 16 "
                                    "is not a multiple of the block size 32");
  }
  {
    ConvertedModel m = small_model_gguf();
    m.gguf.tensor("blk.0.ssm_in.weight")->ne = {16, 64, 1, 1, 1};
    auto [p, e] = open_error(m, "dims.gguf");
    EXPECT_EQ(e, "GGUF file " + p + ": tensor 'blk.0.ssm_in.weight' has 5 dimensions (expected 1 to 4)");
  }
  {
    ConvertedModel m = small_model_gguf();
    m.gguf.tensor("output_norm.weight")->offset = 1u << 20;
    m.gguf.tensor("output_norm.weight")->data.clear();  // the builder writes nothing there
    auto [p, e] = open_error(m, "past.gguf");
    EXPECT_THAT(e, testing::StartsWith("GGUF file " + p + ": tensor 'output_norm.weight' runs past the end of the "
                                       "file: its 64 bytes start at offset 1048576 of a data section of "));
  }
  {
    ConvertedModel m = small_model_gguf();
    m.gguf.tensor("output_norm.weight")->offset = 8;
    auto [p, e] = open_error(m, "misaligned.gguf");
    EXPECT_EQ(e, "GGUF file " + p + ": tensor 'output_norm.weight' has data offset 8, not a multiple of the alignment 32");
  }
  {
    ConvertedModel m = small_model_gguf();
    m.gguf.tensor("output_norm.weight")->offset = 32;  // inside token_embd's bytes
    auto [p, e] = open_error(m, "overlap.gguf");
    EXPECT_EQ(e, "GGUF file " + p + ": tensors 'token_embd.weight' and 'output_norm.weight' overlap (bytes [0, 2560) "
                                    "and [32, 96) of the data section)");
  }
  {
    ConvertedModel m = small_model_gguf();
    m.gguf.tensors.push_back(m.gguf.tensors.back());
    auto [p, e] = open_error(m, "duptensor.gguf");
    EXPECT_EQ(e, "GGUF file " + p + ": tensor 'output_norm.weight' appears twice");
  }
}

TEST_F(GgufTest, CheckpointErrorsNameKeyTensorAndFile) {
  auto load_error = [&](ConvertedModel& m, const std::string& name) {
    const std::string p = write(name, m.gguf);
    LoadOptions opt;
    opt.backend = BackendKind::Reference;
    return std::make_pair(p, error_of([&] { load_model(p, opt); }));
  };
  {
    ConvertedModel m = small_model_gguf();
    m.gguf.set_string("mamba.block_count", "two");
    auto [p, e] = load_error(m, "type.gguf");
    EXPECT_EQ(e, "metadata key 'mamba.block_count' in GGUF file " + p + " has type STRING, expected an integer");
  }
  {
    ConvertedModel m = small_model_gguf();
    m.gguf.remove("mamba.block_count");
    auto [p, e] = load_error(m, "missing.gguf");
    EXPECT_EQ(e, "GGUF file " + p + " has no metadata key 'mamba.block_count'");
  }
  {
    ConvertedModel m = small_model_gguf();
    m.gguf.set_string("general.architecture", "llama");
    auto [p, e] = load_error(m, "llama.gguf");
    EXPECT_EQ(e, "GGUF file " + p + " holds a 'llama' model; vkssm reads the GGUF architectures mamba and mamba2");
  }
  {
    ConvertedModel m = small_model_gguf();
    m.gguf.tensor("blk.1.ssm_in.weight")->ne = {16, 32};  // [32, 16] where [64, 16] belongs
    m.gguf.tensor("blk.1.ssm_in.weight")->data.resize(32 * 16 * 4);
    auto [p, e] = load_error(m, "shape.gguf");
    EXPECT_EQ(e, "tensor backbone.layers.1.mixer.in_proj.weight in " + p +
                     " (GGUF tensor blk.1.ssm_in.weight) has shape [32, 16], expected [64, 16]");
  }
  {
    ConvertedModel m = small_model_gguf();
    m.gguf.add_tensor("blk.0.ssm_dt_norm.weight", {2}, ggml_type::F32, std::vector<uint8_t>(8, 0));
    auto [p, e] = load_error(m, "unknown.gguf");
    EXPECT_EQ(e, "GGUF file " + p + " has tensor blk.0.ssm_dt_norm.weight, which is not part of a mamba model as "
                                    "vkssm reads it");
  }
  {
    ConvertedModel m = small_model_gguf();
    TensorEntry* t = m.gguf.tensor("blk.0.ssm_in.weight");
    t->ne = {256, 4};  // 1024 values, as IQ2_XXS would hold [64, 16] if its rows were 256 long
    t->type = 16;
    t->data.assign(4 * 66, 0);
    auto [p, e] = load_error(m, "iq2xxs.gguf");
    EXPECT_EQ(e, "tensor 'blk.0.ssm_in.weight' in GGUF file " + p +
                     " has ggml type IQ2_XXS, which vkssm cannot read (it reads F32, F16, BF16, Q4_0, Q4_1, "
                     "Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL)");
  }
  {
    ConvertedModel m = small_model_gguf();
    std::vector<uint8_t>& a = m.gguf.tensor("blk.0.ssm_a")->data;
    put_f32(a, 0.0f);  // placeholder: overwrite element 5 with +0.25
    a.resize(a.size() - 4);
    const float bad = 0.25f;
    std::memcpy(a.data() + 5 * 4, &bad, 4);
    auto [p, e] = load_error(m, "a.gguf");
    EXPECT_EQ(e, "tensor blk.0.ssm_a in GGUF file " + p +
                     " holds A = 0.250000 at index 5; A = -exp(A_log) must be negative");
  }
}

// ---------------------------------------------------------------------------------------------
// GGUF checkpoints against safetensors checkpoints of the same stored weights
// ---------------------------------------------------------------------------------------------

struct Pair {
  std::string gguf, safetensors;
};

// The GGUF of `w` in `out` beside a safetensors checkpoint holding the same stored values in the
// same dtypes.
Pair write_pair(const GgufTest& t, const Mamba1Weights& w, OutType out, const std::string& name) {
  ConvertedModel m = convert_mamba1(w, out);
  Pair p{t.path(name + ".gguf"), t.path(name + "_st")};
  write_bytes(p.gguf, m.gguf.bytes());
  save_mamba1_hf(w, p.safetensors, DType::F32);  // config.json (the mirror replaces the tensors)
  write_mirror_safetensors(m, p.safetensors);
  return p;
}

void expect_equal_logits(const Pair& p, BackendKind backend, WeightStorage storage, float tol) {
  LoadOptions opt;
  opt.backend = backend;
  opt.weights = storage;
  opt.max_streams = 1;
  auto a = load_model(p.gguf, opt);
  auto b = load_model(p.safetensors, opt);
  EXPECT_EQ(a->info().weight_type, b->info().weight_type);
  EXPECT_EQ(a->info().vocab_size, b->info().vocab_size);
  const std::vector<float> x = run_tokens(*a), y = run_tokens(*b);
  if (tol == 0.0f) {
    EXPECT_EQ(x, y);
  } else {
    EXPECT_LE(testing_helpers::max_rel_error(x.data(), y.data(), int64_t(x.size())), tol);
  }
}

TEST_F(GgufTest, F32FileGivesTheSameModelAsSafetensors) {
  const Mamba1Weights w = gguf_stable(random_mamba1(q8_friendly_mamba1(true), 11));
  const Pair p = write_pair(*this, w, OutType::F32, "f32");
  const Mamba1Weights a = load_mamba1(Checkpoint::open(p.gguf));
  expect_same_weights(a, load_mamba1(Checkpoint::open(p.safetensors)));
  expect_same_weights(a, w);  // F32 stores everything exactly
  EXPECT_EQ(a.source_dtype, DType::F32);
  EXPECT_TRUE(a.lm_head.empty());
  expect_equal_logits(p, BackendKind::Reference, WeightStorage::Auto, 0.0f);
  expect_equal_logits(p, BackendKind::Vulkan, WeightStorage::Auto, 0.0f);
}

TEST_F(GgufTest, F16FileOfAnUntiedModelGivesTheSameModelAsSafetensors) {
  Mamba1Config c = q8_friendly_mamba1(false);
  c.use_conv_bias = false;
  const Mamba1Weights w = gguf_stable(random_mamba1(c, 12));
  const Pair p = write_pair(*this, w, OutType::F16, "f16");
  const Mamba1Weights a = load_mamba1(Checkpoint::open(p.gguf));
  expect_same_weights(a, load_mamba1(Checkpoint::open(p.safetensors)));
  EXPECT_EQ(a.source_dtype, DType::F16);
  EXPECT_FALSE(a.lm_head.empty());
  EXPECT_FALSE(a.cfg.use_conv_bias);
  EXPECT_EQ(a.layers[0].norm, w.layers[0].norm);  // 1-D tensors stay F32
  expect_equal_logits(p, BackendKind::Reference, WeightStorage::Auto, 0.0f);
  expect_equal_logits(p, BackendKind::Vulkan, WeightStorage::Auto, 0.0f);
}

TEST_F(GgufTest, Bf16FileGivesTheSameModelAsSafetensors) {
  const Mamba1Weights w = gguf_stable(random_mamba1(q8_friendly_mamba1(true), 13));
  const Pair p = write_pair(*this, w, OutType::BF16, "bf16");
  const Mamba1Weights a = load_mamba1(Checkpoint::open(p.gguf));
  expect_same_weights(a, load_mamba1(Checkpoint::open(p.safetensors)));
  EXPECT_EQ(a.source_dtype, DType::BF16);
  expect_equal_logits(p, BackendKind::Reference, WeightStorage::Auto, 0.0f);
  expect_equal_logits(p, BackendKind::Vulkan, WeightStorage::Auto, 0.0f);
}

TEST_F(GgufTest, Q8_0FileGivesTheModelOfItsDequantisedWeights) {
  const Mamba1Weights w = gguf_stable(random_mamba1(q8_friendly_mamba1(false), 14));
  ConvertedModel m = convert_mamba1(w, OutType::Q8_0);
  EXPECT_EQ(m.find("backbone.layers.0.mixer.in_proj.weight")->ggml_type, ggml_type::Q8_0);
  EXPECT_EQ(m.find("backbone.layers.0.mixer.dt_proj.weight")->ggml_type, ggml_type::F16);  // rows of 2
  EXPECT_EQ(m.find("backbone.layers.0.mixer.A_log")->ggml_type, ggml_type::F32);
  EXPECT_EQ(m.find("backbone.layers.0.mixer.conv1d.weight")->ggml_type, ggml_type::F32);
  const Pair p = write_pair(*this, w, OutType::Q8_0, "q8");
  const Mamba1Weights a = load_mamba1(Checkpoint::open(p.gguf));
  expect_same_weights(a, load_mamba1(Checkpoint::open(p.safetensors)));
  // Q8_0's d·q values are mostly not fp16 values: auto keeps fp32, the values the cpu backends use.
  EXPECT_EQ(a.source_dtype, DType::F32);
  // Quantisation moved the weights, but only by Q8_0's step (max|row block| / 254).
  EXPECT_NE(a.layers[0].in_proj, w.layers[0].in_proj);
  EXPECT_LE(testing_helpers::max_rel_error(a.layers[0].in_proj.data(), w.layers[0].in_proj.data(),
                                           int64_t(w.layers[0].in_proj.size())),
            0.25f / 254);
  expect_equal_logits(p, BackendKind::Reference, WeightStorage::Auto, 1e-5f);
  expect_equal_logits(p, BackendKind::Vulkan, WeightStorage::F16, 1e-5f);
  expect_equal_logits(p, BackendKind::Vulkan, WeightStorage::F32, 1e-5f);

  // A Q8_0 block scale of 57344 (fp16 0x7B00) makes d·q reach 7.3e6, past fp16's 65504: once the
  // quantised tensors hold such values, the checkpoint is reported as F32.
  for (TensorEntry& t : m.gguf.tensors)
    if (t.type == ggml_type::Q8_0) t.data[0] = 0x00, t.data[1] = 0x7B;
  write_bytes(path("big.gguf"), m.gguf.bytes());
  EXPECT_EQ(Checkpoint::open(path("big.gguf")).main_dtype(), DType::F32);
}

// What llama-quantize does to an F32 file for a block type (as with --pure): every 2-D ".weight"
// tensor but norms and ssm_conv1d takes `type`, or, when its rows do not fit that block, the
// fallback llama.cpp picks (Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, then F16).
// The blocks come from host/quant.cpp, whose bytes tests/test_quant.cpp checks against ggml's.
void requantize(ConvertedModel& m, QuantType type) {
  for (TensorEntry& t : m.gguf.tensors) {
    const bool weight = t.name.size() > 7 && t.name.compare(t.name.size() - 7, 7, ".weight") == 0;
    if (t.ne.size() != 2 || !weight || t.name.find("_norm") != std::string::npos ||
        t.name.find("ssm_conv1d") != std::string::npos)
      continue;
    ASSERT_EQ(t.type, ggml_type::F32) << t.name;
    std::vector<float> x(t.data.size() / 4);
    std::memcpy(x.data(), t.data.data(), t.data.size());
    const size_t cols = size_t(t.ne[0]);
    QuantType q = type;
    if (cols % quant_traits(q).block_elems != 0) {
      switch (type) {
        case QuantType::Q4_K: q = QuantType::Q5_0; break;
        case QuantType::Q5_K: q = QuantType::Q5_1; break;
        case QuantType::Q6_K: q = QuantType::Q8_0; break;
        default: q = QuantType::Q4_0; break;
      }
    }
    if (cols % quant_traits(q).block_elems != 0) {
      t.type = ggml_type::F16;
      t.data.clear();
      for (float v : x) put(t.data, float_to_half(v), 2);
      continue;
    }
    const size_t row_bytes = quant_row_bytes(q, cols);
    t.data.assign(row_bytes * (x.size() / cols), 0);
    for (size_t r = 0; r < x.size() / cols; ++r) quantize_row(q, x.data() + r * cols, t.data.data() + r * row_bytes, cols);
    t.type = uint32_t(q);
  }
}

// The fp32 values of a GGUF tensor's blocks, decoded independently of GgufFile.
std::vector<float> dequantized(const TensorEntry& t) {
  std::vector<float> v(size_t(t.ne[0] * t.ne[1]));
  dequantize_row(QuantType(t.type), t.data.data(), v.data(), v.size());
  return v;
}

TEST_F(GgufTest, KQuantFilesGiveTheModelOfTheirDequantisedWeights) {
  // Rows of 256 (in_proj, embeddings) and 512 (x_proj, out_proj) take the K-quants; dt_proj's
  // rows of 16 fall back to F16.
  Mamba1Config c = q8_friendly_mamba1(false);
  c.d_model = 256;
  c.d_inner = 512;
  c.dt_rank = 16;
  c.n_layer = 1;
  const Mamba1Weights w = gguf_stable(random_mamba1(c, 21));
  for (QuantType type : {QuantType::Q2_K, QuantType::Q3_K, QuantType::Q4_K, QuantType::Q5_K, QuantType::Q6_K}) {
    const std::string name = quant_traits(type).name;
    SCOPED_TRACE(name);
    ConvertedModel m = convert_mamba1(w, OutType::F32);
    requantize(m, type);
    EXPECT_EQ(m.gguf.tensor("blk.0.ssm_in.weight")->type, uint32_t(type));
    EXPECT_EQ(m.gguf.tensor("blk.0.ssm_x.weight")->type, uint32_t(type));
    EXPECT_EQ(m.gguf.tensor("token_embd.weight")->type, uint32_t(type));
    EXPECT_EQ(m.gguf.tensor("blk.0.ssm_dt.weight")->type, ggml_type::F16);
    const std::string gguf = path(name + ".gguf");
    write_bytes(gguf, m.gguf.bytes());

    // The loaded weights are the blocks' values, exactly.
    const Mamba1Weights a = load_mamba1(Checkpoint::open(gguf));
    EXPECT_EQ(a.layers[0].in_proj, dequantized(*m.gguf.tensor("blk.0.ssm_in.weight")));
    EXPECT_EQ(a.layers[0].x_proj, dequantized(*m.gguf.tensor("blk.0.ssm_x.weight")));
    EXPECT_EQ(a.layers[0].out_proj, dequantized(*m.gguf.tensor("blk.0.ssm_out.weight")));
    EXPECT_EQ(a.embeddings, dequantized(*m.gguf.tensor("token_embd.weight")));
    EXPECT_EQ(a.lm_head, dequantized(*m.gguf.tensor("output.weight")));
    EXPECT_EQ(a.source_dtype, DType::F32);  // not all fp16 values: auto keeps what the cpu backends use
    EXPECT_NE(a.layers[0].in_proj, w.layers[0].in_proj);

    // Its logits: the cpu backend equals the reference run on those weights from a safetensors
    // checkpoint; Vulkan (fp32 storage, and auto: the file's blocks) matches it within rounding.
    const std::string st = path(name + "_st");
    save_mamba1_hf(a, st, DType::F32);
    LoadOptions opt;
    opt.backend = BackendKind::Reference;
    opt.weights = WeightStorage::F32;
    opt.max_streams = 1;
    const std::vector<float> ref = run_tokens(*load_model(st, opt));
    EXPECT_EQ(run_tokens(*load_model(gguf, opt)), ref);
    if (type != QuantType::Q4_K && type != QuantType::Q6_K) continue;  // Vulkan: two types suffice
    opt.backend = BackendKind::Vulkan;
    const std::vector<float> gpu = run_tokens(*load_model(gguf, opt));
    EXPECT_LE(testing_helpers::max_rel_error(gpu.data(), ref.data(), int64_t(ref.size())), 1e-5f);
    opt.weights = WeightStorage::Auto;  // the file's very blocks on the device
    auto auto_model = load_model(gguf, opt);
    EXPECT_EQ(auto_model->info().weight_type, type == QuantType::Q4_K ? "q4_k" : "q6_k");
    const std::vector<float> gpu_blocks = run_tokens(*auto_model);
    EXPECT_LE(testing_helpers::max_rel_error(gpu_blocks.data(), ref.data(), int64_t(ref.size())), 1e-3f);
  }
}

TEST_F(GgufTest, DequantisesIq4NlAndQ6KBlocksAsHandComputed) {
  {  // IQ4_NL: d = 0.5; nibble q indexes {-127, -104, ..., 113}: value = 0.5 * table[q].
    std::vector<uint8_t> data = {0x00, 0x38};
    for (int j = 0; j < 16; ++j) data.push_back(uint8_t(j | ((15 - j) << 4)));
    GgufBuilder b = one_tensor(ggml_type::IQ4_NL, 32, data);
    auto f = GgufFile::open(write("iq4nl.gguf", b));
    const std::vector<float> v = f->to_f32(f->tensors()[0]);
    EXPECT_EQ(v[0], -63.5f);
    EXPECT_EQ(v[8], 0.5f);
    EXPECT_EQ(v[15], 56.5f);
    EXPECT_EQ(v[16], 56.5f);  // high nibble of byte 0: 15
    EXPECT_EQ(v[31], -63.5f);
  }
  {  // Q6_K: d = 0.25, sub-block scales 1..16, every 6-bit level 33 (low nibble 1, high bits 2):
     // value = 0.25 * scale * (33 - 32).
    std::vector<uint8_t> data(128, 0x11);             // ql: both nibbles 1
    data.insert(data.end(), 64, 0xAA);                // qh: every 2-bit field 2
    for (int s = 1; s <= 16; ++s) data.push_back(uint8_t(s));
    data.insert(data.end(), {0x00, 0x34});            // d = 0.25
    GgufBuilder b = one_tensor(ggml_type::Q6_K, 256, data);
    auto f = GgufFile::open(write("q6k.gguf", b));
    const std::vector<float> v = f->to_f32(f->tensors()[0]);
    for (int i = 0; i < 256; ++i) ASSERT_EQ(v[size_t(i)], 0.25f * float(i / 16 + 1)) << i;
  }
}

TEST_F(GgufTest, ARoundTripsThroughTheConverterWithinAnUlp) {
  // Values not chosen to be stable: log(-(-exp(x))) may land an ulp or so away.
  Mamba1Weights w = random_mamba1(testing_helpers::small_mamba1_config(40), 15);
  for (size_t i = 0; i < w.layers[0].A_log.size(); ++i) w.layers[0].A_log[i] = -3.0f + 0.37f * float(i % 23);
  ConvertedModel m = convert_mamba1(w, OutType::F32);
  write_bytes(path("a.gguf"), m.gguf.bytes());
  const Mamba1Weights a = load_mamba1(Checkpoint::open(path("a.gguf")));
  for (size_t i = 0; i < w.layers[0].A_log.size(); ++i)
    EXPECT_NEAR(a.layers[0].A_log[i], w.layers[0].A_log[i], 4e-7f * std::max(1.0f, std::fabs(w.layers[0].A_log[i])));
  // A = -1 gives A_log = 0 exactly.
  std::vector<uint8_t>& data = m.gguf.tensor("blk.1.ssm_a")->data;
  for (size_t i = 0; i < data.size(); i += 4) {
    const float minus_one = -1.0f;
    std::memcpy(data.data() + i, &minus_one, 4);
  }
  write_bytes(path("b.gguf"), m.gguf.bytes());
  const Mamba1Weights b = load_mamba1(Checkpoint::open(path("b.gguf")));
  EXPECT_EQ(b.layers[1].A_log, std::vector<float>(b.layers[1].A_log.size(), 0.0f));
}

TEST_F(GgufTest, FolderWithOneGgufIsACheckpoint) {
  ConvertedModel m = small_model_gguf();
  fs::create_directories(path("one"));
  write_bytes(path("one/model-F32.gguf"), m.gguf.bytes());
  Checkpoint ck = Checkpoint::open(path("one"));
  EXPECT_TRUE(ck.is_gguf());
  EXPECT_EQ(ck.dir(), path("one/model-F32.gguf"));
  EXPECT_EQ(ck.config_source(), path("one/model-F32.gguf") + " (metadata)");
  EXPECT_EQ(ck.config()["model_type"], "mamba");
  EXPECT_EQ(ck.config()["vocab_size"], 40);
  EXPECT_EQ(ck.config()["tie_word_embeddings"], true);
  EXPECT_TRUE(ck.has("backbone.layers.1.mixer.A_log"));
  EXPECT_EQ(ck.find("backbone.layers.1.mixer.conv1d.weight")->shape, (std::vector<int64_t>{32, 1, 4}));

  write_bytes(path("one/other.gguf"), m.gguf.bytes());
  EXPECT_EQ(error_of([&] { Checkpoint::open(path("one")); }),
            "checkpoint folder " + path("one") + " holds 2 .gguf files (model-F32.gguf, other.gguf); give the path "
                                                 "of the one to load");
}

// ---------------------------------------------------------------------------------------------
// Mamba-2
// ---------------------------------------------------------------------------------------------

Mamba2Config small_mamba2(bool tied) {
  Mamba2Config c;
  c.d_model = 32;
  c.n_layer = 2;
  c.vocab_size = 48;
  c.d_state = 8;
  c.d_conv = 4;
  c.expand = 2;
  c.d_inner = 64;
  c.head_dim = 16;
  c.n_heads = 4;
  c.n_groups = 2;
  c.tie_embeddings = tied;
  return c;
}

void expect_same_weights(const Mamba2Weights& a, const Mamba2Weights& b) {
  EXPECT_EQ(a.cfg.d_model, b.cfg.d_model);
  EXPECT_EQ(a.cfg.n_layer, b.cfg.n_layer);
  EXPECT_EQ(a.cfg.vocab_size, b.cfg.vocab_size);
  EXPECT_EQ(a.cfg.d_state, b.cfg.d_state);
  EXPECT_EQ(a.cfg.d_conv, b.cfg.d_conv);
  EXPECT_EQ(a.cfg.d_inner, b.cfg.d_inner);
  EXPECT_EQ(a.cfg.n_heads, b.cfg.n_heads);
  EXPECT_EQ(a.cfg.head_dim, b.cfg.head_dim);
  EXPECT_EQ(a.cfg.n_groups, b.cfg.n_groups);
  EXPECT_EQ(a.cfg.norm_eps, b.cfg.norm_eps);
  EXPECT_EQ(a.cfg.tie_embeddings, b.cfg.tie_embeddings);
  EXPECT_EQ(a.embeddings, b.embeddings);
  EXPECT_EQ(a.norm_f, b.norm_f);
  EXPECT_EQ(a.lm_head, b.lm_head);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    SCOPED_TRACE("layer " + std::to_string(i));
    const auto &x = a.layers[i], &y = b.layers[i];
    EXPECT_EQ(x.norm, y.norm);
    EXPECT_EQ(x.in_proj, y.in_proj);
    EXPECT_EQ(x.conv_w, y.conv_w);
    EXPECT_EQ(x.conv_b, y.conv_b);
    EXPECT_EQ(x.dt_bias, y.dt_bias);
    EXPECT_EQ(x.A_log, y.A_log);
    EXPECT_EQ(x.D, y.D);
    EXPECT_EQ(x.gate_norm, y.gate_norm);
    EXPECT_EQ(x.out_proj, y.out_proj);
  }
}

Mamba2Weights gguf_stable(Mamba2Weights w) {
  for (auto& L : w.layers)
    for (float& a : L.A_log) a = gguf_stable_a_log(a);
  return w;
}

class GgufMamba2Test : public GgufTest, public testing::WithParamInterface<OutType> {};

TEST_P(GgufMamba2Test, GivesTheSameModelAsSafetensors) {
  const OutType out = GetParam();
  const Mamba2Weights w = gguf_stable(random_mamba2(small_mamba2(out != OutType::F16), 21));
  ConvertedModel m = convert_mamba2(w, out);
  EXPECT_EQ(m.find("backbone.layers.0.mixer.A_log")->ggml_type, ggml_type::F32);
  EXPECT_EQ(m.find("backbone.layers.0.mixer.norm.weight")->ggml_type, ggml_type::F32);
  const std::string gguf = path("m2.gguf"), st = path("m2_st");
  write_bytes(gguf, m.gguf.bytes());
  save_mamba2_hf(w, st, DType::F32);
  write_mirror_safetensors(m, st);

  const Checkpoint ck = Checkpoint::open(gguf);
  EXPECT_EQ(ck.config()["model_type"], "mamba2");
  EXPECT_EQ(ck.find("backbone.layers.0.mixer.A_log")->shape, (std::vector<int64_t>{4}));
  EXPECT_EQ(ck.find("backbone.layers.0.mixer.norm.weight")->shape, (std::vector<int64_t>{64}));
  EXPECT_EQ(ck.find("backbone.layers.0.mixer.conv1d.weight")->shape, (std::vector<int64_t>{96, 1, 4}));
  const Mamba2Weights a = load_mamba2(ck);
  const Mamba2Weights b = load_mamba2(Checkpoint::open(st));
  expect_same_weights(a, b);
  // An F16 file says F16; Q8_0's values are mostly not fp16 values, so that file says F32.
  EXPECT_EQ(a.source_dtype, out == OutType::F16 ? DType::F16 : DType::F32);

  const Pair p{gguf, st};
  expect_equal_logits(p, BackendKind::Reference, WeightStorage::Auto, 0.0f);
  // Q8_0: under auto the GGUF keeps its blocks where the mirror has fp32, so both are pinned.
  expect_equal_logits(p, BackendKind::Vulkan, out == OutType::Q8_0 ? WeightStorage::F16 : WeightStorage::Auto, 0.0f);
}

INSTANTIATE_TEST_SUITE_P(OutTypes, GgufMamba2Test, testing::Values(OutType::F32, OutType::F16, OutType::Q8_0),
                         [](const testing::TestParamInfo<OutType>& i) {
                           return i.param == OutType::F32 ? "F32" : i.param == OutType::F16 ? "F16" : "Q8_0";
                         });

// ---------------------------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------------------------

// The GPT-NeoX tokenizer cut down to what the tests encode (tests/data/make_neox_tokenizer_subset.py
// lists the texts below among them): original ids, so the vocabulary has gaps that become
// "[PADn]" UNUSED entries of the GGUF token list.
constexpr const char* kNeoxJson = VKSSM_SOURCE_DIR "/tests/data/gpt-neox-20b-tokenizer-subset.json";

TEST_F(GgufTest, TokenizerFromGgufEncodesLikeTokenizerJson) {
  const std::string json = kNeoxJson;
  const TokenizerMeta meta = tokenizer_meta_from_json(json, 50280);  // mamba-130m's padded vocabulary
  EXPECT_EQ(meta.token_types[0], 3);      // <|endoftext|>: CONTROL
  EXPECT_EQ(meta.token_types[50254], 4);  // a run of spaces: USER_DEFINED
  EXPECT_EQ(meta.tokens[50279], "[PAD50279]");

  Mamba1Config c = testing_helpers::small_mamba1_config(40);
  ConvertedModel m = convert_mamba1(random_mamba1(c, 3), OutType::F32, &meta);
  const std::string p = path("tok.gguf");
  write_bytes(p, m.gguf.bytes());

  auto from_json = load_bpe_tokenizer(json);
  auto from_gguf = load_tokenizer_for_path(p);
  ASSERT_NE(from_gguf, nullptr);
  EXPECT_EQ(from_gguf->eos_id(), 0);
  EXPECT_EQ(from_gguf->vocab_size(), 50280);
  const std::vector<std::string> texts = {
      "Hello, world! It's a test of the tokenizer.",
      "    four leading spaces\n\n\ttabs\tand\r\nnewlines   ",
      "Numbers 1234567 and 3.14159; emails a.b@c.de; URLs https://example.com/x?y=z",
      "<|endoftext|>after the end<|padding|>",
      "naïve café, Ελληνικά, Русский, 日本語のテキスト, emoji 🙂👍🏽",
      "they'll've we'd I'M Don't 'tis",
      "def f(x):\n        return x ** 2  # eight spaces\n",
      std::string("bytes \xff\xfe invalid \xc3 utf-8"),
  };
  for (const std::string& t : texts) {
    SCOPED_TRACE(t);
    const std::vector<int32_t> ids = from_json->encode(t);
    EXPECT_EQ(from_gguf->encode(t), ids);
    EXPECT_EQ(from_gguf->decode(ids), from_json->decode(ids));
  }
  EXPECT_EQ(from_gguf->decode_token(50279), "");  // padding rows decode to nothing

  // The same file through Checkpoint (the model) and through the folder form.
  fs::create_directories(path("folder"));
  fs::copy_file(p, path("folder/m.gguf"));
  EXPECT_EQ(load_tokenizer_for_path(path("folder"))->encode(texts[0]), from_json->encode(texts[0]));
  LoadOptions opt;
  opt.backend = BackendKind::Reference;
  EXPECT_EQ(load_model(p, opt)->info().vocab_size, 40);
}

TEST_F(GgufTest, TokenizerMetadataErrors) {
  ConvertedModel m = small_model_gguf();
  EXPECT_EQ(load_tokenizer_for_path(write("none.gguf", m.gguf)), nullptr);  // no tokenizer.ggml.model

  TokenizerMeta t;
  t.tokens = {"a", "b", "ab", "<|endoftext|>"};
  t.token_types = {1, 1, 1, 3};
  t.merges = {"a b"};
  add_tokenizer(m.gguf, t);
  auto tok = load_tokenizer_for_path(write("tiny.gguf", m.gguf));
  EXPECT_EQ(tok->encode("abba<|endoftext|>"), (std::vector<int32_t>{2, 1, 0, 3}));
  EXPECT_EQ(tok->eos_id(), 3);

  m.gguf.set_string("tokenizer.ggml.pre", "llama-bpe");
  std::string p = write("pre.gguf", m.gguf);
  EXPECT_EQ(error_of([&] { load_tokenizer_for_path(p); }),
            "tokenizer.ggml.pre 'llama-bpe' in GGUF file " + p +
                " is not supported (vkssm implements the GPT-2 pre-tokenizer: gpt-2, olmo, mpt, ...)");
  m.gguf.set_string("tokenizer.ggml.pre", "gpt-2");
  m.gguf.set_string("tokenizer.ggml.model", "llama");
  p = write("spm.gguf", m.gguf);
  EXPECT_EQ(error_of([&] { load_tokenizer_for_path(p); }),
            "tokenizer.ggml.model 'llama' in GGUF file " + p +
                " is not supported (vkssm reads byte-level BPE tokenizers, 'gpt2', only)");
  m.gguf.set_string("tokenizer.ggml.model", "gpt2");
  // A merge naming a token the vocabulary lacks is skipped, as llama.cpp does (its converter
  // writes such merges for cut-down vocabularies); the others keep their ranks.
  m.gguf.set_string_array("tokenizer.ggml.merges", {"a c", "a b"});
  p = write("merge.gguf", m.gguf);
  EXPECT_EQ(load_tokenizer_for_path(p)->encode("ab"), (std::vector<int32_t>{2}));
  m.gguf.set_string_array("tokenizer.ggml.merges", {"a-b"});
  p = write("badmerge.gguf", m.gguf);
  EXPECT_EQ(error_of([&] { load_tokenizer_for_path(p); }),
            "tokenizer in GGUF file " + p + ": merge 0 'a-b' is not two tokens");
}

}  // namespace
}  // namespace vkssm

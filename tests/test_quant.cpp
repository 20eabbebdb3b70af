// ggml's block formats (host/quant.h) against llama.cpp itself: tests/data/quant/<type>.bin hold
// the blocks that ggml's reference quantizers made from rows this file recomputes, and the values
// ggml's dequantizers read back from them (tests/data/quant/README.md says how they were made).
// Quantizing must give the same bytes and dequantizing the same floats, bit for bit.
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "host/quant.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

using testing_helpers::error_of;

constexpr int kRows = 5, kRowLen = 256;

// The rows the data files were made from, one LCG stream per row: uniform values, small
// Gaussian-like weights with a zero and a constant sub-block, small values with ±30 outliers and
// an all-positive sub-block, an all-zero row, and a row of a constant, tiny (1e-7) and large
// (1000) values. Every operation is exact or a single IEEE float rounding, so any compiler
// recomputes the same bits.
std::vector<float> reference_rows() {
  std::vector<float> x(size_t(kRows) * kRowLen);
  for (int r = 0; r < kRows; ++r) {
    uint32_t s = 12345u + 7919u * uint32_t(r);
    auto uniform = [&] {
      s = s * 1664525u + 1013904223u;
      return float(int32_t(s >> 8) - (1 << 23)) / float(1 << 23);
    };
    for (int k = 0; k < kRowLen; ++k) {
      const float a = uniform();
      float v = 0.0f;
      switch (r) {
        case 0: v = a; break;
        case 1: {
          const float b = uniform(), c = uniform(), d = uniform();
          v = 0.02f * (((a + b) + c) + d);
          if (k >= 64 && k < 96) v = 0.0f;
          if (k >= 160 && k < 192) v = 0.01f;
          break;
        }
        case 2:
          v = 0.01f * a;
          if (k % 37 == 5) v = a < 0 ? -30.0f : 30.0f;
          if (k >= 192 && k < 224) v = 0.5f + 0.25f * a;
          break;
        case 3: v = 0.0f; break;
        default: v = k < 128 ? -0.5f : k < 192 ? 1e-7f * a : 1000.0f * a; break;
      }
      x[size_t(r) * kRowLen + k] = v;
    }
  }
  return x;
}

struct Reference {
  std::vector<uint8_t> blocks;  // kRows rows of quant_row_bytes(type, kRowLen)
  std::vector<float> values;    // ggml's dequantization of them
};

// Reads tests/data/quant/<name>.bin: u32 "VKQT", u32 ggml type, u32 rows, u32 row length, the
// blocks, the fp32 values.
Reference load_reference(QuantType type, const std::string& name) {
  const std::string path = std::string(VKSSM_SOURCE_DIR) + "/tests/data/quant/" + name + ".bin";
  std::ifstream in(path, std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t block_bytes = kRows * quant_row_bytes(type, kRowLen);
  const size_t value_bytes = size_t(kRows) * kRowLen * 4;
  Reference ref;
  if (bytes.size() != 16 + block_bytes + value_bytes) {
    ADD_FAILURE() << path << " has " << bytes.size() << " bytes, expected " << 16 + block_bytes + value_bytes;
    return ref;
  }
  uint32_t header[4];
  std::memcpy(header, bytes.data(), 16);
  EXPECT_EQ(header[0], 0x54514b56u) << path;
  EXPECT_EQ(header[1], uint32_t(type)) << path;
  EXPECT_EQ(header[2], uint32_t(kRows)) << path;
  EXPECT_EQ(header[3], uint32_t(kRowLen)) << path;
  ref.blocks.assign(bytes.begin() + 16, bytes.begin() + 16 + long(block_bytes));
  ref.values.resize(size_t(kRows) * kRowLen);
  std::memcpy(ref.values.data(), bytes.data() + 16 + block_bytes, value_bytes);
  return ref;
}

struct Case {
  QuantType type;
  const char* file;
};
const Case kCases[] = {
    {QuantType::Q4_0, "q4_0"}, {QuantType::Q4_1, "q4_1"}, {QuantType::Q5_0, "q5_0"},
    {QuantType::Q5_1, "q5_1"}, {QuantType::Q8_0, "q8_0"}, {QuantType::Q2_K, "q2_k"},
    {QuantType::Q3_K, "q3_k"}, {QuantType::Q4_K, "q4_k"}, {QuantType::Q5_K, "q5_k"},
    {QuantType::Q6_K, "q6_k"}, {QuantType::IQ4_NL, "iq4_nl"},
};

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

TEST(Quant, DequantizesEveryTypeBitExactlyAsGgml) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.file);
    const Reference ref = load_reference(c.type, c.file);
    ASSERT_FALSE(ref.blocks.empty());
    std::vector<float> out(size_t(kRows) * kRowLen);
    // All rows in one call: blocks are self-contained, so a long row reads as the short ones.
    dequantize_row(c.type, ref.blocks.data(), out.data(), out.size());
    size_t mismatches = 0;
    for (size_t i = 0; i < out.size(); ++i)
      if (bits_of(out[i]) != bits_of(ref.values[i]) && mismatches++ < 5)
        ADD_FAILURE() << "value " << i << ": " << out[i] << ", ggml " << ref.values[i];
    EXPECT_EQ(mismatches, 0u);
  }
}

TEST(Quant, QuantizesToTheBytesOfGgmlsReferenceQuantizers) {
  const std::vector<float> x = reference_rows();
  int tested = 0;
  for (const Case& c : kCases) {
    if (!can_quantize(c.type)) continue;
    SCOPED_TRACE(c.file);
    ++tested;
    const Reference ref = load_reference(c.type, c.file);
    ASSERT_FALSE(ref.blocks.empty());
    const size_t row_bytes = quant_row_bytes(c.type, kRowLen);
    for (int r = 0; r < kRows; ++r) {
      std::vector<uint8_t> out(row_bytes, 0xAA);
      quantize_row(c.type, x.data() + size_t(r) * kRowLen, out.data(), kRowLen);
      const std::vector<uint8_t> want(ref.blocks.begin() + long(r * row_bytes),
                                      ref.blocks.begin() + long((r + 1) * row_bytes));
      EXPECT_EQ(out, want) << "row " << r;
    }
  }
  // Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and Q2_K..Q6_K: all but IQ4_NL.
  EXPECT_EQ(tested, 10);
}

TEST(Quant, TraitsAndRowSizesAreGgmls) {
  EXPECT_STREQ(quant_traits(QuantType::Q4_K).name, "Q4_K");
  EXPECT_EQ(quant_traits(QuantType::Q4_K).block_elems, 256u);
  EXPECT_EQ(quant_row_bytes(QuantType::Q4_K, 512), 288u);
  EXPECT_EQ(quant_row_bytes(QuantType::Q6_K, 256), 210u);
  EXPECT_EQ(quant_row_bytes(QuantType::IQ4_NL, 64), 36u);
  EXPECT_TRUE(is_quant_type(12));
  EXPECT_FALSE(is_quant_type(0));   // F32 is not a block format
  EXPECT_FALSE(is_quant_type(16));  // IQ2_XXS: not read
  EXPECT_FALSE(can_quantize(QuantType::IQ4_NL));
}

TEST(Quant, RowsThatAreNotWholeBlocksAndUnknownTypesAreErrors) {
  std::vector<float> x(300, 0.0f);
  std::vector<uint8_t> blocks(1024);
  EXPECT_EQ(error_of([&] { quant_row_bytes(QuantType::Q4_K, 300); }),
            "Q4_K rows hold a multiple of 256 values; this row has 300");
  EXPECT_EQ(error_of([&] { quantize_row(QuantType::Q6_K, x.data(), blocks.data(), 100); }),
            "Q6_K rows hold a multiple of 256 values; this row has 100");
  EXPECT_EQ(error_of([&] { dequantize_row(QuantType::Q8_0, blocks.data(), x.data(), 33); }),
            "Q8_0 rows hold a multiple of 32 values; this row has 33");
  EXPECT_EQ(error_of([&] { quant_traits(QuantType(16)); }), "ggml type 16 is not a block format");
  EXPECT_EQ(error_of([&] { dequantize_row(QuantType(99), blocks.data(), x.data(), 32); }),
            "ggml type 99 is not a block format");
  EXPECT_EQ(error_of([&] { quantize_row(QuantType::IQ4_NL, x.data(), blocks.data(), 32); }),
            "quantizing to IQ4_NL is not supported");
}

}  // namespace
}  // namespace vkssm

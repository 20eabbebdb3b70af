// safetensors reader/writer: round trips in every dtype, and a clear error (naming the file) for
// each way a file can be malformed. None of the bad files may crash the reader.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "host/error.h"
#include "host/safetensors.h"

namespace vkssm {
namespace {

namespace fs = std::filesystem;
using testing::HasSubstr;

class SafetensorsTest : public testing::Test {
 protected:
  void SetUp() override {
    const char* test = testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ = fs::path(testing::TempDir()) / ("vkssm_st_" + std::string(test));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes raw bytes, for hand-made (mostly broken) files.
  static void write_bytes(const std::string& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary);
    out.write(bytes.data(), std::streamsize(bytes.size()));
  }
  // A file whose header is `header` (length field set to header.size()) followed by `data`.
  static std::string with_header(const std::string& header, const std::string& data) {
    std::string s(8, '\0');
    uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) s[size_t(i)] = char(uint8_t(n >> (8 * i)));
    return s + header + data;
  }

  // Opening `p` must throw a vkssm::Error whose message names the file and contains `fragment`.
  static void expect_open_error(const std::string& p, const std::string& fragment) {
    try {
      SafetensorsFile::open(p);
      ADD_FAILURE() << "no error for " << p << " (expected: " << fragment << ")";
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr(fragment));
      EXPECT_THAT(e.what(), HasSubstr(p));
    }
  }

  fs::path dir_;
};

TEST_F(SafetensorsTest, RoundTripF32IsExact) {
  std::vector<float> a = {1.0f, -2.5f, 3.14159f, 1e-30f, -0.0f, 65504.0f};
  std::vector<float> b = {7.0f};
  write_safetensors(path("a.safetensors"),
                    {make_tensor("w.a", {2, 3}, a), make_tensor("w.b", {1}, b)});
  auto f = SafetensorsFile::open(path("a.safetensors"));
  ASSERT_EQ(f->tensors().size(), 2u);
  const TensorInfo* t = f->find("w.a");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, DType::F32);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t->numel(), 6);
  EXPECT_EQ(t->nbytes, 24u);
  EXPECT_EQ(t->file, path("a.safetensors"));
  std::vector<float> back(6);
  std::memcpy(back.data(), t->data, 24);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(back[i], a[i]) << i;
  EXPECT_EQ(f->find("w.c"), nullptr);
  EXPECT_EQ(f->path(), path("a.safetensors"));
}

TEST_F(SafetensorsTest, HeaderIsPaddedToEightBytes) {
  write_safetensors(path("a.safetensors"), {make_tensor("x", {3}, {1, 2, 3})});
  std::ifstream in(path("a.safetensors"), std::ios::binary);
  uint8_t len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(fs::file_size(path("a.safetensors")), 8 + n + 12);
}

TEST_F(SafetensorsTest, RoundTripF16RoundsToNearest) {
  // 0.5, -2 and 1024 are exact in fp16; 0.1 and 1/3 round; 1e5 overflows to inf.
  std::vector<float> v = {0.5f, -2.0f, 1024.0f, 0.1f, 1.0f / 3.0f, 1e5f};
  write_safetensors(path("h.safetensors"), {make_tensor("h", {6}, v, DType::F16)});
  auto f = SafetensorsFile::open(path("h.safetensors"));
  const TensorInfo* t = f->find("h");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, DType::F16);
  ASSERT_EQ(t->nbytes, 12u);
  std::vector<uint16_t> h(6);
  std::memcpy(h.data(), t->data, 12);
  EXPECT_EQ(half_to_float(h[0]), 0.5f);
  EXPECT_EQ(half_to_float(h[1]), -2.0f);
  EXPECT_EQ(half_to_float(h[2]), 1024.0f);
  EXPECT_EQ(h[3], 0x2e66);  // 0.0999755859375, the nearest fp16 to 0.1
  EXPECT_EQ(h[4], 0x3555);  // 0.333251953125
  EXPECT_TRUE(std::isinf(half_to_float(h[5])));
}

TEST_F(SafetensorsTest, RoundTripBF16RoundsToNearestEven) {
  std::vector<float> v = {
      1.0f, -3.5f,
      1.00390625f,                        // exactly between 1.0 and 1.0078125: even -> 1.0
      1.01171875f,                        // between 1.0078125 and 1.015625: even -> 1.015625
      1.00390625f + 1.0f / (1 << 20),     // just above half -> 1.0078125
      std::numeric_limits<float>::quiet_NaN()};
  write_safetensors(path("b.safetensors"), {make_tensor("b", {6}, v, DType::BF16)});
  auto f = SafetensorsFile::open(path("b.safetensors"));
  const TensorInfo* t = f->find("b");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, DType::BF16);
  std::vector<uint16_t> b(6);
  std::memcpy(b.data(), t->data, 12);
  EXPECT_EQ(bf16_to_float(b[0]), 1.0f);
  EXPECT_EQ(bf16_to_float(b[1]), -3.5f);
  EXPECT_EQ(bf16_to_float(b[2]), 1.0f);
  EXPECT_EQ(bf16_to_float(b[3]), 1.015625f);
  EXPECT_EQ(bf16_to_float(b[4]), 1.0078125f);
  EXPECT_TRUE(std::isnan(bf16_to_float(b[5])));
}

TEST_F(SafetensorsTest, MetadataAndEmptyTensorsRoundTrip) {
  write_safetensors(path("m.safetensors"),
                    {make_tensor("empty", {0, 4}, {}), make_tensor("one", {1}, {2.0f})},
                    {{"format", "pt"}, {"note", "hello"}});
  auto f = SafetensorsFile::open(path("m.safetensors"));
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->metadata().at("note"), "hello");
  ASSERT_NE(f->find("empty"), nullptr);
  EXPECT_EQ(f->find("empty")->nbytes, 0u);
  EXPECT_EQ(f->find("empty")->numel(), 0);
  EXPECT_EQ(f->find("__metadata__"), nullptr);
}

TEST_F(SafetensorsTest, MakeTensorChecksValueCount) {
  EXPECT_THROW(make_tensor("x", {2, 2}, {1, 2, 3}), Error);
}

TEST_F(SafetensorsTest, MissingFile) { expect_open_error(path("nope.safetensors"), "cannot open"); }

TEST_F(SafetensorsTest, EmptyFile) {
  write_bytes(path("e.safetensors"), "");
  expect_open_error(path("e.safetensors"), "too short");
}

TEST_F(SafetensorsTest, FourByteFile) {
  write_bytes(path("e.safetensors"), std::string("\x10\0\0\0", 4));
  expect_open_error(path("e.safetensors"), "too short");
}

TEST_F(SafetensorsTest, HeaderLengthLargerThanFile) {
  std::string s = with_header("{}", "");
  s[0] = char(0xff);
  s[5] = char(0x7f);  // ~1.4e14 bytes
  write_bytes(path("e.safetensors"), s);
  expect_open_error(path("e.safetensors"), "exceeds the file size");
}

TEST_F(SafetensorsTest, HeaderNotJson) {
  write_bytes(path("e.safetensors"), with_header("{\"a\": [1, 2", ""));
  expect_open_error(path("e.safetensors"), "header is not valid JSON");
}

TEST_F(SafetensorsTest, HeaderNotAnObject) {
  write_bytes(path("e.safetensors"), with_header("[1, 2, 3]", ""));
  expect_open_error(path("e.safetensors"), "header is not a JSON object");
}

TEST_F(SafetensorsTest, UnsupportedDtype) {
  write_bytes(path("e.safetensors"),
              with_header(R"({"ids": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}})",
                          std::string(8, '\0')));
  expect_open_error(path("e.safetensors"), "unsupported dtype I64 for tensor ids in " +
                                               path("e.safetensors"));
}

TEST_F(SafetensorsTest, NegativeShape) {
  write_bytes(path("e.safetensors"),
              with_header(R"({"w": {"dtype": "F32", "shape": [-1, 2], "data_offsets": [0, 8]}})",
                          std::string(8, '\0')));
  expect_open_error(path("e.safetensors"), "not a non-negative integer");
}

TEST_F(SafetensorsTest, HugeShapeDoesNotOverflow) {
  write_bytes(path("e.safetensors"),
              with_header(R"({"w": {"dtype": "F32", "shape": [4611686018427387904, 4],
                                    "data_offsets": [0, 0]}})", ""));
  expect_open_error(path("e.safetensors"), "too large");
}

TEST_F(SafetensorsTest, ShapeDisagreesWithByteCount) {
  write_bytes(path("e.safetensors"),
              with_header(R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}})",
                          std::string(12, '\0')));
  expect_open_error(path("e.safetensors"), "needs 16 bytes but data_offsets [0,12] hold 12");
}

TEST_F(SafetensorsTest, OffsetsPastEndOfFile) {
  write_bytes(path("e.safetensors"),
              with_header(R"({"w": {"dtype": "F16", "shape": [8], "data_offsets": [4, 20]}})",
                          std::string(8, '\0')));
  expect_open_error(path("e.safetensors"), "past the end of the data section");
}

TEST_F(SafetensorsTest, OffsetsBeginAfterEnd) {
  write_bytes(path("e.safetensors"),
              with_header(R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}})",
                          std::string(8, '\0')));
  expect_open_error(path("e.safetensors"), "begin > end");
}

TEST_F(SafetensorsTest, OverlappingOffsets) {
  write_bytes(path("e.safetensors"),
              with_header(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                              "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                          std::string(12, '\0')));
  expect_open_error(path("e.safetensors"), "tensors a and b have overlapping data_offsets");
}

TEST_F(SafetensorsTest, TruncatedDataSection) {
  write_safetensors(path("t.safetensors"),
                    {make_tensor("a", {4}, {1, 2, 3, 4}), make_tensor("b", {4}, {5, 6, 7, 8})});
  fs::resize_file(path("t.safetensors"), fs::file_size(path("t.safetensors")) - 3);
  expect_open_error(path("t.safetensors"), "past the end of the data section");
}

TEST_F(SafetensorsTest, MalformedEntriesAndMetadata) {
  const std::string p = path("e.safetensors");
  write_bytes(p, with_header(R"({"w": {"dtype": "F32", "shape": [1]}})", ""));
  expect_open_error(p, "data_offsets");
  write_bytes(p, with_header(R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", "abcd"));
  expect_open_error(p, "dtype");
  write_bytes(p, with_header(R"({"w": 5})", ""));
  expect_open_error(p, "not a JSON object");
  write_bytes(p, with_header(R"({"__metadata__": {"n": 1}})", ""));
  expect_open_error(p, "__metadata__");
  write_bytes(p, with_header(R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})",
                             "abcd"));
  expect_open_error(p, "not a non-negative integer");
  write_bytes(p, with_header(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})",
                             "abcd"));
  expect_open_error(p, "non-negative integers");
}

TEST_F(SafetensorsTest, DeeplyNestedHeaderDoesNotCrash) {
  const std::string deep = std::string(200000, '[') + "1" + std::string(200000, ']');
  write_bytes(path("e.safetensors"),
              with_header(R"({"w": {"dtype": "F32", "shape": )" + deep +
                              R"(, "data_offsets": [0, 4]}})", "abcd"));
  expect_open_error(path("e.safetensors"), "shape (array) entry is not a non-negative integer");
}

TEST_F(SafetensorsTest, UnalignedHeaderStillReadable) {
  // Other writers need not pad the header: tensor data can then sit at any alignment.
  float v[2] = {1.5f, -2.25f};
  std::string data(reinterpret_cast<const char*>(v), 8);
  write_bytes(path("u.safetensors"),
              with_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data));
  auto f = SafetensorsFile::open(path("u.safetensors"));
  float back[2];
  std::memcpy(back, f->find("w")->data, 8);
  EXPECT_EQ(back[0], 1.5f);
  EXPECT_EQ(back[1], -2.25f);
}

}  // namespace
}  // namespace vkssm

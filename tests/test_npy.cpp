// .npy files: round trips, the exact header bytes NumPy expects, '<f8' conversion, and bad files
// rejected with the file named.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "host/error.h"
#include "host/npy.h"

namespace vkssm {
namespace {

namespace fs = std::filesystem;
using testing::HasSubstr;

class Npy : public testing::Test {
 protected:
  void SetUp() override {
    const testing::TestInfo* info = testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(testing::TempDir()) / (std::string("vkssm_npy_") + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  static std::string read_bytes(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  static void write_bytes(const std::string& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary);
    out.write(bytes.data(), std::streamsize(bytes.size()));
  }

  // A version 1.0 file with the given dict text (padded to 64 like NumPy) and raw data bytes.
  static std::string npy_bytes(const std::string& dict, const std::string& data) {
    std::string header = dict;
    while ((10 + header.size() + 1) % 64 != 0) header += ' ';
    header += '\n';
    std::string out = std::string("\x93NUMPY\x01\x00", 8);
    out += char(header.size() & 0xff);
    out += char(header.size() >> 8);
    return out + header + data;
  }

  // Expects read_npy_f32 to throw an Error naming the file and containing `fragment`.
  void expect_read_error(const std::string& p, const std::string& fragment) {
    try {
      read_npy_f32(p);
      ADD_FAILURE() << p << " was accepted";
    } catch (const Error& e) {
      EXPECT_THAT(e.what(), HasSubstr(p));
      EXPECT_THAT(e.what(), HasSubstr(fragment));
    }
  }

  fs::path dir_;
};

TEST_F(Npy, RoundTrip1D) {
  const std::vector<float> v = {1.5f, -2.0f, 3.25f};
  write_npy_f32(path("a.npy"), v.data(), {3});
  const NpyArray a = read_npy_f32(path("a.npy"));
  EXPECT_EQ(a.shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(a.data, v);
}

TEST_F(Npy, RoundTrip2D) {
  std::vector<float> v(10);
  for (int i = 0; i < 10; ++i) v[size_t(i)] = float(i) * 0.5f - 1.0f;
  write_npy_f32(path("b.npy"), v.data(), {2, 5});
  const NpyArray a = read_npy_f32(path("b.npy"));
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 5}));
  EXPECT_EQ(a.data, v);
}

TEST_F(Npy, RoundTripEmptyAndScalar) {
  write_npy_f32(path("empty.npy"), nullptr, {0, 4});
  const NpyArray e = read_npy_f32(path("empty.npy"));
  EXPECT_EQ(e.shape, (std::vector<int64_t>{0, 4}));
  EXPECT_TRUE(e.data.empty());

  const float x = 7.0f;
  write_npy_f32(path("scalar.npy"), &x, {});
  const NpyArray s = read_npy_f32(path("scalar.npy"));
  EXPECT_TRUE(s.shape.empty());
  EXPECT_EQ(s.data, std::vector<float>{7.0f});
}

TEST_F(Npy, HeaderBytesAreWhatNumPyWrites) {
  const std::vector<float> v = {1.0f, 2.0f, 3.0f};
  write_npy_f32(path("h.npy"), v.data(), {3});
  const std::string bytes = read_bytes(path("h.npy"));
  ASSERT_GE(bytes.size(), 10u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const size_t header_len = size_t(uint8_t(bytes[8])) | size_t(uint8_t(bytes[9])) << 8;
  EXPECT_EQ((10 + header_len) % 64, 0u);
  ASSERT_EQ(bytes.size(), 10 + header_len + 3 * sizeof(float));

  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
  const std::string header = bytes.substr(10, header_len);
  EXPECT_EQ(header.substr(0, dict.size()), dict);
  EXPECT_EQ(header.back(), '\n');
  EXPECT_EQ(header.find_first_not_of(' ', dict.size()), header_len - 1);  // spaces, then '\n'
  EXPECT_EQ(header_len, 118u);  // 10 + 58 + 1 = 69, padded to 128

  const std::vector<float> m(10, 0.0f);
  write_npy_f32(path("m.npy"), m.data(), {2, 5});
  EXPECT_THAT(read_bytes(path("m.npy")),
              HasSubstr("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 5), }"));
}

TEST_F(Npy, ReadsFloat64) {
  const double values[2] = {0.25, -1.5e10};
  const std::string data(reinterpret_cast<const char*>(values), sizeof(values));
  write_bytes(path("d.npy"),
              npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", data));
  const NpyArray a = read_npy_f32(path("d.npy"));
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(a.data, (std::vector<float>{0.25f, -1.5e10f}));
}

TEST_F(Npy, AcceptsOtherKeyOrderAndQuotes) {
  const float one = 1.0f;
  const std::string data(reinterpret_cast<const char*>(&one), sizeof(one));
  write_bytes(path("o.npy"),
              npy_bytes("{\"shape\": (1, ), \"fortran_order\": False, \"descr\": \"<f4\"}", data));
  const NpyArray a = read_npy_f32(path("o.npy"));
  EXPECT_EQ(a.shape, (std::vector<int64_t>{1}));
  EXPECT_EQ(a.data, std::vector<float>{1.0f});
}

TEST_F(Npy, BadFilesNameTheFile) {
  const std::vector<float> v = {1.0f, 2.0f, 3.0f};
  const std::string four_floats(16, '\0');

  expect_read_error(path("missing.npy"), "cannot open");

  write_bytes(path("magic.npy"), "\x93NUMPX\x01\x00" + std::string(100, ' '));
  expect_read_error(path("magic.npy"), "bad magic");

  write_bytes(path("short.npy"), "\x93NU");
  expect_read_error(path("short.npy"), "too short");

  write_npy_f32(path("trunc.npy"), v.data(), {3});
  fs::resize_file(path("trunc.npy"), fs::file_size(path("trunc.npy")) - 4);
  expect_read_error(path("trunc.npy"), "truncated");

  write_npy_f32(path("long.npy"), v.data(), {3});
  std::ofstream(path("long.npy"), std::ios::binary | std::ios::app) << "xxxx";
  expect_read_error(path("long.npy"), "trailing bytes");

  write_bytes(path("fortran.npy"),
              npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", four_floats));
  expect_read_error(path("fortran.npy"), "Fortran");

  write_bytes(path("int.npy"),
              npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }", four_floats));
  expect_read_error(path("int.npy"), "unsupported dtype '<i4'");

  write_bytes(path("nokey.npy"), npy_bytes("{'descr': '<f4', 'shape': (4,), }", four_floats));
  expect_read_error(path("nokey.npy"), "'fortran_order'");

  write_bytes(path("garbage.npy"),
              npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4,", four_floats));
  expect_read_error(path("garbage.npy"), "malformed header");

  // A header length pointing past the end of the file.
  std::string big = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", "");
  big[9] = char(0x7f);
  write_bytes(path("hlen.npy"), big);
  expect_read_error(path("hlen.npy"), "truncated header");

  // A shape far larger than the file must be refused before anything is allocated.
  const std::string huge_dict =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (4000000000, 4000000000), }";
  write_bytes(path("huge.npy"), npy_bytes(huge_dict, four_floats));
  expect_read_error(path("huge.npy"), "too many elements");
}

TEST_F(Npy, WriteErrorsNameTheFile) {
  const float x = 1.0f;
  const std::string bad = path("no_such_dir/x.npy");
  try {
    write_npy_f32(bad, &x, {1});
    ADD_FAILURE() << "write into a missing folder succeeded";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(bad));
  }
  try {
    write_npy_f32(path("neg.npy"), &x, {-1});
    ADD_FAILURE() << "negative dimension accepted";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("negative dimension"));
  }
}

}  // namespace
}  // namespace vkssm

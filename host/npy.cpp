// NumPy .npy reading and writing, enough for test fixtures and dumps: little-endian float arrays
// in C order. The format: magic "\x93NUMPY", version bytes, a little-endian header length, then a
// Python dict literal {'descr': ..., 'fortran_order': ..., 'shape': (...), } padded with spaces
// and a final '\n' so the data starts at a multiple of 64 bytes, then the raw data.
#include "host/npy.h"

#include <bit>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "host/error.h"

namespace vkssm {

// The data is written and read as the host's own bytes.
static_assert(std::endian::native == std::endian::little, "npy I/O assumes a little-endian host");

namespace {

constexpr char kMagic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};
constexpr size_t kAlign = 64;  // what NumPy >= 1.14 pads the header to

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error("npy file '" + path + "': " + what);
}

// Product of the dims, refusing negative dims and counts that would not fit in memory anyway.
uint64_t element_count(const std::vector<int64_t>& shape, const std::string& path) {
  uint64_t count = 1;
  for (int64_t dim : shape) {
    if (dim < 0) fail(path, "negative dimension " + std::to_string(dim) + " in shape");
    if (dim != 0 && count > (uint64_t(1) << 60) / uint64_t(dim)) {
      fail(path, "shape has too many elements");
    }
    count *= uint64_t(dim);
  }
  return count;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";  // a Python 1-tuple needs its comma
  return s + ")";
}

// Parser for the header's dict literal. Accepts what NumPy writes (and a little more whitespace
// and quoting freedom), nothing else.
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& path) : s_(text), path_(path) {}

  void parse(std::string& descr, bool& fortran_order, std::vector<int64_t>& shape) {
    bool seen_descr = false, seen_fortran = false, seen_shape = false;
    expect('{');
    while (true) {
      skip_ws();
      if (peek() == '}') break;
      const std::string key = parse_string();
      expect(':');
      if (key == "descr" && !seen_descr) {
        descr = parse_string();
        seen_descr = true;
      } else if (key == "fortran_order" && !seen_fortran) {
        fortran_order = parse_bool();
        seen_fortran = true;
      } else if (key == "shape" && !seen_shape) {
        shape = parse_shape();
        seen_shape = true;
      } else {
        fail(path_, "unexpected or repeated header key '" + key + "'");
      }
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != '}') error("expected ',' or '}'");
    }
    ++pos_;  // the '}'
    skip_ws();
    if (pos_ != s_.size()) error("unexpected text after the header dict");
    if (!seen_descr || !seen_fortran || !seen_shape) {
      fail(path_, "header must have the keys 'descr', 'fortran_order' and 'shape'");
    }
  }

 private:
  [[noreturn]] void error(const std::string& what) {
    fail(path_, "malformed header (" + what + " at offset " + std::to_string(pos_) + ")");
  }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t')) ++pos_;
  }
  void expect(char c) {
    skip_ws();
    if (peek() != c) error(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string parse_string() {
    skip_ws();
    const char quote = peek();
    if (quote != '\'' && quote != '"') error("expected a quoted string");
    const size_t end = s_.find(quote, pos_ + 1);
    if (end == std::string::npos) error("unterminated string");
    std::string out = s_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end + 1;
    return out;
  }
  bool parse_bool() {
    skip_ws();
    if (s_.compare(pos_, 4, "True") == 0) {
      pos_ += 4;
      return true;
    }
    if (s_.compare(pos_, 5, "False") == 0) {
      pos_ += 5;
      return false;
    }
    error("expected True or False");
  }
  std::vector<int64_t> parse_shape() {
    std::vector<int64_t> shape;
    expect('(');
    while (true) {
      skip_ws();
      if (peek() == ')') break;
      if (peek() < '0' || peek() > '9') error("expected a non-negative integer dimension");
      int64_t dim = 0;
      while (peek() >= '0' && peek() <= '9') {
        if (dim > (std::numeric_limits<int64_t>::max() - 9) / 10) error("dimension too large");
        dim = dim * 10 + (peek() - '0');
        ++pos_;
      }
      shape.push_back(dim);
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != ')') error("expected ',' or ')' in shape");
    }
    ++pos_;  // the ')'
    return shape;
  }

  const std::string& s_;
  const std::string& path_;
  size_t pos_ = 0;
};

}  // namespace

void write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  const uint64_t count = element_count(shape, path);
  if (count > 0 && data == nullptr) fail(path, "no data given for a non-empty array");

  std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_text(shape) + ", }";
  // Pad with spaces so that magic (6) + version (2) + length (2) + header ends on the alignment,
  // the last byte being '\n' as NumPy writes it.
  const size_t prefix = sizeof(kMagic) + 2 + 2;
  const size_t unpadded = prefix + header.size() + 1;
  header.append((kAlign - unpadded % kAlign) % kAlign, ' ');
  header += '\n';
  if (header.size() > 0xffff) fail(path, "header too long for format version 1.0");

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail(path, "cannot open for writing");
  const char version[2] = {1, 0};
  const char len[2] = {char(header.size() & 0xff), char(header.size() >> 8)};
  out.write(kMagic, sizeof(kMagic));
  out.write(version, 2);
  out.write(len, 2);
  out.write(header.data(), std::streamsize(header.size()));
  if (count > 0) {
    out.write(reinterpret_cast<const char*>(data), std::streamsize(count * sizeof(float)));
  }
  out.close();
  if (!out) fail(path, "write failed");
}

NpyArray read_npy_f32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open for reading");
  in.seekg(0, std::ios::end);
  const std::streamoff file_size_signed = in.tellg();
  if (file_size_signed < 0) fail(path, "cannot determine the file size");
  const uint64_t file_size = uint64_t(file_size_signed);
  in.seekg(0, std::ios::beg);

  // Magic, version, then the header length: 2 bytes in version 1, 4 bytes in versions 2 and 3.
  unsigned char prefix[12] = {};
  if (file_size < 10 || !in.read(reinterpret_cast<char*>(prefix), 10)) {
    fail(path, "too short to be a .npy file");
  }
  if (std::memcmp(prefix, kMagic, sizeof(kMagic)) != 0) fail(path, "bad magic (not a .npy file)");
  const int major = prefix[6], minor = prefix[7];
  if ((major != 1 && major != 2 && major != 3) || minor != 0) {
    fail(path, "unsupported format version " + std::to_string(major) + "." + std::to_string(minor));
  }
  uint64_t header_len = 0;
  size_t prefix_len = 10;
  if (major == 1) {
    header_len = uint64_t(prefix[8]) | uint64_t(prefix[9]) << 8;
  } else {
    if (file_size < 12 || !in.read(reinterpret_cast<char*>(prefix + 10), 2)) {
      fail(path, "truncated header");
    }
    header_len = uint64_t(prefix[8]) | uint64_t(prefix[9]) << 8 | uint64_t(prefix[10]) << 16 |
                 uint64_t(prefix[11]) << 24;
    prefix_len = 12;
  }
  if (header_len > file_size - prefix_len) fail(path, "truncated header");

  std::string header(header_len, '\0');
  if (!in.read(header.data(), std::streamsize(header_len))) fail(path, "truncated header");
  std::string descr;
  bool fortran_order = false;
  NpyArray arr;
  HeaderParser(header, path).parse(descr, fortran_order, arr.shape);

  size_t elem_size = 0;
  if (descr == "<f4") {
    elem_size = 4;
  } else if (descr == "<f8") {
    elem_size = 8;
  } else {
    fail(path, "unsupported dtype '" + descr + "' (only '<f4' and '<f8' are read)");
  }
  if (fortran_order) fail(path, "Fortran-order arrays are not supported");

  // The size check comes before any allocation, so a lying shape cannot exhaust memory.
  const uint64_t count = element_count(arr.shape, path);
  const uint64_t data_bytes = file_size - prefix_len - header_len;
  if (data_bytes != count * elem_size) {
    fail(path, "data is " + std::to_string(data_bytes) + " bytes, shape " +
                   shape_text(arr.shape) + " of '" + descr + "' needs " +
                   std::to_string(count * elem_size) +
                   (data_bytes < count * elem_size ? " (truncated file)" : " (trailing bytes)"));
  }

  arr.data.resize(count);
  if (count == 0) return arr;
  if (elem_size == 4) {
    if (!in.read(reinterpret_cast<char*>(arr.data.data()), std::streamsize(data_bytes))) {
      fail(path, "read failed");
    }
  } else {
    std::vector<double> wide(count);
    if (!in.read(reinterpret_cast<char*>(wide.data()), std::streamsize(data_bytes))) {
      fail(path, "read failed");
    }
    for (uint64_t i = 0; i < count; ++i) arr.data[i] = float(wide[i]);
  }
  return arr;
}

}  // namespace vkssm

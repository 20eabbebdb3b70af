// Encoding, validation and file I/O of state blobs (format in host/state_file.h).
#include "host/state_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>

#include "host/error.h"

namespace vkssm {
namespace {

constexpr char kMagic[8] = {'V', 'K', 'S', 'S', 'M', 'S', 'T', '\0'};

[[noreturn]] void fail(const std::string& msg) { throw Error("state: " + msg); }

std::string shape_text(const std::vector<uint64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// Appends to a buffer sized up front (one allocation; and vector::insert of a few bytes trips a
// GCC 12 -Wstringop-overflow false positive).
class Writer {
 public:
  explicit Writer(size_t total) : out_(total) {}
  void bytes(const void* p, size_t n) {
    if (n) std::memcpy(out_.data() + at_, p, n);
    at_ += n;
  }
  void u32(uint32_t v) { bytes(&v, 4); }
  void u64(uint64_t v) { bytes(&v, 8); }
  size_t at() const { return at_; }
  std::vector<uint8_t>& out() { return out_; }

 private:
  std::vector<uint8_t> out_;
  size_t at_ = 0;
};

// A bounds-checked cursor over untrusted bytes: every read checks what is left first.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), left_(size) {}
  void bytes(void* dst, size_t n, const char* what) {
    if (n > left_) fail(std::string("truncated in the header (") + what + ")");
    std::memcpy(dst, p_, n);
    p_ += n;
    left_ -= n;
  }
  uint32_t u32(const char* what) {
    uint32_t v;
    bytes(&v, 4, what);
    return v;
  }
  uint64_t u64(const char* what) {
    uint64_t v;
    bytes(&v, 8, what);
    return v;
  }
  size_t left() const { return left_; }

 private:
  const uint8_t* p_;
  size_t left_;
};

}  // namespace

uint64_t fnv1a64(const void* data, size_t bytes, uint64_t h) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

std::vector<uint8_t> encode_state(const StateHeader& header, const float* payload, size_t n) {
  const size_t header_bytes = 8 + 4 + 4 + 8 + 4 + header.architecture.size() + 4 + 8 * header.shape.size() + 8;
  Writer w(header_bytes + n * 4 + 8);
  w.bytes(kMagic, 8);
  w.u32(kStateFormatVersion);
  w.u32(uint32_t(header_bytes));
  w.u64(header.fingerprint);
  w.u32(uint32_t(header.architecture.size()));
  w.bytes(header.architecture.data(), header.architecture.size());
  w.u32(uint32_t(header.shape.size()));
  for (uint64_t d : header.shape) w.u64(d);
  w.u64(uint64_t(n) * 4);
  w.bytes(payload, n * 4);
  w.u64(fnv1a64(w.out().data(), w.at()));
  return std::move(w.out());
}

std::vector<float> decode_state(const uint8_t* data, size_t size, const StateHeader& expected) {
  Reader r(data, size);
  if (size < 16) fail("only " + std::to_string(size) + " bytes: too small to be a vkssm state");
  char magic[8];
  r.bytes(magic, 8, "magic");
  if (std::memcmp(magic, kMagic, 8) != 0) fail("not a vkssm state (bad magic)");
  const uint32_t version = r.u32("version");
  if (version != kStateFormatVersion)
    fail("format version " + std::to_string(version) + " is not supported (this vkssm reads version " +
         std::to_string(kStateFormatVersion) + ")");
  const uint32_t header_bytes = r.u32("header bytes");
  const uint64_t fingerprint = r.u64("fingerprint");
  const uint32_t arch_len = r.u32("architecture length");
  if (arch_len > r.left()) fail("truncated in the header (architecture)");
  std::string arch(arch_len, '\0');
  r.bytes(arch.data(), arch_len, "architecture");
  const uint32_t ndims = r.u32("shape rank");
  if (uint64_t(ndims) * 8 > r.left()) fail("truncated in the header (shape)");
  std::vector<uint64_t> shape(ndims);
  for (uint64_t& d : shape) d = r.u64("shape");
  const uint64_t payload_bytes = r.u64("payload bytes");
  const size_t parsed = size - r.left();
  if (header_bytes != parsed)
    fail("header says " + std::to_string(header_bytes) + " header bytes, found " + std::to_string(parsed));
  // Sizes before the checksum: a cut-off file says "truncated", not just "corrupt".
  if (payload_bytes > r.left() || r.left() - payload_bytes < 8)
    fail("truncated: " + std::to_string(size) + " bytes, the header announces " + std::to_string(payload_bytes) +
         " payload bytes plus an 8-byte checksum after " + std::to_string(parsed) + " header bytes");
  if (r.left() - payload_bytes > 8)
    fail(std::to_string(r.left() - payload_bytes - 8) + " unexpected bytes after the checksum");
  uint64_t stored_sum;
  std::memcpy(&stored_sum, data + size - 8, 8);
  if (fnv1a64(data, size - 8) != stored_sum) fail("checksum mismatch: the data is corrupt");

  if (fingerprint != expected.fingerprint)
    fail("saved from a different model (fingerprint " + std::to_string(fingerprint) + ", this model " +
         std::to_string(expected.fingerprint) + ")");
  if (arch != expected.architecture)
    fail("saved for architecture '" + arch + "', the model is '" + expected.architecture + "'");
  if (shape != expected.shape)
    fail("shape " + shape_text(shape) + " does not match the model's " + shape_text(expected.shape));
  if (payload_bytes != expected.payload_floats * 4)
    fail("payload of " + std::to_string(payload_bytes) + " bytes, the model's state has " +
         std::to_string(expected.payload_floats * 4));
  std::vector<float> payload(payload_bytes / 4);
  std::memcpy(payload.data(), data + parsed, payload_bytes);
  return payload;
}

void save_state_file(const std::string& path, const std::vector<uint8_t>& blob) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw Error("cannot write state file '" + path + "': " + std::strerror(errno));
  f.write(reinterpret_cast<const char*>(blob.data()), std::streamsize(blob.size()));
  f.close();
  if (!f) throw Error("cannot write state file '" + path + "': write failed");
}

std::vector<uint8_t> load_state_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw Error("cannot open state file '" + path + "': " + std::strerror(errno));
  const std::streamoff size = f.tellg();
  if (size < 0) throw Error("cannot read state file '" + path + "'");
  std::vector<uint8_t> blob(static_cast<size_t>(size));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(blob.data()), size);
  if (!f) throw Error("cannot read state file '" + path + "': read failed");
  return blob;
}

}  // namespace vkssm

// safetensors reading (memory-mapped, fully validated before use) and writing.
//
// A checkpoint file comes from outside, so nothing in its header is trusted: every number is
// range-checked against the file before a pointer into the mapping is handed out, and all size
// arithmetic is overflow-checked. The format: u64 little-endian header length, the JSON header,
// then the data section that the header's data_offsets index into.
#include "host/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "host/error.h"

namespace vkssm {

namespace {

// The reference implementation refuses headers above 100 MB; a real one is a few hundred KB.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error("safetensors file " + path + ": " + what);
}

bool parse_dtype(const std::string& s, DType* out) {
  if (s == "F32") { *out = DType::F32; return true; }
  if (s == "F16") { *out = DType::F16; return true; }
  if (s == "BF16") { *out = DType::BF16; return true; }
  return false;
}

// A JSON value as a non-negative integer that fits in uint64, or false.
bool as_u64(const nlohmann::json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if (i < 0) return false;
    *out = uint64_t(i);
    return true;
  }
  return false;
}

// A JSON value for an error message. Only flat values are printed: dump() recurses, and a
// hostile header could nest arrays deep enough to overflow the stack.
std::string describe(const nlohmann::json& v) {
  if (v.is_primitive()) return v.dump();
  if (v.is_array() && v.size() <= 16) {
    bool flat = true;
    for (const auto& x : v) flat = flat && x.is_primitive();
    if (flat) return v.dump();
  }
  return std::string("(") + v.type_name() + ")";
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Parses and checks one header entry. `data_size` is the byte length of the data section.
TensorInfo parse_entry(const std::string& path, const std::string& name, const nlohmann::json& e,
                       const uint8_t* data_section, uint64_t data_size) {
  const std::string where = "tensor " + name + " in " + path;
  if (!e.is_object()) throw Error(where + ": header entry is not a JSON object");
  if (!e.contains("dtype") || !e["dtype"].is_string())
    throw Error(where + ": missing or non-string \"dtype\"");
  if (!e.contains("shape") || !e["shape"].is_array())
    throw Error(where + ": missing or non-array \"shape\"");
  if (!e.contains("data_offsets") || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2)
    throw Error(where + ": \"data_offsets\" must be an array [begin, end]");

  TensorInfo t;
  t.name = name;
  t.file = path;
  const std::string dtype = e["dtype"].get<std::string>();
  if (!parse_dtype(dtype, &t.dtype))
    throw Error("unsupported dtype " + dtype + " for " + where + " (vkssm reads F32, F16, BF16)");

  // numel * element size, refusing anything that does not fit in 63 bits.
  uint64_t nbytes = dtype_size(t.dtype);
  for (const auto& d : e["shape"]) {
    uint64_t dim;
    if (!as_u64(d, &dim) || dim > uint64_t(std::numeric_limits<int64_t>::max()))
      throw Error(where + ": shape " + describe(d) + " entry is not a non-negative integer");
    t.shape.push_back(int64_t(dim));
    if (dim != 0 && nbytes > uint64_t(std::numeric_limits<int64_t>::max()) / dim)
      throw Error(where + ": shape " + describe(e["shape"]) + " is too large");
    nbytes *= dim;
  }
  // A zero dimension makes the whole tensor empty even after an "overflowing" prefix.
  for (int64_t d : t.shape)
    if (d == 0) nbytes = 0;

  uint64_t begin, end;
  if (!as_u64(e["data_offsets"][0], &begin) || !as_u64(e["data_offsets"][1], &end))
    throw Error(where + ": data_offsets " + describe(e["data_offsets"]) +
                " must be non-negative integers");
  if (begin > end)
    throw Error(where + ": data_offsets " + describe(e["data_offsets"]) + " has begin > end");
  if (end > data_size)
    throw Error(where + ": data_offsets " + describe(e["data_offsets"]) +
                " run past the end of the data section (" + std::to_string(data_size) +
                " bytes; file truncated?)");
  if (end - begin != nbytes)
    throw Error(where + ": shape " + shape_string(t.shape) + " of " + dtype + " needs " +
                std::to_string(nbytes) + " bytes but data_offsets " + describe(e["data_offsets"]) +
                " hold " + std::to_string(end - begin));
  t.data = data_section + begin;
  t.nbytes = size_t(nbytes);
  return t;
}

}  // namespace

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  // Built first so that its destructor unmaps the file whatever check below throws.
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;

  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    fail(path, std::string("cannot stat: ") + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  const uint64_t file_size = uint64_t(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    fail(path, "file is " + std::to_string(file_size) +
                   " bytes, too short to hold the 8-byte header length");
  }
  void* map = ::mmap(nullptr, size_t(file_size), PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (map == MAP_FAILED) fail(path, std::string("cannot mmap: ") + std::strerror(map_err));
  f->map_ = map;
  f->map_size_ = size_t(file_size);
  const uint8_t* bytes = static_cast<const uint8_t*>(map);

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];  // little-endian
  if (header_len > file_size - 8)
    fail(path, "header length " + std::to_string(header_len) + " exceeds the file size " +
                   std::to_string(file_size) + " (truncated or not a safetensors file)");
  if (header_len > kMaxHeaderBytes)
    fail(path, "header length " + std::to_string(header_len) + " exceeds the limit of " +
                   std::to_string(kMaxHeaderBytes) + " bytes");

  const char* header_begin = reinterpret_cast<const char*>(bytes + 8);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_begin, header_begin + header_len);
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(path, "header is not a JSON object");

  const uint8_t* data_section = bytes + 8 + header_len;
  const uint64_t data_size = file_size - 8 - header_len;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) fail(path, "__metadata__ is not a JSON object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) fail(path, "__metadata__ value for \"" + mk + "\" is not a string");
        f->metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    f->tensors_.push_back(parse_entry(path, key, value, data_section, data_size));
  }

  // No two tensors may share bytes: sorted by start, each must begin at or after the previous end.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : f->tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->data < b->data; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo* prev = by_offset[i - 1];
    const TensorInfo* cur = by_offset[i];
    if (cur->nbytes != 0 && prev->data + prev->nbytes > cur->data)
      fail(path, "tensors " + prev->name + " and " + cur->name + " have overlapping data_offsets");
  }

  // Sorted by name for find(). (nlohmann's object keeps keys sorted, but do not rely on it.)
  std::sort(f->tensors_.begin(), f->tensors_.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const TensorInfo& t, const std::string& n) { return t.name < n; });
  return (it != tensors_.end() && it->name == name) ? &*it : nullptr;
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::set<std::string> names;
  for (const auto& t : tensors) {
    if (t.name == "__metadata__" || !names.insert(t.name).second)
      throw Error("write_safetensors " + path + ": duplicate or reserved tensor name " + t.name);
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) throw Error("write_safetensors " + path + ": negative dimension in " + t.name);
      numel *= uint64_t(d);
    }
    if (t.bytes.size() != numel * dtype_size(t.dtype))
      throw Error("write_safetensors " + path + ": tensor " + t.name + " has " +
                  std::to_string(t.bytes.size()) + " bytes, its shape " + shape_string(t.shape) +
                  " of " + dtype_name(t.dtype) + " needs " +
                  std::to_string(numel * dtype_size(t.dtype)));
    header[t.name] = {{"dtype", dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string text = header.dump();
  // Pad with spaces so the data section starts 8-byte aligned (as the reference writer does).
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error("write_safetensors: cannot create " + path);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(text.data(), std::streamsize(text.size()));
  for (const auto& t : tensors)
    out.write(reinterpret_cast<const char*>(t.bytes.data()), std::streamsize(t.bytes.size()));
  out.close();
  if (!out) throw Error("write_safetensors: error writing " + path);
}

namespace {
// fp32 -> bf16, round to nearest even; NaN stays a (quiet) NaN instead of rounding into inf.
uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
}  // namespace

TensorToWrite make_tensor(const std::string& name, const std::vector<int64_t>& shape,
                          const std::vector<float>& values, DType dtype) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  if (numel < 0 || size_t(numel) != values.size())
    throw Error("make_tensor " + name + ": shape " + shape_string(shape) + " holds " +
                std::to_string(numel) + " values, got " + std::to_string(values.size()));
  TensorToWrite t;
  t.name = name;
  t.dtype = dtype;
  t.shape = shape;
  t.bytes.resize(values.size() * dtype_size(dtype));
  uint8_t* out = t.bytes.data();
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::F32) {
      std::memcpy(out + 4 * i, &values[i], 4);
    } else {
      uint16_t h = dtype == DType::F16 ? float_to_half(values[i]) : float_to_bf16(values[i]);
      std::memcpy(out + 2 * i, &h, 2);
    }
  }
  return t;
}

}  // namespace vkssm

// GGUF reading: the whole file is parsed and checked in open(), so every pointer handed out later
// lies inside the mapping. All size arithmetic is overflow-checked: counts and lengths come from
// the file and may be anything.
#include "host/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "host/dtype.h"
#include "host/error.h"
#include "host/quant.h"

namespace vkssm {

namespace {

struct TypeTraits {
  const char* name;  // nullptr: an id ggml retired or never used
  uint32_t block;    // elements per block
  uint32_t size;     // bytes per block
};

// ggml's types by id (gguf-py's GGML_QUANT_SIZES). Sizes of types vkssm cannot read still matter:
// they let a file that holds such a tensor be validated and its error name the type.
constexpr TypeTraits kTypes[] = {
    {"F32", 1, 4},         {"F16", 1, 2},       {"Q4_0", 32, 18},    {"Q4_1", 32, 20},
    {nullptr, 0, 0},       {nullptr, 0, 0},     {"Q5_0", 32, 22},    {"Q5_1", 32, 24},
    {"Q8_0", 32, 34},      {"Q8_1", 32, 36},    {"Q2_K", 256, 84},   {"Q3_K", 256, 110},
    {"Q4_K", 256, 144},    {"Q5_K", 256, 176},  {"Q6_K", 256, 210},  {"Q8_K", 256, 292},
    {"IQ2_XXS", 256, 66},  {"IQ2_XS", 256, 74}, {"IQ3_XXS", 256, 98}, {"IQ1_S", 256, 50},
    {"IQ4_NL", 32, 18},    {"IQ3_S", 256, 110}, {"IQ2_S", 256, 82},  {"IQ4_XS", 256, 136},
    {"I8", 1, 1},          {"I16", 1, 2},       {"I32", 1, 4},       {"I64", 1, 8},
    {"F64", 1, 8},         {"IQ1_M", 256, 56},  {"BF16", 1, 2},      {nullptr, 0, 0},
    {nullptr, 0, 0},       {nullptr, 0, 0},     {"TQ1_0", 256, 54},  {"TQ2_0", 256, 66},
    {nullptr, 0, 0},       {nullptr, 0, 0},     {nullptr, 0, 0},     {"MXFP4", 32, 17},
};
constexpr uint32_t kTypeCount = sizeof(kTypes) / sizeof(kTypes[0]);

const TypeTraits* type_traits(uint32_t type) {
  return (type < kTypeCount && kTypes[type].name) ? &kTypes[type] : nullptr;
}

constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS

size_t scalar_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::BOOL: return 1;
    case GgufValueType::UINT16: case GgufValueType::INT16: return 2;
    case GgufValueType::UINT32: case GgufValueType::INT32: case GgufValueType::FLOAT32: return 4;
    case GgufValueType::UINT64: case GgufValueType::INT64: case GgufValueType::FLOAT64: return 8;
    default: return 0;  // STRING, ARRAY: not fixed-size
  }
}

bool is_integer(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: case GgufValueType::INT8: case GgufValueType::UINT16:
    case GgufValueType::INT16: case GgufValueType::UINT32: case GgufValueType::INT32:
    case GgufValueType::UINT64: case GgufValueType::INT64: return true;
    default: return false;
  }
}

uint64_t load_le(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = n; i-- > 0;) v = (v << 8) | p[i];
  return v;
}

// Decodes one fixed-size little-endian scalar of type t into the value's i / u / f fields.
void decode_scalar(GgufValueType t, const uint8_t* p, GgufValue* v) {
  const uint64_t raw = load_le(p, scalar_size(t));
  switch (t) {
    case GgufValueType::INT8: v->i = int8_t(raw); break;
    case GgufValueType::INT16: v->i = int16_t(raw); break;
    case GgufValueType::INT32: v->i = int32_t(raw); break;
    case GgufValueType::INT64: v->i = int64_t(raw); break;
    case GgufValueType::FLOAT32: {
      const uint32_t r32 = uint32_t(raw);
      float f;
      std::memcpy(&f, &r32, 4);
      v->f = f;
      break;
    }
    case GgufValueType::FLOAT64: std::memcpy(&v->f, &raw, 8); break;
    default: v->u = raw; break;  // unsigned types and BOOL
  }
}

// A bounds-checked cursor over the mapping. `where` names what is being read, for the message
// when the file ends early.
class Cursor {
 public:
  Cursor(const std::string& path, const uint8_t* bytes, uint64_t size)
      : path_(path), bytes_(bytes), size_(size) {}

  std::string where;

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  const uint8_t* here() const { return bytes_ + pos_; }

  void need(uint64_t n) const {
    if (n > remaining())
      throw Error("GGUF file " + path_ + " is truncated: it ends inside " + where + " (" +
                  std::to_string(n) + " more bytes needed at offset " + std::to_string(pos_) +
                  ", " + std::to_string(remaining()) + " left)");
  }
  const uint8_t* take(uint64_t n) {
    need(n);
    const uint8_t* p = here();
    pos_ += n;
    return p;
  }
  uint32_t u32() { return uint32_t(load_le(take(4), 4)); }
  uint64_t u64() { return load_le(take(8), 8); }
  std::string str() {
    const uint64_t n = u64();
    const uint8_t* p = take(n);
    return std::string(reinterpret_cast<const char*>(p), size_t(n));
  }

 private:
  const std::string& path_;
  const uint8_t* bytes_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

std::string hex32(uint32_t v) {
  static const char* digits = "0123456789abcdef";
  std::string s = "0x";
  for (int i = 7; i >= 0; --i) s += digits[(v >> (4 * i)) & 0xf];
  return s;
}

std::string dims_string(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

[[noreturn]] void fail_in(const std::string& file, const std::string& what) {
  throw Error(file + ": " + what);
}

float f16_at(const uint8_t* p) { return half_to_float(uint16_t(p[0] | (p[1] << 8))); }

}  // namespace

const char* gguf_value_type_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: return "UINT8";
    case GgufValueType::INT8: return "INT8";
    case GgufValueType::UINT16: return "UINT16";
    case GgufValueType::INT16: return "INT16";
    case GgufValueType::UINT32: return "UINT32";
    case GgufValueType::INT32: return "INT32";
    case GgufValueType::FLOAT32: return "FLOAT32";
    case GgufValueType::BOOL: return "BOOL";
    case GgufValueType::STRING: return "STRING";
    case GgufValueType::ARRAY: return "ARRAY";
    case GgufValueType::UINT64: return "UINT64";
    case GgufValueType::INT64: return "INT64";
    case GgufValueType::FLOAT64: return "FLOAT64";
  }
  return "?";
}

std::string ggml_type_name(uint32_t type) {
  const TypeTraits* t = type_traits(type);
  return t ? t->name : "type " + std::to_string(type);
}

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  const std::string file = "GGUF file " + path;

  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open GGUF file " + path + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path + " is not a regular file");
  }
  const uint64_t file_size = uint64_t(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    throw Error(file + " is truncated: it ends inside the header (" + std::to_string(file_size) +
                " bytes; the magic and version alone take 8)");
  }
  void* map = ::mmap(nullptr, size_t(file_size), PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (map == MAP_FAILED) throw Error("cannot mmap GGUF file " + path + ": " + std::strerror(map_err));
  f->map_ = map;
  f->map_size_ = size_t(file_size);
  const uint8_t* bytes = static_cast<const uint8_t*>(map);

  Cursor c(path, bytes, file_size);
  c.where = "the header";
  const uint8_t* magic = c.take(4);
  if (std::memcmp(magic, "GGUF", 4) != 0) {
    std::string shown;
    for (int i = 0; i < 4; ++i) shown += std::string(i ? " " : "") + "0x" + hex32(magic[i]).substr(8);
    throw Error(path + " is not a GGUF file: it starts with bytes " + shown + ", not \"GGUF\"");
  }
  f->version_ = c.u32();
  if (f->version_ != 2 && f->version_ != 3) {
    const uint32_t swapped = __builtin_bswap32(f->version_);
    if (swapped == 2 || swapped == 3)
      fail_in(file, "big-endian GGUF (version field " + hex32(f->version_) +
           "); vkssm reads little-endian files only");
    fail_in(file, "GGUF version " + std::to_string(f->version_) + " is not supported (vkssm reads versions 2 and 3)");
  }
  const uint64_t n_tensors = c.u64();
  const uint64_t n_kv = c.u64();

  // Counts are not trusted: containers are reserved only as far as the bytes left could fill
  // them, so a huge count ends in a truncation error instead of a huge allocation.
  constexpr uint64_t kMinKvBytes = 8 + 4 + 1;                  // empty key, type, 1-byte value
  constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // empty name, 1 dim, type, offset

  // ---- metadata ----
  f->kv_.reserve(size_t(std::min(n_kv, c.remaining() / kMinKvBytes)));
  for (uint64_t k = 0; k < n_kv; ++k) {
    const std::string entry = "metadata entry " + std::to_string(k) + " of " + std::to_string(n_kv);
    c.where = entry;
    std::string key = c.str();
    c.where = entry + " (key '" + key + "')";
    const std::string key_at = "metadata key '" + key + "'";
    GgufValue v;
    const uint32_t type = c.u32();
    if (type > uint32_t(GgufValueType::FLOAT64))
      fail_in(file, key_at + " has unknown value type " + std::to_string(type));
    v.type = GgufValueType(type);
    if (v.type == GgufValueType::STRING) {
      v.str = c.str();
    } else if (v.type == GgufValueType::ARRAY) {
      const uint32_t elem = c.u32();
      if (elem > uint32_t(GgufValueType::FLOAT64))
        fail_in(file, key_at + " is an array of unknown value type " + std::to_string(elem));
      v.elem_type = GgufValueType(elem);
      if (v.elem_type == GgufValueType::ARRAY) fail_in(file, key_at + " is an array of arrays, which vkssm does not read");
      v.count = c.u64();
      if (v.elem_type == GgufValueType::STRING) {
        v.strings.reserve(size_t(std::min(v.count, c.remaining() / 8)));  // 8-byte length each
        for (uint64_t i = 0; i < v.count; ++i) v.strings.push_back(c.str());
      } else {
        const uint64_t es = scalar_size(v.elem_type);
        const uint64_t n = v.count > std::numeric_limits<uint64_t>::max() / es
                               ? std::numeric_limits<uint64_t>::max() : v.count * es;
        v.array_data = c.take(n);
      }
    } else {
      decode_scalar(v.type, c.take(scalar_size(v.type)), &v);
    }
    if (!f->kv_index_.emplace(key, f->kv_.size()).second) fail_in(file, key_at + " appears twice");
    f->kv_.emplace_back(std::move(key), std::move(v));
  }

  if (const GgufValue* a = f->find("general.alignment")) {
    if (a->type != GgufValueType::UINT32) f->wrong_type("general.alignment", *a, "UINT32");
    if (a->u == 0 || (a->u & (a->u - 1)) != 0)
      fail_in(file, "general.alignment must be a power of two, got " + std::to_string(a->u));
    f->alignment_ = a->u;
  }

  // ---- tensor infos ----
  f->tensors_.reserve(size_t(std::min(n_tensors, c.remaining() / kMinTensorInfoBytes)));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    const std::string entry = "tensor info " + std::to_string(k) + " of " + std::to_string(n_tensors);
    c.where = entry;
    GgufTensor t;
    t.name = c.str();
    c.where = entry + " ('" + t.name + "')";
    const std::string tname = "tensor '" + t.name + "'";
    const uint32_t n_dims = c.u32();
    if (n_dims < 1 || n_dims > kMaxDims)
      fail_in(file, tname + " has " + std::to_string(n_dims) + " dimensions (expected 1 to " +
           std::to_string(kMaxDims) + ")");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = c.u64();
      if (ne == 0 || ne > uint64_t(std::numeric_limits<int64_t>::max()) ||
          numel > uint64_t(std::numeric_limits<int64_t>::max()) / ne)
        fail_in(file, tname + " has an invalid dimension " + std::to_string(ne) + " (dimension " +
             std::to_string(d) + ")");
      numel *= ne;
      t.ne.push_back(int64_t(ne));
    }
    t.type = c.u32();
    const TypeTraits* tt = type_traits(t.type);
    if (!tt) fail_in(file, tname + " has unknown ggml type " + std::to_string(t.type));
    if (uint64_t(t.ne[0]) % tt->block != 0)
      fail_in(file, tname + " has type " + tt->name + " but its row length " + std::to_string(t.ne[0]) +
           " is not a multiple of the block size " + std::to_string(tt->block));
    const uint64_t blocks = numel / tt->block;
    if (blocks > std::numeric_limits<uint64_t>::max() / tt->size)
      fail_in(file, tname + " of shape " + dims_string(t.ne) + " is too large");
    t.nbytes = blocks * tt->size;
    t.offset = c.u64();
    if (!f->tensor_index_.emplace(t.name, f->tensors_.size()).second) fail_in(file, tname + " appears twice");
    f->tensors_.push_back(std::move(t));
  }

  // ---- data section ----
  const uint64_t align = f->alignment_;
  const uint64_t data_start = c.pos() + (align - c.pos() % align) % align;
  for (GgufTensor& t : f->tensors_) {
    const std::string tname = "tensor '" + t.name + "'";
    if (t.offset % align != 0)
      fail_in(file, tname + " has data offset " + std::to_string(t.offset) +
           ", not a multiple of the alignment " + std::to_string(align));
    const uint64_t room = file_size > data_start ? file_size - data_start : 0;
    if (t.offset > room || t.nbytes > room - t.offset)
      fail_in(file, tname + " runs past the end of the file: its " + std::to_string(t.nbytes) +
           " bytes start at offset " + std::to_string(t.offset) + " of a data section of " +
           std::to_string(room) + " bytes");
    t.data = bytes + data_start + t.offset;
  }
  std::vector<const GgufTensor*> by_offset;
  for (const GgufTensor& t : f->tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensor* a, const GgufTensor* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensor* prev = by_offset[i - 1];
    const GgufTensor* cur = by_offset[i];
    if (prev->offset + prev->nbytes > cur->offset)
      fail_in(file, "tensors '" + prev->name + "' and '" + cur->name + "' overlap (bytes [" +
           std::to_string(prev->offset) + ", " + std::to_string(prev->offset + prev->nbytes) +
           ") and [" + std::to_string(cur->offset) + ", " + std::to_string(cur->offset + cur->nbytes) +
           ") of the data section)");
  }
  return f;
}

GgufFile::~GgufFile() {
  if (map_) ::munmap(map_, map_size_);
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufValue& GgufFile::require(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) throw Error("GGUF file " + path_ + " has no metadata key '" + key + "'");
  return *v;
}

void GgufFile::wrong_type(const std::string& key, const GgufValue& v, const char* expected) const {
  std::string got = gguf_value_type_name(v.type);
  if (v.type == GgufValueType::ARRAY) got += std::string(" of ") + gguf_value_type_name(v.elem_type);
  throw Error("metadata key '" + key + "' in GGUF file " + path_ + " has type " + got +
              ", expected " + expected);
}

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufValueType::STRING) wrong_type(key, v, "STRING");
  return v.str;
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue& v = require(key);
  if (!is_integer(v.type)) wrong_type(key, v, "an integer");
  const bool is_unsigned = v.type == GgufValueType::UINT8 || v.type == GgufValueType::UINT16 ||
                           v.type == GgufValueType::UINT32 || v.type == GgufValueType::UINT64;
  if (!is_unsigned) return v.i;
  if (v.u > uint64_t(std::numeric_limits<int64_t>::max()))
    throw Error("metadata key '" + key + "' in GGUF file " + path_ + " has value " +
                std::to_string(v.u) + ", too large");
  return int64_t(v.u);
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufValueType::FLOAT32 && v.type != GgufValueType::FLOAT64)
    wrong_type(key, v, "FLOAT32");
  return v.f;
}

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufValueType::BOOL) wrong_type(key, v, "BOOL");
  return v.u != 0;
}

const std::vector<std::string>& GgufFile::get_string_array(const std::string& key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufValueType::ARRAY || v.elem_type != GgufValueType::STRING)
    wrong_type(key, v, "ARRAY of STRING");
  return v.strings;
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue& v = require(key);
  if (v.type != GgufValueType::ARRAY || !is_integer(v.elem_type))
    wrong_type(key, v, "ARRAY of integers");
  const size_t es = scalar_size(v.elem_type);
  std::vector<int64_t> out(size_t(v.count));
  for (size_t i = 0; i < out.size(); ++i) {
    GgufValue e;
    decode_scalar(v.elem_type, v.array_data + i * es, &e);
    const bool is_unsigned = v.elem_type == GgufValueType::UINT8 || v.elem_type == GgufValueType::UINT16 ||
                             v.elem_type == GgufValueType::UINT32 || v.elem_type == GgufValueType::UINT64;
    if (is_unsigned && e.u > uint64_t(std::numeric_limits<int64_t>::max()))
      throw Error("metadata key '" + key + "' in GGUF file " + path_ + " has element " +
                  std::to_string(i) + " = " + std::to_string(e.u) + ", too large");
    out[i] = is_unsigned ? int64_t(e.u) : e.i;
  }
  return out;
}

bool GgufFile::can_read_type(uint32_t type) {
  using namespace ggml_type;
  return type == F32 || type == F16 || type == BF16 || is_quant_type(type);
}

std::vector<float> GgufFile::to_f32(const GgufTensor& t) const {
  using namespace ggml_type;
  if (!can_read_type(t.type))
    throw Error("tensor '" + t.name + "' in GGUF file " + path_ + " has ggml type " +
                ggml_type_name(t.type) +
                ", which vkssm cannot read (it reads F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, "
                "Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL)");
  const size_t n = size_t(t.numel());
  std::vector<float> out(n);
  const uint8_t* p = t.data;
  switch (t.type) {
    case F32:
      std::memcpy(out.data(), p, n * 4);
      break;
    case F16:
      for (size_t i = 0; i < n; ++i) out[i] = f16_at(p + 2 * i);
      break;
    case BF16:
      for (size_t i = 0; i < n; ++i) out[i] = bf16_to_float(uint16_t(p[2 * i] | (p[2 * i + 1] << 8)));
      break;
    default:  // a block format; open() checked that the row length is a multiple of its block
      dequantize_row(QuantType(t.type), p, out.data(), n);
      break;
  }
  return out;
}

}  // namespace vkssm

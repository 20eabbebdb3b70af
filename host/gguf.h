#pragma once
// Memory-mapped reader for GGUF, llama.cpp's model format (versions 2 and 3, little-endian):
//   "GGUF", u32 version, u64 tensor count, u64 metadata count,
//   metadata: key (u64 length + bytes), u32 value type, value (arrays: u32 element type, u64 count,
//             elements; strings: u64 length + bytes),
//   tensor infos: name, u32 n_dims, u64 ne[n_dims] (innermost first), u32 ggml type, u64 offset,
//   padding to general.alignment (default 32), then the data section the offsets index into.
// Nothing in the file is trusted: every count, length, type, dimension, offset and size is checked
// against the file before open() returns, so later accessors never read outside the mapping.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace vkssm {

enum class GgufValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
const char* gguf_value_type_name(GgufValueType t);

// ggml tensor types that vkssm knows by name (ids as in ggml.h).
namespace ggml_type {
constexpr uint32_t F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q2_K = 10,
                   Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, IQ4_NL = 20, BF16 = 30;
}
// "Q8_0", ... or "type N" for an id vkssm does not know.
std::string ggml_type_name(uint32_t type);

struct GgufValue {
  GgufValueType type = GgufValueType::UINT8;
  // Scalars: integers in `i` (signed types) or `u` (unsigned types and bool), floats in `f`.
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  std::string str;
  // Arrays: the element type and count; string elements in `strings`, numeric elements as raw
  // little-endian bytes inside the mapping (`array_data`).
  GgufValueType elem_type = GgufValueType::UINT8;
  uint64_t count = 0;
  std::vector<std::string> strings;
  const uint8_t* array_data = nullptr;
};

struct GgufTensor {
  std::string name;
  uint32_t type = 0;           // ggml type id
  std::vector<int64_t> ne;     // dimensions, innermost first (ggml order)
  uint64_t offset = 0;         // from the start of the data section
  const uint8_t* data = nullptr;  // inside the mapping
  uint64_t nbytes = 0;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : ne) n *= d;
    return n;
  }
  // PyTorch order (outermost first): ne reversed.
  std::vector<int64_t> shape() const { return {ne.rbegin(), ne.rend()}; }
};

class GgufFile {
 public:
  // Throws vkssm::Error naming `path` and the part at fault (truncated header, bad magic,
  // unsupported version, a count larger than the file can hold, unknown value or tensor type,
  // a tensor running past the end, misaligned or overlapping tensors, duplicate names, ...).
  static std::unique_ptr<GgufFile> open(const std::string& path);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }

  // Metadata in file order, and typed reads whose errors name the key and the file.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;  // nullptr when absent
  bool has(const std::string& key) const { return find(key) != nullptr; }
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;    // any integer type whose value fits int64
  double get_float(const std::string& key) const;   // FLOAT32 or FLOAT64
  bool get_bool(const std::string& key) const;
  const std::vector<std::string>& get_string_array(const std::string& key) const;
  std::vector<int64_t> get_int_array(const std::string& key) const;  // integer elements

  const std::vector<GgufTensor>& tensors() const { return tensors_; }  // in file order
  const GgufTensor* find_tensor(const std::string& name) const;       // nullptr when absent

  // The tensor's values as fp32. Reads F32, F16, BF16 and the block formats of host/quant.h
  // (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, IQ4_NL); any other type throws an error naming the
  // tensor, its type and the file.
  std::vector<float> to_f32(const GgufTensor& t) const;
  static bool can_read_type(uint32_t type);

 private:
  GgufFile() = default;
  const GgufValue& require(const std::string& key) const;
  [[noreturn]] void wrong_type(const std::string& key, const GgufValue& v, const char* expected) const;

  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace vkssm

#pragma once
// Memory-mapped reader for the safetensors format: an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the data.
// Everything in the header is validated against the file before any tensor is handed out:
// dtype known, shape non-negative and consistent with the byte range, ranges inside the file
// and not overlapping one another.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "host/dtype.h"

namespace vkssm {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // inside the mapping; valid while the file object lives
  size_t nbytes = 0;
  std::string file;  // the file it lives in, for error messages
  // A GGUF tensor's ggml type ("F16", "Q4_K", ...): quantised ones are dequantised into `data`,
  // so `dtype` says F32. Empty for safetensors, whose `dtype` is the file's.
  std::string file_type;
  // A quantised GGUF tensor's blocks as the file has them (inside the mapping), beside the fp32
  // values in `data`, so a backend can keep the very blocks; `blocks_type` is their ggml type id.
  // nullptr for every other tensor.
  const uint8_t* blocks = nullptr;
  size_t blocks_bytes = 0;
  uint32_t blocks_type = 0;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

class SafetensorsFile {
 public:
  // Throws vkssm::Error naming `path` on any problem (missing, truncated, malformed header, ...).
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const TensorInfo* find(const std::string& name) const;  // nullptr when absent
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// One tensor to write with write_safetensors(). `bytes` holds numel * dtype_size(dtype) bytes.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// Writes a valid safetensors file (used by tests, the bench and the demo-model maker).
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Convenience: an fp32 vector as a TensorToWrite of `dtype` (F32, F16 or BF16, rounded to nearest).
TensorToWrite make_tensor(const std::string& name, const std::vector<int64_t>& shape,
                          const std::vector<float>& values, DType dtype = DType::F32);

}  // namespace vkssm

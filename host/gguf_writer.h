#pragma once
// Writes GGUF files (version 3, little-endian) in the layout host/gguf.h reads and llama.cpp's
// gguf-py GGUFWriter produces: header, metadata in the order added, tensor infos, padding to
// general.alignment (32), then each tensor's bytes padded to the alignment, offsets counted from
// the start of the data section.
//
// The writer checks what it is given (duplicate keys or tensor names, a byte count that does not
// match the shape and type, a row that is not a whole number of blocks) so that a file it writes
// is one GgufFile::open accepts; errors name the key or tensor.
#include <cstdint>
#include <string>
#include <vector>

#include "host/gguf.h"

namespace vkssm {

class GgufWriter {
 public:
  void add_string(const std::string& key, const std::string& value);
  void add_u32(const std::string& key, uint32_t value);
  void add_f32(const std::string& key, float value);
  void add_bool(const std::string& key, bool value);
  void add_string_array(const std::string& key, const std::vector<std::string>& values);
  void add_i32_array(const std::string& key, const std::vector<int32_t>& values);

  // `shape` in PyTorch order (outermost first; the file stores it reversed); `type` a ggml type id
  // (F32, F16 or a block format of host/quant.h); `data` the tensor's bytes in that type.
  void add_tensor(const std::string& name, const std::vector<int64_t>& shape, uint32_t type,
                  std::vector<uint8_t> data);

  // The whole file; throws vkssm::Error naming `path` when it cannot be written.
  void write(const std::string& path) const;

  static constexpr uint64_t kAlignment = 32;

 private:
  struct Kv {
    std::string key;
    GgufValueType type;
    std::vector<uint8_t> payload;  // the value's bytes after the type field
  };
  struct Tensor {
    std::string name;
    std::vector<int64_t> ne;  // innermost first
    uint32_t type;
    std::vector<uint8_t> data;
  };
  void add_kv(const std::string& key, GgufValueType type, std::vector<uint8_t> payload);

  std::vector<Kv> kvs_;
  std::vector<Tensor> tensors_;
};

// The bytes of `values` stored as ggml type `type`: F32, F16 (round to nearest even) or a block
// format quantize_row() supports, row by row (rows of `cols` values). Throws vkssm::Error naming
// `what` when a row is not a whole number of blocks.
std::vector<uint8_t> encode_tensor(uint32_t type, const std::vector<float>& values, int64_t cols,
                                   const std::string& what);

}  // namespace vkssm

namespace vkssm {

// The ggml type a model converter stores tensor `gguf_name` (PyTorch-order `shape`) with when it
// quantizes to `target` (a ggml type id: F32, F16 or a block format), by llama.cpp's rules
// (convert_hf_to_gguf.py and llama-quantize without its per-tensor mixes, as `--pure` does):
// tensors of one dimension, "*_norm.weight", "ssm_conv1d.weight" and names that do not end in
// ".weight" (ssm_a, ssm_d, biases) stay F32; the others take `target` when their rows are whole
// blocks, else the fallback llama.cpp takes (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0) if rows fit
// it, else F16.
uint32_t gguf_export_type(uint32_t target, const std::string& gguf_name, const std::vector<int64_t>& shape);

// general.file_type (llama.cpp's LlamaFileType) of a file whose matrices are `target`: the
// "pure" / small-mix value for K-quants (Q4_K -> MOSTLY_Q4_K_S).
uint32_t gguf_file_type(uint32_t target);

}  // namespace vkssm

namespace vkssm {

struct GgufTensorSummary {
  std::string name;
  std::vector<int64_t> shape;  // PyTorch order
  uint32_t type = 0;           // ggml type id
  uint64_t bytes = 0;
};

// What the model exporters (models/<arch>/<arch>_gguf.cpp) share: general.* and the SSM shape
// keys llama.cpp's MambaModel / Mamba2Model write, and tensors stored as gguf_export_type() says
// for `target`, each recorded in summary().
class GgufModelExport {
 public:
  // general.architecture = `arch`, general.type = "model", general.name = `name`.
  GgufModelExport(const std::string& arch, uint32_t target, const std::string& name);
  GgufWriter& writer() { return writer_; }

  // {arch}.context_length (2^20, the converters': the recurrence has no limit),
  // .embedding_length, .feed_forward_length (0), .attention.head_count (0), .block_count,
  // .ssm.conv_kernel, .ssm.inner_size, .ssm.state_size, .ssm.time_step_rank.
  void add_ssm_shape(int64_t d_model, int64_t n_layer, int64_t d_conv, int64_t d_inner, int64_t d_state,
                     int64_t time_step_rank);
  // general.file_type (gguf_file_type(target)) and general.quantization_version (2).
  void add_file_type();

  // One tensor, `shape` in PyTorch order; its rows are shape.back() values.
  void add(const std::string& name, const std::vector<int64_t>& shape, const std::vector<float>& values);

  const std::vector<GgufTensorSummary>& summary() const { return summary_; }

 private:
  std::string arch_;
  uint32_t target_;
  GgufWriter writer_;
  std::vector<GgufTensorSummary> summary_;
};

}  // namespace vkssm

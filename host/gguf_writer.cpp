#include "host/gguf_writer.h"

#include <cstring>
#include <fstream>

#include "host/dtype.h"
#include "host/error.h"
#include "host/quant.h"

namespace vkssm {
namespace {

void put(std::vector<uint8_t>& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(uint8_t(v >> (8 * i)));
}
void put_str(std::vector<uint8_t>& out, const std::string& s) {
  put(out, s.size(), 8);
  out.insert(out.end(), s.begin(), s.end());
}
uint64_t padded(uint64_t n) { return (n + GgufWriter::kAlignment - 1) / GgufWriter::kAlignment * GgufWriter::kAlignment; }

}  // namespace

void GgufWriter::add_kv(const std::string& key, GgufValueType type, std::vector<uint8_t> payload) {
  for (const Kv& kv : kvs_)
    if (kv.key == key) throw Error("GGUF metadata key '" + key + "' added twice");
  kvs_.push_back({key, type, std::move(payload)});
}

void GgufWriter::add_string(const std::string& key, const std::string& value) {
  std::vector<uint8_t> p;
  put_str(p, value);
  add_kv(key, GgufValueType::STRING, std::move(p));
}

void GgufWriter::add_u32(const std::string& key, uint32_t value) {
  std::vector<uint8_t> p;
  put(p, value, 4);
  add_kv(key, GgufValueType::UINT32, std::move(p));
}

void GgufWriter::add_f32(const std::string& key, float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  std::vector<uint8_t> p;
  put(p, bits, 4);
  add_kv(key, GgufValueType::FLOAT32, std::move(p));
}

void GgufWriter::add_bool(const std::string& key, bool value) {
  add_kv(key, GgufValueType::BOOL, {uint8_t(value ? 1 : 0)});
}

void GgufWriter::add_string_array(const std::string& key, const std::vector<std::string>& values) {
  std::vector<uint8_t> p;
  put(p, uint32_t(GgufValueType::STRING), 4);
  put(p, values.size(), 8);
  for (const std::string& s : values) put_str(p, s);
  add_kv(key, GgufValueType::ARRAY, std::move(p));
}

void GgufWriter::add_i32_array(const std::string& key, const std::vector<int32_t>& values) {
  std::vector<uint8_t> p;
  put(p, uint32_t(GgufValueType::INT32), 4);
  put(p, values.size(), 8);
  for (int32_t v : values) put(p, uint32_t(v), 4);
  add_kv(key, GgufValueType::ARRAY, std::move(p));
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& shape, uint32_t type,
                            std::vector<uint8_t> data) {
  for (const Tensor& t : tensors_)
    if (t.name == name) throw Error("GGUF tensor '" + name + "' added twice");
  if (shape.empty()) throw Error("GGUF tensor '" + name + "' has no dimensions");
  uint64_t rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= uint64_t(shape[i]);
  const int64_t cols = shape.back();
  uint64_t row_bytes;
  if (type == ggml_type::F32) row_bytes = 4 * uint64_t(cols);
  else if (type == ggml_type::F16) row_bytes = 2 * uint64_t(cols);
  else if (is_quant_type(type)) row_bytes = quant_row_bytes(QuantType(type), size_t(cols));  // checks whole blocks
  else throw Error("GGUF tensor '" + name + "': the writer does not store " + ggml_type_name(type));
  if (rows * row_bytes != data.size())
    throw Error("GGUF tensor '" + name + "': " + std::to_string(data.size()) + " bytes given, its shape as " +
                ggml_type_name(type) + " takes " + std::to_string(rows * row_bytes));
  tensors_.push_back({name, {shape.rbegin(), shape.rend()}, type, std::move(data)});
}

void GgufWriter::write(const std::string& path) const {
  std::vector<uint8_t> head{'G', 'G', 'U', 'F'};
  put(head, 3, 4);
  put(head, tensors_.size(), 8);
  put(head, kvs_.size(), 8);
  for (const Kv& kv : kvs_) {
    put_str(head, kv.key);
    put(head, uint32_t(kv.type), 4);
    head.insert(head.end(), kv.payload.begin(), kv.payload.end());
  }
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    put_str(head, t.name);
    put(head, t.ne.size(), 4);
    for (int64_t d : t.ne) put(head, uint64_t(d), 8);
    put(head, t.type, 4);
    put(head, offset, 8);
    offset += padded(t.data.size());
  }
  head.resize(padded(head.size()), 0);

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error("cannot create GGUF file " + path);
  out.write(reinterpret_cast<const char*>(head.data()), std::streamsize(head.size()));
  static const char zeros[kAlignment] = {};
  for (const Tensor& t : tensors_) {
    out.write(reinterpret_cast<const char*>(t.data.data()), std::streamsize(t.data.size()));
    out.write(zeros, std::streamsize(padded(t.data.size()) - t.data.size()));
  }
  out.close();
  if (!out) throw Error("cannot write GGUF file " + path + " (disk full?)");
}

std::vector<uint8_t> encode_tensor(uint32_t type, const std::vector<float>& values, int64_t cols,
                                   const std::string& what) {
  std::vector<uint8_t> out;
  if (type == ggml_type::F32) {
    out.resize(values.size() * 4);
    std::memcpy(out.data(), values.data(), out.size());
  } else if (type == ggml_type::F16) {
    out.reserve(values.size() * 2);
    for (float v : values) put(out, float_to_half(v), 2);
  } else {
    const QuantType q = QuantType(type);
    if (!is_quant_type(type) || !can_quantize(q)) throw Error(what + ": cannot quantize to " + ggml_type_name(type));
    if (cols <= 0 || values.size() % size_t(cols) != 0)
      throw Error(what + ": " + std::to_string(values.size()) + " values are not rows of " + std::to_string(cols));
    if (cols % int64_t(quant_traits(q).block_elems) != 0)
      throw Error(what + ": rows of " + std::to_string(cols) + " values are not whole " + ggml_type_name(type) +
                  " blocks of " + std::to_string(quant_traits(q).block_elems));
    const size_t row_bytes = quant_row_bytes(q, size_t(cols));
    const size_t rows = values.size() / size_t(cols);
    out.resize(rows * row_bytes);
    for (size_t r = 0; r < rows; ++r)
      quantize_row(q, values.data() + r * size_t(cols), out.data() + r * row_bytes, size_t(cols));
  }
  return out;
}

}  // namespace vkssm

namespace vkssm {

uint32_t gguf_export_type(uint32_t target, const std::string& gguf_name, const std::vector<int64_t>& shape) {
  const auto ends_with = [&](const std::string& suffix) {
    return gguf_name.size() >= suffix.size() &&
           gguf_name.compare(gguf_name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (shape.size() < 2 || ends_with("_norm.weight") || ends_with("ssm_conv1d.weight") || !ends_with(".weight") ||
      target == ggml_type::F32)
    return ggml_type::F32;
  if (target == ggml_type::F16) return ggml_type::F16;
  const int64_t cols = shape.back();
  const auto fits = [&](uint32_t t) { return cols % int64_t(quant_traits(QuantType(t)).block_elems) == 0; };
  if (fits(target)) return target;
  uint32_t fallback = ggml_type::F16;
  if (target == ggml_type::Q4_K) fallback = ggml_type::Q5_0;
  else if (target == ggml_type::Q5_K) fallback = ggml_type::Q5_1;
  else if (target == ggml_type::Q6_K) fallback = ggml_type::Q8_0;
  return fallback != ggml_type::F16 && fits(fallback) ? fallback : ggml_type::F16;
}

uint32_t gguf_file_type(uint32_t target) {
  switch (target) {
    case ggml_type::F32: return 0;
    case ggml_type::F16: return 1;
    case ggml_type::Q4_0: return 2;
    case ggml_type::Q4_1: return 3;
    case ggml_type::Q8_0: return 7;
    case ggml_type::Q5_0: return 8;
    case ggml_type::Q5_1: return 9;
    case ggml_type::Q2_K: return 10;
    case ggml_type::Q3_K: return 11;  // Q3_K_S
    case ggml_type::Q4_K: return 14;  // Q4_K_S
    case ggml_type::Q5_K: return 16;  // Q5_K_S
    case ggml_type::Q6_K: return 18;
  }
  throw Error("no GGUF file type for " + ggml_type_name(target));
}

}  // namespace vkssm

namespace vkssm {

GgufModelExport::GgufModelExport(const std::string& arch, uint32_t target, const std::string& name)
    : arch_(arch), target_(target) {
  writer_.add_string("general.architecture", arch);
  writer_.add_string("general.type", "model");
  writer_.add_string("general.name", name);
}

void GgufModelExport::add_ssm_shape(int64_t d_model, int64_t n_layer, int64_t d_conv, int64_t d_inner,
                                    int64_t d_state, int64_t time_step_rank) {
  // In the converters' order; attention and feed-forward sizes are 0 for a pure SSM.
  const std::pair<const char*, int64_t> keys[] = {
      {".context_length", int64_t(1) << 20}, {".embedding_length", d_model}, {".feed_forward_length", 0},
      {".attention.head_count", 0},          {".block_count", n_layer},      {".ssm.conv_kernel", d_conv},
      {".ssm.inner_size", d_inner},          {".ssm.state_size", d_state},   {".ssm.time_step_rank", time_step_rank}};
  for (const auto& [key, value] : keys) writer_.add_u32(arch_ + key, uint32_t(value));
}

void GgufModelExport::add_file_type() {
  writer_.add_u32("general.file_type", gguf_file_type(target_));
  writer_.add_u32("general.quantization_version", 2);  // ggml's GGML_QNT_VERSION
}

void GgufModelExport::add(const std::string& name, const std::vector<int64_t>& shape, const std::vector<float>& values) {
  const uint32_t type = gguf_export_type(target_, name, shape);
  std::vector<uint8_t> bytes = encode_tensor(type, values, shape.back(), "tensor " + name);
  summary_.push_back({name, shape, type, bytes.size()});
  writer_.add_tensor(name, shape, type, std::move(bytes));
}

}  // namespace vkssm

#pragma once
// Test-only GGUF writing: a byte-level builder (every field reachable, so tests can corrupt any of
// them) and an emulation of llama.cpp's convert_hf_to_gguf.py for Mamba-1 / Mamba-2 weights:
//   - tensor names of gguf-py's tensor map (blk.{i}.ssm_in.weight, ...);
//   - A_log stored as A = -exp(A_log); conv1d.weight squeezed to [C, K]; Mamba-2's A and D given
//     a trailing 1 and its gated norm reshaped to [G, E/G]; dt_bias stored as ssm_dt.bias;
//   - a tied lm_head omitted (Mamba-1: when it equals the embedding; untied models keep it);
//   - which tensors stay F32 (ModelBase.prepare_tensors): 1-D tensors, *_norm.weight, ssm_conv1d,
//     and anything whose name does not end in ".weight" (ssm_a, ssm_d); the rest take the output
//     type, and a Q8_0 tensor whose rows are not a multiple of 32 falls back to F16;
//   - gguf-py's F16 (round to nearest even), BF16 (round to nearest even, NaN kept quiet) and Q8_0
//     (d = max|x| / 127 in fp32, q = round-half-away(x / d), d stored as fp16) encodings;
//   - metadata keys and value types of GGUFWriter (u32 sizes, f32 epsilon, bool dt_b_c_rms, ...);
//   - layout: tensor data padded to general.alignment (32), offsets relative to the data section.
// Alongside the file it returns the "mirror": each HF tensor with the dtype and exact values the
// GGUF holds (fp16/bf16-rounded, Q8_0 dequantised), for a safetensors checkpoint of the same
// stored weights.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/dtype.h"
#include "host/error.h"
#include "host/gguf.h"
#include "host/quant.h"
#include "host/safetensors.h"
#include "models/mamba1/mamba1_model.h"
#include "models/mamba2/mamba2_model.h"

namespace vkssm::gguf_test {

// ---- little-endian encoding ----
inline void put(std::vector<uint8_t>& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(uint8_t(v >> (8 * i)));
}
inline void put_str(std::vector<uint8_t>& out, const std::string& s) {
  put(out, s.size(), 8);
  out.insert(out.end(), s.begin(), s.end());
}
inline void put_f32(std::vector<uint8_t>& out, float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  put(out, u, 4);
}

constexpr uint32_t kUint32 = 4, kInt32 = 5, kFloat32 = 6, kBool = 7, kString = 8, kArray = 9;

struct Kv {
  std::string key;
  uint32_t type = 0;
  std::vector<uint8_t> payload;  // the value's bytes after the type field
};

struct TensorEntry {
  std::string name;
  std::vector<uint64_t> ne;  // innermost first
  uint32_t type = 0;
  std::vector<uint8_t> data;
  std::optional<uint64_t> offset;  // default: packed in order, each padded to the alignment
};

class GgufBuilder {
 public:
  char magic[4] = {'G', 'G', 'U', 'F'};
  uint32_t version = 3;
  uint64_t alignment = 32;  // layout only: add general.alignment yourself to declare another one
  std::vector<Kv> kvs;
  std::vector<TensorEntry> tensors;

  Kv* find(const std::string& key) {
    for (Kv& kv : kvs)
      if (kv.key == key) return &kv;
    return nullptr;
  }
  void set(const std::string& key, uint32_t type, std::vector<uint8_t> payload) {
    if (Kv* kv = find(key)) {
      kv->type = type;
      kv->payload = std::move(payload);
    } else {
      kvs.push_back({key, type, std::move(payload)});
    }
  }
  void remove(const std::string& key) {
    for (size_t i = 0; i < kvs.size(); ++i)
      if (kvs[i].key == key) kvs.erase(kvs.begin() + long(i));
  }
  void set_u32(const std::string& key, uint32_t v) {
    std::vector<uint8_t> p;
    put(p, v, 4);
    set(key, kUint32, p);
  }
  void set_f32(const std::string& key, float v) {
    std::vector<uint8_t> p;
    put_f32(p, v);
    set(key, kFloat32, p);
  }
  void set_bool(const std::string& key, bool v) { set(key, kBool, {uint8_t(v ? 1 : 0)}); }
  void set_string(const std::string& key, const std::string& v) {
    std::vector<uint8_t> p;
    put_str(p, v);
    set(key, kString, p);
  }
  void set_string_array(const std::string& key, const std::vector<std::string>& v) {
    std::vector<uint8_t> p;
    put(p, kString, 4);
    put(p, v.size(), 8);
    for (const auto& s : v) put_str(p, s);
    set(key, kArray, p);
  }
  void set_i32_array(const std::string& key, const std::vector<int32_t>& v) {
    std::vector<uint8_t> p;
    put(p, kInt32, 4);
    put(p, v.size(), 8);
    for (int32_t x : v) put(p, uint32_t(x), 4);
    set(key, kArray, p);
  }

  TensorEntry* tensor(const std::string& name) {
    for (TensorEntry& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
  // `shape` in PyTorch order (outermost first); the file stores it reversed.
  void add_tensor(const std::string& name, const std::vector<int64_t>& shape, uint32_t type,
                  std::vector<uint8_t> data) {
    TensorEntry t;
    t.name = name;
    for (auto it = shape.rbegin(); it != shape.rend(); ++it) t.ne.push_back(uint64_t(*it));
    t.type = type;
    t.data = std::move(data);
    tensors.push_back(std::move(t));
  }

  // Byte positions of the sections in the last bytes() result.
  struct Layout {
    size_t kv_start = 0, tensor_info_start = 0, data_start = 0, size = 0;
    std::vector<size_t> kv_offsets;  // where each metadata entry starts
  };
  Layout layout;

  std::vector<uint8_t> bytes() {
    std::vector<uint8_t> out(magic, magic + 4);
    put(out, version, 4);
    put(out, tensors.size(), 8);
    put(out, kvs.size(), 8);
    layout.kv_start = out.size();
    layout.kv_offsets.clear();
    for (const Kv& kv : kvs) {
      layout.kv_offsets.push_back(out.size());
      put_str(out, kv.key);
      put(out, kv.type, 4);
      out.insert(out.end(), kv.payload.begin(), kv.payload.end());
    }
    layout.tensor_info_start = out.size();
    uint64_t offset = 0;
    std::vector<uint64_t> offsets;
    for (const TensorEntry& t : tensors) {
      put_str(out, t.name);
      put(out, t.ne.size(), 4);
      for (uint64_t d : t.ne) put(out, d, 8);
      put(out, t.type, 4);
      const uint64_t at = t.offset ? *t.offset : offset;
      put(out, at, 8);
      offsets.push_back(at);
      offset = at + pad(t.data.size());
    }
    out.resize(pad(out.size()), 0);
    layout.data_start = out.size();
    for (size_t i = 0; i < tensors.size(); ++i) {
      const size_t at = layout.data_start + size_t(offsets[i]);
      if (out.size() < at) out.resize(at, 0);
      if (out.size() < at + tensors[i].data.size()) out.resize(at + tensors[i].data.size(), 0);
      std::memcpy(out.data() + at, tensors[i].data.data(), tensors[i].data.size());
      out.resize(pad(out.size()), 0);
    }
    layout.size = out.size();
    return out;
  }

 private:
  size_t pad(size_t n) const { return (n + alignment - 1) / alignment * alignment; }
};

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!out) throw Error("cannot write " + path);
}

// ---- gguf-py's encodings ----

inline uint16_t bf16_bits(float f) {  // gguf.quants BF16.quantize_blocks
  uint32_t n;
  std::memcpy(&n, &f, 4);
  if ((n & 0x7fffffff) > 0x7f800000) n = (n & 0xffff0000) | (64 << 16);
  return uint16_t((uint64_t(n) + (0x7fff + ((n >> 16) & 1))) >> 16);
}

// Q8_0 of one row-major array whose length is a multiple of 32; `stored` gets the dequantised values.
inline std::vector<uint8_t> quantize_q8_0(const std::vector<float>& x, std::vector<float>* stored) {
  std::vector<uint8_t> out;
  stored->assign(x.size(), 0.0f);
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const float d = amax / 127.0f;
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    const uint16_t dh = float_to_half(d);
    put(out, dh, 2);
    for (int j = 0; j < 32; ++j) {
      const float q = std::round(x[b * 32 + j] * id);  // half away from zero, like np_roundf
      out.push_back(uint8_t(int8_t(q)));
      (*stored)[b * 32 + j] = float(int8_t(q)) * half_to_float(dh);
    }
  }
  return out;
}

// A_log values that survive the GGUF round trip A = -exp(A_log) (fp32, as the converter computes
// it) -> log(-A) (as vkssm's reader computes it) unchanged, so that a GGUF and a safetensors file of
// the same weights give bit-equal logits. Most values already do; the others move by an ulp.
inline float gguf_stable_a_log(float x) {
  for (int i = 0; i < 16; ++i) {
    const float a = -std::exp(x);
    const float back = float(std::log(-double(a)));
    if (back == x) return x;
    x = back;
  }
  throw Error("no GGUF-stable A_log near the given value");
}

// ---- the converter ----

enum class OutType { F32, F16, BF16, Q8_0 };  // convert_hf_to_gguf.py --outtype

inline void PrintTo(OutType t, std::ostream* os) {  // names in GoogleTest output
  *os << (t == OutType::F32 ? "F32" : t == OutType::F16 ? "F16" : t == OutType::BF16 ? "BF16" : "Q8_0");
}

inline uint32_t file_type_of(OutType t) {  // LlamaFileType
  switch (t) {
    case OutType::F32: return 0;
    case OutType::F16: return 1;
    case OutType::BF16: return 32;
    case OutType::Q8_0: return 7;
  }
  return 0;
}

// tokenizer.ggml.* as _set_vocab_gpt2 writes them.
struct TokenizerMeta {
  std::vector<std::string> tokens;
  std::vector<int32_t> token_types;
  std::vector<std::string> merges;
  int64_t bos = -1, eos = -1, unk = -1;
  std::string pre = "gpt-2";
};

// What get_vocab_base() + SpecialVocab make of a tokenizer.json: `vocab_size` entries (the padded
// size), missing ids as "[PAD{i}]" UNUSED, added tokens CONTROL when special (or looking special,
// "<|...|>") and USER_DEFINED otherwise, merges as "a b". bos / eos / unk come from
// tokenizer_config.json in a real conversion; for GPT-NeoX they are all <|endoftext|>.
inline TokenizerMeta tokenizer_meta_from_json(const std::string& tokenizer_json, int64_t vocab_size) {
  std::ifstream in(tokenizer_json);
  const nlohmann::json j = nlohmann::json::parse(in);
  std::vector<std::string> by_id(static_cast<size_t>(vocab_size));
  std::vector<int32_t> types(size_t(vocab_size), 0);
  for (const auto& [tok, id] : j["model"]["vocab"].items())
    if (id.get<int64_t>() < vocab_size) {
      by_id[size_t(id.get<int64_t>())] = tok;
      types[size_t(id.get<int64_t>())] = 1;  // NORMAL
    }
  for (const auto& a : j["added_tokens"]) {
    const int64_t id = a["id"];
    if (id >= vocab_size) continue;
    const std::string content = a["content"];
    const bool looks_special = content.size() >= 4 && content.compare(0, 2, "<|") == 0 &&
                               content.compare(content.size() - 2, 2, "|>") == 0;
    by_id[size_t(id)] = content;
    types[size_t(id)] = (a["special"] == true || looks_special) ? 3 : 4;  // CONTROL : USER_DEFINED
  }
  TokenizerMeta m;
  for (int64_t i = 0; i < vocab_size; ++i) {
    if (types[size_t(i)] == 0) {
      m.tokens.push_back("[PAD" + std::to_string(i) + "]");
      m.token_types.push_back(5);  // UNUSED
    } else {
      m.tokens.push_back(by_id[size_t(i)]);
      m.token_types.push_back(types[size_t(i)]);
    }
  }
  for (const auto& mg : j["model"]["merges"])
    m.merges.push_back(mg.is_string() ? mg.get<std::string>()
                                      : mg[0].get<std::string>() + " " + mg[1].get<std::string>());
  for (size_t i = 0; i < m.tokens.size(); ++i)
    if (m.tokens[i] == "<|endoftext|>") m.bos = m.eos = m.unk = int64_t(i);
  return m;
}

inline void add_tokenizer(GgufBuilder& b, const TokenizerMeta& t) {
  b.set_string("tokenizer.ggml.model", "gpt2");
  b.set_string("tokenizer.ggml.pre", t.pre);
  b.set_string_array("tokenizer.ggml.tokens", t.tokens);
  b.set_i32_array("tokenizer.ggml.token_type", t.token_types);
  b.set_string_array("tokenizer.ggml.merges", t.merges);
  if (t.bos >= 0) b.set_u32("tokenizer.ggml.bos_token_id", uint32_t(t.bos));
  if (t.eos >= 0) b.set_u32("tokenizer.ggml.eos_token_id", uint32_t(t.eos));
  if (t.unk >= 0) b.set_u32("tokenizer.ggml.unknown_token_id", uint32_t(t.unk));
}

// One HF tensor as the GGUF stores it.
struct MirrorTensor {
  std::string hf_name;
  std::vector<int64_t> hf_shape;
  DType dtype = DType::F32;     // F32 also for Q8_0 (its dequantised values)
  uint32_t ggml_type = 0;       // what the converter chose
  std::vector<float> values;    // exactly what a reader gets back (A_log: the original)
};

struct ConvertedModel {
  GgufBuilder gguf;
  std::vector<MirrorTensor> mirror;
  const MirrorTensor* find(const std::string& hf_name) const {
    for (const auto& m : mirror)
      if (m.hf_name == hf_name) return &m;
    return nullptr;
  }
};

namespace detail {

inline bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// Adds one tensor after modify_tensors(): `gguf_shape` in PyTorch order, `values` possibly
// transformed (A = -exp(A_log)); `mirror_values` is what the HF side holds before storage rounding.
inline void emit(ConvertedModel& m, OutType out, const std::string& hf_name,
                 const std::vector<int64_t>& hf_shape, const std::string& gguf_name,
                 const std::vector<int64_t>& gguf_shape, const std::vector<float>& values,
                 const std::vector<float>& mirror_values, bool is_conv) {
  uint32_t type;
  const bool keep_f32 = gguf_shape.size() <= 1 || ends_with(gguf_name, "_norm.weight") || is_conv ||
                        !ends_with(gguf_name, ".weight");
  if (keep_f32 || out == OutType::F32) type = ggml_type::F32;
  else if (out == OutType::F16) type = ggml_type::F16;
  else if (out == OutType::BF16) type = ggml_type::BF16;
  else type = gguf_shape.back() % 32 == 0 ? ggml_type::Q8_0 : ggml_type::F16;  // QuantError -> F16

  MirrorTensor mt;
  mt.hf_name = hf_name;
  mt.hf_shape = hf_shape;
  mt.ggml_type = type;
  std::vector<uint8_t> data;
  std::vector<float> stored(values.size());
  switch (type) {
    case ggml_type::F32:
      for (float v : values) put_f32(data, v);
      stored = values;
      mt.dtype = DType::F32;
      break;
    case ggml_type::F16:
      for (size_t i = 0; i < values.size(); ++i) {
        const uint16_t h = float_to_half(values[i]);
        put(data, h, 2);
        stored[i] = half_to_float(h);
      }
      mt.dtype = DType::F16;
      break;
    case ggml_type::BF16:
      for (size_t i = 0; i < values.size(); ++i) {
        const uint16_t h = bf16_bits(values[i]);
        put(data, h, 2);
        stored[i] = bf16_to_float(h);
      }
      mt.dtype = DType::BF16;
      break;
    default:
      data = quantize_q8_0(values, &stored);
      mt.dtype = DType::F32;
      break;
  }
  // A_log: the file holds A; a reader recovers the original (see gguf_stable_a_log).
  mt.values = (&values == &mirror_values) ? stored : mirror_values;
  m.gguf.add_tensor(gguf_name, gguf_shape, type, std::move(data));
  m.mirror.push_back(std::move(mt));
}

inline std::vector<float> minus_exp(const std::vector<float>& a_log) {
  std::vector<float> a(a_log.size());
  for (size_t i = 0; i < a.size(); ++i) a[i] = -std::exp(a_log[i]);
  return a;
}

inline void common_metadata(GgufBuilder& b, const std::string& arch, int64_t d_model, int64_t n_layer,
                            int64_t d_conv, int64_t d_inner, int64_t d_state, int64_t dt_rank) {
  b.set_string("general.architecture", arch);
  b.set_string("general.type", "model");
  b.set_string("general.name", "vkssm test model");
  b.set_u32(arch + ".context_length", 1u << 20);
  b.set_u32(arch + ".embedding_length", uint32_t(d_model));
  b.set_u32(arch + ".feed_forward_length", 0);
  b.set_u32(arch + ".attention.head_count", 0);
  b.set_u32(arch + ".block_count", uint32_t(n_layer));
  b.set_u32(arch + ".ssm.conv_kernel", uint32_t(d_conv));
  b.set_u32(arch + ".ssm.inner_size", uint32_t(d_inner));
  b.set_u32(arch + ".ssm.state_size", uint32_t(d_state));
  b.set_u32(arch + ".ssm.time_step_rank", uint32_t(dt_rank));
}

}  // namespace detail

// Mamba-1 weights through MambaModel. Expects A_log values from gguf_stable_a_log when the
// mirror's A_log must equal what a reader recovers.
inline ConvertedModel convert_mamba1(const Mamba1Weights& w, OutType out, const TokenizerMeta* tok = nullptr) {
  using detail::emit;
  const Mamba1Config& c = w.cfg;
  const int64_t D = c.d_model, E = c.d_inner, N = c.d_state, K = c.d_conv, R = c.dt_rank, V = c.vocab_size;
  ConvertedModel m;
  detail::common_metadata(m.gguf, "mamba", D, c.n_layer, K, E, N, R);
  m.gguf.set_f32("mamba.attention.layer_norm_rms_epsilon", c.norm_eps);
  m.gguf.set_bool("mamba.ssm.dt_b_c_rms", c.dt_b_c_rms);  // Falcon-Mamba
  m.gguf.set_u32("general.file_type", file_type_of(out));
  m.gguf.set_u32("general.quantization_version", 2);
  if (tok) add_tokenizer(m.gguf, *tok);

  auto plain = [&](const std::string& hf, const std::vector<int64_t>& shape, const std::string& gg,
                   const std::vector<float>& v) { emit(m, out, hf, shape, gg, shape, v, v, false); };
  plain("backbone.embeddings.weight", {V, D}, "token_embd.weight", w.embeddings);
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const Mamba1LayerWeights& L = w.layers[i];
    const std::string p = "backbone.layers." + std::to_string(i) + ".", mx = p + "mixer.";
    const std::string b = "blk." + std::to_string(i) + ".";
    plain(p + "norm.weight", {D}, b + "attn_norm.weight", L.norm);
    plain(mx + "in_proj.weight", {2 * E, D}, b + "ssm_in.weight", L.in_proj);
    if (c.use_bias) plain(mx + "in_proj.bias", {2 * E}, b + "ssm_in.bias", L.in_proj_b);
    emit(m, out, mx + "conv1d.weight", {E, 1, K}, b + "ssm_conv1d.weight", {E, K}, L.conv_w, L.conv_w, true);
    if (c.use_conv_bias) plain(mx + "conv1d.bias", {E}, b + "ssm_conv1d.bias", L.conv_b);
    plain(mx + "x_proj.weight", {R + 2 * N, E}, b + "ssm_x.weight", L.x_proj);
    plain(mx + "dt_proj.weight", {E, R}, b + "ssm_dt.weight", L.dt_proj_w);
    plain(mx + "dt_proj.bias", {E}, b + "ssm_dt.bias", L.dt_proj_b);
    const std::vector<float> A = detail::minus_exp(L.A_log);
    emit(m, out, mx + "A_log", {E, N}, b + "ssm_a", {E, N}, A, L.A_log, false);
    plain(mx + "D", {E}, b + "ssm_d", L.D);
    plain(mx + "out_proj.weight", {D, E}, b + "ssm_out.weight", L.out_proj);
    if (c.use_bias) plain(mx + "out_proj.bias", {D}, b + "ssm_out.bias", L.out_proj_b);
  }
  plain("backbone.norm_f.weight", {D}, "output_norm.weight", w.norm_f);
  if (!w.lm_head.empty() && w.lm_head != w.embeddings) plain("lm_head.weight", {V, D}, "output.weight", w.lm_head);
  return m;
}

// Mamba-2 weights through Mamba2Model.
inline ConvertedModel convert_mamba2(const Mamba2Weights& w, OutType out, const TokenizerMeta* tok = nullptr) {
  using detail::emit;
  const Mamba2Config& c = w.cfg;
  const int64_t D = c.d_model, E = c.d_inner, H = c.n_heads, G = c.n_groups, K = c.d_conv, V = c.vocab_size;
  const int64_t CD = c.conv_dim();
  ConvertedModel m;
  detail::common_metadata(m.gguf, "mamba2", D, c.n_layer, K, E, c.d_state, H);
  m.gguf.set_u32("mamba2.ssm.group_count", uint32_t(G));
  m.gguf.set_f32("mamba2.attention.layer_norm_rms_epsilon", c.norm_eps);
  m.gguf.set_u32("general.file_type", file_type_of(out));
  m.gguf.set_u32("general.quantization_version", 2);
  if (tok) add_tokenizer(m.gguf, *tok);

  auto plain = [&](const std::string& hf, const std::vector<int64_t>& shape, const std::string& gg,
                   const std::vector<float>& v) { emit(m, out, hf, shape, gg, shape, v, v, false); };
  plain("backbone.embeddings.weight", {V, D}, "token_embd.weight", w.embeddings);
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const Mamba2LayerWeights& L = w.layers[i];
    const std::string p = "backbone.layers." + std::to_string(i) + ".", mx = p + "mixer.";
    const std::string b = "blk." + std::to_string(i) + ".";
    plain(p + "norm.weight", {D}, b + "attn_norm.weight", L.norm);
    plain(mx + "in_proj.weight", {c.in_proj_rows(), D}, b + "ssm_in.weight", L.in_proj);
    if (c.use_bias) plain(mx + "in_proj.bias", {c.in_proj_rows()}, b + "ssm_in.bias", L.in_proj_b);
    emit(m, out, mx + "conv1d.weight", {CD, 1, K}, b + "ssm_conv1d.weight", {CD, K}, L.conv_w, L.conv_w, true);
    if (c.use_conv_bias) plain(mx + "conv1d.bias", {CD}, b + "ssm_conv1d.bias", L.conv_b);
    plain(mx + "dt_bias", {H}, b + "ssm_dt.bias", L.dt_bias);
    const std::vector<float> A = detail::minus_exp(L.A_log);
    emit(m, out, mx + "A_log", {H}, b + "ssm_a", {H, 1}, A, L.A_log, false);
    emit(m, out, mx + "D", {H}, b + "ssm_d", {H, 1}, L.D, L.D, false);
    emit(m, out, mx + "norm.weight", {E}, b + "ssm_norm.weight", {G, E / G}, L.gate_norm, L.gate_norm, false);
    plain(mx + "out_proj.weight", {D, E}, b + "ssm_out.weight", L.out_proj);
    if (c.use_bias) plain(mx + "out_proj.bias", {D}, b + "ssm_out.bias", L.out_proj_b);
  }
  plain("backbone.norm_f.weight", {D}, "output_norm.weight", w.norm_f);
  if (!w.lm_head.empty()) plain("lm_head.weight", {V, D}, "output.weight", w.lm_head);
  return m;
}

// Re-types the F32 tensor `gguf_name` of a converted (OutType::F32) model as `type` blocks, as
// llama-quantize picks a type per tensor; its rows must be whole blocks. The mirror is left as is.
inline void quantize_tensor(ConvertedModel& m, const std::string& gguf_name, QuantType type) {
  TensorEntry* t = m.gguf.tensor(gguf_name);
  if (!t || t->type != ggml_type::F32) throw Error("quantize_tensor: no F32 tensor " + gguf_name);
  std::vector<float> x(t->data.size() / 4);
  std::memcpy(x.data(), t->data.data(), t->data.size());
  t->data.assign(quant_row_bytes(type, x.size()), 0);
  quantize_row(type, x.data(), t->data.data(), x.size());  // rows are whole blocks: one call
  t->type = uint32_t(type);
}

// The mirror as model.safetensors next to an existing config.json (save_mamba*_hf writes one).
inline void write_mirror_safetensors(const ConvertedModel& m, const std::string& dir) {
  std::vector<TensorToWrite> t;
  for (const MirrorTensor& mt : m.mirror) t.push_back(make_tensor(mt.hf_name, mt.hf_shape, mt.values, mt.dtype));
  write_safetensors((std::filesystem::path(dir) / "model.safetensors").string(), t);
}

}  // namespace vkssm::gguf_test

// GGUF (llama.cpp) mamba (and Falcon-Mamba) / mamba2 files as HF checkpoints: config synthesis and the tensor map.
#include "host/gguf_checkpoint.h"

#include <cmath>
#include <cstring>
#include <map>

#include "host/dtype.h"
#include "host/error.h"
#include "host/quant.h"

namespace vkssm {

namespace {

// Whether fp16 holds `x` exactly. A quantised tensor counts as 16-bit only when all its
// dequantized values do: d·q products mostly need more than fp16's 11 significant bits, and
// rounding them would make the GPU compute with other weights than the cpu backends, which use
// the dequantized values (a Q8_0 x_proj stored as fp16 moved a trained model's logits by up to
// 3e-4 of a token's largest).
bool exact_in_half(float x) { return half_to_float(float_to_half(x)) == x; }

struct LayerTensor {
  const char* gguf;  // after "blk.{i}."
  const char* hf;    // after "backbone.layers.{i}."
  bool mamba1, mamba2;
};

// Per-layer names, llama.cpp's gguf-py tensor map for MODEL_ARCH.MAMBA / MAMBA2 in reverse.
constexpr LayerTensor kLayerTensors[] = {
    {"attn_norm.weight", "norm.weight", true, true},
    {"ssm_in.weight", "mixer.in_proj.weight", true, true},
    {"ssm_in.bias", "mixer.in_proj.bias", true, true},
    {"ssm_conv1d.weight", "mixer.conv1d.weight", true, true},
    {"ssm_conv1d.bias", "mixer.conv1d.bias", true, true},
    {"ssm_x.weight", "mixer.x_proj.weight", true, false},
    {"ssm_dt.weight", "mixer.dt_proj.weight", true, false},
    {"ssm_dt.bias", "mixer.dt_proj.bias", true, false},
    {"ssm_dt.bias", "mixer.dt_bias", false, true},
    {"ssm_a", "mixer.A_log", true, true},
    {"ssm_d", "mixer.D", true, true},
    {"ssm_norm.weight", "mixer.norm.weight", false, true},
    {"ssm_out.weight", "mixer.out_proj.weight", true, true},
    {"ssm_out.bias", "mixer.out_proj.bias", true, true},
};

struct Dims {
  int64_t d_model, n_layer, d_conv, d_inner, d_state, dt_rank, n_groups;
  double eps;
};

// A required positive integer key.
int64_t positive(const GgufFile& f, const std::string& key) {
  const int64_t v = f.get_int(key);
  if (v < 1)
    throw Error("metadata key '" + key + "' in GGUF file " + f.path() + " must be positive, got " +
                std::to_string(v));
  return v;
}

// "blk.{i}.rest" -> i and rest; false for other names.
bool split_block_name(const std::string& name, int64_t* layer, std::string* rest) {
  if (name.compare(0, 4, "blk.") != 0) return false;
  size_t pos = 4;
  int64_t v = 0;
  while (pos < name.size() && name[pos] >= '0' && name[pos] <= '9' && pos < 4 + 9)
    v = v * 10 + (name[pos++] - '0');
  if (pos == 4 || pos >= name.size() || name[pos] != '.') return false;
  *layer = v;
  *rest = name.substr(pos + 1);
  return true;
}

}  // namespace

std::shared_ptr<const GgufCheckpoint> open_gguf_checkpoint(const std::string& path) {
  auto g = std::make_shared<GgufCheckpoint>();
  g->file = GgufFile::open(path);
  const GgufFile& f = *g->file;
  const std::string in_file = " in GGUF file " + path;

  const std::string arch = f.get_string("general.architecture");
  if (arch != "mamba" && arch != "mamba2")
    throw Error("GGUF file " + path + " holds a '" + arch +
                "' model; vkssm reads the GGUF architectures mamba and mamba2");
  const bool m2 = arch == "mamba2";
  const std::string k = arch + ".";
  // Falcon-Mamba is written as a `mamba` file with this flag (RMSNorm of dt, B and C).
  const bool dt_b_c_rms = f.has(k + "ssm.dt_b_c_rms") && f.get_bool(k + "ssm.dt_b_c_rms");
  if (dt_b_c_rms && m2)
    throw Error("GGUF file " + path + " sets " + k + "ssm.dt_b_c_rms, which vkssm reads for mamba files only");

  Dims d{};
  d.d_model = positive(f, k + "embedding_length");
  d.n_layer = positive(f, k + "block_count");
  d.d_conv = positive(f, k + "ssm.conv_kernel");
  d.d_inner = positive(f, k + "ssm.inner_size");
  d.d_state = positive(f, k + "ssm.state_size");
  d.dt_rank = positive(f, k + "ssm.time_step_rank");  // Mamba-2: the number of heads
  d.n_groups = m2 ? positive(f, k + "ssm.group_count") : 1;
  d.eps = f.get_float(k + "attention.layer_norm_rms_epsilon");

  const GgufTensor* emb = f.find_tensor("token_embd.weight");
  if (!emb) throw Error("GGUF file " + path + " has no tensor token_embd.weight");
  if (emb->ne.size() != 2)
    throw Error("tensor token_embd.weight" + in_file + " has " + std::to_string(emb->ne.size()) +
                " dimensions, expected 2 ([vocab, d_model])");
  const int64_t vocab = emb->ne[1];

  auto has_layer0 = [&](const char* rest) { return f.find_tensor(std::string("blk.0.") + rest) != nullptr; };
  const bool tied = f.find_tensor("output.weight") == nullptr;
  const bool use_bias = has_layer0("ssm_in.bias");
  const bool use_conv_bias = has_layer0("ssm_conv1d.bias");

  using nlohmann::json;
  if (!m2) {
    g->config = {
        {"architectures", {"MambaForCausalLM"}},
        {"model_type", "mamba"},
        {"hidden_size", d.d_model},
        {"num_hidden_layers", d.n_layer},
        {"vocab_size", vocab},
        {"state_size", d.d_state},
        {"conv_kernel", d.d_conv},
        {"intermediate_size", d.d_inner},
        {"time_step_rank", d.dt_rank},
        {"layer_norm_epsilon", d.eps},
        {"use_bias", use_bias},
        {"use_conv_bias", use_conv_bias},
        {"tie_word_embeddings", tied},
    };
    if (d.d_inner % d.d_model == 0) g->config["expand"] = d.d_inner / d.d_model;
    if (dt_b_c_rms) {
      // The file has no key of its own for the mixer's epsilon: llama.cpp uses the block norm's
      // (layer_norm_rms_epsilon) for it too, and so does vkssm.
      g->config["architectures"] = {"FalconMambaForCausalLM"};
      g->config["model_type"] = "falcon_mamba";
      g->config["mixer_rms_eps"] = d.eps;
    }
  } else {
    const int64_t heads = d.dt_rank;
    if (d.d_inner % d.d_model != 0)
      throw Error("metadata key '" + k + "ssm.inner_size' (" + std::to_string(d.d_inner) + ")" + in_file +
                  " is not a multiple of " + k + "embedding_length (" + std::to_string(d.d_model) + ")");
    if (d.d_inner % heads != 0)
      throw Error("metadata key '" + k + "ssm.inner_size' (" + std::to_string(d.d_inner) + ")" + in_file +
                  " is not a multiple of " + k + "ssm.time_step_rank, the head count (" +
                  std::to_string(heads) + ")");
    g->config = {
        {"architectures", {"Mamba2ForCausalLM"}},
        {"model_type", "mamba2"},
        {"hidden_size", d.d_model},
        {"num_hidden_layers", d.n_layer},
        {"vocab_size", vocab},
        {"state_size", d.d_state},
        {"conv_kernel", d.d_conv},
        {"expand", d.d_inner / d.d_model},
        {"num_heads", heads},
        {"head_dim", d.d_inner / heads},
        {"n_groups", d.n_groups},
        {"layer_norm_epsilon", d.eps},
        {"use_bias", use_bias},
        {"use_conv_bias", use_conv_bias},
        {"tie_word_embeddings", tied},
    };
  }

  // ---- tensors ----
  std::map<std::string, std::string> seen;  // HF name -> GGUF name, to catch two sources of one name
  uint64_t bytes_by_dtype[3] = {0, 0, 0};
  g->tensors.reserve(f.tensors().size());
  for (const GgufTensor& t : f.tensors()) {
    std::string hf;
    bool is_a = false;
    enum class Reshape { None, Unsqueeze1, DropTrailing1, Flatten } reshape = Reshape::None;
    int64_t layer = -1;
    std::string rest;
    if (t.name == "token_embd.weight") {
      hf = "backbone.embeddings.weight";
    } else if (t.name == "output_norm.weight") {
      hf = "backbone.norm_f.weight";
    } else if (t.name == "output.weight") {
      hf = "lm_head.weight";
    } else if (split_block_name(t.name, &layer, &rest)) {
      if (layer >= d.n_layer)
        throw Error("tensor " + t.name + in_file + " belongs to layer " + std::to_string(layer) + " but " + k +
                    "block_count is " + std::to_string(d.n_layer));
      for (const LayerTensor& lt : kLayerTensors) {
        if (rest != lt.gguf || !(m2 ? lt.mamba2 : lt.mamba1)) continue;
        hf = "backbone.layers." + std::to_string(layer) + "." + lt.hf;
        break;
      }
      is_a = rest == "ssm_a";
      if (rest == "ssm_conv1d.weight") reshape = Reshape::Unsqueeze1;
      if (m2 && (rest == "ssm_a" || rest == "ssm_d")) reshape = Reshape::DropTrailing1;
      if (m2 && rest == "ssm_norm.weight") reshape = Reshape::Flatten;
    }
    if (hf.empty())
      throw Error("GGUF file " + path + " has tensor " + t.name + ", which is not part of a " + arch +
                  " model as vkssm reads it");
    if (!seen.emplace(hf, t.name).second)
      throw Error("GGUF file " + path + " has two tensors for " + hf + ": " + seen[hf] + " and " + t.name);

    TensorInfo info;
    info.name = hf;
    info.file = path + " (GGUF tensor " + t.name + ")";
    info.file_type = ggml_type_name(t.type);
    info.shape = t.shape();
    std::vector<int64_t>& s = info.shape;
    // Only the exact shapes the converter produces are changed back; anything else is left for the
    // architecture's loader to report against the shape it expects.
    if (reshape == Reshape::Unsqueeze1 && s.size() == 2) s = {s[0], 1, s[1]};
    if (reshape == Reshape::DropTrailing1 && s.size() == 2 && s[1] == 1) s = {s[0]};
    if (reshape == Reshape::Flatten && s.size() == 2) s = {s[0] * s[1]};

    const bool in_place = !is_a && (t.type == ggml_type::F32 || t.type == ggml_type::F16 ||
                                    t.type == ggml_type::BF16);
    if (in_place) {
      info.dtype = t.type == ggml_type::F32 ? DType::F32 : t.type == ggml_type::F16 ? DType::F16 : DType::BF16;
      info.data = t.data;
      info.nbytes = size_t(t.nbytes);
      bytes_by_dtype[size_t(info.dtype)] += t.nbytes;
    } else {
      std::vector<float> v = f.to_f32(t);  // throws for types vkssm cannot read
      if (is_a) {
        for (size_t i = 0; i < v.size(); ++i) {
          // A = -exp(A_log) < 0. (A == -0 only when exp underflowed: A_log = -inf reproduces it.)
          if (!(v[i] <= 0.0f))
            throw Error("tensor " + t.name + in_file + " holds A = " + std::to_string(v[i]) + " at index " +
                        std::to_string(i) + "; A = -exp(A_log) must be negative");
          v[i] = float(std::log(-double(v[i])));
        }
      }
      bool fits_half = true;
      if (t.type != ggml_type::F32 && t.type != ggml_type::F16 && t.type != ggml_type::BF16)
        for (float x : v) fits_half = fits_half && exact_in_half(x);
      const DType counted = t.type == ggml_type::F32 ? DType::F32
                            : t.type == ggml_type::F16 ? DType::F16
                            : t.type == ggml_type::BF16 ? DType::BF16
                            : fits_half ? DType::F16 : DType::F32;
      bytes_by_dtype[size_t(counted)] += t.nbytes;
      g->converted.push_back(std::move(v));
      info.dtype = DType::F32;
      info.data = reinterpret_cast<const uint8_t*>(g->converted.back().data());
      info.nbytes = g->converted.back().size() * sizeof(float);
      if (!is_a && is_quant_type(t.type)) {
        info.blocks = t.data;
        info.blocks_bytes = size_t(t.nbytes);
        info.blocks_type = t.type;
      }
    }
    g->tensors.push_back(std::move(info));
  }
  size_t best = 0;
  for (size_t i = 1; i < 3; ++i)
    if (bytes_by_dtype[i] > bytes_by_dtype[best]) best = i;
  g->main_dtype = DType(best);
  return g;
}

}  // namespace vkssm

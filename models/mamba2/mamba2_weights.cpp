// Mamba-2 configuration parsing, checkpoint loading/saving and random weights. Both config.json
// dialects (HF Mamba2Config and the original mamba_ssm one with ssm_cfg.layer "Mamba2") end up in
// one Mamba2Config.
#include <cmath>
#include <filesystem>

#include "host/config_json.h"
#include "host/error.h"
#include "host/safetensors.h"
#include "host/weight_rng.h"
#include "models/common/lm_checkpoint.h"
#include "models/mamba2/mamba2_model.h"

namespace vkssm {
namespace {

using nlohmann::json;

void check_range(const char* what, int64_t v, int64_t max, const std::string& source) {
  check_dim_range("Mamba-2", what, v, max, source);
}

// time_step_limit: [min, max]; writers emit the default (0, inf) with a bare Infinity token,
// which read_json_file turns into a huge number.
void read_time_step_limit(const json& j, Mamba2Config& c, const std::string& source) {
  if (!j.contains("time_step_limit") || j["time_step_limit"].is_null()) return;
  const json& v = j["time_step_limit"];
  if (!v.is_array() || v.size() != 2 || !v[0].is_number() || !v[1].is_number())
    throw Error("key 'time_step_limit' in " + source + " must be a pair of numbers, got " + describe_json(v));
  c.dt_min = float(v[0].get<double>());
  c.dt_max = float(v[1].get<double>());  // 1e308 becomes +inf in float: no upper clamp
  if (!(c.dt_min >= 0.0f) || !(c.dt_max > c.dt_min))
    throw Error("key 'time_step_limit' in " + source + " must satisfy 0 <= min < max, got " + describe_json(v));
}

void finish_config(Mamba2Config& c, const std::string& source) {
  check_range("d_model", c.d_model, 1 << 16, source);
  check_range("n_layer", c.n_layer, 1 << 12, source);
  check_range("vocab_size", c.vocab_size, 1 << 23, source);
  check_range("d_state", c.d_state, 1 << 12, source);
  check_range("d_conv", c.d_conv, 64, source);
  check_range("expand", c.expand, 64, source);
  check_range("head_dim", c.head_dim, 1 << 12, source);
  check_range("n_groups", c.n_groups, 1 << 12, source);
  if (c.d_inner == 0) c.d_inner = c.expand * c.d_model;
  check_range("d_inner", c.d_inner, 1 << 20, source);
  if (c.n_heads == 0) {
    if (c.d_inner % c.head_dim != 0)
      throw Error("Mamba-2 d_inner " + std::to_string(c.d_inner) + " in " + source +
                  " is not a multiple of head_dim " + std::to_string(c.head_dim));
    c.n_heads = c.d_inner / c.head_dim;
  }
  check_range("n_heads", c.n_heads, 1 << 16, source);
  if (c.n_heads * c.head_dim != c.d_inner)
    throw Error("Mamba-2 num_heads * head_dim (" + std::to_string(c.n_heads) + " * " + std::to_string(c.head_dim) +
                ") in " + source + " must equal d_inner = expand * hidden_size (" + std::to_string(c.d_inner) + ")");
  if (c.n_heads % c.n_groups != 0)
    throw Error("Mamba-2 num_heads " + std::to_string(c.n_heads) + " in " + source +
                " is not a multiple of n_groups " + std::to_string(c.n_groups));
  if (!(c.norm_eps > 0.0f) || !std::isfinite(c.norm_eps))
    throw Error("Mamba-2 norm epsilon in " + source + " must be a positive number, got " + std::to_string(c.norm_eps));
}

}  // namespace

Mamba2Config parse_mamba2_config(const json& config, const std::string& source) {
  if (!config.is_object()) throw Error("config " + source + " is not a JSON object");
  const std::string arch = config_architecture(config);
  if (arch != "mamba2")
    throw Error("config " + source + " describes '" + arch + "', not a Mamba-2 model");
  Mamba2Config c;
  const bool original_form = config.contains("d_model") && !config.contains("hidden_size");
  if (!original_form) {  // HF Mamba2Config
    c.d_model = get_int(config, "hidden_size", source);
    c.n_layer = get_int(config, "num_hidden_layers", source);
    c.vocab_size = get_int(config, "vocab_size", source);
    c.d_state = get_int(config, "state_size", source, 128);
    c.d_conv = get_int(config, "conv_kernel", source, 4);
    c.expand = get_int(config, "expand", source, 2);
    c.n_heads = get_int(config, "num_heads", source, 0);
    c.head_dim = get_int(config, "head_dim", source, 64);
    c.n_groups = get_int(config, "n_groups", source, 1);
    c.norm_eps = float(get_number(config, "layer_norm_epsilon", source, 1e-5));
    c.use_bias = get_bool(config, "use_bias", source, false);
    c.use_conv_bias = get_bool(config, "use_conv_bias", source, true);
    c.tie_embeddings = get_bool(config, "tie_word_embeddings", source, true);
    if (!get_bool(config, "rms_norm", source, true))
      throw Error("config " + source + " sets rms_norm to false; vkssm runs Mamba-2 with its gated RMSNorm only");
    read_time_step_limit(config, c, source);
  } else {  // original mamba_ssm MambaConfig with a Mamba2 ssm_cfg
    c.d_model = get_int(config, "d_model", source);
    c.n_layer = get_int(config, "n_layer", source);
    c.vocab_size = get_int(config, "vocab_size", source);
    const json& ssm = config["ssm_cfg"];
    c.d_state = get_int(ssm, "d_state", source, 128);
    c.d_conv = get_int(ssm, "d_conv", source, 4);
    c.expand = get_int(ssm, "expand", source, 2);
    c.head_dim = get_int(ssm, "headdim", source, 64);
    c.n_groups = get_int(ssm, "ngroups", source, 1);
    c.use_bias = get_bool(ssm, "bias", source, false);
    c.use_conv_bias = get_bool(ssm, "conv_bias", source, true);
    if (!get_bool(ssm, "rmsnorm", source, true))
      throw Error("config " + source + " sets ssm_cfg.rmsnorm to false; vkssm runs Mamba-2 with its gated RMSNorm only");
    if (get_int(ssm, "d_ssm", source, 0) != 0)
      throw Error("config " + source + " sets ssm_cfg.d_ssm (an MLP branch beside the SSM); vkssm does not run it");
    read_time_step_limit(ssm, c, source);
    c.norm_eps = float(get_number(config, "norm_epsilon", source, 1e-5));
    c.tie_embeddings = get_bool(config, "tie_embeddings", source, true);
    if (!get_bool(config, "rms_norm", source, true))
      throw Error("config " + source + " asks for LayerNorm (rms_norm: false); vkssm supports only RMSNorm models");
    const int64_t pad = get_int(config, "pad_vocab_size_multiple", source, 16);
    check_range("pad_vocab_size_multiple", pad, 1 << 16, source);
    check_range("vocab_size", c.vocab_size, 1 << 23, source);
    c.vocab_size = (c.vocab_size + pad - 1) / pad * pad;
  }
  finish_config(c, source);
  return c;
}

int64_t Mamba2Weights::parameter_count() const {
  size_t n = embeddings.size() + norm_f.size() + lm_head.size();
  for (const auto& L : layers) {
    n += L.norm.size() + L.in_proj.size() + L.in_proj_b.size() + L.conv_w.size();
    n += cfg.use_conv_bias ? L.conv_b.size() : 0;
    n += L.dt_bias.size() + L.A_log.size() + L.D.size() + L.gate_norm.size() + L.out_proj.size() +
         L.out_proj_b.size();
  }
  return int64_t(n);
}

Mamba2Weights load_mamba2(const Checkpoint& ckpt) {
  Mamba2Weights w;
  const std::string config_path = (std::filesystem::path(ckpt.dir()) / "config.json").string();
  Mamba2Config& c = w.cfg;
  c = parse_mamba2_config(ckpt.config(), config_path);
  const int64_t D = c.d_model, E = c.d_inner, H = c.n_heads, K = c.d_conv, CD = c.conv_dim();

  std::string emb_name;
  w.embeddings = load_token_embeddings(ckpt, c.vocab_size, D, config_path, &emb_name);
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    const std::string m = p + "mixer.";
    Mamba2LayerWeights L;
    L.norm = ckpt.load_f32(p + "norm.weight", {D});
    L.in_proj = ckpt.load_f32(m + "in_proj.weight", {c.in_proj_rows(), D});
    L.in_proj_b = load_optional_tensor(ckpt, m + "in_proj.bias", c.use_bias, {c.in_proj_rows()}, "use_bias",
                                       config_path);
    L.conv_w = ckpt.load_f32(m + "conv1d.weight", {CD, 1, K});
    L.conv_b = load_optional_tensor(ckpt, m + "conv1d.bias", c.use_conv_bias, {CD}, "use_conv_bias", config_path);
    if (!c.use_conv_bias) L.conv_b.assign(size_t(CD), 0.0f);
    L.dt_bias = ckpt.load_f32(m + "dt_bias", {H});
    L.A_log = ckpt.load_f32(m + "A_log", {H});
    L.D = ckpt.load_f32(m + "D", {H});
    L.gate_norm = ckpt.load_f32(m + "norm.weight", {E});
    L.out_proj = ckpt.load_f32(m + "out_proj.weight", {D, E});
    L.out_proj_b = load_optional_tensor(ckpt, m + "out_proj.bias", c.use_bias, {D}, "use_bias", config_path);
    w.layers.push_back(std::move(L));
  }
  w.norm_f = ckpt.load_f32("backbone.norm_f.weight", {D});
  w.lm_head = load_lm_head(ckpt, emb_name, c.vocab_size, D, c.tie_embeddings, config_path);
  c.tie_embeddings = w.lm_head.empty();
  w.source_dtype = ckpt.main_dtype();
  w.source = ckpt.dir();
  return w;
}

Mamba2Weights random_mamba2(const Mamba2Config& cfg, uint64_t seed) {
  Mamba2Weights w;
  w.cfg = cfg;
  Mamba2Config& c = w.cfg;
  finish_config(c, "random_mamba2 config");
  const int64_t D = c.d_model, E = c.d_inner, H = c.n_heads, K = c.d_conv, CD = c.conv_dim(), V = c.vocab_size;
  WeightRng rng{seed};
  auto bound = [](int64_t fan_in) { return 1.0f / std::sqrt(float(fan_in)); };
  w.embeddings = rng.fill(V * D, -0.1f, 0.1f);
  for (int64_t i = 0; i < c.n_layer; ++i) {
    Mamba2LayerWeights L;
    L.norm = rng.fill(D, 0.9f, 1.1f);
    L.in_proj = rng.fill(c.in_proj_rows() * D, -bound(D), bound(D));
    if (c.use_bias) L.in_proj_b = rng.fill(c.in_proj_rows(), -0.02f, 0.02f);
    L.conv_w = rng.fill(CD * K, -bound(K), bound(K));
    L.conv_b = c.use_conv_bias ? rng.fill(CD, -0.1f, 0.1f) : std::vector<float>(size_t(CD), 0.0f);
    // Upstream init: dt log-uniform in [1e-3, 1e-1] through the inverse of softplus; A in [1, 16].
    L.dt_bias.resize(size_t(H));
    for (float& b : L.dt_bias) {
      const double dt = std::exp(rng.uniform(std::log(1e-3f), std::log(1e-1f)));
      b = float(dt + std::log(-std::expm1(-dt)));
    }
    L.A_log.resize(size_t(H));
    for (float& a : L.A_log) a = std::log(rng.uniform(1.0f, 16.0f));
    L.D = rng.fill(H, 0.9f, 1.1f);
    L.gate_norm = rng.fill(E, 0.9f, 1.1f);
    L.out_proj = rng.fill(D * E, -bound(E), bound(E));
    if (c.use_bias) L.out_proj_b = rng.fill(D, -0.02f, 0.02f);
    w.layers.push_back(std::move(L));
  }
  w.norm_f = rng.fill(D, 0.9f, 1.1f);
  if (!c.tie_embeddings) w.lm_head = rng.fill(V * D, -0.1f, 0.1f);
  w.source = "random_mamba2(seed=" + std::to_string(seed) + ")";
  return w;
}

void save_mamba2_hf(const Mamba2Weights& w, const std::string& dir, DType dtype) {
  const Mamba2Config& c = w.cfg;
  const int64_t D = c.d_model, E = c.d_inner, H = c.n_heads, K = c.d_conv, CD = c.conv_dim();
  json limit = json::array({double(c.dt_min), std::isinf(c.dt_max) ? 1e300 : double(c.dt_max)});
  write_config_json(dir, {
      {"architectures", {"Mamba2ForCausalLM"}},
      {"model_type", "mamba2"},
      {"hidden_size", D},
      {"num_hidden_layers", c.n_layer},
      {"vocab_size", c.vocab_size},
      {"state_size", c.d_state},
      {"conv_kernel", K},
      {"expand", c.expand},
      {"num_heads", H},
      {"head_dim", c.head_dim},
      {"n_groups", c.n_groups},
      {"layer_norm_epsilon", double(c.norm_eps)},
      {"use_bias", c.use_bias},
      {"use_conv_bias", c.use_conv_bias},
      {"tie_word_embeddings", w.lm_head.empty()},
      {"time_step_limit", limit},
      {"rms_norm", true},
      {"residual_in_fp32", true},
      {"torch_dtype", dtype == DType::F32 ? "float32" : dtype == DType::F16 ? "float16" : "bfloat16"},
  });
  std::vector<TensorToWrite> t;
  t.push_back(make_tensor("backbone.embeddings.weight", {c.vocab_size, D}, w.embeddings, dtype));
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const Mamba2LayerWeights& L = w.layers[i];
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    const std::string m = p + "mixer.";
    t.push_back(make_tensor(p + "norm.weight", {D}, L.norm, dtype));
    t.push_back(make_tensor(m + "in_proj.weight", {c.in_proj_rows(), D}, L.in_proj, dtype));
    if (c.use_bias) t.push_back(make_tensor(m + "in_proj.bias", {c.in_proj_rows()}, L.in_proj_b, dtype));
    t.push_back(make_tensor(m + "conv1d.weight", {CD, 1, K}, L.conv_w, dtype));
    if (c.use_conv_bias) t.push_back(make_tensor(m + "conv1d.bias", {CD}, L.conv_b, dtype));
    // Upstream keeps these three in fp32 whatever the model's dtype.
    t.push_back(make_tensor(m + "dt_bias", {H}, L.dt_bias));
    t.push_back(make_tensor(m + "A_log", {H}, L.A_log));
    t.push_back(make_tensor(m + "D", {H}, L.D));
    t.push_back(make_tensor(m + "norm.weight", {E}, L.gate_norm, dtype));
    t.push_back(make_tensor(m + "out_proj.weight", {D, E}, L.out_proj, dtype));
    if (c.use_bias) t.push_back(make_tensor(m + "out_proj.bias", {D}, L.out_proj_b, dtype));
  }
  t.push_back(make_tensor("backbone.norm_f.weight", {D}, w.norm_f, dtype));
  if (!w.lm_head.empty()) t.push_back(make_tensor("lm_head.weight", {c.vocab_size, D}, w.lm_head, dtype));
  write_safetensors((std::filesystem::path(dir) / "model.safetensors").string(), t);
}

uint64_t mamba2_fingerprint(const Mamba2Weights& w) {
  const Mamba2Config& c = w.cfg;
  const int64_t dims[] = {c.d_model, c.n_layer, c.vocab_size, c.d_state, c.d_conv, c.d_inner,
                          c.n_heads, c.head_dim, c.n_groups};
  uint64_t h = fnv1a64(dims, sizeof(dims));
  auto add = [&](const std::vector<float>& v) { h = fnv1a64(v.data(), v.size() * sizeof(float), h); };
  for (const auto& l : w.layers) {
    add(l.norm);
    add(l.conv_w);
    add(l.conv_b);
    add(l.dt_bias);
    add(l.A_log);
    add(l.D);
    add(l.gate_norm);
  }
  add(w.norm_f);
  const size_t row = std::min(w.embeddings.size(), size_t(std::max<int64_t>(c.d_model, 0)));
  return fnv1a64(w.embeddings.data(), row * sizeof(float), h);
}

ModelInfo mamba2_model_info(const Mamba2Weights& w) {
  const Mamba2Config& c = w.cfg;
  ModelInfo info;
  info.architecture = "mamba2";
  info.vocab_size = c.vocab_size;
  info.d_output = c.vocab_size;
  info.d_model = c.d_model;
  info.n_layer = c.n_layer;
  info.weight_bytes = uint64_t(w.parameter_count()) * 4;
  info.state_bytes_per_stream = uint64_t(c.n_layer) * (c.conv_dim() * c.d_conv + c.d_inner * c.d_state) * 4;
  return info;
}

StateHeader mamba2_state_header(const Mamba2Weights& w) {
  const Mamba2Config& c = w.cfg;
  return {mamba2_fingerprint(w), "mamba2",
          {uint64_t(c.n_layer), uint64_t(c.conv_dim()), uint64_t(c.d_conv), uint64_t(c.n_heads),
           uint64_t(c.head_dim), uint64_t(c.d_state)},
          uint64_t(c.n_layer) * uint64_t(c.conv_dim() * c.d_conv + c.d_inner * c.d_state)};
}

}  // namespace vkssm

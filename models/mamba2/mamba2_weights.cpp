// Mamba-2 configuration parsing, checkpoint loading/saving and random weights. Both config.json
// dialects (HF Mamba2Config and the original mamba_ssm one with ssm_cfg.layer "Mamba2") end up in
// one Mamba2Config, each with its own writer's defaults.
#include <cfloat>
#include <cmath>
#include <filesystem>
#include <limits>

#include "engine/architecture.h"
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

std::string show(double v) {
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  return json(v).dump();
}

// Doubles past the float range become infinities explicitly (the plain conversion is undefined).
float to_float(double v) {
  if (v > double(FLT_MAX)) return std::numeric_limits<float>::infinity();
  if (v < -double(FLT_MAX)) return -std::numeric_limits<float>::infinity();
  return float(v);
}

// One bound of time_step_limit. Writers spell the default (0, inf) three ways: a bare Infinity
// token (read_json_file turns it into 1e308, past the float range), and since transformers 5 an
// object {"__float__": "Infinity"}.
double limit_bound(const json& v, int index, const std::string& key, const std::string& source) {
  if (v.is_number()) return v.get<double>();
  if (v.is_object() && v.size() == 1 && v.contains("__float__") && v["__float__"].is_string()) {
    const std::string s = v["__float__"].get<std::string>();
    if (s == "Infinity" || s == "inf") return HUGE_VAL;
    if (s == "-Infinity" || s == "-inf") return -HUGE_VAL;
  }
  throw Error("element " + std::to_string(index) + " of key '" + key + "' in " + source +
              " must be a number, got " + describe_json(v));
}

// time_step_limit (HF) or ssm_cfg.dt_limit (mamba_ssm): [min, max] that dt is clamped to.
void read_time_step_limit(const json& j, const std::string& key, Mamba2Config& c, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return;
  const json& v = j[key];
  if (!v.is_array() || v.size() != 2)
    throw Error("key '" + key + "' in " + source + " must be a pair of numbers, got " + describe_json(v));
  const double lo = limit_bound(v[0], 0, key, source), hi = limit_bound(v[1], 1, key, source);
  if (!(lo >= 0.0) || !(hi > lo) || std::isinf(lo))
    throw Error("key '" + key + "' in " + source + " must satisfy 0 <= min < max, got [" + show(lo) + ", " +
                show(hi) + "]");
  c.dt_min = to_float(lo);
  c.dt_max = to_float(hi);
}

void refuse_if(bool cond, const std::string& what, const std::string& source) {
  if (cond) throw Error("config " + source + " " + what);
}

// Checks and derives what both dialects share; also run on random_mamba2's config.
void finish_config(Mamba2Config& c, const std::string& source) {
  check_range("d_model", c.d_model, 1 << 16, source);
  check_range("n_layer", c.n_layer, 1 << 12, source);
  check_range("vocab_size", c.vocab_size, 1 << 23, source);
  check_range("d_state", c.d_state, 1 << 12, source);
  check_range("d_conv", c.d_conv, 64, source);
  check_range("head_dim", c.head_dim, 1 << 12, source);
  check_range("n_groups", c.n_groups, 1 << 12, source);
  if (!(c.expand > 0.0 && c.expand <= 64.0))
    throw Error("Mamba-2 expand in " + source + " must be a number above 0 and at most 64, got " + show(c.expand));
  // expand is a number in both dialects (a real HF config has 1.5): E = int(expand * D), as both
  // upstream and HF compute it.
  const int64_t from_expand = int64_t(c.expand * double(c.d_model));
  if (c.d_inner == 0) c.d_inner = from_expand;
  check_range("d_inner", c.d_inner, 1 << 20, source);
  // A saved config only carries expand, so a d_inner that disagrees would not survive a round trip.
  if (c.d_inner != from_expand)
    throw Error("Mamba-2 d_inner " + std::to_string(c.d_inner) + " in " + source +
                " must equal int(expand * d_model) = " + std::to_string(from_expand));
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
  if (!(c.dt_min >= 0.0f) || !(c.dt_max > c.dt_min) || std::isinf(c.dt_min))
    throw Error("Mamba-2 time_step_limit in " + source + " must satisfy 0 <= min < max, got [" + show(c.dt_min) +
                ", " + show(c.dt_max) + "]");
}

// HF Mamba2Config. Its defaults where a key is missing (a config written by transformers always
// has them): n_groups 8, head_dim 64, state_size 128; num_heads, which HF defaults to 128, is
// derived from d_inner / head_dim instead (HF could not load a checkpoint where the two differ).
// intermediate_size and norm_before_gate are ignored, as HF's Mamba2Mixer ignores them.
void parse_hf(const json& config, Mamba2Config& c, const std::string& source) {
  c.d_model = get_int(config, "hidden_size", source);
  c.n_layer = get_int(config, "num_hidden_layers", source);
  c.vocab_size = get_int(config, "vocab_size", source);
  c.d_state = get_int(config, "state_size", source, 128);
  c.d_conv = get_int(config, "conv_kernel", source, 4);
  c.expand = get_number(config, "expand", source, 2.0);
  c.n_heads = get_int(config, "num_heads", source, 0);  // 0: derived in finish_config
  if (config.contains("num_heads") && !config["num_heads"].is_null())
    check_range("num_heads", c.n_heads, 1 << 16, source);
  c.head_dim = get_int(config, "head_dim", source, 64);
  c.n_groups = get_int(config, "n_groups", source, 8);
  c.norm_eps = float(get_number(config, "layer_norm_epsilon", source, 1e-5));
  c.use_bias = get_bool(config, "use_bias", source, false);
  c.use_conv_bias = get_bool(config, "use_conv_bias", source, true);
  c.tie_embeddings = get_bool(config, "tie_word_embeddings", source, true);
  check_range("chunk_size", get_int(config, "chunk_size", source, 256), 1 << 20, source);
  get_bool(config, "residual_in_fp32", source, true);  // type-checked only: the reference sums in double
  refuse_if(!get_bool(config, "rms_norm", source, true),
            "sets rms_norm to false; vkssm runs Mamba-2 with its gated RMSNorm only", source);
  read_time_step_limit(config, "time_step_limit", c, source);
}

// Original mamba_ssm MambaConfig + Mamba2(**ssm_cfg), with their defaults. MixerModel's norms and
// Mamba2's gated norm all use eps 1e-5 there (the config has no key for it).
void parse_original(const json& config, Mamba2Config& c, const std::string& source) {
  c.d_model = get_int(config, "d_model", source);
  c.n_layer = get_int(config, "n_layer", source);
  c.vocab_size = get_int(config, "vocab_size", source);
  const json ssm = config.contains("ssm_cfg") && !config["ssm_cfg"].is_null() ? config["ssm_cfg"] : json::object();
  if (!ssm.is_object()) throw Error("key 'ssm_cfg' in " + source + " must be an object, got " + describe_json(ssm));
  c.d_state = get_int(ssm, "d_state", source, 128);
  c.d_conv = get_int(ssm, "d_conv", source, 4);
  c.expand = get_number(ssm, "expand", source, 2.0);
  c.head_dim = get_int(ssm, "headdim", source, 64);
  c.n_groups = get_int(ssm, "ngroups", source, 1);
  c.use_bias = get_bool(ssm, "bias", source, false);
  c.use_conv_bias = get_bool(ssm, "conv_bias", source, true);
  check_range("chunk_size", get_int(ssm, "chunk_size", source, 256), 1 << 20, source);
  refuse_if(!get_bool(ssm, "rmsnorm", source, true),
            "sets ssm_cfg.rmsnorm to false; vkssm runs Mamba-2 with its gated RMSNorm only", source);
  refuse_if(get_bool(ssm, "norm_before_gate", source, false),
            "sets ssm_cfg.norm_before_gate to true; vkssm runs the gate before the norm only", source);
  refuse_if(get_bool(ssm, "D_has_hdim", source, false),
            "sets ssm_cfg.D_has_hdim to true; vkssm runs Mamba-2 with one D per head only", source);
  read_time_step_limit(ssm, "dt_limit", c, source);
  c.norm_eps = 1e-5f;
  c.tie_embeddings = get_bool(config, "tie_embeddings", source, true);
  refuse_if(!get_bool(config, "rms_norm", source, true),
            "asks for LayerNorm (rms_norm: false); vkssm supports only RMSNorm models", source);
  const int64_t d_mlp = get_int(config, "d_intermediate", source, 0);
  refuse_if(d_mlp != 0,
            "sets d_intermediate to " + std::to_string(d_mlp) + " (an MLP after each mixer); vkssm does not run it",
            source);
  if (config.contains("attn_layer_idx") && !config["attn_layer_idx"].is_null()) {
    const json& a = config["attn_layer_idx"];
    if (!a.is_array()) throw Error("key 'attn_layer_idx' in " + source + " must be a list, got " + describe_json(a));
    refuse_if(!a.empty(), "lists attention layers in attn_layer_idx; vkssm runs pure Mamba-2 models only", source);
  }
  // mamba_ssm pads the embedding to a multiple of pad_vocab_size_multiple rows (MambaConfig: 8).
  const int64_t pad = get_int(config, "pad_vocab_size_multiple", source, 8);
  check_range("pad_vocab_size_multiple", pad, 1 << 16, source);
  check_range("vocab_size", c.vocab_size, 1 << 23, source);
  c.vocab_size = (c.vocab_size + pad - 1) / pad * pad;
  // d_ssm < d_inner splits the extra channels off as a gated MLP beside the SSM.
  c.d_inner = int64_t(c.expand * double(c.d_model));
  const int64_t d_ssm = get_int(ssm, "d_ssm", source, c.d_inner);
  refuse_if(d_ssm != c.d_inner,
            "sets ssm_cfg.d_ssm to " + std::to_string(d_ssm) + ", not d_inner " + std::to_string(c.d_inner) +
                " (the rest is an MLP beside the SSM); vkssm does not run it",
            source);
}

}  // namespace

Mamba2Config parse_mamba2_config(const json& config, const std::string& source) {
  if (!config.is_object()) throw Error("config " + source + " is not a JSON object");
  require_architecture(config, source, {"mamba2"});
  Mamba2Config c;
  if (config.contains("d_model") && !config.contains("hidden_size"))
    parse_original(config, c, source);
  else
    parse_hf(config, c, source);
  finish_config(c, source);
  return c;
}

int64_t Mamba2Weights::parameter_count() const {
  size_t n = end_parameters();
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
  const std::string config_path = ckpt.config_source();
  Mamba2Config& c = w.cfg;
  c = parse_mamba2_config(ckpt.config(), config_path);
  const int64_t D = c.d_model, E = c.d_inner, H = c.n_heads, K = c.d_conv, CD = c.conv_dim();

  const std::string emb_name = load_token_model_embeddings(ckpt, c.vocab_size, D, w);
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    const std::string m = p + "mixer.";
    Mamba2LayerWeights L;
    L.norm = ckpt.load_f32(p + "norm.weight", {D});
    L.in_proj = load_token_model_matrix(ckpt, m + "in_proj.weight", {c.in_proj_rows(), D}, w);
    L.in_proj_b = load_optional_tensor(ckpt, m + "in_proj.bias", c.use_bias, {c.in_proj_rows()}, "use_bias",
                                       config_path);
    L.conv_w = ckpt.load_f32(m + "conv1d.weight", {CD, 1, K});
    L.conv_b = load_optional_tensor(ckpt, m + "conv1d.bias", c.use_conv_bias, {CD}, "use_conv_bias", config_path);
    if (!c.use_conv_bias) L.conv_b.assign(size_t(CD), 0.0f);
    L.dt_bias = ckpt.load_f32(m + "dt_bias", {H});
    L.A_log = ckpt.load_f32(m + "A_log", {H});
    L.D = ckpt.load_f32(m + "D", {H});
    L.gate_norm = ckpt.load_f32(m + "norm.weight", {E});
    L.out_proj = load_token_model_matrix(ckpt, m + "out_proj.weight", {D, E}, w);
    L.out_proj_b = load_optional_tensor(ckpt, m + "out_proj.bias", c.use_bias, {D}, "use_bias", config_path);
    w.layers.push_back(std::move(L));
  }
  load_token_model_head(ckpt, emb_name, c.vocab_size, D, c.tie_embeddings, w);
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
  random_token_model_head(rng, V, D, c.tie_embeddings, w);
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
      {"expand", c.expand == std::floor(c.expand) ? json(int64_t(c.expand)) : json(c.expand)},
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
  append_token_model_tensors(t, w, c.vocab_size, D, dtype);
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
  const float limits[] = {c.dt_min, c.dt_max};
  h = fnv1a64(limits, sizeof(limits), h);
  return fingerprint_token_model_ends(h, w, c.d_model);
}

}  // namespace vkssm

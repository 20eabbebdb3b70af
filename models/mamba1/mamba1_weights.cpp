// Mamba-1 configuration parsing, checkpoint loading/saving and random weights.
//
// Two config.json dialects exist: the HF one (MambaConfig: hidden_size, num_hidden_layers, ...)
// and the original state-spaces/mamba_ssm one (d_model, n_layer, ssm_cfg{...}). Both end up in
// one Mamba1Config; everything downstream sees only that.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/architecture.h"
#include "host/config_json.h"
#include "host/error.h"
#include "host/weight_rng.h"
#include "models/common/lm_checkpoint.h"
#include "host/state_file.h"
#include "host/safetensors.h"
#include "models/mamba1/mamba1_model.h"

namespace vkssm {

namespace {

using nlohmann::json;

// time_step_rank / dt_rank: an integer or "auto" (= ceil(D / 16)); 0 here means "auto".
int64_t get_dt_rank(const json& j, const std::string& key, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return 0;
  if (j[key].is_string()) {
    if (j[key].get<std::string>() == "auto") return 0;
    throw Error("key '" + key + "' in " + source + " must be an integer or \"auto\", got " +
                describe_json(j[key]));
  }
  return get_int(j, key, source);
}

void check_range(const char* what, int64_t v, int64_t max, const std::string& source) {
  if (v < 1 || v > max)
    throw Error(std::string("Mamba-1 ") + what + " in " + source + " must be between 1 and " +
                std::to_string(max) + ", got " + std::to_string(v));
}

// Fills derived fields (d_inner, dt_rank) and checks every dimension against sane limits, so a
// corrupt config fails here instead of asking for terabytes later.
void finish_config(Mamba1Config& c, const std::string& source) {
  check_range("d_model", c.d_model, 1 << 16, source);
  check_range("n_layer", c.n_layer, 1 << 12, source);
  check_range("vocab_size", c.vocab_size, 1 << 23, source);
  check_range("d_state", c.d_state, 1 << 12, source);
  check_range("d_conv", c.d_conv, 64, source);
  check_range("expand", c.expand, 64, source);
  if (c.d_inner == 0) c.d_inner = c.expand * c.d_model;
  check_range("d_inner", c.d_inner, 1 << 20, source);
  if (c.dt_rank == 0) c.dt_rank = (c.d_model + 15) / 16;
  check_range("dt_rank", c.dt_rank, 1 << 16, source);
  if (!(c.norm_eps > 0.0f) || !std::isfinite(c.norm_eps))
    throw Error("Mamba-1 norm epsilon in " + source + " must be a positive number, got " +
                std::to_string(c.norm_eps));
  if (c.dt_b_c_rms && (!(c.mixer_rms_eps > 0.0f) || !std::isfinite(c.mixer_rms_eps)))
    throw Error("Falcon-Mamba mixer_rms_eps in " + source + " must be a positive number, got " +
                std::to_string(c.mixer_rms_eps));
}

std::vector<float> zeros(int64_t n) { return std::vector<float>(size_t(n), 0.0f); }

}  // namespace

const char* mamba1_architecture_name(const Mamba1Config& c) { return c.dt_b_c_rms ? "falcon_mamba" : "mamba"; }

Mamba1Config parse_mamba1_config(const json& config, const std::string& source) {
  if (!config.is_object()) throw Error("config " + source + " is not a JSON object");
  require_architecture(config, source, {"mamba", "falcon_mamba"});

  Mamba1Config c;
  if (architecture_of(config, source).name == "falcon_mamba") {
    c.dt_b_c_rms = true;
    c.mixer_rms_eps = float(get_number(config, "mixer_rms_eps", source, 1e-6));
  }
  const bool original_form = config.contains("d_model") && !config.contains("hidden_size");
  if (!original_form) {  // HF MambaConfig
    c.d_model = get_int(config, "hidden_size", source);
    c.n_layer = get_int(config, "num_hidden_layers", source);
    c.vocab_size = get_int(config, "vocab_size", source);
    c.d_state = get_int(config, "state_size", source, 16);
    c.d_conv = get_int(config, "conv_kernel", source, 4);
    c.expand = get_int(config, "expand", source, 2);
    c.d_inner = get_int(config, "intermediate_size", source, 0);
    c.dt_rank = get_dt_rank(config, "time_step_rank", source);
    c.norm_eps = float(get_number(config, "layer_norm_epsilon", source, 1e-5));
    c.use_bias = get_bool(config, "use_bias", source, false);
    c.use_conv_bias = get_bool(config, "use_conv_bias", source, true);
    c.tie_embeddings = get_bool(config, "tie_word_embeddings", source, true);
  } else {  // original mamba_ssm MambaConfig
    c.d_model = get_int(config, "d_model", source);
    c.n_layer = get_int(config, "n_layer", source);
    c.vocab_size = get_int(config, "vocab_size", source);
    json ssm = config.contains("ssm_cfg") && !config["ssm_cfg"].is_null() ? config["ssm_cfg"]
                                                                           : json::object();
    if (!ssm.is_object()) throw Error("key 'ssm_cfg' in " + source + " must be an object");
    c.d_state = get_int(ssm, "d_state", source, 16);
    c.d_conv = get_int(ssm, "d_conv", source, 4);
    c.expand = get_int(ssm, "expand", source, 2);
    c.dt_rank = get_dt_rank(ssm, "dt_rank", source);
    c.use_bias = get_bool(ssm, "bias", source, false);
    c.use_conv_bias = get_bool(ssm, "conv_bias", source, true);
    c.norm_eps = float(get_number(config, "norm_epsilon", source, 1e-5));
    c.tie_embeddings = get_bool(config, "tie_embeddings", source, true);
    if (!get_bool(config, "rms_norm", source, true))
      throw Error("config " + source + " asks for LayerNorm (rms_norm: false); vkssm supports " +
                  "only RMSNorm Mamba models");
    // mamba_ssm pads the embedding to a multiple of pad_vocab_size_multiple rows.
    int64_t pad = get_int(config, "pad_vocab_size_multiple", source, 8);
    check_range("pad_vocab_size_multiple", pad, 1 << 16, source);
    check_range("vocab_size", c.vocab_size, 1 << 23, source);
    c.vocab_size = (c.vocab_size + pad - 1) / pad * pad;
  }
  finish_config(c, source);
  return c;
}

Mamba1Weights load_mamba1(const Checkpoint& ckpt) {
  Mamba1Weights w;
  const std::string config_path = ckpt.config_source();
  Mamba1Config& c = w.cfg;
  c = parse_mamba1_config(ckpt.config(), config_path);
  const int64_t D = c.d_model, E = c.d_inner, N = c.d_state, K = c.d_conv, R = c.dt_rank;

  const std::string emb_name = load_token_model_embeddings(ckpt, c.vocab_size, D, w);
  auto load_optional = [&](const std::string& name, bool expected, std::vector<int64_t> shape,
                           const char* flag) {
    return load_optional_tensor(ckpt, name, expected, shape, flag, config_path);
  };

  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    const std::string m = p + "mixer.";
    Mamba1LayerWeights L;
    L.norm = ckpt.load_f32(p + "norm.weight", {D});
    L.in_proj = load_token_model_matrix(ckpt, m + "in_proj.weight", {2 * E, D}, w);
    L.in_proj_b = load_optional(m + "in_proj.bias", c.use_bias, {2 * E}, "use_bias");
    L.conv_w = ckpt.load_f32(m + "conv1d.weight", {E, 1, K});  // same bytes as [E, K]
    L.conv_b = load_optional(m + "conv1d.bias", c.use_conv_bias, {E}, "use_conv_bias");
    if (!c.use_conv_bias) L.conv_b = zeros(E);
    L.x_proj = load_token_model_matrix(ckpt, m + "x_proj.weight", {R + 2 * N, E}, w);
    L.dt_proj_w = ckpt.load_f32(m + "dt_proj.weight", {E, R});
    L.dt_proj_b = ckpt.load_f32(m + "dt_proj.bias", {E});
    L.A_log = ckpt.load_f32(m + "A_log", {E, N});
    L.D = ckpt.load_f32(m + "D", {E});
    L.out_proj = load_token_model_matrix(ckpt, m + "out_proj.weight", {D, E}, w);
    L.out_proj_b = load_optional(m + "out_proj.bias", c.use_bias, {D}, "use_bias");
    w.layers.push_back(std::move(L));
  }
  load_token_model_head(ckpt, emb_name, c.vocab_size, D, c.tie_embeddings, w);
  return w;
}

Mamba1Weights random_mamba1(const Mamba1Config& cfg, uint64_t seed) {
  Mamba1Weights w;
  w.cfg = cfg;
  Mamba1Config& c = w.cfg;
  finish_config(c, "random_mamba1 config");
  const int64_t D = c.d_model, E = c.d_inner, N = c.d_state, K = c.d_conv, R = c.dt_rank;
  const int64_t V = c.vocab_size;
  WeightRng rng{seed};
  auto bound = [](int64_t fan_in) { return 1.0f / std::sqrt(float(fan_in)); };

  w.embeddings = rng.fill(V * D, -0.1f, 0.1f);
  for (int64_t i = 0; i < c.n_layer; ++i) {
    Mamba1LayerWeights L;
    L.norm = rng.fill(D, 0.9f, 1.1f);
    L.in_proj = rng.fill(2 * E * D, -bound(D), bound(D));
    if (c.use_bias) L.in_proj_b = rng.fill(2 * E, -0.02f, 0.02f);
    L.conv_w = rng.fill(E * K, -bound(K), bound(K));
    L.conv_b = c.use_conv_bias ? rng.fill(E, -0.1f, 0.1f) : zeros(E);
    L.x_proj = rng.fill((R + 2 * N) * E, -bound(E), bound(E));
    L.dt_proj_w = rng.fill(E * R, -bound(R), bound(R));
    // Upstream init: dt log-uniform in [1e-3, 1e-1], stored through the inverse of softplus.
    L.dt_proj_b.resize(size_t(E));
    for (float& b : L.dt_proj_b) {
      double dt = std::exp(rng.uniform(std::log(1e-3f), std::log(1e-1f)));
      b = float(dt + std::log(-std::expm1(-dt)));
    }
    // S4D-real init: A = -(1..N) in every row.
    L.A_log.resize(size_t(E * N));
    for (int64_t e = 0; e < E; ++e)
      for (int64_t n = 0; n < N; ++n) L.A_log[size_t(e * N + n)] = std::log(float(n + 1));
    L.D = rng.fill(E, 0.9f, 1.1f);
    L.out_proj = rng.fill(D * E, -bound(E), bound(E));
    if (c.use_bias) L.out_proj_b = rng.fill(D, -0.02f, 0.02f);
    w.layers.push_back(std::move(L));
  }
  random_token_model_head(rng, V, D, c.tie_embeddings, w);
  w.source = "random_mamba1(seed=" + std::to_string(seed) + ")";
  return w;
}

void save_mamba1_hf(const Mamba1Weights& w, const std::string& dir, DType dtype) {
  const Mamba1Config& c = w.cfg;
  const int64_t D = c.d_model, E = c.d_inner, N = c.d_state, K = c.d_conv, R = c.dt_rank;
  const char* torch_dtype = dtype == DType::F32 ? "float32" : dtype == DType::F16 ? "float16" : "bfloat16";
  json config = {
      {"architectures", {c.dt_b_c_rms ? "FalconMambaForCausalLM" : "MambaForCausalLM"}},
      {"model_type", mamba1_architecture_name(c)},
      {"hidden_size", D},
      {"num_hidden_layers", c.n_layer},
      {"vocab_size", c.vocab_size},
      {"state_size", N},
      {"conv_kernel", K},
      {"expand", c.expand},
      {"intermediate_size", E},
      {"time_step_rank", R},
      {"layer_norm_epsilon", double(c.norm_eps)},
      {"use_bias", c.use_bias},
      {"use_conv_bias", c.use_conv_bias},
      {"tie_word_embeddings", w.lm_head.empty()},
      {"hidden_act", "silu"},
      {"residual_in_fp32", true},
      {"torch_dtype", torch_dtype},
  };
  if (c.dt_b_c_rms) config["mixer_rms_eps"] = double(c.mixer_rms_eps);
  write_config_json(dir, config);

  std::vector<TensorToWrite> t;
  append_token_model_tensors(t, w, c.vocab_size, D, dtype);
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const Mamba1LayerWeights& L = w.layers[i];
    const std::string p = "backbone.layers." + std::to_string(i) + ".";
    const std::string m = p + "mixer.";
    t.push_back(make_tensor(p + "norm.weight", {D}, L.norm, dtype));
    t.push_back(make_tensor(m + "in_proj.weight", {2 * E, D}, L.in_proj, dtype));
    if (c.use_bias) t.push_back(make_tensor(m + "in_proj.bias", {2 * E}, L.in_proj_b, dtype));
    t.push_back(make_tensor(m + "conv1d.weight", {E, 1, K}, L.conv_w, dtype));
    if (c.use_conv_bias) t.push_back(make_tensor(m + "conv1d.bias", {E}, L.conv_b, dtype));
    t.push_back(make_tensor(m + "x_proj.weight", {R + 2 * N, E}, L.x_proj, dtype));
    t.push_back(make_tensor(m + "dt_proj.weight", {E, R}, L.dt_proj_w, dtype));
    t.push_back(make_tensor(m + "dt_proj.bias", {E}, L.dt_proj_b, dtype));
    t.push_back(make_tensor(m + "A_log", {E, N}, L.A_log, dtype));
    t.push_back(make_tensor(m + "D", {E}, L.D, dtype));
    t.push_back(make_tensor(m + "out_proj.weight", {D, E}, L.out_proj, dtype));
    if (c.use_bias) t.push_back(make_tensor(m + "out_proj.bias", {D}, L.out_proj_b, dtype));
  }
  write_safetensors((std::filesystem::path(dir) / "model.safetensors").string(), t,
                    {{"format", "pt"}});
}

int64_t Mamba1Weights::parameter_count() const {
  size_t n = end_parameters();
  for (const auto& L : layers) {
    n += L.norm.size() + L.in_proj.size() + L.in_proj_b.size() + L.conv_w.size();
    n += cfg.use_conv_bias ? L.conv_b.size() : 0;  // otherwise all zeros, not a parameter
    n += L.x_proj.size() + L.dt_proj_w.size() + L.dt_proj_b.size() + L.A_log.size() +
         L.D.size() + L.out_proj.size() + L.out_proj_b.size();
  }
  return int64_t(n);
}

uint64_t mamba1_fingerprint(const Mamba1Weights& w) {
  const Mamba1Config& c = w.cfg;
  const int64_t dims[] = {c.d_model, c.n_layer, c.vocab_size, c.d_state, c.d_conv, c.d_inner, c.dt_rank};
  uint64_t h = fnv1a64(dims, sizeof(dims));
  if (c.dt_b_c_rms) h = fnv1a64(&c.mixer_rms_eps, sizeof(c.mixer_rms_eps), h);  // plain Mamba-1 hashes as before
  auto add = [&](const std::vector<float>& v) { h = fnv1a64(v.data(), v.size() * sizeof(float), h); };
  for (const auto& l : w.layers) {
    add(l.norm);
    add(l.conv_w);
    add(l.conv_b);
    add(l.dt_proj_b);
    add(l.A_log);
    add(l.D);
  }
  return fingerprint_token_model_ends(h, w, c.d_model);
}

}  // namespace vkssm

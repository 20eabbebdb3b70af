// S4D configuration parsing, checkpoint loading/saving, random weights and the zero-order hold.
//
// Tensor names are upstream's `S4Model.state_dict()` (example.py with S4D layers):
//   encoder.weight [H, d_input], encoder.bias [H]
//   s4_layers.{i}.kernel.log_dt [H], .kernel.C [H, N/2, 2], .kernel.log_A_real [H, N/2],
//   .kernel.A_imag [H, N/2], s4_layers.{i}.D [H], .output_linear.0.weight [2H, H, 1],
//   .output_linear.0.bias [2H]
//   norms.{i}.weight [H], norms.{i}.bias [H]
//   decoder.weight [d_output, H], decoder.bias [d_output]
// There is no standard config for S4D; config.json is the project's (see parse_s4d_config).
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <sstream>

#include "engine/architecture.h"
#include "host/config_json.h"
#include "host/error.h"
#include "host/safetensors.h"
#include "host/state_file.h"
#include "host/weight_rng.h"
#include "models/s4d/s4d_model.h"

namespace vkssm {

namespace {

using nlohmann::json;

// Bounds that keep a corrupt config from asking for absurd allocations later.
void check_config(const S4DConfig& c, const std::string& source) {
  check_dim_range("S4D", "d_input", c.d_input, 1 << 20, source);
  check_dim_range("S4D", "d_model", c.d_model, 1 << 16, source);
  check_dim_range("S4D", "d_state", c.d_state, 1 << 12, source);
  if (c.d_state % 2 != 0)
    throw Error("S4D d_state in " + source + " must be even (d_state/2 complex modes per channel), got " +
                std::to_string(c.d_state));
  check_dim_range("S4D", "n_layers", c.n_layers, 1 << 12, source);
  check_dim_range("S4D", "d_output", c.d_output, 1 << 20, source);
  if (!(c.layer_norm_eps > 0.0f) || !std::isfinite(c.layer_norm_eps)) {
    std::ostringstream v;
    v << c.layer_norm_eps;
    throw Error("S4D layer_norm_eps in " + source + " must be a positive number, got " + v.str());
  }
}

// Box-Muller on the project's portable generator, so random models are the same everywhere.
double normal(WeightRng& rng) {
  const double u1 = (double(rng.next() >> 11) + 1.0) / 9007199254740992.0;  // (0, 1]: log() stays finite
  const double u2 = double(rng.next() >> 11) / 9007199254740992.0;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

std::string layer_prefix(int64_t i) { return "s4_layers." + std::to_string(i) + "."; }
std::string norm_prefix(int64_t i) { return "norms." + std::to_string(i) + "."; }

}  // namespace

S4DConfig parse_s4d_config(const json& config, const std::string& source) {
  if (!config.is_object()) throw Error("config " + source + " is not a JSON object");
  require_architecture(config, source, {"s4d"});
  S4DConfig c;
  c.d_input = get_int(config, "d_input", source);
  c.d_model = get_int(config, "d_model", source);
  c.d_state = get_int(config, "d_state", source, 64);  // upstream S4D's default
  c.n_layers = get_int(config, "n_layers", source);
  c.d_output = get_int(config, "d_output", source);
  c.prenorm = get_bool(config, "prenorm", source, false);
  c.layer_norm_eps = float(get_number(config, "layer_norm_eps", source, 1e-5));
  if (config.contains("activation") && !config["activation"].is_null()) {
    const json& a = config["activation"];
    if (!a.is_string())
      throw Error("key 'activation' in " + source + " must be a string, got " + describe_json(a));
    if (a.get<std::string>() != "gelu")
      throw Error("S4D activation '" + a.get<std::string>() + "' in " + source +
                  " is not supported (vkssm implements upstream's exact erf GELU: \"gelu\")");
  }
  check_config(c, source);
  return c;
}

void s4d_zoh(const S4DLayerWeights& L, int64_t H, int64_t M, const std::string& what,
             std::vector<std::complex<double>>& dA, std::vector<std::complex<double>>& dB) {
  dA.assign(size_t(H * M), {});
  dB.assign(size_t(H * M), {});
  for (int64_t h = 0; h < H; ++h) {
    const double dt = std::exp(double(L.log_dt[size_t(h)]));
    for (int64_t m = 0; m < M; ++m) {
      const size_t i = size_t(h * M + m);
      const std::complex<double> A(-std::exp(double(L.log_A_real[i])), double(L.A_imag[i]));
      const std::complex<double> z = dt * A;
      const std::complex<double> e = std::exp(z);
      // (e^z - 1)/z loses digits to cancellation as z -> 0, where its series is exact enough.
      const std::complex<double> b =
          std::abs(z) < 1e-4 ? dt * (1.0 + z / 2.0 + z * z / 6.0) : (e - 1.0) / A;
      const auto finite = [](std::complex<double> v) {
        return std::isfinite(v.real()) && std::isfinite(v.imag());
      };
      if (!std::isfinite(dt) || !finite(A) || !finite(e) || !finite(b)) {
        std::ostringstream msg;
        msg << what << ": the zero-order hold of channel " << h << ", mode " << m
            << " is not finite (log_dt " << L.log_dt[size_t(h)] << ", log_A_real " << L.log_A_real[i]
            << ", A_imag " << L.A_imag[i] << ")";
        throw Error(msg.str());
      }
      dA[i] = e;
      dB[i] = b;
    }
  }
}

void s4d_discretise(S4DWeights& w) {
  const int64_t H = w.cfg.d_model, M = w.cfg.modes();
  std::vector<std::complex<double>> dA, dB;
  for (size_t i = 0; i < w.layers.size(); ++i) {
    S4DLayerWeights& L = w.layers[i];
    s4d_zoh(L, H, M, "S4D layer " + std::to_string(i) + " of " + w.source, dA, dB);
    L.dA.resize(size_t(2 * H * M));
    L.dB.resize(size_t(2 * H * M));
    for (size_t k = 0; k < dA.size(); ++k) {
      L.dA[2 * k] = float(dA[k].real());
      L.dA[2 * k + 1] = float(dA[k].imag());
      L.dB[2 * k] = float(dB[k].real());
      L.dB[2 * k + 1] = float(dB[k].imag());
    }
  }
}

S4DWeights load_s4d(const Checkpoint& ckpt) {
  S4DWeights w;
  const std::string config_path = ckpt.config_source();
  S4DConfig& c = w.cfg;
  c = parse_s4d_config(ckpt.config(), config_path);
  const int64_t H = c.d_model, M = c.modes();

  // Layers beyond n_layers would be silently ignored: a config that disagrees with its weights.
  for (const std::string& extra : {layer_prefix(c.n_layers) + "D", norm_prefix(c.n_layers) + "weight"})
    if (ckpt.has(extra))
      throw Error("checkpoint " + ckpt.dir() + " has tensor " + extra + " but " + config_path +
                  " gives n_layers " + std::to_string(c.n_layers));

  w.encoder_w = ckpt.load_f32("encoder.weight", {H, c.d_input});
  w.encoder_b = ckpt.load_f32("encoder.bias", {H});
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string p = layer_prefix(i), k = p + "kernel.", n = norm_prefix(i);
    S4DLayerWeights L;
    L.log_dt = ckpt.load_f32(k + "log_dt", {H});
    L.C = ckpt.load_f32(k + "C", {H, M, 2});
    L.log_A_real = ckpt.load_f32(k + "log_A_real", {H, M});
    L.A_imag = ckpt.load_f32(k + "A_imag", {H, M});
    L.D = ckpt.load_f32(p + "D", {H});
    L.out_w = ckpt.load_f32(p + "output_linear.0.weight", {2 * H, H, 1});
    L.out_b = ckpt.load_f32(p + "output_linear.0.bias", {2 * H});
    L.norm_w = ckpt.load_f32(n + "weight", {H});
    L.norm_b = ckpt.load_f32(n + "bias", {H});
    w.layers.push_back(std::move(L));
  }
  w.decoder_w = ckpt.load_f32("decoder.weight", {c.d_output, H});
  w.decoder_b = ckpt.load_f32("decoder.bias", {c.d_output});
  w.source_dtype = ckpt.main_dtype();
  w.source = ckpt.dir();
  s4d_discretise(w);
  return w;
}

S4DWeights random_s4d(const S4DConfig& cfg, uint64_t seed) {
  S4DWeights w;
  w.cfg = cfg;
  const S4DConfig& c = w.cfg;
  check_config(c, "random_s4d config");
  const int64_t H = c.d_model, M = c.modes();
  WeightRng rng{seed};
  // PyTorch's default Linear / Conv1d init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), bias too.
  auto linear = [&](int64_t n, int64_t fan_in) {
    const float b = 1.0f / std::sqrt(float(fan_in));
    return rng.fill(n, -b, b);
  };
  auto normals = [&](int64_t n, double stddev) {
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = float(stddev * normal(rng));
    return v;
  };

  w.encoder_w = linear(H * c.d_input, c.d_input);
  w.encoder_b = linear(H, c.d_input);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    S4DLayerWeights L;
    L.log_dt.resize(size_t(H));
    for (float& v : L.log_dt) v = rng.uniform(std::log(1e-3f), std::log(1e-1f));
    L.C = normals(H * M * 2, std::sqrt(0.5));  // torch.randn(cfloat): variance 1/2 per part
    L.log_A_real.assign(size_t(H * M), std::log(0.5f));
    L.A_imag.resize(size_t(H * M));
    for (int64_t h = 0; h < H; ++h)
      for (int64_t m = 0; m < M; ++m) L.A_imag[size_t(h * M + m)] = float(std::numbers::pi * double(m));
    L.D = normals(H, 1.0);
    L.out_w = linear(2 * H * H, H);
    L.out_b = linear(2 * H, H);
    L.norm_w = rng.fill(H, 0.9f, 1.1f);
    L.norm_b = rng.fill(H, -0.05f, 0.05f);
    w.layers.push_back(std::move(L));
  }
  w.decoder_w = linear(c.d_output * H, H);
  w.decoder_b = linear(c.d_output, H);
  w.source_dtype = DType::F32;
  w.source = "random_s4d(seed=" + std::to_string(seed) + ")";
  s4d_discretise(w);
  return w;
}

void save_s4d(const S4DWeights& w, const std::string& dir, DType dtype) {
  const S4DConfig& c = w.cfg;
  const int64_t H = c.d_model, M = c.modes();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error("cannot create checkpoint folder " + dir + ": " + ec.message());

  const char* torch_dtype = dtype == DType::F32 ? "float32" : dtype == DType::F16 ? "float16" : "bfloat16";
  json config = {
      {"architectures", {"S4DClassifier"}},
      {"model_type", "s4d"},
      {"d_input", c.d_input},
      {"d_model", H},
      {"d_state", c.d_state},
      {"n_layers", c.n_layers},
      {"d_output", c.d_output},
      {"prenorm", c.prenorm},
      {"layer_norm_eps", double(c.layer_norm_eps)},
      {"activation", "gelu"},
      {"torch_dtype", torch_dtype},
  };
  const std::string config_path = (std::filesystem::path(dir) / "config.json").string();
  {
    std::ofstream out(config_path);
    out << config.dump(2) << "\n";
    out.close();
    if (!out) throw Error("cannot write " + config_path);
  }

  std::vector<TensorToWrite> t;
  t.push_back(make_tensor("encoder.weight", {H, c.d_input}, w.encoder_w, dtype));
  t.push_back(make_tensor("encoder.bias", {H}, w.encoder_b, dtype));
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const S4DLayerWeights& L = w.layers[i];
    const std::string p = layer_prefix(int64_t(i)), k = p + "kernel.", n = norm_prefix(int64_t(i));
    t.push_back(make_tensor(k + "log_dt", {H}, L.log_dt, dtype));
    t.push_back(make_tensor(k + "C", {H, M, 2}, L.C, dtype));
    t.push_back(make_tensor(k + "log_A_real", {H, M}, L.log_A_real, dtype));
    t.push_back(make_tensor(k + "A_imag", {H, M}, L.A_imag, dtype));
    t.push_back(make_tensor(p + "D", {H}, L.D, dtype));
    t.push_back(make_tensor(p + "output_linear.0.weight", {2 * H, H, 1}, L.out_w, dtype));
    t.push_back(make_tensor(p + "output_linear.0.bias", {2 * H}, L.out_b, dtype));
    t.push_back(make_tensor(n + "weight", {H}, L.norm_w, dtype));
    t.push_back(make_tensor(n + "bias", {H}, L.norm_b, dtype));
  }
  t.push_back(make_tensor("decoder.weight", {c.d_output, H}, w.decoder_w, dtype));
  t.push_back(make_tensor("decoder.bias", {c.d_output}, w.decoder_b, dtype));
  write_safetensors((std::filesystem::path(dir) / "model.safetensors").string(), t, {{"format", "pt"}});
}

int64_t S4DWeights::parameter_count() const {
  size_t n = encoder_w.size() + encoder_b.size() + decoder_w.size() + decoder_b.size();
  for (const auto& L : layers)
    n += L.log_dt.size() + L.C.size() + L.log_A_real.size() + L.A_imag.size() + L.D.size() +
         L.out_w.size() + L.out_b.size() + L.norm_w.size() + L.norm_b.size();
  return int64_t(n);
}

int64_t S4DWeights::step_weight_floats() const {
  const int64_t H = cfg.d_model, N = cfg.d_state;
  const int64_t per_layer = 3 * H * N       // dA, dB, C: H·M complex each
                            + H             // D
                            + 2 * H * H + 2 * H  // output linear
                            + 2 * H;        // LayerNorm
  return H * (cfg.d_input + 1) + cfg.n_layers * per_layer + cfg.d_output * (H + 1);
}

uint64_t s4d_fingerprint(const S4DWeights& w) {
  const S4DConfig& c = w.cfg;
  uint32_t eps_bits = 0;
  std::memcpy(&eps_bits, &c.layer_norm_eps, 4);
  const int64_t dims[] = {c.d_input, c.d_model, c.d_state, c.n_layers, c.d_output, c.prenorm ? 1 : 0,
                          int64_t(eps_bits)};
  uint64_t h = fnv1a64(dims, sizeof(dims));
  auto add = [&](const std::vector<float>& v) { h = fnv1a64(v.data(), v.size() * sizeof(float), h); };
  add(w.encoder_b);
  for (const auto& L : w.layers) {
    add(L.log_dt);
    add(L.C);
    add(L.log_A_real);
    add(L.A_imag);
    add(L.D);
    add(L.norm_w);
    add(L.norm_b);
  }
  add(w.decoder_b);
  return h;
}

}  // namespace vkssm

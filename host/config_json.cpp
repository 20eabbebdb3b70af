#include "host/config_json.h"

#include <cmath>

#include "host/error.h"

namespace vkssm {

using nlohmann::json;

std::string describe_json(const json& v) {
  return v.is_primitive() ? v.dump() : std::string("(") + v.type_name() + ")";
}

int64_t get_int(const json& j, const std::string& key, const std::string& source) {
  if (!j.contains(key)) throw Error("missing key '" + key + "' in " + source);
  const json& v = j[key];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return int64_t(d);
  }
  throw Error("key '" + key + "' in " + source + " must be an integer, got " + describe_json(v));
}

int64_t get_int(const json& j, const std::string& key, const std::string& source, int64_t dflt) {
  return j.contains(key) && !j[key].is_null() ? get_int(j, key, source) : dflt;
}

bool get_bool(const json& j, const std::string& key, const std::string& source, bool dflt) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_boolean())
    throw Error("key '" + key + "' in " + source + " must be true or false, got " + describe_json(j[key]));
  return j[key].get<bool>();
}

double get_number(const json& j, const std::string& key, const std::string& source, double dflt) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_number())
    throw Error("key '" + key + "' in " + source + " must be a number, got " + describe_json(j[key]));
  return j[key].get<double>();
}

void check_dim_range(const std::string& arch, const char* what, int64_t v, int64_t max, const std::string& source) {
  if (v < 1 || v > max)
    throw Error(arch + " " + what + " in " + source + " must be between 1 and " + std::to_string(max) +
                ", got " + std::to_string(v));
}

std::string config_architecture(const json& config) {
  if (!config.is_object()) return "unknown";
  if (config.contains("model_type")) {
    const json& mt = config["model_type"];
    return mt.is_string() ? mt.get<std::string>() : describe_json(mt);
  }
  if (config.contains("architectures") && config["architectures"].is_array() &&
      !config["architectures"].empty()) {
    for (const auto& a : config["architectures"]) {
      if (!a.is_string()) continue;
      if (a == "MambaForCausalLM" || a == "MambaModel") return "mamba";
      if (a == "Mamba2ForCausalLM" || a == "Mamba2Model") return "mamba2";
      if (a == "S4DClassifier" || a == "S4DModel") return "s4d";
    }
    // MambaLMHeadModel (original mamba_ssm) is either version: ssm_cfg.layer decides below.
    bool lm_head_model = false;
    for (const auto& a : config["architectures"]) lm_head_model |= a.is_string() && a == "MambaLMHeadModel";
    if (!lm_head_model) {
      const json& a = config["architectures"][0];
      return a.is_string() ? a.get<std::string>() : describe_json(a);
    }
  }
  if (config.contains("ssm_cfg") && config["ssm_cfg"].is_object() && config["ssm_cfg"].contains("layer")) {
    const json& layer = config["ssm_cfg"]["layer"];
    const std::string name = layer.is_string() ? layer.get<std::string>() : describe_json(layer);
    if (name == "Mamba1") return "mamba";
    if (name == "Mamba2") return "mamba2";
    return name;
  }
  if (config.contains("hidden_size") || config.contains("d_model")) return "mamba";
  return "unknown";
}

}  // namespace vkssm

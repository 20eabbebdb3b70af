// Looking architectures up in the registry, and recognising them from a config.json.
#include "engine/architecture.h"

#include <algorithm>

#include "host/config_json.h"
#include "host/error.h"

namespace vkssm {

// Defined in models/architectures.cpp: the list itself.
const std::vector<const Architecture*>& registered_architectures();

const std::vector<const Architecture*>& architectures() { return registered_architectures(); }

const Architecture* find_architecture(const std::string& name) {
  for (const Architecture* a : architectures())
    if (a->name == name) return a;
  return nullptr;
}

std::string architecture_names(const std::string& separator) {
  std::string s;
  for (const Architecture* a : architectures()) s += (s.empty() ? "" : separator) + a->name;
  return s;
}

namespace {

using nlohmann::json;

std::string as_name(const json& j) { return j.is_string() ? j.get<std::string>() : describe_json(j); }

bool contains(const std::vector<std::string>& list, const std::string& s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

const Architecture* find_by(const std::string& name, std::vector<std::string> ConfigNames::*field) {
  for (const Architecture* a : architectures())
    if (contains(a->names.*field, name)) return a;
  return nullptr;
}

// The registered architecture the config names, or nullptr; `asked` is set to the name the config
// gives (what it matched on, or what could not be matched), for error messages.
// Order: model_type (HF), then the `architectures` class names, then mamba_ssm's ssm_cfg.layer
// (whose MambaLMHeadModel class is shared by both Mamba versions), then the unnamed default.
const Architecture* recognise(const json& config, std::string* asked) {
  *asked = "unknown";
  if (!config.is_object()) return nullptr;
  if (config.contains("model_type")) {
    *asked = as_name(config["model_type"]);
    return find_by(*asked, &ConfigNames::model_types);
  }
  const json* classes = config.contains("architectures") ? &config["architectures"] : nullptr;
  bool lm_head_model = false;
  if (classes && classes->is_array() && !classes->empty()) {
    for (const json& c : *classes) {
      if (!c.is_string()) continue;
      *asked = c.get<std::string>();
      if (const Architecture* a = find_by(*asked, &ConfigNames::hf_classes)) return a;
      lm_head_model |= c == "MambaLMHeadModel";
    }
    if (!lm_head_model) {
      *asked = as_name((*classes)[0]);
      return nullptr;
    }
  }
  if (config.contains("ssm_cfg") && config["ssm_cfg"].is_object() && config["ssm_cfg"].contains("layer")) {
    *asked = as_name(config["ssm_cfg"]["layer"]);
    return find_by(*asked, &ConfigNames::ssm_layers);
  }
  if (lm_head_model || config.contains("hidden_size") || config.contains("d_model"))
    for (const Architecture* a : architectures())
      if (a->names.unnamed_default) {
        *asked = a->name;
        return a;
      }
  *asked = "unknown";
  return nullptr;
}

[[noreturn]] void unsupported(const std::string& asked, const std::string& source) {
  throw Error("unsupported architecture '" + asked + "' in " + source + " (vkssm supports: " +
              architecture_names() + ")");
}

}  // namespace

const Architecture& architecture_of(const json& config, const std::string& source) {
  std::string asked;
  const Architecture* a = recognise(config, &asked);
  if (!a) unsupported(asked, source);
  return *a;
}

void require_architecture(const json& config, const std::string& source, const std::vector<std::string>& accepted) {
  std::string asked;
  const Architecture* a = recognise(config, &asked);
  if (!a) unsupported(asked, source);
  if (!contains(accepted, a->name)) unsupported(asked, source);
}

}  // namespace vkssm

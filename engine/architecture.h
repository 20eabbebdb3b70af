#pragma once
// The architecture registry: one entry per architecture vkssm runs. load_model(), recognising a
// config.json (and so a GGUF file, whose metadata host/gguf_checkpoint.cpp turns into an HF-style
// config), the bench's --arch, the CLI's help and the "supported architectures" error all read it.
//
// An architecture lives in its folder models/<arch>/ and describes itself with one function
// returning its entry (usually built by make_architecture() below from its typed parts); the list
// of those functions is models/architectures.cpp, one line each.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/backend_choice.h"
#include "engine/vkssm.hpp"
#include "host/checkpoint.h"
#include "host/state_file.h"

namespace vkssm {

// The size of the random models the bench measures (mamba-130m's by default).
struct BenchShape {
  int64_t d_model = 768, n_layer = 24, vocab_size = 50280;
};

// How a config.json names an architecture; a config matches when any of these agrees.
struct ConfigNames {
  std::vector<std::string> model_types;  // HF `model_type`
  std::vector<std::string> hf_classes;   // entries of HF `architectures`
  std::vector<std::string> ssm_layers;   // mamba_ssm's `ssm_cfg.layer` (MambaLMHeadModel configs)
  // A config that names no model but has `d_model` or `hidden_size` (old mamba_ssm configs).
  bool unnamed_default = false;
};

// A random model of `shape` for the bench.
using RandomModelFn = std::unique_ptr<Model> (*)(const BenchShape& shape, const LoadOptions& options);

struct Architecture {
  std::string name;         // ModelInfo::architecture, state blobs, --arch, error texts
  std::string description;  // one line for help texts
  bool frame_model = false; // steps take input frames (step_frames), not token ids
  ConfigNames names;
  // Reads and checks the weights, then builds the model on the backend `options` asks for.
  std::function<std::unique_ptr<Model>(const Checkpoint&, const LoadOptions&)> load;
  // The bench's random model and the layout it has beside `BenchShape` (e.g. "N 128, head_dim
  // 64"); null for architectures the bench does not time (frame models).
  RandomModelFn random = nullptr;
  std::string bench_layout;
};

// An architecture's typed parts. Both backends describe a model (info) and its state blobs
// (state_header) with the same functions, so a blob saved on one restores on the other.
template <class Weights>
struct ArchitectureParts {
  Weights (*load_weights)(const Checkpoint&);
  std::unique_ptr<Model> (*create_cpu)(const Weights&, const LoadOptions&);
  std::unique_ptr<Model> (*create_vulkan)(const Weights&, const LoadOptions&);
  ModelInfo (*info)(const Weights&);
  StateHeader (*state_header)(const Weights&);

  // The backend `options` asks for (Auto resolved), built from weights already in memory.
  std::unique_ptr<Model> create(const Weights& weights, const LoadOptions& options) const {
    return create_on_backend(weights, options, create_cpu, create_vulkan);
  }
};

// A registry entry: the typed parts become the entry's loader.
template <class Weights>
Architecture make_architecture(std::string name, std::string description, bool frame_model, ConfigNames names,
                               const ArchitectureParts<Weights>& parts, RandomModelFn random = nullptr,
                               std::string bench_layout = "") {
  Architecture a;
  a.name = std::move(name);
  a.description = std::move(description);
  a.frame_model = frame_model;
  a.names = std::move(names);
  a.load = [parts](const Checkpoint& ckpt, const LoadOptions& options) {
    return parts.create(parts.load_weights(ckpt), options);
  };
  a.random = random;
  a.bench_layout = std::move(bench_layout);
  return a;
}

// The bench's size in an architecture's config; the other fields keep their defaults.
template <class Config>
Config bench_sized(const BenchShape& shape) {
  Config c;
  c.d_model = shape.d_model;
  c.n_layer = shape.n_layer;
  c.vocab_size = shape.vocab_size;
  return c;
}

// Every registered architecture, in the order models/architectures.cpp lists them.
const std::vector<const Architecture*>& architectures();

// The architecture called `name`; nullptr when there is none.
const Architecture* find_architecture(const std::string& name);

// "mamba, falcon_mamba, mamba2, s4d": the registered names, for help and error texts.
std::string architecture_names(const std::string& separator = ", ");

// The architecture a config.json describes. Throws vkssm::Error
// "unsupported architecture 'X' in SOURCE (vkssm supports: ...)" naming what the config asks for.
const Architecture& architecture_of(const nlohmann::json& config, const std::string& source);

// Throws the same error as architecture_of() unless `config` describes one of `accepted`
// (the architectures' own config parsers call it, so parsing a config of another model fails).
void require_architecture(const nlohmann::json& config, const std::string& source,
                          const std::vector<std::string>& accepted);

}  // namespace vkssm

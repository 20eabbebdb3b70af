#pragma once
// A checkpoint on disk: a folder holding config.json and model.safetensors (or the sharded form,
// model.safetensors.index.json naming one shard file per tensor). Also accepts the path of a
// single .safetensors file whose folder holds config.json.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/safetensors.h"

namespace vkssm {

class Checkpoint {
 public:
  // Throws vkssm::Error naming the file at fault (missing config.json, unreadable JSON, missing
  // shard, a tensor listed in the index but absent from its shard, ...).
  static Checkpoint open(const std::string& path);

  const std::string& dir() const { return dir_; }
  const nlohmann::json& config() const { return config_; }

  const TensorInfo* find(const std::string& name) const;  // nullptr when absent
  bool has(const std::string& name) const { return find(name) != nullptr; }

  // The tensor converted to fp32. Throws vkssm::Error naming the tensor and its file when it is
  // missing or its shape differs from `shape` (both shapes are printed).
  std::vector<float> load_f32(const std::string& name, const std::vector<int64_t>& shape) const;

  // The dtype most of the checkpoint's bytes are stored in (decides fp16 weight storage).
  DType main_dtype() const;

 private:
  std::string dir_;
  nlohmann::json config_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::vector<std::pair<std::string, const TensorInfo*>> index_;  // sorted by name
};

// Parses a JSON file, accepting the bare tokens Infinity/-Infinity/NaN that some writers emit
// (they become large/NaN numbers). Throws vkssm::Error naming the file.
nlohmann::json read_json_file(const std::string& path);

}  // namespace vkssm

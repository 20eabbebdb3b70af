#pragma once
// A checkpoint on disk: a folder holding config.json and model.safetensors (or the sharded form,
// model.safetensors.index.json naming one shard file per tensor). Also accepts the path of a
// single .safetensors file whose folder holds config.json, and a llama.cpp GGUF file of the mamba
// or mamba2 architecture (or a folder holding exactly one .gguf and no safetensors): its metadata
// becomes an HF-style config and its tensors appear under their HF names (host/gguf_checkpoint.h),
// so the architectures' loaders read every form alike.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/safetensors.h"

namespace vkssm {

struct GgufCheckpoint;

class Checkpoint {
 public:
  // Throws vkssm::Error naming the file at fault (missing config.json, unreadable JSON, missing
  // shard, a tensor listed in the index but absent from its shard, a malformed GGUF or one of
  // another architecture, ...).
  static Checkpoint open(const std::string& path);

  // The checkpoint folder; for a GGUF checkpoint, the .gguf file.
  const std::string& dir() const { return dir_; }
  const nlohmann::json& config() const { return config_; }
  // Where config() came from, for messages: the config.json path, or "<file.gguf> (metadata)".
  std::string config_source() const;
  bool is_gguf() const { return gguf_ != nullptr; }

  const TensorInfo* find(const std::string& name) const;  // nullptr when absent
  // Every tensor, sorted by name (`vkssm info` lists them with their file types).
  std::vector<const TensorInfo*> tensors() const;
  bool has(const std::string& name) const { return find(name) != nullptr; }

  // The tensor converted to fp32. Throws vkssm::Error naming the tensor and its file when it is
  // missing or its shape differs from `shape` (both shapes are printed).
  std::vector<float> load_f32(const std::string& name, const std::vector<int64_t>& shape) const;

  // The dtype most of the checkpoint's bytes are stored in (decides fp16 weight storage).
  DType main_dtype() const;

 private:
  static Checkpoint open_gguf(const std::string& gguf_path);

  std::string dir_;
  nlohmann::json config_;
  std::shared_ptr<const GgufCheckpoint> gguf_;  // GGUF form: owns the file and converted tensors
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::vector<std::pair<std::string, const TensorInfo*>> index_;  // sorted by name
};

// The GGUF file a model path names: the path itself when it is a file whose name ends in .gguf or
// that starts with the GGUF magic; for a folder without safetensors files, its only .gguf file.
// Empty when the path is not a GGUF checkpoint. Throws when such a folder holds several .gguf files.
std::string find_gguf_file(const std::string& path);

// Parses a JSON file, accepting the bare tokens Infinity/-Infinity/NaN that some writers emit
// (they become large/NaN numbers). Throws vkssm::Error naming the file.
nlohmann::json read_json_file(const std::string& path);

}  // namespace vkssm

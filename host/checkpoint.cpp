// Checkpoint: config.json plus one or more safetensors files, seen as one name -> tensor table.
#include "host/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "host/error.h"
#include "host/gguf_checkpoint.h"

namespace vkssm {

namespace fs = std::filesystem;

namespace {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Python's json module writes float('inf') / float('nan') as the bare tokens Infinity / NaN, which
// strict JSON parsers refuse. Outside string literals, rewrite them as 1e308 (-Infinity keeps its
// minus sign) and null, leaving everything inside strings untouched.
std::string replace_nonstandard_numbers(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) {
        out += text[++i];  // an escaped character, possibly a quote
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      out += c;
    } else if (text.compare(i, 8, "Infinity") == 0) {
      out += "1e308";
      i += 7;
    } else if (text.compare(i, 3, "NaN") == 0) {
      out += "null";
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read JSON file " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error("error reading JSON file " + path);
  try {
    return nlohmann::json::parse(replace_nonstandard_numbers(ss.str()));
  } catch (const nlohmann::json::exception& e) {
    throw Error("invalid JSON in " + path + ": " + e.what());
  }
}

std::string find_gguf_file(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    if (fs::path(path).extension() == ".gguf") return path;
    char magic[4] = {};
    std::ifstream in(path, std::ios::binary);
    in.read(magic, 4);
    return (in && std::memcmp(magic, "GGUF", 4) == 0) ? path : std::string();
  }
  if (!fs::is_directory(path, ec)) return {};
  std::vector<std::string> ggufs;
  for (const auto& entry : fs::directory_iterator(path, ec)) {
    const fs::path& p = entry.path();
    if (p.extension() == ".safetensors" || p.filename() == "model.safetensors.index.json") return {};
    if (p.extension() == ".gguf" && entry.is_regular_file(ec)) ggufs.push_back(p.string());
  }
  if (ggufs.size() > 1) {
    std::sort(ggufs.begin(), ggufs.end());
    std::string names;
    for (const auto& g : ggufs) names += (names.empty() ? "" : ", ") + fs::path(g).filename().string();
    throw Error("checkpoint folder " + path + " holds " + std::to_string(ggufs.size()) +
                " .gguf files (" + names + "); give the path of the one to load");
  }
  return ggufs.empty() ? std::string() : ggufs[0];
}

Checkpoint Checkpoint::open_gguf(const std::string& gguf_path) {
  Checkpoint ck;
  ck.gguf_ = open_gguf_checkpoint(gguf_path);
  ck.dir_ = gguf_path;
  ck.config_ = ck.gguf_->config;
  for (const auto& t : ck.gguf_->tensors) ck.index_.emplace_back(t.name, &t);
  std::sort(ck.index_.begin(), ck.index_.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return ck;
}

std::string Checkpoint::config_source() const {
  return gguf_ ? dir_ + " (metadata)" : (fs::path(dir_) / "config.json").string();
}

Checkpoint Checkpoint::open(const std::string& path) {
  Checkpoint ck;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error("checkpoint path " + path + " does not exist");
  const std::string gguf = find_gguf_file(path);
  if (!gguf.empty()) return open_gguf(gguf);

  // Which safetensors files to open; the folder form looks for the index first.
  std::vector<std::string> shard_paths;
  std::vector<std::string> shard_names;  // as the index spells them, parallel to shard_paths
  nlohmann::json weight_map;  // the index's tensor -> shard file, when sharded
  std::string index_path;
  if (fs::is_directory(path, ec)) {
    ck.dir_ = path;
  } else {
    ck.dir_ = fs::path(path).parent_path().string();
    if (ck.dir_.empty()) ck.dir_ = ".";
    shard_paths.push_back(path);
  }

  const std::string config_path = (fs::path(ck.dir_) / "config.json").string();
  if (!fs::exists(config_path, ec))
    throw Error("checkpoint " + path + " has no config.json (expected " + config_path + ")");
  ck.config_ = read_json_file(config_path);
  if (!ck.config_.is_object()) throw Error("config file " + config_path + " is not a JSON object");

  if (shard_paths.empty()) {
    const std::string single = (fs::path(ck.dir_) / "model.safetensors").string();
    index_path = (fs::path(ck.dir_) / "model.safetensors.index.json").string();
    if (fs::exists(index_path, ec)) {
      nlohmann::json index = read_json_file(index_path);
      if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
        throw Error("index file " + index_path + " has no \"weight_map\" object");
      weight_map = index["weight_map"];
      std::vector<std::string> names;  // distinct shard files, in first-seen order
      for (const auto& [tensor, shard] : weight_map.items()) {
        if (!shard.is_string())
          throw Error("index file " + index_path + ": shard of tensor " + tensor +
                      " is not a string");
        std::string s = shard.get<std::string>();
        if (std::find(names.begin(), names.end(), s) == names.end()) names.push_back(s);
      }
      for (const auto& s : names) {
        std::string p = (fs::path(ck.dir_) / s).string();
        if (!fs::exists(p, ec))
          throw Error("shard " + p + " listed in " + index_path + " does not exist");
        shard_paths.push_back(p);
        shard_names.push_back(s);
      }
    } else if (fs::exists(single, ec)) {
      shard_paths.push_back(single);
    } else {
      throw Error("checkpoint folder " + ck.dir_ + " has neither model.safetensors nor " +
                  "model.safetensors.index.json");
    }
  }

  std::map<std::string, const SafetensorsFile*> file_by_name;  // index's shard name -> file
  for (size_t i = 0; i < shard_paths.size(); ++i) {
    ck.files_.push_back(std::shared_ptr<SafetensorsFile>(SafetensorsFile::open(shard_paths[i])));
    if (i < shard_names.size()) file_by_name[shard_names[i]] = ck.files_.back().get();
    for (const auto& t : ck.files_.back()->tensors()) ck.index_.emplace_back(t.name, &t);
  }
  std::sort(ck.index_.begin(), ck.index_.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 1; i < ck.index_.size(); ++i)
    if (ck.index_[i].first == ck.index_[i - 1].first)
      throw Error("tensor " + ck.index_[i].first + " appears in both " +
                  ck.index_[i - 1].second->file + " and " + ck.index_[i].second->file);

  // Every tensor the index promises must be in the shard it names.
  for (const auto& [tensor, shard] : weight_map.items()) {
    const SafetensorsFile* f = file_by_name.at(shard.get<std::string>());
    if (!f->find(tensor))
      throw Error("tensor " + tensor + " listed in " + index_path + " is missing from shard " +
                  f->path());
  }
  return ck;
}

const TensorInfo* Checkpoint::find(const std::string& name) const {
  auto it = std::lower_bound(index_.begin(), index_.end(), name,
                             [](const auto& e, const std::string& n) { return e.first < n; });
  return (it != index_.end() && it->first == name) ? it->second : nullptr;
}

std::vector<const TensorInfo*> Checkpoint::tensors() const {
  std::vector<const TensorInfo*> out;
  for (const auto& e : index_) out.push_back(e.second);
  return out;
}

std::vector<float> Checkpoint::load_f32(const std::string& name,
                                        const std::vector<int64_t>& shape) const {
  const TensorInfo* t = find(name);
  if (!t) throw Error("tensor " + name + " not found in checkpoint " + dir_);
  if (t->shape != shape)
    throw Error("tensor " + name + " in " + t->file + " has shape " + shape_string(t->shape) +
                ", expected " + shape_string(shape));
  const size_t n = size_t(t->numel());
  std::vector<float> out(n);
  // memcpy element by element: the data may sit at any alignment inside the mapping.
  for (size_t i = 0; i < n; ++i) {
    if (t->dtype == DType::F32) {
      std::memcpy(&out[i], t->data + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, t->data + 2 * i, 2);
      out[i] = t->dtype == DType::F16 ? half_to_float(h) : bf16_to_float(h);
    }
  }
  return out;
}

DType Checkpoint::main_dtype() const {
  if (gguf_) return gguf_->main_dtype;
  size_t bytes[3] = {0, 0, 0};
  for (const auto& e : index_) bytes[size_t(e.second->dtype)] += e.second->nbytes;
  size_t best = 0;
  for (size_t i = 1; i < 3; ++i)
    if (bytes[i] > bytes[best]) best = i;
  return DType(best);
}

}  // namespace vkssm

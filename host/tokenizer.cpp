// The byte tokenizer, and the choice of a model's tokenizer from its files. Byte-level BPE is in
// tokenizer_bpe.cpp (encoding), tokenizer_pretokenizer.cpp (the GPT-2 word split) and
// tokenizer_load.cpp (reading tokenizer.json and GGUF metadata).
#include "host/tokenizer.h"

#include <filesystem>

#include "host/checkpoint.h"
#include "host/error.h"
#include "host/gguf.h"

namespace vkssm {
namespace {

class ByteTokenizer final : public Tokenizer {
 public:
  std::vector<int32_t> encode(const std::string& text) const override {
    std::vector<int32_t> ids;
    ids.reserve(text.size());
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    for (int32_t id : ids) out += decode_token(id);
    return out;
  }
  std::string decode_token(int32_t id) const override {
    if (id < 0 || id > 255) return {};
    return std::string(1, static_cast<char>(id));
  }
  int32_t eos_id() const override { return -1; }
  int64_t vocab_size() const override { return 256; }
};

}  // namespace

std::unique_ptr<Tokenizer> make_byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

std::unique_ptr<Tokenizer> load_tokenizer_for_model(const std::string& model_dir,
                                                    const nlohmann::json& config) {
  if (config.is_object() && config.contains("vkssm_tokenizer")) {
    const nlohmann::json& kind = config["vkssm_tokenizer"];
    if (kind.is_string() && kind == "bytes") return make_byte_tokenizer();
    throw Error("config.json in '" + model_dir + "': unknown vkssm_tokenizer " + kind.dump() +
                " (expected \"bytes\")");
  }
  const std::filesystem::path path = std::filesystem::path(model_dir) / "tokenizer.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return nullptr;
  return load_bpe_tokenizer(path.string());
}

std::unique_ptr<Tokenizer> load_tokenizer_for_path(const std::string& model_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool is_dir = fs::is_directory(model_path, ec);
  std::string dir = is_dir ? model_path : fs::path(model_path).parent_path().string();
  if (dir.empty()) dir.push_back('.');  // (not `= "."`: a GCC 12 -Wrestrict false positive)
  const std::string gguf = find_gguf_file(model_path);
  if (!gguf.empty()) {
    if (std::unique_ptr<Tokenizer> t = load_gguf_tokenizer(*GgufFile::open(gguf))) return t;
    const fs::path json = fs::path(dir) / "tokenizer.json";
    return fs::exists(json, ec) ? load_bpe_tokenizer(json.string()) : nullptr;
  }
  return load_tokenizer_for_model(dir, read_json_file((fs::path(dir) / "config.json").string()));
}

}  // namespace vkssm

#include "host/gguf_vocab.h"

#include <filesystem>

#include "host/checkpoint.h"
#include "host/error.h"
#include "host/gguf.h"
#include "host/gguf_writer.h"

namespace vkssm {
namespace {

// GPT-2's byte-level spelling of byte `b`: printable Latin-1 bytes stand for themselves, the
// others for the code points from U+0100 on, in byte order.
std::string byte_level_char(int b) {
  int n = 0, cp = b;
  bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
  if (!printable) {
    for (int x = 0; x < b; ++x)
      if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174)) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) s += char(cp);
  else {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

GgufVocab byte_vocab() {
  GgufVocab v;
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(byte_level_char(b));
    v.token_types.push_back(1);
  }
  return v;
}

GgufVocab vocab_from_tokenizer_json(const std::string& path, const nlohmann::json& config, int64_t vocab_size) {
  const nlohmann::json j = read_json_file(path);
  const auto fail = [&](const std::string& what) -> void { throw Error("tokenizer " + path + ": " + what); };
  if (!j.contains("model") || j["model"].value("type", "") != "BPE" || !j["model"].contains("vocab"))
    fail("is not a byte-level BPE tokenizer (model.type BPE with a vocab)");
  std::vector<std::string> by_id{size_t(vocab_size)};
  std::vector<int32_t> types(size_t(vocab_size), 0);
  const auto place = [&](int64_t id, const std::string& text, int32_t type) {
    if (id < 0 || id >= vocab_size)
      fail("token '" + text + "' has id " + std::to_string(id) + ", outside the model's vocab_size " +
           std::to_string(vocab_size));
    by_id[size_t(id)] = text;
    types[size_t(id)] = type;
  };
  for (const auto& [text, id] : j["model"]["vocab"].items()) place(id.get<int64_t>(), text, 1);
  if (j.contains("added_tokens"))
    for (const auto& a : j["added_tokens"]) {
      const std::string content = a.value("content", "");
      const bool looks_special = content.size() >= 4 && content.compare(0, 2, "<|") == 0 &&
                                 content.compare(content.size() - 2, 2, "|>") == 0;
      place(a.value("id", int64_t(-1)), content, a.value("special", false) || looks_special ? 3 : 4);
    }
  GgufVocab v;
  for (int64_t i = 0; i < vocab_size; ++i) {
    const bool gap = types[size_t(i)] == 0;
    v.tokens.push_back(gap ? "[PAD" + std::to_string(i) + "]" : by_id[size_t(i)]);
    v.token_types.push_back(gap ? 5 : types[size_t(i)]);
  }
  if (j["model"].contains("merges"))
    for (const auto& m : j["model"]["merges"])
      v.merges.push_back(m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>());
  // The special ids config.json names (SpecialVocab's fallback), else GPT-NeoX's <|endoftext|>.
  int64_t endoftext = -1;
  for (size_t i = 0; i < v.tokens.size(); ++i)
    if (v.tokens[i] == "<|endoftext|>") endoftext = int64_t(i);
  const auto id_of = [&](const char* key) {
    const int64_t id = config.contains(key) && config[key].is_number_integer() ? config[key].get<int64_t>() : -1;
    return id >= 0 && id < vocab_size ? id : endoftext;
  };
  v.bos = id_of("bos_token_id");
  v.eos = id_of("eos_token_id");
  v.unk = endoftext;
  return v;
}

}  // namespace

std::optional<GgufVocab> gguf_vocab_for_model(const std::string& model_dir, const nlohmann::json& config,
                                              int64_t vocab_size) {
  if (config.value("vkssm_tokenizer", "") == "bytes") {
    if (vocab_size != 256)
      throw Error("config.json in " + model_dir + " names the byte tokenizer but vocab_size is " +
                  std::to_string(vocab_size) + ", not 256");
    return byte_vocab();
  }
  const std::string path = (std::filesystem::path(model_dir) / "tokenizer.json").string();
  if (!std::filesystem::exists(path)) return std::nullopt;
  return vocab_from_tokenizer_json(path, config, vocab_size);
}

std::optional<GgufVocab> gguf_vocab_from_file(const GgufFile& file) {
  if (!file.has("tokenizer.ggml.model")) return std::nullopt;
  // llama.cpp's two names for "no tokenizer" (the converters write "none").
  const std::string model = file.get_string("tokenizer.ggml.model");
  if (model == "none" || model == "no_vocab") return std::nullopt;
  if (model != "gpt2")
    throw Error("tokenizer.ggml.model '" + model + "' in GGUF file " + file.path() +
                " is not one vkssm can copy (only 'gpt2')");
  GgufVocab v;
  v.tokens = file.get_string_array("tokenizer.ggml.tokens");
  if (file.has("tokenizer.ggml.token_type"))
    for (int64_t t : file.get_int_array("tokenizer.ggml.token_type")) v.token_types.push_back(int32_t(t));
  else
    v.token_types.assign(v.tokens.size(), 1);
  if (file.has("tokenizer.ggml.merges")) v.merges = file.get_string_array("tokenizer.ggml.merges");
  if (file.has("tokenizer.ggml.pre")) v.pre = file.get_string("tokenizer.ggml.pre");
  const auto id = [&](const char* key) { return file.has(key) ? file.get_int(key) : int64_t(-1); };
  v.bos = id("tokenizer.ggml.bos_token_id");
  v.eos = id("tokenizer.ggml.eos_token_id");
  v.unk = id("tokenizer.ggml.unknown_token_id");
  return v;
}

void add_gguf_no_vocab(GgufWriter& w, const std::string& arch, int64_t vocab_size) {
  w.add_string("tokenizer.ggml.model", "none");
  w.add_u32(arch + ".vocab_size", uint32_t(vocab_size));
}

void add_gguf_vocab(GgufWriter& w, const GgufVocab& v) {
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", v.pre);
  w.add_string_array("tokenizer.ggml.tokens", v.tokens);
  w.add_i32_array("tokenizer.ggml.token_type", v.token_types);
  w.add_string_array("tokenizer.ggml.merges", v.merges);  // llama.cpp requires the key, even empty
  if (v.bos >= 0) w.add_u32("tokenizer.ggml.bos_token_id", uint32_t(v.bos));
  if (v.eos >= 0) w.add_u32("tokenizer.ggml.eos_token_id", uint32_t(v.eos));
  if (v.unk >= 0) w.add_u32("tokenizer.ggml.unknown_token_id", uint32_t(v.unk));
}

}  // namespace vkssm

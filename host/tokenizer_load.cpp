// Reading byte-level BPE tokenizers: a Hugging Face tokenizer.json, or the token lists of a GGUF
// file's tokenizer.ggml.* metadata. Both check what they read and fill a BpeTokenizer
// (host/tokenizer_bpe.h); errors name the file.
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "host/error.h"
#include "host/gguf.h"
#include "host/tokenizer.h"
#include "host/tokenizer_bpe.h"

namespace vkssm {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error("tokenizer file '" + path + "': " + what);
}

// Raises an error unless `node` is absent, null, or has "type": one of `accepted`.
void require_type(const std::string& path, const nlohmann::json& root, const char* field,
                  std::initializer_list<const char*> accepted) {
  const auto it = root.find(field);
  if (it == root.end() || it->is_null()) return;
  if (!it->is_object() || !it->contains("type") || !(*it)["type"].is_string())
    fail(path, std::string("\"") + field + "\" has no \"type\" string");
  const std::string type = (*it)["type"];
  for (const char* a : accepted)
    if (type == a) return;
  fail(path, std::string(field) + " type '" + type +
                 "' is not supported (vkssm reads byte-level BPE tokenizers only)");
}

// The "normalizer": null, one of NFC / NFD / NFKC / NFKD, or a Sequence of them.
std::vector<NormalForm> read_normalizer(const std::string& path, const nlohmann::json& root) {
  const auto it = root.find("normalizer");
  if (it == root.end() || it->is_null()) return {};
  std::vector<NormalForm> forms;
  const std::function<void(const nlohmann::json&)> add = [&](const nlohmann::json& n) {
    if (!n.is_object() || !n.contains("type") || !n["type"].is_string())
      fail(path, "a normalizer has no \"type\" string");
    const std::string type = n["type"];
    if (type == "Sequence" && n.contains("normalizers") && n["normalizers"].is_array()) {
      for (const nlohmann::json& inner : n["normalizers"]) add(inner);
    } else if (const std::optional<NormalForm> form = normal_form_named(type)) {
      forms.push_back(*form);
    } else {
      fail(path, "normalizer type '" + type +
                     "' is not supported (vkssm implements NFC, NFD, NFKC, NFKD and Sequence)");
    }
  };
  add(*it);
  return forms;
}

// tokenizer.json -> the tables of a BpeTokenizer.
std::unique_ptr<BpeTokenizer> read_tokenizer_json(const std::string& path, const nlohmann::json& root) {
  auto tok = std::make_unique<BpeTokenizer>();
  if (!root.is_object()) fail(path, "the top level is not a JSON object");
  if (!root.contains("model") || !root["model"].is_object()) fail(path, "no \"model\" object");
  const nlohmann::json& model = root["model"];
  if (model.contains("type") && !(model["type"].is_string() && model["type"] == "BPE")) {
    fail(path, "model type '" + (model["type"].is_string() ? model["type"].get<std::string>()
                                                           : model["type"].dump()) +
                   "' is not supported (only BPE)");
  }
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(affix) && !model[affix].is_null() &&
        !(model[affix].is_string() && model[affix].get<std::string>().empty()))
      fail(path, std::string("model.") + affix + " is not supported");
  }
  if (model.contains("byte_fallback") && model["byte_fallback"] == true)
    fail(path, "model.byte_fallback is not supported (only byte-level BPE)");

  tok->set_normalizer(read_normalizer(path, root));
  require_type(path, root, "pre_tokenizer", {"ByteLevel"});
  if (!root.contains("pre_tokenizer") || root["pre_tokenizer"].is_null())
    fail(path, "no \"pre_tokenizer\" (vkssm needs a ByteLevel pre-tokenizer)");
  const nlohmann::json& pre = root["pre_tokenizer"];
  bool add_prefix_space = true;  // the Hugging Face default for ByteLevel
  bool use_regex = true;
  if (pre.contains("add_prefix_space")) {
    if (!pre["add_prefix_space"].is_boolean()) fail(path, "add_prefix_space is not a boolean");
    add_prefix_space = pre["add_prefix_space"];
  }
  if (pre.contains("use_regex")) {
    if (!pre["use_regex"].is_boolean()) fail(path, "use_regex is not a boolean");
    use_regex = pre["use_regex"];
  }

  // Ids are capped so a corrupt file cannot make us allocate gigabytes.
  constexpr int64_t kMaxId = 1 << 24;
  const auto check_id = [&](const nlohmann::json& v, const char* kind, const std::string& name) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= kMaxId)
      fail(path, std::string(kind) + " '" + name + "' has id " + v.dump() +
                     ", expected an integer in [0, " + std::to_string(kMaxId) + ")");
    return static_cast<int32_t>(v.get<int64_t>());
  };

  // Vocabulary: byte-level strings -> ids.
  if (!model.contains("vocab") || !model["vocab"].is_object())
    fail(path, "model.vocab is missing or not an object");
  std::vector<bool> present;
  for (const auto& [token, value] : model["vocab"].items()) {
    const int32_t id = check_id(value, "vocab entry", token);
    if (static_cast<size_t>(id) >= present.size()) present.resize(id + 1, false);
    if (present[id]) fail(path, "id " + std::to_string(id) + " appears twice in model.vocab");
    present[id] = true;
    tok->add_vocab_token(token, id);
  }

  // Merges: "left right" strings (older files) or [left, right] pairs (newer files).
  if (!model.contains("merges") || !model["merges"].is_array())
    fail(path, "model.merges is missing or not an array");
  const nlohmann::json& merges = model["merges"];
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const nlohmann::json& m = merges[rank];
    std::string left, right;
    if (m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        fail(path, "merge " + std::to_string(rank) + " '" + s + "' is not two tokens");
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0];
      right = m[1];
    } else {
      fail(path, "merge " + std::to_string(rank) + " is neither \"a b\" nor [\"a\", \"b\"]");
    }
    if (!tok->add_merge(left, right, static_cast<int32_t>(rank)))
      fail(path, "merge " + std::to_string(rank) + " ('" + left + "' + '" + right +
                     "') names a token missing from model.vocab");
  }

  // Added tokens: decoded verbatim, matched before pre-tokenization.
  if (root.contains("added_tokens") && !root["added_tokens"].is_null()) {
    if (!root["added_tokens"].is_array()) fail(path, "added_tokens is not an array");
    for (const nlohmann::json& t : root["added_tokens"]) {
      if (!t.is_object() || !t.contains("content") || !t["content"].is_string() ||
          !t.contains("id"))
        fail(path, "an added_tokens entry lacks \"content\" or \"id\"");
      const std::string content = t["content"];
      // lstrip / rstrip / single_word are not implemented; GPT-NeoX sets none of them.
      tok->add_added_token(content, check_id(t["id"], "added token", content),
                           t.contains("normalized") && t["normalized"] == true);
    }
  }
  tok->finish(-1, add_prefix_space, use_regex);
  return tok;
}

std::string read_text_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw Error("tokenizer file '" + path + "' does not exist or is not a regular file");
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  if (!in || !contents) throw Error("cannot read tokenizer file '" + path + "'");
  return contents.str();
}

}  // namespace

std::unique_ptr<Tokenizer> load_bpe_tokenizer(const std::string& tokenizer_json_path) {
  const std::string text = read_text_file(tokenizer_json_path);
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(tokenizer_json_path, std::string("invalid JSON: ") + e.what());
  }
  try {
    return read_tokenizer_json(tokenizer_json_path, root);
  } catch (const nlohmann::json::exception& e) {
    // A field of an unexpected JSON type that the checks above did not catch.
    fail(tokenizer_json_path, std::string("unexpected content: ") + e.what());
  }
}

// The token list form (GGUF's tokenizer.ggml.*): ids are list positions, and the token types say
// which entries are added tokens. Of llama.cpp's types, CONTROL tokens are matched in the raw text
// and USER_DEFINED ones after normalization, as Hugging Face does with special and normalized
// added tokens; UNUSED entries (the "[PAD50277]" rows padding the vocabulary) are gaps.
std::unique_ptr<Tokenizer> make_bpe_tokenizer(const BpeVocabulary& vocab, const std::string& source) {
  auto tok = std::make_unique<BpeTokenizer>();
  const auto fail_here = [&](const std::string& what) {
    throw Error("tokenizer in " + source + ": " + what);
  };
  constexpr size_t kMaxTokens = size_t(1) << 24;
  if (vocab.tokens.size() > kMaxTokens)
    fail_here("holds " + std::to_string(vocab.tokens.size()) + " tokens, more than the limit of " +
              std::to_string(kMaxTokens));
  if (!vocab.token_types.empty() && vocab.token_types.size() != vocab.tokens.size())
    fail_here("has " + std::to_string(vocab.tokens.size()) + " tokens but " +
              std::to_string(vocab.token_types.size()) + " token types");
  tok->reserve_ids(vocab.tokens.size());
  for (size_t i = 0; i < vocab.tokens.size(); ++i) {
    const int32_t id = static_cast<int32_t>(i);
    const int64_t type = vocab.token_types.empty() ? 1 : vocab.token_types[i];
    switch (type) {
      case 1:  // NORMAL
      case 2:  // UNKNOWN
      case 6:  // BYTE
        tok->add_vocab_token(vocab.tokens[i], id);
        break;
      case 3:  // CONTROL
      case 4:  // USER_DEFINED
        tok->add_added_token(vocab.tokens[i], id, type == 4);
        break;
      case 5:  // UNUSED
        break;
      default:
        fail_here("token " + std::to_string(i) + " has unknown token type " + std::to_string(type));
    }
  }
  for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
    const std::string& m = vocab.merges[rank];
    const size_t space = m.find(' ');
    if (space == std::string::npos || m.find(' ', space + 1) != std::string::npos)
      fail_here("merge " + std::to_string(rank) + " '" + m + "' is not two tokens");
    // llama.cpp's converter writes the source tokenizer's merges even when the (cut-down) GGUF
    // vocabulary lacks a token they name; llama.cpp skips such merges, and so does vkssm: no
    // word can need them, since BPE could never produce their result.
    tok->add_merge(m.substr(0, space), m.substr(space + 1), static_cast<int32_t>(rank));
  }
  if (vocab.eos_id >= 0 && static_cast<size_t>(vocab.eos_id) >= vocab.tokens.size())
    fail_here("end-of-sequence id " + std::to_string(vocab.eos_id) + " is past the " +
              std::to_string(vocab.tokens.size()) + " tokens");
  if (vocab.normalize_nfc) tok->set_normalizer({NormalForm::kNFC});
  tok->finish(vocab.eos_id >= 0 ? static_cast<int32_t>(vocab.eos_id) : -1, vocab.add_prefix_space, true);
  return tok;
}

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& file) {
  if (!file.has("tokenizer.ggml.model")) return nullptr;
  const std::string model = file.get_string("tokenizer.ggml.model");
  // llama.cpp's "no tokenizer" (what convert_hf_to_gguf.py and vkssm quantize write for a model
  // without one): the same as no key at all.
  if (model == "none" || model == "no_vocab") return nullptr;
  if (model != "gpt2")
    throw Error("tokenizer.ggml.model '" + model + "' in GGUF file " + file.path() +
                " is not supported (vkssm reads byte-level BPE tokenizers, 'gpt2', only)");
  // llama.cpp pre-tokenizers that split text with the GPT-2 pattern. A missing or "default" one
  // comes from converters older than the pre-tokenizer field; byte-level BPE vocabularies are
  // trained with the GPT-2 split, so that is what they get here.
  if (file.has("tokenizer.ggml.pre")) {
    const std::string pre = file.get_string("tokenizer.ggml.pre");
    static const char* const kGpt2Split[] = {"default", "gpt-2", "phi-2", "olmo", "mpt",
                                             "jais", "trillion", "granite-docling"};
    bool known = false;
    for (const char* name : kGpt2Split) known = known || pre == name;
    if (!known)
      throw Error("tokenizer.ggml.pre '" + pre + "' in GGUF file " + file.path() +
                  " is not supported (vkssm implements the GPT-2 pre-tokenizer: gpt-2, olmo, mpt, ...)");
  }
  BpeVocabulary v;
  v.tokens = file.get_string_array("tokenizer.ggml.tokens");
  if (file.has("tokenizer.ggml.token_type")) v.token_types = file.get_int_array("tokenizer.ggml.token_type");
  if (file.has("tokenizer.ggml.merges")) v.merges = file.get_string_array("tokenizer.ggml.merges");
  if (file.has("tokenizer.ggml.eos_token_id")) v.eos_id = file.get_int("tokenizer.ggml.eos_token_id");
  if (file.has("tokenizer.ggml.add_space_prefix"))
    v.add_prefix_space = file.get_bool("tokenizer.ggml.add_space_prefix");
  return make_bpe_tokenizer(v, "GGUF file " + file.path());
}

}  // namespace vkssm

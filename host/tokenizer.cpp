// Byte tokenizer and a byte-level BPE tokenizer read from a Hugging Face tokenizer.json.
//
// Encoding a text with byte-level BPE (GPT-2 / GPT-NeoX) goes:
//   1. split out added tokens (`<|endoftext|>`, NeoX's runs of spaces, ...): they map to one id;
//   2. split the rest into "words" with the GPT-2 pre-tokenizer regex (hand-written below);
//   3. start each word as one symbol per byte and apply the merges, lowest rank first.
// Decoding just concatenates the bytes of each token.
#include "host/tokenizer.h"

#include <array>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <queue>
#include <sstream>
#include <string_view>
#include <unordered_map>

#include "host/checkpoint.h"
#include "host/error.h"
#include "host/gguf.h"

namespace vkssm {
namespace {

// ------------------------------------------------------------------------------------------------
// Byte tokenizer
// ------------------------------------------------------------------------------------------------

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

// ------------------------------------------------------------------------------------------------
// UTF-8 and character classes for the pre-tokenizer
// ------------------------------------------------------------------------------------------------

constexpr uint32_t kInvalidCodePoint = 0xFFFD;

// Decodes the code point starting at s[pos] and stores its length in bytes. A malformed sequence
// (stray continuation byte, truncated, overlong, surrogate, > U+10FFFF) decodes as U+FFFD of
// length 1, so arbitrary bytes can still be tokenized.
uint32_t decode_utf8(std::string_view s, size_t pos, size_t* len) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b0 = byte(pos);
  *len = 1;
  if (b0 < 0x80) return b0;
  size_t n;
  uint32_t cp;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2, cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3, cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4, cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // beyond U+10FFFF
  } else {
    return kInvalidCodePoint;
  }
  if (pos + n > s.size()) return kInvalidCodePoint;
  for (size_t i = 1; i < n; ++i) {
    const unsigned char b = byte(pos + i);
    if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF)) return kInvalidCodePoint;
    cp = (cp << 6) | (b & 0x3F);
  }
  *len = n;
  return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

struct Range {
  uint32_t first, last;
};

bool in_ranges(uint32_t cp, std::initializer_list<Range> ranges) {
  for (const Range& r : ranges)
    if (cp >= r.first && cp <= r.last) return true;
  return false;
}

// The regex's \s: the Unicode White_Space property.
bool is_space(uint32_t cp) {
  return in_ranges(cp, {{0x09, 0x0D}, {0x20, 0x20}, {0x85, 0x85}, {0xA0, 0xA0}, {0x1680, 0x1680},
                        {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F},
                        {0x3000, 0x3000}});
}

// The regex's \p{N}: ASCII digits exactly, plus the digit and number blocks in common use.
bool is_number(uint32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return in_ranges(cp, {{0xB2, 0xB3}, {0xB9, 0xB9}, {0xBC, 0xBE}, {0x660, 0x669}, {0x6F0, 0x6F9},
                        {0x966, 0x96F}, {0x2070, 0x2070}, {0x2074, 0x2079}, {0x2080, 0x2089},
                        {0x2150, 0x2189}, {0x2460, 0x249B}, {0x2776, 0x2793}, {0x3007, 0x3007},
                        {0x3021, 0x3029}, {0xFF10, 0xFF19}});
}

// The regex's \p{L}, approximated: ASCII letters exactly; beyond ASCII, everything that is not
// whitespace, a number, or in a block of punctuation, symbols, marks, emoji or controls. Scripts
// (Latin-1 letters, Cyrillic, Greek, CJK, ...) therefore count as letters.
bool is_letter(uint32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  if (is_space(cp) || is_number(cp)) return false;
  if (cp == 0xAA || cp == 0xB5 || cp == 0xBA) return true;  // letters inside Latin-1 symbols
  return !in_ranges(cp, {
                            {0x80, 0xBF},      // C1 controls, Latin-1 punctuation and symbols
                            {0xD7, 0xD7},      // multiplication sign
                            {0xF7, 0xF7},      // division sign
                            {0x2C2, 0x2C5},    // modifier symbols
                            {0x2D2, 0x2DF},    // modifier symbols
                            {0x300, 0x36F},    // combining diacritical marks
                            {0x2000, 0x206F},  // general punctuation (incl. zero-width joiner)
                            {0x20A0, 0x20FF},  // currency, combining marks for symbols
                            {0x2100, 0x214F},  // letterlike symbols
                            {0x2190, 0x2BFF},  // arrows, math, technical, box drawing, dingbats
                            {0x2E00, 0x2E7F},  // supplemental punctuation
                            {0x3000, 0x303F},  // CJK symbols and punctuation
                            {0xD800, 0xF8FF},  // surrogates, private use
                            {0xFE00, 0xFE0F},  // variation selectors
                            {0xFE30, 0xFE6F},  // CJK compatibility and small form punctuation
                            {0xFF01, 0xFF0F},  // fullwidth punctuation
                            {0xFF1A, 0xFF20},
                            {0xFF3B, 0xFF40},
                            {0xFF5B, 0xFF65},
                            {0xFFF0, 0xFFFF},  // specials (incl. U+FFFD)
                            {0x1F000, 0x1FAFF},  // emoji, pictographs, game symbols
                            {0xE0000, 0xE007F},  // tags
                        });
}

enum class CharClass { kSpace, kLetter, kNumber, kOther };

CharClass classify(uint32_t cp) {
  if (is_space(cp)) return CharClass::kSpace;
  if (is_number(cp)) return CharClass::kNumber;
  if (is_letter(cp)) return CharClass::kLetter;
  return CharClass::kOther;
}

// Splits text the way the GPT-2 pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// does: at each position the first alternative that matches wins, and runs are greedy.
std::vector<std::string_view> split_gpt2_words(std::string_view text) {
  struct Char {
    uint32_t cp;
    CharClass cls;
    size_t offset;  // byte offset in text
  };
  std::vector<Char> chars;
  for (size_t pos = 0; pos < text.size();) {
    size_t len;
    const uint32_t cp = decode_utf8(text, pos, &len);
    chars.push_back({cp, classify(cp), pos});
    pos += len;
  }
  const size_t n = chars.size();
  const auto cp_at = [&](size_t i) { return i < n ? chars[i].cp : 0u; };
  const auto offset_at = [&](size_t i) { return i < n ? chars[i].offset : text.size(); };

  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < n) {
    size_t end;  // one past the last char of this word
    const uint32_t c = chars[i].cp;
    if (c == '\'' && (cp_at(i + 1) == 's' || cp_at(i + 1) == 't' || cp_at(i + 1) == 'm' ||
                      cp_at(i + 1) == 'd')) {
      end = i + 2;
    } else if (c == '\'' && ((cp_at(i + 1) == 'r' && cp_at(i + 2) == 'e') ||
                             (cp_at(i + 1) == 'v' && cp_at(i + 2) == 'e') ||
                             (cp_at(i + 1) == 'l' && cp_at(i + 2) == 'l'))) {
      end = i + 3;
    } else if (chars[i].cls != CharClass::kSpace ||
               (c == ' ' && i + 1 < n && chars[i + 1].cls != CharClass::kSpace)) {
      // ` ?\p{L}+`, ` ?\p{N}+` or ` ?[^\s\p{L}\p{N}]+`: an optional space, then a run of one class.
      const size_t run_start = (chars[i].cls == CharClass::kSpace) ? i + 1 : i;
      const CharClass cls = chars[run_start].cls;
      end = run_start + 1;
      while (end < n && chars[end].cls == cls) ++end;
    } else {
      // A whitespace run. `\s+(?!\S)` leaves the last whitespace char to prefix the next word
      // when one follows; a lone whitespace char before a word falls through to `\s+`.
      size_t run_end = i + 1;
      while (run_end < n && chars[run_end].cls == CharClass::kSpace) ++run_end;
      if (run_end == n || run_end - i == 1)
        end = run_end;
      else
        end = run_end - 1;
    }
    words.push_back(text.substr(offset_at(i), offset_at(end) - offset_at(i)));
    i = end;
  }
  return words;
}

// ------------------------------------------------------------------------------------------------
// GPT-2's byte <-> printable character mapping
// ------------------------------------------------------------------------------------------------

// Byte-level vocabularies store each byte as a printable code point: bytes that are printable
// Latin-1 characters stand for themselves, the other 68 bytes take U+0100.. in byte order.
std::array<uint32_t, 256> byte_to_code_point_table() {
  std::array<uint32_t, 256> table{};
  uint32_t next_extra = 0x100;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    table[b] = printable ? b : next_extra++;
  }
  return table;
}

// ------------------------------------------------------------------------------------------------
// Byte-level BPE
// ------------------------------------------------------------------------------------------------

struct AddedToken {
  std::string content;
  int32_t id;
};

class BpeTokenizer final : public Tokenizer {
 public:
  BpeTokenizer(const std::string& path, const nlohmann::json& root);
  BpeTokenizer(const std::string& source, const BpeVocabulary& vocab);

  std::vector<int32_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    for (int32_t id : ids) out += decode_token(id);
    return out;
  }
  std::string decode_token(int32_t id) const override {
    if (id < 0 || static_cast<size_t>(id) >= token_bytes_.size()) return {};
    return token_bytes_[id];
  }
  int32_t eos_id() const override { return eos_id_; }
  int64_t vocab_size() const override { return static_cast<int64_t>(token_bytes_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }

  // Splits `text` on the added tokens of `tokens` (leftmost match, longest on ties); segments
  // already holding an id are left alone.
  struct Segment {
    std::string_view text;
    int32_t id;  // -1: text still to be tokenized
  };
  std::vector<Segment> split_on_added(const std::vector<Segment>& in,
                                      const std::vector<AddedToken>& tokens) const;

  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  std::vector<int32_t> apply_merges(std::string_view word) const;

  // Building blocks of both constructors. `ids` maps the byte-level text of vocabulary tokens to
  // their ids, for the merges.
  using TokenIds = std::unordered_map<std::string, int32_t>;
  void add_vocab_token(const std::string& token, int32_t id, TokenIds& ids);
  void set_byte_ids(const TokenIds& ids);
  bool add_merge(const std::string& left, const std::string& right, int32_t rank, const TokenIds& ids);
  void add_added_token(AddedToken token, bool normalized);
  void find_eos(const TokenIds& ids);

  std::vector<std::string> token_bytes_;  // raw bytes of each id; empty for gaps
  std::array<int32_t, 256> byte_id_{};    // id of the one-byte token, -1 when the vocab lacks it
  std::unordered_map<uint64_t, Merge> merges_;
  std::vector<AddedToken> special_tokens_;     // matched in the raw text
  std::vector<AddedToken> normalized_tokens_;  // matched after normalization
  bool add_prefix_space_ = false;
  bool use_regex_ = true;
  int32_t eos_id_ = -1;

  // Words repeat a lot in text, so their merged ids are remembered.
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

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

BpeTokenizer::BpeTokenizer(const std::string& path, const nlohmann::json& root) {
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

  // The NFC normalizer is accepted but not applied: text typed or pasted is almost always NFC
  // already, and decomposed input still round-trips, it just tokenizes differently.
  require_type(path, root, "normalizer", {"NFC"});
  require_type(path, root, "pre_tokenizer", {"ByteLevel"});
  if (!root.contains("pre_tokenizer") || root["pre_tokenizer"].is_null())
    fail(path, "no \"pre_tokenizer\" (vkssm needs a ByteLevel pre-tokenizer)");
  const nlohmann::json& pre = root["pre_tokenizer"];
  if (pre.contains("add_prefix_space")) {
    if (!pre["add_prefix_space"].is_boolean()) fail(path, "add_prefix_space is not a boolean");
    add_prefix_space_ = pre["add_prefix_space"];
  } else {
    add_prefix_space_ = true;  // the Hugging Face default for ByteLevel
  }
  if (pre.contains("use_regex")) {
    if (!pre["use_regex"].is_boolean()) fail(path, "use_regex is not a boolean");
    use_regex_ = pre["use_regex"];
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
  TokenIds token_to_id;
  token_to_id.reserve(model["vocab"].size());
  std::vector<bool> present;
  for (const auto& [token, value] : model["vocab"].items()) {
    const int32_t id = check_id(value, "vocab entry", token);
    if (static_cast<size_t>(id) >= token_bytes_.size()) {
      token_bytes_.resize(id + 1);
      present.resize(id + 1, false);
    }
    if (present[id]) fail(path, "id " + std::to_string(id) + " appears twice in model.vocab");
    present[id] = true;
    add_vocab_token(token, id, token_to_id);
  }
  set_byte_ids(token_to_id);

  // Merges: "left right" strings (older files) or [left, right] pairs (newer files).
  if (!model.contains("merges") || !model["merges"].is_array())
    fail(path, "model.merges is missing or not an array");
  const nlohmann::json& merges = model["merges"];
  merges_.reserve(merges.size());
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
    if (!add_merge(left, right, static_cast<int32_t>(rank), token_to_id))
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
      AddedToken token{content, check_id(t["id"], "added token", content)};
      // lstrip / rstrip / single_word are not implemented; GPT-NeoX sets none of them.
      add_added_token(std::move(token), t.contains("normalized") && t["normalized"] == true);
    }
  }
  find_eos(token_to_id);
}

// The token list form (GGUF's tokenizer.ggml.*): ids are list positions, and the token types say
// which entries are added tokens. Of llama.cpp's types, CONTROL tokens are matched in the raw text
// and USER_DEFINED ones after normalization, as Hugging Face does with special and normalized
// added tokens; UNUSED entries (the "[PAD50277]" rows padding the vocabulary) are gaps.
BpeTokenizer::BpeTokenizer(const std::string& source, const BpeVocabulary& vocab) {
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
  token_bytes_.resize(vocab.tokens.size());
  TokenIds token_to_id;
  token_to_id.reserve(vocab.tokens.size());
  for (size_t i = 0; i < vocab.tokens.size(); ++i) {
    const int32_t id = static_cast<int32_t>(i);
    const int64_t type = vocab.token_types.empty() ? 1 : vocab.token_types[i];
    switch (type) {
      case 1:  // NORMAL
      case 2:  // UNKNOWN
      case 6:  // BYTE
        add_vocab_token(vocab.tokens[i], id, token_to_id);
        break;
      case 3:  // CONTROL
      case 4:  // USER_DEFINED
        add_added_token({vocab.tokens[i], id}, type == 4);
        break;
      case 5:  // UNUSED
        break;
      default:
        fail_here("token " + std::to_string(i) + " has unknown token type " + std::to_string(type));
    }
  }
  set_byte_ids(token_to_id);
  merges_.reserve(vocab.merges.size());
  for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
    const std::string& m = vocab.merges[rank];
    const size_t space = m.find(' ');
    if (space == std::string::npos || m.find(' ', space + 1) != std::string::npos)
      fail_here("merge " + std::to_string(rank) + " '" + m + "' is not two tokens");
    const std::string left = m.substr(0, space), right = m.substr(space + 1);
    if (!add_merge(left, right, static_cast<int32_t>(rank), token_to_id))
      fail_here("merge " + std::to_string(rank) + " ('" + left + "' + '" + right +
                "') names a token missing from the vocabulary");
  }
  add_prefix_space_ = vocab.add_prefix_space;
  if (vocab.eos_id >= 0) {
    if (static_cast<size_t>(vocab.eos_id) >= vocab.tokens.size())
      fail_here("end-of-sequence id " + std::to_string(vocab.eos_id) + " is past the " +
                std::to_string(vocab.tokens.size()) + " tokens");
    eos_id_ = static_cast<int32_t>(vocab.eos_id);
  } else {
    find_eos(token_to_id);
  }
}

// Byte-level text (each byte spelled as one printable code point) -> raw bytes.
void BpeTokenizer::add_vocab_token(const std::string& token, int32_t id, TokenIds& ids) {
  static const std::array<int, 0x100 + 68> cp_to_byte = [] {
    std::array<int, 0x100 + 68> table;  // byte_to_code_point_table's values lie below 0x100 + 68
    table.fill(-1);
    const std::array<uint32_t, 256> byte_to_cp = byte_to_code_point_table();
    for (int b = 0; b < 256; ++b) table[byte_to_cp[b]] = b;
    return table;
  }();
  ids.emplace(token, id);
  std::string& bytes = token_bytes_[id];
  for (size_t pos = 0; pos < token.size();) {
    size_t len;
    const uint32_t cp = decode_utf8(token, pos, &len);
    if (cp < cp_to_byte.size() && cp_to_byte[cp] >= 0)
      bytes += static_cast<char>(cp_to_byte[cp]);
    else
      bytes.append(token, pos, len);  // not byte-level: keep the text as written
    pos += len;
  }
}

void BpeTokenizer::set_byte_ids(const TokenIds& ids) {
  const std::array<uint32_t, 256> byte_to_cp = byte_to_code_point_table();
  for (int b = 0; b < 256; ++b) {
    std::string symbol;
    append_utf8(symbol, byte_to_cp[b]);
    const auto it = ids.find(symbol);
    // Bytes that never occur in UTF-8 (0xC0, 0xF5.. in GPT-NeoX) may lack a token; they are
    // dropped when encoding, as Hugging Face does for a BPE without an unknown token.
    byte_id_[b] = (it == ids.end()) ? -1 : it->second;
  }
}

bool BpeTokenizer::add_merge(const std::string& left, const std::string& right, int32_t rank,
                             const TokenIds& ids) {
  const auto l = ids.find(left), r = ids.find(right), result = ids.find(left + right);
  if (l == ids.end() || r == ids.end() || result == ids.end()) return false;
  // A repeated pair keeps its first (best) rank.
  merges_.emplace(pair_key(l->second, r->second), Merge{rank, result->second});
  return true;
}

// Added tokens: decoded verbatim, matched before pre-tokenization.
void BpeTokenizer::add_added_token(AddedToken token, bool normalized) {
  if (token.content.empty()) return;  // can never match
  if (static_cast<size_t>(token.id) >= token_bytes_.size()) token_bytes_.resize(token.id + 1);
  token_bytes_[token.id] = token.content;
  (normalized ? normalized_tokens_ : special_tokens_).push_back(std::move(token));
}

// The end-of-text marker, under the names byte-level BPE vocabularies give it.
void BpeTokenizer::find_eos(const TokenIds& ids) {
  for (const char* name : {"<|endoftext|>", "</s>"}) {
    for (const AddedToken& t : special_tokens_)
      if (t.content == name) eos_id_ = t.id;
    const auto it = ids.find(name);
    if (eos_id_ < 0 && it != ids.end()) eos_id_ = it->second;
    if (eos_id_ >= 0) break;
  }
}

std::vector<BpeTokenizer::Segment> BpeTokenizer::split_on_added(
    const std::vector<Segment>& in, const std::vector<AddedToken>& tokens) const {
  if (tokens.empty()) return in;
  std::vector<Segment> out;
  for (const Segment& seg : in) {
    if (seg.id >= 0) {
      out.push_back(seg);
      continue;
    }
    const std::string_view text = seg.text;
    size_t plain_start = 0;
    for (size_t pos = 0; pos < text.size();) {
      const AddedToken* best = nullptr;
      for (const AddedToken& t : tokens)
        if (text.compare(pos, t.content.size(), t.content) == 0 &&
            (!best || t.content.size() > best->content.size()))
          best = &t;
      if (!best) {
        ++pos;
        continue;
      }
      if (pos > plain_start) out.push_back({text.substr(plain_start, pos - plain_start), -1});
      out.push_back({text.substr(pos, best->content.size()), best->id});
      pos += best->content.size();
      plain_start = pos;
    }
    if (plain_start < text.size()) out.push_back({text.substr(plain_start), -1});
  }
  return out;
}

std::vector<int32_t> BpeTokenizer::encode(const std::string& text) const {
  std::vector<Segment> segments = {{text, -1}};
  segments = split_on_added(segments, special_tokens_);
  segments = split_on_added(segments, normalized_tokens_);

  std::vector<int32_t> ids;
  std::string prefixed;
  for (const Segment& seg : segments) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    std::string_view piece = seg.text;
    if (piece.empty()) continue;
    if (add_prefix_space_ && piece.front() != ' ') {
      prefixed.assign(1, ' ');
      prefixed += piece;
      piece = prefixed;
    }
    if (!use_regex_) {
      encode_word(piece, ids);
      continue;
    }
    for (std::string_view word : split_gpt2_words(piece)) encode_word(word, ids);
  }
  return ids;
}

void BpeTokenizer::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  // Long words are rare and would crowd the cache; they are merged afresh each time.
  constexpr size_t kMaxCachedWordBytes = 64;
  constexpr size_t kMaxCacheEntries = 1 << 16;
  if (word.size() > kMaxCachedWordBytes) {
    const std::vector<int32_t> ids = apply_merges(word);
    out.insert(out.end(), ids.begin(), ids.end());
    return;
  }
  const std::string key(word);
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    const auto it = cache_.find(key);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids = apply_merges(word);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() >= kMaxCacheEntries) cache_.clear();
  cache_.emplace(key, std::move(ids));
}

// Starts with one symbol per byte and repeatedly merges the adjacent pair of lowest rank
// (leftmost on ties). A heap of candidate pairs over a linked list of symbols keeps this
// O(n log n), so a huge word without spaces cannot stall encoding.
std::vector<int32_t> BpeTokenizer::apply_merges(std::string_view word) const {
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // neighbours in the list, -1 at the ends
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  for (unsigned char c : word) {
    if (byte_id_[c] < 0) continue;
    const int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back({byte_id_[c], index - 1, -1});
    if (index > 0) symbols[index - 1].next = index;
  }

  struct Candidate {
    int32_t rank, left;
    int32_t left_id, right_id;  // to recognise candidates made stale by earlier merges
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  const auto push_pair = [&](int32_t left) {
    if (left < 0 || symbols[left].next < 0) return;
    const int32_t l = symbols[left].id, r = symbols[symbols[left].next].id;
    const auto it = merges_.find(pair_key(l, r));
    if (it != merges_.end()) heap.push({it->second.rank, left, l, r});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) push_pair(i);

  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol& left = symbols[c.left];
    if (left.id != c.left_id || left.next < 0 || symbols[left.next].id != c.right_id) continue;
    const int32_t right_index = left.next;
    Symbol& right = symbols[right_index];
    left.id = merges_.at(pair_key(c.left_id, c.right_id)).result;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = c.left;
    right.id = -1;  // removed from the list
    push_pair(left.prev);
    push_pair(c.left);
  }

  std::vector<int32_t> ids;
  for (int32_t i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
  return ids;
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

std::unique_ptr<Tokenizer> make_byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

std::unique_ptr<Tokenizer> load_bpe_tokenizer(const std::string& tokenizer_json_path) {
  const std::string text = read_text_file(tokenizer_json_path);
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(tokenizer_json_path, std::string("invalid JSON: ") + e.what());
  }
  try {
    return std::make_unique<BpeTokenizer>(tokenizer_json_path, root);
  } catch (const nlohmann::json::exception& e) {
    // A field of an unexpected JSON type that the checks above did not catch.
    fail(tokenizer_json_path, std::string("unexpected content: ") + e.what());
  }
}

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

std::unique_ptr<Tokenizer> make_bpe_tokenizer(const BpeVocabulary& vocab, const std::string& source) {
  return std::make_unique<BpeTokenizer>(source, vocab);
}

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& file) {
  if (!file.has("tokenizer.ggml.model")) return nullptr;
  const std::string model = file.get_string("tokenizer.ggml.model");
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

std::unique_ptr<Tokenizer> load_tokenizer_for_path(const std::string& model_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool is_dir = fs::is_directory(model_path, ec);
  std::string dir = is_dir ? model_path : fs::path(model_path).parent_path().string();
  if (dir.empty()) dir = ".";
  const std::string gguf = find_gguf_file(model_path);
  if (!gguf.empty()) {
    if (std::unique_ptr<Tokenizer> t = load_gguf_tokenizer(*GgufFile::open(gguf))) return t;
    const fs::path json = fs::path(dir) / "tokenizer.json";
    return fs::exists(json, ec) ? load_bpe_tokenizer(json.string()) : nullptr;
  }
  return load_tokenizer_for_model(dir, read_json_file((fs::path(dir) / "config.json").string()));
}

}  // namespace vkssm

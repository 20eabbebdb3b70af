#pragma once
// Byte-level BPE (GPT-2 / GPT-NeoX): the vocabulary, merges and added tokens, and encoding with
// them. Internal to host/tokenizer*.cpp: tokenizer_load.cpp fills one from a tokenizer.json or
// from GGUF metadata.
//
// Encoding a text goes:
//   1. split out the added tokens matched in the raw text (`<|endoftext|>`, ...): they map to
//      one id each;
//   2. normalize the rest (NFC for GPT-NeoX) and split out the added tokens matched in normalized
//      text (NeoX's runs of spaces);
//   3. split the rest into words with the GPT-2 pre-tokenizer (host/tokenizer_pretokenizer.h);
//   4. start each word as one symbol per byte and apply the merges, lowest rank first.
// Decoding just concatenates the bytes of each token.
#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "host/tokenizer.h"
#include "host/tokenizer_normalizer.h"

namespace vkssm {

class BpeTokenizer final : public Tokenizer {
 public:
  // Building, in this order: the vocabulary and added tokens, then the merges, then finish().
  // Ids below `n` exist (as gaps until a token names them): the vocabulary size is at least n.
  void reserve_ids(size_t n);
  // A vocabulary token in byte-level spelling (each byte as one printable code point).
  void add_vocab_token(const std::string& token, int32_t id);
  // A token matched in the text before pre-tokenization (after normalization when `normalized`)
  // and decoded verbatim.
  void add_added_token(const std::string& content, int32_t id, bool normalized);
  // False when left, right or left+right is not a vocabulary token. A repeated pair keeps its
  // first (best) rank.
  bool add_merge(const std::string& left, const std::string& right, int32_t rank);
  // The normalizer's forms, applied in order (none: text is not normalized).
  void set_normalizer(std::vector<NormalForm> forms) { normalizer_ = std::move(forms); }
  // eos_id < 0: the added or vocabulary token <|endoftext|> or </s>, if any. Normalizes the
  // contents of the normalized added tokens, as Hugging Face does.
  void finish(int32_t eos_id, bool add_prefix_space, bool use_regex);

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
  struct AddedToken {
    std::string content;  // as matched: normalized for normalized_tokens_
    int32_t id;
  };
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

  // While building: the byte-level text of each vocabulary token -> its id, for the merges.
  std::unordered_map<std::string, int32_t> token_ids_;

  std::vector<std::string> token_bytes_;  // raw bytes of each id; empty for gaps
  std::array<int32_t, 256> byte_id_{};    // id of the one-byte token, -1 when the vocab lacks it
  std::unordered_map<uint64_t, Merge> merges_;
  std::vector<AddedToken> special_tokens_;     // matched in the raw text
  std::vector<AddedToken> normalized_tokens_;  // matched after normalization
  std::vector<NormalForm> normalizer_;
  bool add_prefix_space_ = false;
  bool use_regex_ = true;
  int32_t eos_id_ = -1;

  // Words repeat a lot in text, so their merged ids are remembered.
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace vkssm

// Byte-level BPE (host/tokenizer_bpe.h): building the tables, and encoding with them.
#include "host/tokenizer_bpe.h"

#include <deque>
#include <queue>

#include "host/tokenizer_pretokenizer.h"

namespace vkssm {
namespace {

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

}  // namespace

// ---- building ------------------------------------------------------------------------------------

void BpeTokenizer::reserve_ids(size_t n) {
  if (token_bytes_.size() < n) token_bytes_.resize(n);
}

// Byte-level text (each byte spelled as one printable code point) -> raw bytes.
void BpeTokenizer::add_vocab_token(const std::string& token, int32_t id) {
  static const std::array<int, 0x100 + 68> cp_to_byte = [] {
    std::array<int, 0x100 + 68> table;  // byte_to_code_point_table's values lie below 0x100 + 68
    table.fill(-1);
    const std::array<uint32_t, 256> byte_to_cp = byte_to_code_point_table();
    for (int b = 0; b < 256; ++b) table[byte_to_cp[b]] = b;
    return table;
  }();
  token_ids_.emplace(token, id);
  reserve_ids(size_t(id) + 1);
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

void BpeTokenizer::add_added_token(const std::string& content, int32_t id, bool normalized) {
  if (content.empty()) return;  // can never match
  reserve_ids(size_t(id) + 1);
  token_bytes_[id] = content;
  (normalized ? normalized_tokens_ : special_tokens_).push_back({content, id});
}

bool BpeTokenizer::add_merge(const std::string& left, const std::string& right, int32_t rank) {
  const auto l = token_ids_.find(left), r = token_ids_.find(right), result = token_ids_.find(left + right);
  if (l == token_ids_.end() || r == token_ids_.end() || result == token_ids_.end()) return false;
  merges_.emplace(pair_key(l->second, r->second), Merge{rank, result->second});
  return true;
}

void BpeTokenizer::finish(int32_t eos_id, bool add_prefix_space, bool use_regex) {
  const std::array<uint32_t, 256> byte_to_cp = byte_to_code_point_table();
  for (int b = 0; b < 256; ++b) {
    std::string symbol;
    append_utf8(symbol, byte_to_cp[b]);
    const auto it = token_ids_.find(symbol);
    // Bytes that never occur in UTF-8 (0xC0, 0xF5.. in GPT-NeoX) may lack a token; they are
    // dropped when encoding, as Hugging Face does for a BPE without an unknown token.
    byte_id_[b] = (it == token_ids_.end()) ? -1 : it->second;
  }
  add_prefix_space_ = add_prefix_space;
  use_regex_ = use_regex;
  eos_id_ = eos_id;
  for (AddedToken& t : normalized_tokens_) t.content = normalize_unicode(t.content, normalizer_);
  // The end-of-text marker, under the names byte-level BPE vocabularies give it.
  for (const char* name : {"<|endoftext|>", "</s>"}) {
    if (eos_id_ >= 0) break;
    for (const AddedToken& t : special_tokens_)
      if (t.content == name) eos_id_ = t.id;
    const auto it = token_ids_.find(name);
    if (eos_id_ < 0 && it != token_ids_.end()) eos_id_ = it->second;
  }
  token_ids_ = {};  // only needed while building
}

// ---- encoding ------------------------------------------------------------------------------------

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
  std::vector<Segment> segments = split_on_added({{text, -1}}, special_tokens_);
  // Hugging Face normalizes what lies between the raw-matched added tokens, then matches the
  // normalized added tokens in it.
  std::deque<std::string> normalized;  // owns the text of the segments below (stable addresses)
  if (!normalizer_.empty()) {
    for (Segment& seg : segments) {
      if (seg.id >= 0) continue;
      normalized.push_back(normalize_unicode(seg.text, normalizer_));
      seg.text = normalized.back();
    }
  }
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

}  // namespace vkssm

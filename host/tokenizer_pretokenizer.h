#pragma once
// The GPT-2 pre-tokenizer: splits text into the "words" that byte-level BPE merges within, and
// the UTF-8 helpers it needs. Internal to host/tokenizer*.cpp.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vkssm {

// Decodes the code point starting at s[pos] and stores its length in bytes. A malformed sequence
// (stray continuation byte, truncated, overlong, surrogate, > U+10FFFF) decodes as U+FFFD of
// length 1, so arbitrary bytes can still be tokenized.
uint32_t decode_utf8(std::string_view s, size_t pos, size_t* len);

// Appends the UTF-8 encoding of `cp`.
void append_utf8(std::string& out, uint32_t cp);

// Splits text the way the GPT-2 pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// does: at each position the first alternative that matches wins, and runs are greedy. The
// words are views into `text` and cover it without gaps.
std::vector<std::string_view> split_gpt2_words(std::string_view text);

}  // namespace vkssm

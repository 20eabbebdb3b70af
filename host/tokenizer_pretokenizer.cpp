// The GPT-2 pre-tokenizer (host/tokenizer_pretokenizer.h): the regex's character classes \s,
// \p{L} and \p{N} from the Unicode general categories, and the split into words.
#include "host/tokenizer_pretokenizer.h"

#include <utf8proc.h>

namespace vkssm {
namespace {

constexpr uint32_t kInvalidCodePoint = 0xFFFD;

}  // namespace

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

namespace {

enum class CharClass { kSpace, kLetter, kNumber, kOther };

// The pattern's classes as Hugging Face's regex engine (Oniguruma) defines them: \p{L} is the
// general category L (Lu Ll Lt Lm Lo), \p{N} is N (Nd Nl No), and \s is U+0009..U+000D, U+0085
// and the separators Zs Zl Zp (the White_Space property). The categories come from utf8proc
// (see tokenizer_normalizer.cpp for why a library): approximated ranges got marks, symbols,
// Indic and Arabic signs, U+05F4, U+FEFF, ... wrong, and each such character changes the split.
CharClass classify(uint32_t cp) {
  if (cp < 0x80) {  // the common case, without a table lookup
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return CharClass::kLetter;
    if (cp >= '0' && cp <= '9') return CharClass::kNumber;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return CharClass::kSpace;
    return CharClass::kOther;
  }
  if (cp == 0x85) return CharClass::kSpace;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return CharClass::kLetter;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return CharClass::kNumber;
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
      return CharClass::kSpace;
    default:
      return CharClass::kOther;
  }
}

}  // namespace

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

}  // namespace vkssm

// The GPT-2 pre-tokenizer (host/tokenizer_pretokenizer.h): character classes approximating the
// regex's \s, \p{L} and \p{N}, and the split into words.
#include "host/tokenizer_pretokenizer.h"

#include <initializer_list>

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

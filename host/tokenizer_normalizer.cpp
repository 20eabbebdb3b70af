// Unicode normalization (host/tokenizer_normalizer.h) through utf8proc.
//
// Why a library: normalization needs the full decomposition, composition-exclusion and
// canonical-combining-class data of the Unicode Character Database; a hand-written subset
// silently tokenizes the rest differently from Hugging Face (decomposed Hangul, Vietnamese,
// Bengali, Burmese, ... texts). utf8proc is small, C, maintained by the Julia project, and
// packaged by every distribution (Debian libutf8proc-dev); the GPT-2 character classes in
// tokenizer_pretokenizer.cpp come from the same library, so both agree on the Unicode version.
#include "host/tokenizer_normalizer.h"

#include <cstdlib>
#include <memory>

#include <utf8proc.h>

#include "host/error.h"
#include "host/tokenizer_pretokenizer.h"

namespace vkssm {
namespace {

utf8proc_option_t options_for(NormalForm form) {
  const int stable = UTF8PROC_STABLE;
  switch (form) {
    case NormalForm::kNFC: return utf8proc_option_t(stable | UTF8PROC_COMPOSE);
    case NormalForm::kNFD: return utf8proc_option_t(stable | UTF8PROC_DECOMPOSE);
    case NormalForm::kNFKC: return utf8proc_option_t(stable | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    case NormalForm::kNFKD: return utf8proc_option_t(stable | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
  }
  return utf8proc_option_t(stable);
}

// Normalizes valid UTF-8 (embedded NULs included: the length is explicit) and appends it.
void append_normalized(std::string& out, std::string_view valid, NormalForm form) {
  if (valid.empty()) return;
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(valid.data()),
                                          static_cast<utf8proc_ssize_t>(valid.size()), &result,
                                          options_for(form));
  const std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owner(result, &std::free);
  if (n < 0) throw Error(std::string("Unicode normalization failed: ") + utf8proc_errmsg(n));
  out.append(reinterpret_cast<const char*>(result), static_cast<size_t>(n));
}

std::string normalize_once(std::string_view text, NormalForm form) {
  std::string out;
  out.reserve(text.size());
  size_t valid_start = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t len;
    const uint32_t cp = decode_utf8(text, pos, &len);
    const bool malformed = cp == 0xFFFD && len == 1;  // a real U+FFFD is 3 bytes
    if (malformed) {
      append_normalized(out, text.substr(valid_start, pos - valid_start), form);
      out += text[pos];
      valid_start = pos + 1;
    }
    pos += len;
  }
  append_normalized(out, text.substr(valid_start), form);
  return out;
}

}  // namespace

std::optional<NormalForm> normal_form_named(std::string_view type) {
  if (type == "NFC") return NormalForm::kNFC;
  if (type == "NFD") return NormalForm::kNFD;
  if (type == "NFKC") return NormalForm::kNFKC;
  if (type == "NFKD") return NormalForm::kNFKD;
  return std::nullopt;
}

std::string normalize_unicode(std::string_view text, const std::vector<NormalForm>& forms) {
  bool ascii = true;  // ASCII is unchanged by every form
  for (char c : text) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  if (ascii || forms.empty()) return std::string(text);
  std::string out(text);
  for (NormalForm form : forms) out = normalize_once(out, form);
  return out;
}

}  // namespace vkssm

#pragma once
// Unicode normalization for tokenizers (Hugging Face's NFC, NFD, NFKC and NFKD normalizers).
// Internal to host/tokenizer*.cpp.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vkssm {

enum class NormalForm { kNFC, kNFD, kNFKC, kNFKD };

// The form a tokenizer.json normalizer "type" names ("NFC", ...); nullopt for any other type.
std::optional<NormalForm> normal_form_named(std::string_view type);

// Applies each form in turn. Malformed UTF-8 is never an error: its bytes are kept as they are
// and the valid text between them is normalized (Hugging Face only ever sees valid UTF-8, so
// this is the one case without a reference; keeping the bytes lets any input round-trip).
std::string normalize_unicode(std::string_view text, const std::vector<NormalForm>& forms);

}  // namespace vkssm

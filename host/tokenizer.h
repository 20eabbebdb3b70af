#pragma once
// Text <-> token ids, so `vkssm generate --prompt "text"` can feed a model and print its output.
//
// Two kinds are provided:
//  - a byte tokenizer (id = byte value), used by the project's tiny demo models;
//  - a byte-level BPE tokenizer read from a Hugging Face tokenizer.json (the GPT-2 / GPT-NeoX
//    family, which is what the Mamba checkpoints ship with).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vkssm {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual std::vector<int32_t> encode(const std::string& text) const = 0;

  // The concatenated bytes of all tokens. Ids that name no token (negative, past the vocabulary,
  // or a gap in it) decode to nothing: a model whose embedding table is padded beyond the
  // tokenizer's vocabulary may still sample such an id.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;

  // The raw bytes of one token. With byte-level vocabularies this may be part of a UTF-8
  // sequence, so a streaming printer should buffer until the bytes form whole characters.
  virtual std::string decode_token(int32_t id) const = 0;

  virtual int32_t eos_id() const = 0;      // -1 when the tokenizer has none
  virtual int64_t vocab_size() const = 0;  // one past the largest id
};

// id = byte value, vocabulary of 256, no end-of-sequence token.
std::unique_ptr<Tokenizer> make_byte_tokenizer();

// A Hugging Face tokenizer.json holding a byte-level BPE model (GPT-2 / GPT-NeoX style).
// Applies the file's normalizer (NFC, NFD, NFKC, NFKD or a Sequence of them) and matches added
// tokens as Hugging Face's `tokenizers` does: those with "normalized": false in the raw text,
// the others in the normalized text. Malformed UTF-8 in the input is kept byte for byte (each
// such byte is a character of its own for the pre-tokenizer). Throws vkssm::Error naming the
// file when it is missing, is not valid JSON, or describes a tokenizer this reader does not
// implement (a model other than BPE, a pre-tokenizer other than ByteLevel, ...).
std::unique_ptr<Tokenizer> load_bpe_tokenizer(const std::string& tokenizer_json_path);

// A byte-level BPE vocabulary given as lists, the form GGUF files carry (tokenizer.ggml.*).
struct BpeVocabulary {
  std::vector<std::string> tokens;   // id = position; byte-level text, as in tokenizer.json's vocab
  // llama.cpp token types, one per token (1 normal, 2 unknown, 3 control, 4 user-defined,
  // 5 unused, 6 byte); empty = all normal. Control tokens are matched in the raw text,
  // user-defined ones after normalization (Hugging Face's special / normalized added tokens);
  // unused ones (vocabulary padding) never match and decode to nothing.
  std::vector<int64_t> token_types;
  std::vector<std::string> merges;   // "left right", best first
  int64_t eos_id = -1;               // -1: look for <|endoftext|> or </s>
  bool add_prefix_space = false;
  // GGUF does not record the tokenizer.json normalizer. The byte-level BPE tokenizers of the
  // State Space Models (GPT-NeoX's: Mamba, Mamba-2) normalize to NFC, and NFC leaves text that
  // is already NFC (nearly all text) alone, so NFC is the default.
  bool normalize_nfc = true;
};
// `source` names where the vocabulary came from in error messages.
std::unique_ptr<Tokenizer> make_bpe_tokenizer(const BpeVocabulary& vocab, const std::string& source);

class GgufFile;
// The tokenizer stored in a GGUF file's metadata; nullptr when it has none (no
// tokenizer.ggml.model). Throws vkssm::Error naming the file and key for a tokenizer other than
// byte-level BPE ("gpt2") with the GPT-2 pre-tokenizer, or malformed tokenizer metadata.
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& file);

// The tokenizer for a model path as load_model() takes it: for a GGUF checkpoint (a .gguf file,
// or a folder holding one and no safetensors), the tokenizer in its metadata, else a
// tokenizer.json beside it; otherwise load_tokenizer_for_model() on the folder and its
// config.json. nullptr when there is none.
std::unique_ptr<Tokenizer> load_tokenizer_for_path(const std::string& model_path);

// The tokenizer for a checkpoint folder: the byte tokenizer when config.json says
// "vkssm_tokenizer": "bytes"; otherwise tokenizer.json in the folder; otherwise nullptr (the
// caller then needs token ids from the user). Throws vkssm::Error for an unknown
// "vkssm_tokenizer" value or a tokenizer.json that fails to load.
std::unique_ptr<Tokenizer> load_tokenizer_for_model(const std::string& model_dir,
                                                    const nlohmann::json& config);

}  // namespace vkssm

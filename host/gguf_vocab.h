#pragma once
// The tokenizer of a checkpoint folder as llama.cpp's convert_hf_to_gguf.py stores it in a GGUF
// file (tokenizer.ggml.*, the "gpt2" byte-level BPE form that host/tokenizer.h reads back):
//   - tokenizer.json (GPT-NeoX's, as Mamba checkpoints ship): what _set_vocab_gpt2 writes: the
//     vocabulary padded to the model's vocab_size with "[PAD{i}]" UNUSED tokens, added tokens
//     CONTROL when special (or shaped "<|...|>") and USER_DEFINED otherwise, merges as "a b",
//     pre-tokenizer "gpt-2" (llama.cpp's name for GPT-NeoX's split);
//   - "vkssm_tokenizer": "bytes" (the project's demo models, id = byte value): the 256 one-byte
//     tokens in GPT-2's byte-level spelling, in byte order, with no merges, so BPE gives every
//     byte its own id as the byte tokenizer does.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vkssm {

class GgufWriter;

struct GgufVocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> token_types;  // llama.cpp's: 1 normal, 3 control, 4 user-defined, 5 unused
  std::vector<std::string> merges;
  std::string pre = "gpt-2";
  int64_t bos = -1, eos = -1, unk = -1;  // -1: not written
};

// The vocabulary for `model_dir` whose config.json is `config`, padded to `vocab_size`; nullopt
// when the folder has no tokenizer (llama.cpp would then store its built-in GPT-NeoX one, which
// vkssm cannot know is right). Throws vkssm::Error naming the file for a tokenizer.json that is
// not byte-level BPE or holds more tokens than `vocab_size`.
std::optional<GgufVocab> gguf_vocab_for_model(const std::string& model_dir, const nlohmann::json& config,
                                              int64_t vocab_size);

class GgufFile;
// The tokenizer.ggml.* lists of an existing GGUF file (re-quantizing one); nullopt when it has no
// tokenizer. Throws vkssm::Error naming the file and key for a tokenizer other than "gpt2".
std::optional<GgufVocab> gguf_vocab_from_file(const GgufFile& file);

// tokenizer.ggml.model, .pre, .tokens, .token_type, .merges and the special ids.
void add_gguf_vocab(GgufWriter& writer, const GgufVocab& vocab);

// A model without a tokenizer, as convert_hf_to_gguf.py's _set_vocab_none writes it:
// tokenizer.ggml.model "none" plus `{arch}.vocab_size` (u32). llama.cpp requires the model key
// (a file without it fails with "key not found in model: tokenizer.ggml.model") and, for "none",
// takes its token count from {arch}.vocab_size (else 0, and token_embd.weight's shape check fails).
void add_gguf_no_vocab(GgufWriter& writer, const std::string& arch, int64_t vocab_size);

}  // namespace vkssm

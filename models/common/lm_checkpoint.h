#pragma once
// What every token model (Mamba-1, Falcon-Mamba, Mamba-2) has around its layers, and the
// checkpoint pieces they share: the token embedding under its HF or original name, the final norm,
// the optional untied lm_head, optional bias tensors that must agree with the config, writing a
// config.json.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/vkssm.hpp"
#include "host/checkpoint.h"
#include "host/dtype.h"
#include "host/quant_matrix.h"
#include "host/safetensors.h"
#include "host/weight_rng.h"

namespace vkssm {

// The embedding, final norm and head of a token model; each architecture's weights derive from it.
struct TokenModelWeights {
  std::vector<float> embeddings;    // [V, D]
  std::vector<float> norm_f;        // [D]
  std::vector<float> lm_head;       // [V, D]; empty when tied to the embeddings
  DType source_dtype = DType::F32;  // what the big matrices were stored as in the checkpoint
  std::string source;               // checkpoint path (or random_*(seed)), for messages
  // The blocks of the matrices a GGUF file stores in a block type the Vulkan backend keeps
  // (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K): under WeightStorage::Auto it uploads those very blocks. The
  // vectors above hold their dequantized values, which the cpu backend computes with.
  FileBlockTable file_blocks;

  const std::vector<float>& head() const { return lm_head.empty() ? embeddings : lm_head; }
  size_t end_parameters() const { return embeddings.size() + norm_f.size() + lm_head.size(); }
};

// A big matrix (one the Vulkan backend puts through WeightUploader::matrix) as fp32, its file
// blocks noted in w.file_blocks. Errors as Checkpoint::load_f32.
std::vector<float> load_token_model_matrix(const Checkpoint& ckpt, const std::string& name,
                                           const std::vector<int64_t>& shape, TokenModelWeights& w);

// Before the layers: the embedding [V, D] into w; returns the name it was found under.
std::string load_token_model_embeddings(const Checkpoint& ckpt, int64_t vocab, int64_t d_model, TokenModelWeights& w);
// After the layers: norm_f, the lm_head (`tie_embeddings` becomes whether it is tied), the source
// dtype and path.
void load_token_model_head(const Checkpoint& ckpt, const std::string& embedding_name, int64_t vocab, int64_t d_model,
                           bool& tie_embeddings, TokenModelWeights& w);
// Random norm_f and (untied) lm_head, drawn after the layers, at the embeddings' scale.
void random_token_model_head(WeightRng& rng, int64_t vocab, int64_t d_model, bool tie_embeddings,
                             TokenModelWeights& w);
// The embedding, norm_f and an untied lm_head under their HF names, for save_*_hf().
void append_token_model_tensors(std::vector<TensorToWrite>& tensors, const TokenModelWeights& w, int64_t vocab,
                                int64_t d_model, DType dtype);
// The embedding and an untied lm_head as the Vulkan backend stores them under `s` (store_as() in
// engine/weight_storage.h): the cpu backend computes with these values.
void store_token_model_ends_as(WeightStorage s, TokenModelWeights& w, int64_t d_model);
// Continues a weights fingerprint with norm_f and the first embedding row.
uint64_t fingerprint_token_model_ends(uint64_t h, const TokenModelWeights& w, int64_t d_model);

// `backbone.embeddings.weight` (HF) or `backbone.embedding.weight` (original mamba_ssm), [V, D].
// Errors name the tensor, the file and the config's vocab_size.
std::vector<float> load_token_embeddings(const Checkpoint& ckpt, int64_t vocab, int64_t d_model,
                                         const std::string& config_path, std::string* name_used = nullptr);

// lm_head.weight when it differs from the embedding (tied checkpoints sometimes store a copy);
// empty when tied. Throws when the config says untied and the tensor is missing.
std::vector<float> load_lm_head(const Checkpoint& ckpt, const std::string& embedding_name, int64_t vocab,
                                int64_t d_model, bool tie_embeddings, const std::string& config_path);

// A tensor the config switches on (`expected`) or off: present when off (or the reverse) is an
// error, since loading it or not would silently compute a different model.
std::vector<float> load_optional_tensor(const Checkpoint& ckpt, const std::string& name, bool expected,
                                        const std::vector<int64_t>& shape, const char* flag,
                                        const std::string& config_path);

// Writes `config` to dir/config.json (pretty-printed). Throws naming the file.
void write_config_json(const std::string& dir, const nlohmann::json& config);

}  // namespace vkssm

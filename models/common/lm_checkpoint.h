#pragma once
// Checkpoint pieces every token model (Mamba-1, Mamba-2) has in common: the token embedding under
// its HF or original name, the optional untied lm_head, optional bias tensors that must agree with
// the config, and writing a config.json.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/checkpoint.h"

namespace vkssm {

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

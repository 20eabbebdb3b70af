#include "models/common/lm_checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/weight_storage.h"
#include "host/error.h"
#include "host/state_file.h"

namespace vkssm {

std::vector<float> load_token_embeddings(const Checkpoint& ckpt, int64_t vocab, int64_t d_model,
                                         const std::string& config_path, std::string* name_used) {
  std::string name = "backbone.embeddings.weight";
  if (!ckpt.has(name)) name = "backbone.embedding.weight";
  const TensorInfo* emb = ckpt.find(name);
  if (!emb)
    throw Error("tensor backbone.embeddings.weight (or backbone.embedding.weight) not found in checkpoint " +
                ckpt.dir());
  if (emb->shape.size() == 2 && emb->shape[0] != vocab)
    throw Error("tensor " + name + " in " + emb->file + " has " + std::to_string(emb->shape[0]) + " rows but " +
                config_path + " gives vocab_size " + std::to_string(vocab) + " (after padding)");
  if (name_used) *name_used = name;
  return ckpt.load_f32(name, {vocab, d_model});
}

std::vector<float> load_lm_head(const Checkpoint& ckpt, const std::string& embedding_name, int64_t vocab,
                                int64_t d_model, bool tie_embeddings, const std::string& config_path) {
  const TensorInfo* emb = ckpt.find(embedding_name);
  if (const TensorInfo* head = ckpt.find("lm_head.weight")) {
    const bool same = emb && head->dtype == emb->dtype && head->shape == emb->shape &&
                      head->nbytes == emb->nbytes && std::memcmp(head->data, emb->data, emb->nbytes) == 0;
    if (!same) return ckpt.load_f32("lm_head.weight", {vocab, d_model});
  } else if (!tie_embeddings) {
    throw Error("missing tensor lm_head.weight in checkpoint " + ckpt.dir() + " (" + config_path +
                " says the embeddings are not tied)");
  }
  return {};
}

std::vector<float> load_optional_tensor(const Checkpoint& ckpt, const std::string& name, bool expected,
                                        const std::vector<int64_t>& shape, const char* flag,
                                        const std::string& config_path) {
  if (!expected && ckpt.has(name))
    throw Error("checkpoint " + ckpt.dir() + " has tensor " + name + " but " + config_path + " sets " + flag +
                " to false");
  return expected ? ckpt.load_f32(name, shape) : std::vector<float>();
}

namespace {

// Notes the blocks of tensor `name` for `m` (its dequantized values) when the file has them in a
// block type with a device layout.
void keep_file_blocks(const Checkpoint& ckpt, const std::string& name, const std::vector<float>& m,
                      TokenModelWeights& w) {
  const TensorInfo* t = ckpt.find(name);
  if (!t || !t->blocks || m.empty() || !device_block_format(QuantType(t->blocks_type))) return;
  w.file_blocks[m.data()] = {QuantType(t->blocks_type), std::vector<uint8_t>(t->blocks, t->blocks + t->blocks_bytes)};
}

}  // namespace

std::vector<float> load_token_model_matrix(const Checkpoint& ckpt, const std::string& name,
                                           const std::vector<int64_t>& shape, TokenModelWeights& w) {
  std::vector<float> m = ckpt.load_f32(name, shape);
  keep_file_blocks(ckpt, name, m, w);
  return m;
}

std::string load_token_model_embeddings(const Checkpoint& ckpt, int64_t vocab, int64_t d_model, TokenModelWeights& w) {
  std::string name;
  w.embeddings = load_token_embeddings(ckpt, vocab, d_model, ckpt.config_source(), &name);
  keep_file_blocks(ckpt, name, w.embeddings, w);
  return name;
}

void load_token_model_head(const Checkpoint& ckpt, const std::string& embedding_name, int64_t vocab, int64_t d_model,
                           bool& tie_embeddings, TokenModelWeights& w) {
  w.norm_f = ckpt.load_f32("backbone.norm_f.weight", {d_model});
  w.lm_head = load_lm_head(ckpt, embedding_name, vocab, d_model, tie_embeddings, ckpt.config_source());
  keep_file_blocks(ckpt, "lm_head.weight", w.lm_head, w);
  tie_embeddings = w.lm_head.empty();
  w.source_dtype = ckpt.main_dtype();
  w.source = ckpt.dir();
}

void random_token_model_head(WeightRng& rng, int64_t vocab, int64_t d_model, bool tie_embeddings,
                             TokenModelWeights& w) {
  w.norm_f = rng.fill(d_model, 0.9f, 1.1f);
  // Same scale as the embeddings, so tied and untied models give logits of similar size.
  if (!tie_embeddings) w.lm_head = rng.fill(vocab * d_model, -0.1f, 0.1f);
  w.source_dtype = DType::F32;
}

void append_token_model_tensors(std::vector<TensorToWrite>& tensors, const TokenModelWeights& w, int64_t vocab,
                                int64_t d_model, DType dtype) {
  tensors.push_back(make_tensor("backbone.embeddings.weight", {vocab, d_model}, w.embeddings, dtype));
  tensors.push_back(make_tensor("backbone.norm_f.weight", {d_model}, w.norm_f, dtype));
  if (!w.lm_head.empty()) tensors.push_back(make_tensor("lm_head.weight", {vocab, d_model}, w.lm_head, dtype));
}

uint64_t fingerprint_token_model_ends(uint64_t h, const TokenModelWeights& w, int64_t d_model) {
  h = fnv1a64(w.norm_f.data(), w.norm_f.size() * sizeof(float), h);
  const size_t row = std::min(w.embeddings.size(), size_t(std::max<int64_t>(d_model, 0)));
  return fnv1a64(w.embeddings.data(), row * sizeof(float), h);
}

void write_config_json(const std::string& dir, const nlohmann::json& config) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error("cannot create checkpoint folder " + dir + ": " + ec.message());
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  std::ofstream out(path);
  out << config.dump(2) << "\n";
  out.close();
  if (!out) throw Error("cannot write " + path);
}

void store_token_model_ends_as(WeightStorage s, TokenModelWeights& w, int64_t d_model) {
  store_as(s, w.embeddings, d_model);
  store_as(s, w.lm_head, d_model);  // empty when tied: nothing to do
}

}  // namespace vkssm

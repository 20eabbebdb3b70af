#include "models/mamba1/mamba1_gguf.h"

#include <cmath>

#include "host/gguf_writer.h"

namespace vkssm {

std::vector<GgufTensorSummary> write_mamba1_gguf(const Mamba1Weights& w, uint32_t target, const std::string& name,
                                                 const std::optional<GgufVocab>& vocab, const std::string& path) {
  const Mamba1Config& c = w.cfg;
  const int64_t D = c.d_model, E = c.d_inner, N = c.d_state, K = c.d_conv, R = c.dt_rank, V = c.vocab_size;
  // MambaModel.set_gguf_parameters, in its order.
  GgufModelExport g("mamba", target, name);
  g.add_ssm_shape(D, c.n_layer, K, E, N, R);
  g.writer().add_f32("mamba.attention.layer_norm_rms_epsilon", c.norm_eps);
  g.writer().add_bool("mamba.ssm.dt_b_c_rms", c.dt_b_c_rms);  // Falcon-Mamba
  g.add_file_type();
  if (vocab)
    add_gguf_vocab(g.writer(), *vocab);
  else
    add_gguf_no_vocab(g.writer(), "mamba", V);  // llama.cpp refuses a file without a tokenizer key

  g.add("token_embd.weight", {V, D}, w.embeddings);
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const Mamba1LayerWeights& L = w.layers[i];
    const std::string b = "blk." + std::to_string(i) + ".";
    g.add(b + "attn_norm.weight", {D}, L.norm);
    g.add(b + "ssm_in.weight", {2 * E, D}, L.in_proj);
    if (c.use_bias) g.add(b + "ssm_in.bias", {2 * E}, L.in_proj_b);
    g.add(b + "ssm_conv1d.weight", {E, K}, L.conv_w);
    if (c.use_conv_bias) g.add(b + "ssm_conv1d.bias", {E}, L.conv_b);
    g.add(b + "ssm_x.weight", {R + 2 * N, E}, L.x_proj);
    g.add(b + "ssm_dt.weight", {E, R}, L.dt_proj_w);
    g.add(b + "ssm_dt.bias", {E}, L.dt_proj_b);
    std::vector<float> A(L.A_log.size());  // the converter stores A itself
    for (size_t j = 0; j < A.size(); ++j) A[j] = -std::exp(L.A_log[j]);
    g.add(b + "ssm_a", {E, N}, A);
    g.add(b + "ssm_d", {E}, L.D);
    g.add(b + "ssm_out.weight", {D, E}, L.out_proj);
    if (c.use_bias) g.add(b + "ssm_out.bias", {D}, L.out_proj_b);
  }
  g.add("output_norm.weight", {D}, w.norm_f);
  if (!w.lm_head.empty()) g.add("output.weight", {V, D}, w.lm_head);  // tied: llama.cpp reuses token_embd
  g.writer().write(path);
  return g.summary();
}

}  // namespace vkssm

#include "models/mamba2/mamba2_gguf.h"

#include <cmath>

namespace vkssm {

std::vector<GgufTensorSummary> write_mamba2_gguf(const Mamba2Weights& w, uint32_t target, const std::string& name,
                                                 const std::optional<GgufVocab>& vocab, const std::string& path) {
  const Mamba2Config& c = w.cfg;
  const int64_t D = c.d_model, E = c.d_inner, H = c.n_heads, G = c.n_groups, K = c.d_conv, V = c.vocab_size;
  const int64_t CD = c.conv_dim();
  // Mamba2Model.set_gguf_parameters, in its order (time_step_rank holds the head count).
  GgufModelExport g("mamba2", target, name);
  g.add_ssm_shape(D, c.n_layer, K, E, c.d_state, H);
  g.writer().add_u32("mamba2.ssm.group_count", uint32_t(G));
  g.writer().add_f32("mamba2.attention.layer_norm_rms_epsilon", c.norm_eps);
  g.add_file_type();
  if (vocab)
    add_gguf_vocab(g.writer(), *vocab);
  else
    add_gguf_no_vocab(g.writer(), "mamba2", V);  // llama.cpp refuses a file without a tokenizer key

  g.add("token_embd.weight", {V, D}, w.embeddings);
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const Mamba2LayerWeights& L = w.layers[i];
    const std::string b = "blk." + std::to_string(i) + ".";
    g.add(b + "attn_norm.weight", {D}, L.norm);
    g.add(b + "ssm_in.weight", {c.in_proj_rows(), D}, L.in_proj);
    if (c.use_bias) g.add(b + "ssm_in.bias", {c.in_proj_rows()}, L.in_proj_b);
    g.add(b + "ssm_conv1d.weight", {CD, K}, L.conv_w);
    if (c.use_conv_bias) g.add(b + "ssm_conv1d.bias", {CD}, L.conv_b);
    g.add(b + "ssm_dt.bias", {H}, L.dt_bias);
    std::vector<float> A(L.A_log.size());  // the converter stores A itself
    for (size_t j = 0; j < A.size(); ++j) A[j] = -std::exp(L.A_log[j]);
    g.add(b + "ssm_a", {H, 1}, A);
    g.add(b + "ssm_d", {H, 1}, L.D);
    g.add(b + "ssm_norm.weight", {G, E / G}, L.gate_norm);
    g.add(b + "ssm_out.weight", {D, E}, L.out_proj);
    if (c.use_bias) g.add(b + "ssm_out.bias", {D}, L.out_proj_b);
  }
  g.add("output_norm.weight", {D}, w.norm_f);
  if (!w.lm_head.empty()) g.add("output.weight", {V, D}, w.lm_head);
  g.writer().write(path);
  return g.summary();
}

}  // namespace vkssm

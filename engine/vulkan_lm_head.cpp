#include "engine/vulkan_lm_head.h"

#include "engine/vk/dispatch_math.h"
#include "engine/vk/weight_uploader.h"

namespace vkssm {

TokenLmHead::TokenLmHead(WeightUploader& up, const TokenLmHeadWeights& w)
    : up_(up), vocab_(w.vocab_size), d_model_(w.d_model), eps_(w.norm_eps) {
  const uint64_t before = up.bytes();
  embeddings_ = up.matrix(*w.embeddings, vocab_, d_model_, "token embeddings");
  const uint64_t embedding_bytes = up.bytes() - before;
  const bool tied = w.lm_head->empty();
  if (!tied) lm_head_ = up.matrix(*w.lm_head, vocab_, d_model_, "lm_head");
  norm_f_ = up.floats(*w.norm_f, "norm_f", pad8(d_model_));
  if (!tied) up.discount(embedding_bytes);
}

uint64_t TokenLmHead::head_texels() const { return uint64_t(vocab_) * pad8(d_model_) / 4; }

void TokenLmHead::create(VulkanContext& ctx, const Tuning& tune, const GpuBuffer& step_input, const GpuBuffer& resid,
                         const GpuBuffer& outputs) {
  const uint32_t D = uint32_t(d_model_), V = uint32_t(vocab_), dpad = pad8(d_model_);
  const EmbedGatherSpec gather{.local = kEmbedLocal, .d_model = D, .row_stride = dpad, .r_stride = dpad};
  embed_pipe_ = std::make_unique<ComputePipeline>(
      ctx, up_.f16() ? ShaderId::embed_gather_f16 : ShaderId::embed_gather_f32, 3, gather.constants());
  embed_groups_ = ceil_div(D, kEmbedLocal);

  head_pipe_ = std::make_unique<MatvecPipeline>(
      ctx, up_, tune, MatvecParams{.rows = V, .cols = D, .y_stride = V, .norm = true, .eps = eps_});

  arena_ = std::make_unique<DescriptorArena>(ctx, 2, 2 * MatvecPipeline::kBindings);
  embed_set_ = arena_->make_set(*embed_pipe_, {{&step_input}, {&embeddings_}, {&resid}});
  const GpuBuffer& matrix = lm_head_.handle() ? lm_head_ : embeddings_;
  head_set_ = head_pipe_->bind(*arena_, step_input, {&resid, &matrix, &norm_f_, nullptr, &outputs});
}

}  // namespace vkssm

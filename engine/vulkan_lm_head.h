#pragma once
// The two ends of a token model's step on Vulkan, the same for Mamba-1 and Mamba-2: the embedding
// gather that starts the residual stream of each row (embed_gather.comp), and the head that ends
// it: final RMSNorm + lm_head into the step outputs (one matvec.comp with NORM). A tied model's
// head reads the embedding table.
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/vk/compute_pipeline.h"
#include "engine/vk/gpu_buffer.h"
#include "engine/vulkan_matvec.h"
#include "engine/vulkan_step_graph.h"

namespace vkssm {

class VulkanContext;
class WeightUploader;

// embed_gather.comp's specialization constants, in its constant_id order.
struct EmbedGatherSpec {
  uint32_t local = 64;      // 0: threads per workgroup, one column each
  uint32_t d_model = 1;     // 1: D
  uint32_t row_stride = 1;  // 2: ROW_STRIDE, padded columns of the embedding matrix
  uint32_t r_stride = 1;    // 3: R_STRIDE, floats between rows of the residual stream
  SpecConstants constants() const { return {local, d_model, row_stride, r_stride}; }
};

struct TokenLmHeadWeights {
  const std::vector<float>* embeddings = nullptr;  // [V][D]
  const std::vector<float>* lm_head = nullptr;     // [V][D], or empty: tied to the embeddings
  const std::vector<float>* norm_f = nullptr;      // [D]
  int64_t vocab_size = 0, d_model = 0;
  float norm_eps = 1e-5f;
};

class TokenLmHead {
 public:
  // Uploads the embedding table, lm_head and norm_f. A step reads one embedding row, not the whole
  // table, so its bytes leave the uploader's per-step count unless the table doubles as the head.
  TokenLmHead(WeightUploader& up, const TokenLmHeadWeights& w);

  // Pipelines and descriptor sets. `resid` is the residual stream [step rows][pad8(D)] that the
  // gather writes and the head reads; the head writes `outputs` [step rows][V].
  void create(VulkanContext& ctx, const Tuning& tune, const GpuBuffer& step_input, const GpuBuffer& resid,
              const GpuBuffer& outputs);

  Dispatch embed() const { return {embed_pipe_.get(), embed_set_, embed_groups_}; }  // first of the body
  Dispatch head() const { return head_pipe_->dispatch(head_set_); }                 // the whole head

  // Texels of the largest view the head's matvec reads (for fit_texel_views).
  uint64_t head_texels() const;

 private:
  static constexpr uint32_t kEmbedLocal = 64;
  WeightUploader& up_;
  int64_t vocab_, d_model_;
  float eps_;
  GpuBuffer embeddings_, lm_head_, norm_f_;
  std::unique_ptr<ComputePipeline> embed_pipe_;
  std::unique_ptr<MatvecPipeline> head_pipe_;
  std::unique_ptr<DescriptorArena> arena_;
  VkDescriptorSet embed_set_ = VK_NULL_HANDLE, head_set_ = VK_NULL_HANDLE;
  uint32_t embed_groups_ = 1;
};

}  // namespace vkssm

#pragma once
// The two ends of a token model's step on Vulkan, the same for Mamba-1 and Mamba-2: the embedding
// gather that starts the residual stream of each row (embed_gather.comp), and the head that ends
// it: final RMSNorm + lm_head into the step outputs (one matvec.comp with NORM). A tied model's
// head reads the embedding table.
//
// Both matrices grow with the vocabulary and may be larger than one binding may be
// (maxStorageBufferRange, e.g. 128 MiB: mamba-130m's 50280 x 768 fp32 table is 154 MB). They are
// then split into tiles of rows (tile_rows()): the gather runs one dispatch per tile, each writing
// the rows whose token falls in its tile, and the head one matvec per tile, each binding its slice
// of the matrix and writing its slice of the logits. All recorded at load, like everything else.
#include <cstdint>
#include <memory>
#include <string>
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
  uint32_t row0 = 0;        // 4: ROW0, first token id of the tile
  uint32_t tile_rows = 1;   // 5: TILE_ROWS, token ids in the tile
  bool banded = false;      // 6: BANDED, blocks in row bands
  SpecConstants constants() const { return {local, d_model, row_stride, r_stride, row0, tile_rows, banded}; }
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

  // The gather's dispatches (first of the body) and the head's, one per tile.
  void record_embed(StepRecorder& r) const;
  void record_head(StepRecorder& r) const;
  uint32_t embed_tiles() const { return uint32_t(embed_.size()); }
  uint32_t head_tiles() const { return uint32_t(head_.size()); }

 private:
  static constexpr uint32_t kEmbedLocal = 64;
  WeightUploader& up_;
  int64_t vocab_, d_model_;
  float eps_;
  GpuBuffer embeddings_, lm_head_, norm_f_;
  std::vector<std::unique_ptr<ComputePipeline>> embed_pipes_;  // one per tile (ROW0 is a constant)
  std::vector<std::unique_ptr<MatvecPipeline>> head_pipes_;    // full tiles, and a shorter last one
  std::unique_ptr<DescriptorArena> arena_;
  std::vector<Dispatch> embed_, head_;  // one per tile
};

// Rows per tile of a matrix [rows][row_bytes] that is bound in slices of rows: every slice within
// maxStorageBufferRange (and, for texel views of `texel_bytes` per texel, within
// maxTexelBufferElements), and every slice's offset, and that of its outputs (4 bytes per row),
// a multiple of the storage (and texel) offset alignments. `rows` when the matrix fits in one
// binding. `band`: rows stored in bands of that many (host/quant_matrix.h; a power of two), which
// a slice covers whole. Throws vkssm::Error naming `what` when not even one aligned group of rows fits.
uint32_t tile_rows(uint64_t rows, uint64_t row_bytes, const DeviceCaps& caps, uint64_t texel_bytes,
                   const std::string& what, uint64_t band = 1);

}  // namespace vkssm

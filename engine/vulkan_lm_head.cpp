#include "engine/vulkan_lm_head.h"

#include <algorithm>

#include "engine/vk/dispatch_math.h"
#include "engine/vk/vulkan_context.h"
#include "engine/vk/weight_uploader.h"
#include "host/error.h"

namespace vkssm {

uint32_t tile_rows(uint64_t rows, uint64_t row_bytes, const DeviceCaps& caps, uint64_t texel_bytes,
                   const std::string& what, uint64_t band) {
  uint64_t limit = caps.max_storage_buffer_range, align = std::max(caps.min_storage_buffer_offset_alignment, band);
  if (texel_bytes) {
    limit = std::min(limit, caps.max_texel_buffer_elements * texel_bytes);
    align = std::max(align, caps.min_texel_buffer_offset_alignment);
  }
  if ((rows + band - 1) / band * band * row_bytes <= limit) return uint32_t(rows);
  // Alignments are powers of two: a tile of `align` rows starts every slice (and its 4-byte
  // outputs) on a multiple of them.
  const uint64_t per_tile = limit / row_bytes / align * align;
  if (per_tile == 0)
    throw Error(what + ": rows of " + std::to_string(row_bytes) + " bytes cannot be split into slices of " +
                std::to_string(align) + " rows within maxStorageBufferRange (" +
                std::to_string(caps.max_storage_buffer_range) + ") of " + caps.name);
  return uint32_t(per_tile);
}

namespace {

ShaderId embed_gather_variant(MatrixFormat format) {
  switch (format) {
    case MatrixFormat::F32: return ShaderId::embed_gather_f32;
    case MatrixFormat::F16: return ShaderId::embed_gather_f16;
    case MatrixFormat::Q8_0: return ShaderId::embed_gather_q8_0;
    case MatrixFormat::Q4_0: return ShaderId::embed_gather_q4_0;
    case MatrixFormat::Q4_K: return ShaderId::embed_gather_q4_k;
    case MatrixFormat::Q5_K: return ShaderId::embed_gather_q5_k;
    case MatrixFormat::Q6_K: return ShaderId::embed_gather_q6_k;
  }
  return ShaderId::embed_gather_f32;
}

}  // namespace

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

void TokenLmHead::create(VulkanContext& ctx, const Tuning& tune, const GpuBuffer& step_input, const GpuBuffer& resid,
                         const GpuBuffer& outputs) {
  const uint32_t D = uint32_t(d_model_), V = uint32_t(vocab_), dpad = pad8(d_model_);
  // The embeddings and an untied lm_head may be in different formats (a GGUF file's own blocks).
  const GpuBuffer& matrix = lm_head_.handle() ? lm_head_ : embeddings_;
  const MatrixFormat format = up_.format_of(embeddings_), head_format = up_.format_of(matrix);
  const uint64_t row_bytes = up_.row_bytes(embeddings_, d_model_), head_row_bytes = up_.row_bytes(matrix, d_model_);
  const bool blocks = is_blocks(format);
  // Matrices in blocks come in row bands where the uploader bands them: a slice binds whole bands.
  const uint64_t band = up_.banded() && blocks ? kBandRows : 1;
  const uint64_t head_band = up_.banded() && is_blocks(head_format) ? kBandRows : 1;
  auto whole_bands = [](uint64_t n, uint64_t b) { return (n + b - 1) / b * b; };

  const uint32_t gather_rows = tile_rows(V, row_bytes, ctx.caps(), 0, embeddings_.what(), band);
  const uint32_t head_rows = tile_rows(V, head_row_bytes, ctx.caps(),
                                       tune.texel ? (head_format == MatrixFormat::F16 ? 8 : 16) : 0, matrix.what(),
                                       head_band);
  const uint32_t gather_tiles = ceil_div(V, gather_rows), head_tiles = ceil_div(V, head_rows);
  arena_ = std::make_unique<DescriptorArena>(ctx, gather_tiles + head_tiles,
                                             (gather_tiles + head_tiles) * MatvecPipeline::kBindings);

  for (uint32_t row0 = 0; row0 < V; row0 += gather_rows) {
    const uint32_t n = std::min(gather_rows, V - row0);
    // ROW_STRIDE: floats (or, for blocks, 32-bit words) per row.
    const uint32_t stride = blocks ? uint32_t(row_bytes / 4) : dpad;
    const EmbedGatherSpec gather{.local = kEmbedLocal, .d_model = D, .row_stride = stride, .r_stride = dpad,
                                 .row0 = row0, .tile_rows = n, .banded = band > 1};
    const ShaderId shader = embed_gather_variant(format);
    auto& pipe = embed_pipes_.emplace_back(std::make_unique<ComputePipeline>(ctx, shader, 3, gather.constants()));
    const uint64_t bytes = whole_bands(n, band) * row_bytes;
    const VkDescriptorSet set = arena_->make_set(*pipe, {{&step_input}, {&embeddings_, row0 * row_bytes, bytes}, {&resid}});
    embed_.push_back({pipe.get(), set, ceil_div(D, kEmbedLocal)});
  }

  for (uint32_t row0 = 0; row0 < V; row0 += head_rows) {
    const uint32_t n = std::min(head_rows, V - row0);
    if (head_pipes_.empty() || n != head_rows)  // full tiles share one pipeline; a shorter last one has its own
      head_pipes_.push_back(std::make_unique<MatvecPipeline>(
          ctx, up_, tune, MatvecParams{.rows = n, .cols = D, .y_stride = V, .norm = true, .eps = eps_}));
    const MatvecPipeline& pipe = *head_pipes_.back();
    const VkDescriptorSet set = pipe.bind(*arena_, step_input,
                                          {.x = &resid, .w = &matrix, .norm_w = &norm_f_, .y = &outputs,
                                           .w_offset = row0 * head_row_bytes,
                                           .w_bytes = whole_bands(n, head_band) * head_row_bytes,
                                           .y_offset = uint64_t(row0) * 4});
    head_.push_back(pipe.dispatch(set));
  }
}

void TokenLmHead::record_embed(StepRecorder& r) const {
  for (const Dispatch& d : embed_) r.dispatch(d);
}

void TokenLmHead::record_head(StepRecorder& r) const {
  for (const Dispatch& d : head_) r.dispatch(d);
}

}  // namespace vkssm

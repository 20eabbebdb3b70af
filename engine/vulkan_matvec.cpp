#include "engine/vulkan_matvec.h"

#include "engine/vk/dispatch_math.h"
#include "engine/vk/vulkan_context.h"
#include "engine/vk/weight_uploader.h"

namespace vkssm {
namespace {

// Subgroup adds where the device has subgroup arithmetic, else shared-memory reductions.
ShaderId matvec_variant(bool texel, MatrixFormat format, bool subgroups) {
  if (format == MatrixFormat::Q8_0) {
    if (texel) return subgroups ? ShaderId::matvec_q8_0_texel : ShaderId::matvec_q8_0_texel_shared;
    return subgroups ? ShaderId::matvec_q8_0 : ShaderId::matvec_q8_0_shared;
  }
  if (format == MatrixFormat::Q4_0) {
    if (texel) return subgroups ? ShaderId::matvec_q4_0_texel : ShaderId::matvec_q4_0_texel_shared;
    return subgroups ? ShaderId::matvec_q4_0 : ShaderId::matvec_q4_0_shared;
  }
  if (texel) return subgroups ? ShaderId::matvec_texel : ShaderId::matvec_texel_shared;  // the view converts fp16
  if (format == MatrixFormat::F16) return subgroups ? ShaderId::matvec_f16 : ShaderId::matvec_f16_shared;
  return subgroups ? ShaderId::matvec_f32 : ShaderId::matvec_f32_shared;
}

constexpr uint32_t kTexelBindings = 0b1110;  // x, W, norm_w

MatvecSpec spec_of(const Tuning& tune, const MatvecParams& p) {
  return {.local = tune.local, .rows = p.rows, .cols = p.cols, .cols4 = pad8(p.cols) / 4, .y_stride = p.y_stride,
          .row_groups = tune.row_groups, .norm = p.norm, .accumulate = p.accumulate, .bias = p.bias, .eps = p.eps};
}

}  // namespace

MatvecPipeline::MatvecPipeline(VulkanContext& ctx, WeightUploader& up, const Tuning& tune, const MatvecParams& p)
    : up_(up),
      texel_(tune.texel),
      blocks_(up.format_of(p.cols) == MatrixFormat::Q8_0 || up.format_of(p.cols) == MatrixFormat::Q4_0),
      pipeline_(ctx, matvec_variant(tune.texel, up.format_of(p.cols), ctx.caps().subgroup_arithmetic), kBindings,
                spec_of(tune, p).constants(),
                tune.texel ? kTexelBindings : 0),
      groups_(ceil_div(p.rows, 4 * tune.row_groups)) {}

VkDescriptorSet MatvecPipeline::bind(DescriptorArena& arena, const GpuBuffer& step_input,
                                     const MatvecBuffers& b) const {
  // An absent input (nullptr, or a buffer never created, e.g. a bias the checkpoint lacks).
  auto or_placeholder = [&](const GpuBuffer* buf) -> const GpuBuffer& {
    return buf && buf->handle() ? *buf : up_.placeholder();
  };
  auto in = [&](const GpuBuffer* buf, bool weights, uint64_t offset = 0, uint64_t bytes = 0) {
    const GpuBuffer& g = or_placeholder(buf);
    return BufferBinding{&g, offset, bytes,
                         texel_ ? up_.view(g, weights, offset, bytes, weights && blocks_) : VkBufferView(VK_NULL_HANDLE)};
  };
  return arena.make_set(pipeline_, {{&step_input}, in(b.x, false), in(b.w, true, b.w_offset, b.w_bytes),
                                    in(b.norm_w, false), {&or_placeholder(b.bias)}, {b.y, b.y_offset}});
}

}  // namespace vkssm

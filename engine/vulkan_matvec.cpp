#include "engine/vulkan_matvec.h"

#include "engine/vk/dispatch_math.h"
#include "engine/vk/weight_uploader.h"

namespace vkssm {
namespace {

ShaderId matvec_variant(bool texel, bool f16) {
  if (texel) return ShaderId::matvec_texel;  // the view's format converts fp16
  return f16 ? ShaderId::matvec_f16 : ShaderId::matvec_f32;
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
      pipeline_(ctx, matvec_variant(tune.texel, up.f16()), kBindings, spec_of(tune, p).constants(),
                tune.texel ? kTexelBindings : 0),
      groups_(ceil_div(p.rows, 4 * tune.row_groups)) {}

VkDescriptorSet MatvecPipeline::bind(DescriptorArena& arena, const GpuBuffer& step_input,
                                     const MatvecBuffers& b) const {
  // An absent input (nullptr, or a buffer never created, e.g. a bias the checkpoint lacks).
  auto or_placeholder = [&](const GpuBuffer* buf) -> const GpuBuffer& {
    return buf && buf->handle() ? *buf : up_.placeholder();
  };
  auto in = [&](const GpuBuffer* buf, bool weights) {
    const GpuBuffer& g = or_placeholder(buf);
    return BufferBinding{&g, 0, 0, texel_ ? up_.view(g, weights) : VkBufferView(VK_NULL_HANDLE)};
  };
  return arena.make_set(pipeline_, {{&step_input}, in(b.x, false), in(b.w, true), in(b.norm_w, false),
                                    {&or_placeholder(b.bias)}, {b.y}});
}

}  // namespace vkssm

#include "engine/vulkan_matvec.h"

#include "engine/vk/dispatch_math.h"
#include "engine/vk/vulkan_context.h"
#include "engine/vk/weight_uploader.h"
#include "host/error.h"

namespace vkssm {
namespace {

// Subgroup adds where the device has subgroup arithmetic, else shared-memory reductions.
// The four variants of each block format: storage or texel buffers, subgroup or shared reductions.
struct BlockVariants {
  MatrixFormat format;
  ShaderId storage, storage_shared, texel, texel_shared;
};
constexpr BlockVariants kBlockVariants[] = {
    {MatrixFormat::Q8_0, ShaderId::matvec_q8_0, ShaderId::matvec_q8_0_shared, ShaderId::matvec_q8_0_texel,
     ShaderId::matvec_q8_0_texel_shared},
    {MatrixFormat::Q4_0, ShaderId::matvec_q4_0, ShaderId::matvec_q4_0_shared, ShaderId::matvec_q4_0_texel,
     ShaderId::matvec_q4_0_texel_shared},
    {MatrixFormat::Q4_K, ShaderId::matvec_q4_k, ShaderId::matvec_q4_k_shared, ShaderId::matvec_q4_k_texel,
     ShaderId::matvec_q4_k_texel_shared},
    {MatrixFormat::Q5_K, ShaderId::matvec_q5_k, ShaderId::matvec_q5_k_shared, ShaderId::matvec_q5_k_texel,
     ShaderId::matvec_q5_k_texel_shared},
    {MatrixFormat::Q6_K, ShaderId::matvec_q6_k, ShaderId::matvec_q6_k_shared, ShaderId::matvec_q6_k_texel,
     ShaderId::matvec_q6_k_texel_shared},
};

ShaderId matvec_variant(bool texel, MatrixFormat format, bool subgroups) {
  for (const BlockVariants& v : kBlockVariants)
    if (v.format == format)
      return texel ? (subgroups ? v.texel : v.texel_shared) : (subgroups ? v.storage : v.storage_shared);
  if (texel) return subgroups ? ShaderId::matvec_texel : ShaderId::matvec_texel_shared;  // the view converts fp16
  if (format == MatrixFormat::F16) return subgroups ? ShaderId::matvec_f16 : ShaderId::matvec_f16_shared;
  return subgroups ? ShaderId::matvec_f32 : ShaderId::matvec_f32_shared;
}

constexpr uint32_t kTexelBindings = 0b1110;  // x, W, norm_w

MatvecSpec spec_of(const Tuning& tune, const MatvecParams& p, MatvecSpec::RowPasses row_passes) {
  // The kernel reads pad8(cols) values of each row of x (W's padding columns are zero).
  if (p.x_stride % 4 != 0 || (p.x_stride != 0 && p.x_stride < pad8(p.cols)))
    throw Error("matvec: x row stride " + std::to_string(p.x_stride) + " for " + std::to_string(p.cols) +
                " columns is not a multiple of 4 of at least " + std::to_string(pad8(p.cols)));
  // Rows of at most 16 vec4s on CPU drivers' workgroups of one SIMD vector: a thread per row beats
  // 8 threads splitting so few vec4s and summing across lanes (see pass_rows in matvec.comp).
  const bool lane_rows = tune.texel && tune.local > 1 && pad8(p.cols) / 4 <= 16;
  return {.local = tune.local, .rows = p.rows, .cols = p.cols, .cols4 = pad8(p.cols) / 4, .y_stride = p.y_stride,
          .row_groups = tune.row_groups, .norm = p.norm, .accumulate = p.accumulate, .bias = p.bias, .eps = p.eps,
          .x_stride4 = (p.x_stride ? p.x_stride : pad8(p.cols)) / 4, .lane_rows = lane_rows,
          .row_passes = row_passes};
}

// matvec_stream_lanes.comp's specialization constants, in its constant_id order.
SpecConstants stream_lanes_spec(const MatvecParams& p) {
  return {MatvecPipeline::kStreamLanes, p.rows, pad8(p.cols) / 4, (p.x_stride ? p.x_stride : pad8(p.cols)) / 4,
          p.y_stride, p.bias, MatvecPipeline::kStreamLaneRows, MatvecPipeline::kStreamsPerLane};
}

}  // namespace

MatvecPipeline::MatvecPipeline(VulkanContext& ctx, WeightUploader& up, const Tuning& tune, const MatvecParams& p)
    : ctx_(ctx),
      up_(up),
      texel_(tune.texel),
      subgroups_(ctx.caps().subgroup_arithmetic),
      // CPU drivers: the several-row passes here, the one-row twin's below (pipeline_for).
      spec_(spec_of(tune, p, ctx.caps().is_cpu() ? MatvecSpec::kSeveralRows : MatvecSpec::kAllRows).constants()),
      one_row_spec_(spec_of(tune, p, MatvecSpec::kOneRow).constants()),
      groups_(ceil_div(p.rows, 4 * tune.row_groups)),
      stream_lanes_(p.stream_lanes && ctx.caps().is_cpu() && tune.texel),
      lanes_spec_(stream_lanes_spec(p)),
      lanes_groups_(ceil_div(p.rows, kStreamLaneRows)) {
  if (p.stream_lanes && (p.norm || p.accumulate))
    throw Error("internal: a stream-lanes matvec has no norm or accumulate");
}

const MatvecPipeline::Compiled& MatvecPipeline::pipeline_for(MatrixFormat format) const {
  for (const Compiled& c : pipelines_)
    if (c.format == format) return c;
  Compiled& c = pipelines_.emplace_back(Compiled{format, nullptr, nullptr});
  if (uses_stream_lanes(format)) {
    c.rows = std::make_unique<ComputePipeline>(ctx_, ShaderId::matvec_stream_lanes, kBindings, lanes_spec_,
                                                   kTexelBindings);
  } else {
    // Every variant has the same bindings, so sets are interchangeable between them.
    const ShaderId id = matvec_variant(texel_, format, subgroups_);
    c.rows = std::make_unique<ComputePipeline>(ctx_, id, kBindings, spec_, texel_ ? kTexelBindings : 0);
    // GPUs branch around the passes a step does not take; only CPU drivers need the twin.
    if (ctx_.caps().is_cpu())
      c.one_row = std::make_unique<ComputePipeline>(ctx_, id, kBindings, one_row_spec_, texel_ ? kTexelBindings : 0);
  }
  return c;
}

Dispatch MatvecPipeline::dispatch(VkDescriptorSet set) const {
  for (const auto& [s, d] : sets_)
    if (s == set) return d;
  throw Error("internal: a matvec dispatch of a set its bind() did not make");
}

VkDescriptorSet MatvecPipeline::bind(DescriptorArena& arena, const GpuBuffer& step_input,
                                     const MatvecBuffers& b) const {
  // An absent input (nullptr, or a buffer never created, e.g. a bias the checkpoint lacks).
  auto or_placeholder = [&](const GpuBuffer* buf) -> const GpuBuffer& {
    return buf && buf->handle() ? *buf : up_.placeholder();
  };
  const MatrixFormat format = up_.format_of(or_placeholder(b.w));
  const bool lanes = uses_stream_lanes(format);
  auto in = [&](const GpuBuffer* buf, bool weights, uint64_t offset = 0, uint64_t bytes = 0) {
    const GpuBuffer& g = or_placeholder(buf);
    return BufferBinding{&g, offset, bytes,
                         texel_ ? up_.view(g, weights, offset, bytes, weights && is_blocks(format))
                                : VkBufferView(VK_NULL_HANDLE)};
  };
  const Compiled& pipe = pipeline_for(format);
  const VkDescriptorSet set =
      arena.make_set(*pipe.rows, {{&step_input}, in(b.x, false), in(b.w, true, b.w_offset, b.w_bytes),
                                      in(b.norm_w, false), {&or_placeholder(b.bias)}, {b.y, b.y_offset}});
  sets_.emplace_back(set, Dispatch{pipe.rows.get(), set, lanes ? lanes_groups_ : groups_, pipe.one_row.get()});
  return set;
}

}  // namespace vkssm

#include "engine/vulkan_residual_block.h"

namespace vkssm {

ResidualBlock::ResidualBlock(VulkanContext& ctx, WeightUploader& up, const Tuning& tune, const ResidualBlockShape& s)
    : in_(ctx, up, tune,
          {.rows = uint32_t(s.in_rows), .cols = uint32_t(s.d_model), .y_stride = s.in_stride, .norm = true,
           .bias = s.bias, .eps = s.norm_eps}),
      out_(ctx, up, tune,
           {.rows = uint32_t(s.d_model), .cols = uint32_t(s.d_inner), .y_stride = pad8(s.d_model),
            .accumulate = true, .bias = s.bias, .eps = s.norm_eps}) {}

ResidualBlockLayer ResidualBlock::upload(WeightUploader& up, const ResidualBlockShape& s,
                                         const std::vector<float>& norm, const std::vector<float>& in_proj,
                                         const std::vector<float>& in_proj_b, const std::vector<float>& out_proj,
                                         const std::vector<float>& out_proj_b, const std::string& name) {
  ResidualBlockLayer L;
  L.norm = up.floats(norm, name + "norm", pad8(s.d_model));
  L.in_proj = up.matrix(in_proj, s.in_rows, s.d_model, name + "in_proj");
  if (!in_proj_b.empty()) L.in_proj_b = up.floats(in_proj_b, name + "in_proj bias");
  L.out_proj = up.matrix(out_proj, s.d_model, s.d_inner, name + "out_proj");
  if (!out_proj_b.empty()) L.out_proj_b = up.floats(out_proj_b, name + "out_proj bias");
  return L;
}

void ResidualBlock::bind(DescriptorArena& arena, const GpuBuffer& step_input, const GpuBuffer& resid,
                         const GpuBuffer& mixer_in, const GpuBuffer& mixer_out, ResidualBlockLayer& layer) const {
  layer.in_set = in_.bind(arena, step_input, {&resid, &layer.in_proj, &layer.norm, &layer.in_proj_b, &mixer_in});
  layer.out_set = out_.bind(arena, step_input, {&mixer_out, &layer.out_proj, nullptr, &layer.out_proj_b, &resid});
}

}  // namespace vkssm

#pragma once
// The two projections around a token model's mixer, the same in Mamba-1 and Mamba-2:
//   in:  RMSNorm(r; norm) -> in_proj (+ bias)     from the residual stream r into the mixer's input
//   out: r += out_proj(y) (+ bias)                 from the mixer's output back into r
// Each is one matvec.comp dispatch per layer (engine/vulkan_matvec.h); this holds the two
// pipelines and each layer's weights and descriptor sets.
#include <cstdint>
#include <string>
#include <vector>

#include <volk.h>

#include "engine/vk/gpu_buffer.h"
#include "engine/vk/weight_uploader.h"
#include "engine/vulkan_matvec.h"

namespace vkssm {

struct ResidualBlockShape {
  int64_t d_model = 0;       // D: the residual stream (rows padded to pad8(D))
  int64_t in_rows = 0;       // in_proj's output features
  uint32_t in_stride = 0;    // floats between rows of in_proj's output buffer
  int64_t d_inner = 0;       // E: out_proj's input features (rows of y padded to pad8(E))
  bool bias = false;         // in_proj / out_proj have biases
  float norm_eps = 1e-5f;
};

// One layer's part: its weights on the device and the two descriptor sets.
struct ResidualBlockLayer {
  GpuBuffer norm, in_proj, in_proj_b, out_proj, out_proj_b;
  VkDescriptorSet in_set = VK_NULL_HANDLE, out_set = VK_NULL_HANDLE;
};

class ResidualBlock {
 public:
  ResidualBlock(VulkanContext& ctx, WeightUploader& up, const Tuning& tune, const ResidualBlockShape& shape);

  // Uploads one layer's norm, in_proj (+ bias) and out_proj (+ bias); `LayerWeights` is the
  // architecture's layer struct (fields norm, in_proj, in_proj_b, out_proj, out_proj_b). `name`
  // prefixes the buffers' names ("layer 3 ").
  template <typename LayerWeights>
  static ResidualBlockLayer upload(WeightUploader& up, const ResidualBlockShape& s, const LayerWeights& lw,
                                   const std::string& name) {
    return upload(up, s, lw.norm, lw.in_proj, lw.in_proj_b, lw.out_proj, lw.out_proj_b, name);
  }
  static ResidualBlockLayer upload(WeightUploader& up, const ResidualBlockShape& s, const std::vector<float>& norm,
                                   const std::vector<float>& in_proj, const std::vector<float>& in_proj_b,
                                   const std::vector<float>& out_proj, const std::vector<float>& out_proj_b,
                                   const std::string& name);

  // Writes the layer's descriptor sets: in reads `resid` and writes `mixer_in`; out reads `mixer_out`
  // and adds to `resid`. Takes 2 sets of MatvecPipeline::kBindings buffers from `arena`.
  void bind(DescriptorArena& arena, const GpuBuffer& step_input, const GpuBuffer& resid, const GpuBuffer& mixer_in,
            const GpuBuffer& mixer_out, ResidualBlockLayer& layer) const;

  Dispatch in(const ResidualBlockLayer& layer) const { return in_.dispatch(layer.in_set); }
  Dispatch out(const ResidualBlockLayer& layer) const { return out_.dispatch(layer.out_set); }

 private:
  MatvecPipeline in_, out_;
};

}  // namespace vkssm

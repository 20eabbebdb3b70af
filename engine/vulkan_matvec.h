#pragma once
// The C++ side of shaders/matvec.comp, the kernel of every projection that reads a big matrix:
// y[row] (+)= W @ (x[row] * RMSNorm scale * norm_w) + bias, for every row of the step.
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include <volk.h>

#include "engine/vk/compute_pipeline.h"
#include "engine/vk/device_tuning.h"
#include "engine/vk/weight_uploader.h"
#include "engine/vulkan_step_graph.h"

namespace vkssm {

class GpuBuffer;
class VulkanContext;
class WeightUploader;

// matvec.comp's specialization constants. constants() lists them in the shader's constant_id
// order; it is the only place that order is written in C++.
struct MatvecSpec {
  uint32_t local = 1;       // 0: threads per workgroup (local_size_x)
  uint32_t rows = 1;        // 1: ROWS, output rows
  uint32_t cols = 4;        // 2: COLS, real input columns (for the RMS mean)
  uint32_t cols4 = 1;       // 3: COLS4, padded columns / 4 (row stride of W and x, in vec4s)
  uint32_t y_stride = 1;    // 4: Y_STRIDE, floats between rows of y
  uint32_t row_groups = 1;  // 5: ROW_GROUPS, rows per workgroup = 4 * ROW_GROUPS
  bool norm = false;        // 6: NORM, RMSNorm(x; norm_w) first
  bool accumulate = false;  // 7: ACCUM, y += result
  bool bias = false;        // 8: HAS_BIAS
  float eps = 1e-5f;        // 9: EPS of the RMSNorm
  uint32_t x_stride4 = 1;   // 10: X_STRIDE4, vec4s between rows of x
  bool lane_rows = false;   // 11: LANE_ROWS, each thread takes whole rows (fp32/fp16 variants)
  // 12: ROW_PASSES, the passes the variant holds: all (GPUs), or on CPU drivers those for steps
  // of one row (Dispatch::one_row) or of several (Dispatch::pipeline).
  enum RowPasses : uint32_t { kAllRows = 0, kOneRow = 1, kSeveralRows = 2 };
  uint32_t row_passes = kAllRows;
  SpecConstants constants() const {
    return {local, rows, cols, cols4, y_stride, row_groups, norm, accumulate, bias, eps, x_stride4, lane_rows,
            row_passes};
  }
};

// One projection, as an architecture describes it.
struct MatvecParams {
  uint32_t rows = 0;        // output features (rows of W)
  uint32_t cols = 0;        // input features; W's and x's rows are padded to pad8(cols) floats
  uint32_t y_stride = 0;    // floats between rows of y
  uint32_t x_stride = 0;    // floats between rows of x, a multiple of 4; 0: pad8(cols)
  bool norm = false;        // RMSNorm the input first (norm_w, eps)
  bool accumulate = false;  // add to y (the residual stream) instead of overwriting it
  bool bias = false;        // add bias[row]
  float eps = 1e-5f;
  // For frame models, whose steps carry many streams through small matrices: fp32 matrices on CPU
  // drivers that read through texel buffers get a stream per invocation (matvec_stream_lanes.comp).
  // No norm or accumulate then.
  bool stream_lanes = false;
};

// What one dispatch of a matvec reads and writes.
struct MatvecBuffers {
  const GpuBuffer* x = nullptr;       // [step rows][x_stride or pad8(cols)] fp32 activations
  const GpuBuffer* w = nullptr;       // the matrix, from WeightUploader::matrix (rows of `cols`)
  const GpuBuffer* norm_w = nullptr;  // [pad8(cols)] fp32, when norm (else unused)
  const GpuBuffer* bias = nullptr;    // [rows] fp32, when bias (else unused)
  const GpuBuffer* y = nullptr;       // [step rows][y_stride]
  // A slice of W and y (a tile of a matrix too large for one binding): W's bytes from w_offset
  // (w_bytes, 0 = to the end), y from y_offset.
  uint64_t w_offset = 0, w_bytes = 0, y_offset = 0;
};

class MatvecPipeline {
 public:
  // The variant follows the work split (texel buffers or storage buffers) and how the uploader
  // stored the matrix bound (fp32, fp16 or blocks; a GGUF file's matrices can each differ): bind()
  // compiles each variant the first time a matrix needs it. On CPU drivers, where llvmpipe runs the
  // passes a step does not take too, masked, unless they are compiled out, each variant is two
  // pipelines: one for steps of several rows and its one-row twin (MatvecSpec::row_passes) for the
  // model's one-row command buffers.
  MatvecPipeline(VulkanContext& ctx, WeightUploader& up, const Tuning& tune, const MatvecParams& p);

  // A descriptor set for one use of this projection (e.g. one layer's weights). Where the work
  // split reads through texel buffers, x, W and norm_w are bound as texel views; unused inputs get
  // the uploader's placeholder.
  VkDescriptorSet bind(DescriptorArena& arena, const GpuBuffer& step_input, const MatvecBuffers& b) const;
  // The dispatch of a set bind() made, with the variant for its matrix.
  Dispatch dispatch(VkDescriptorSet set) const;
  uint32_t groups() const { return groups_; }

  static constexpr uint32_t kBindings = 6;  // step input, x, W, norm_w, bias, y
  // matvec_stream_lanes.comp: llvmpipe's SIMD width (8 fp32 lanes on AVX2), rows per workgroup,
  // streams per lane (each fetch of W serves 8 * kStreamsPerLane streams).
  static constexpr uint32_t kStreamLanes = 8;
  static constexpr uint32_t kStreamLaneRows = 8;
  static constexpr uint32_t kStreamsPerLane = 2;

 private:
  struct Compiled {
    MatrixFormat format;
    // GPUs: every pass. CPU drivers: the passes for several rows, and one_row the twin for one
    // (only for matvec.comp; nullptr elsewhere).
    std::unique_ptr<ComputePipeline> rows, one_row;
  };
  const Compiled& pipeline_for(MatrixFormat format) const;
  bool uses_stream_lanes(MatrixFormat format) const { return stream_lanes_ && format == MatrixFormat::F32; }

  VulkanContext& ctx_;
  WeightUploader& up_;
  bool texel_;
  bool subgroups_;
  SpecConstants spec_;  // GPUs: all passes; CPU drivers: the passes for several rows
  SpecConstants one_row_spec_;
  uint32_t groups_;
  bool stream_lanes_;
  SpecConstants lanes_spec_;  // matvec_stream_lanes.comp's, when stream_lanes_
  uint32_t lanes_groups_;
  // Load-time caches, filled by bind(): a variant per matrix format met, and which variant each set
  // was made for.
  mutable std::vector<Compiled> pipelines_;
  mutable std::vector<std::pair<VkDescriptorSet, Dispatch>> sets_;
};

}  // namespace vkssm

// Mamba-2 on Vulkan: the step graph on top of VulkanStepModel (engine/vulkan_step_graph.h).
//
//   embed_gather.comp                   token embeddings                  -> residual r [row][D]
//   per layer:
//     matvec.comp (NORM)                RMSNorm + in_proj                 -> zx [row][z | xBC | dt]
//     mamba2_conv.comp                  conv over x|B|C + SiLU            -> xbc [row][x | B | C]
//     mamba2_scan.comp                  dt, state update, D, SiLU(z) gate -> y [row][E]
//     mamba2_gated_norm.comp            RMSNorm per group (gate applied)  -> y (in place)
//     matvec.comp (ACCUM)               out_proj + residual               -> r
//   head: matvec.comp (NORM)            norm_f + lm_head                  -> logits [row][V]
// The embedding gather and the head are the shared TokenLmHead (engine/vulkan_lm_head.h), the two
// matvecs around the mixer the shared ResidualBlock (engine/vulkan_residual_block.h).
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/vk/compute_pipeline.h"
#include "engine/vk/dispatch_math.h"
#include "engine/vk/weight_uploader.h"
#include "engine/vulkan_lm_head.h"
#include "engine/vulkan_residual_block.h"
#include "engine/vulkan_sharded_model.h"
#include "engine/vulkan_step_model.h"
#include "engine/vulkan_weights_plan.h"
#include "models/mamba2/mamba2_model.h"

namespace vkssm {
namespace {

// mamba2_conv.comp's specialization constants, in its constant_id order.
struct ConvSpec {
  uint32_t local = 64;       // 0: threads per workgroup, one channel each
  uint32_t CD = 1;           // 1: conv channels, E + 2 G N
  uint32_t K = 4;            // 2: d_conv
  uint32_t capacity = 1;     // 3: CAPACITY, the step input's row stride
  uint32_t in_stride = 1;    // 4: IN_STRIDE, floats between rows of in_proj's output
  uint32_t in_offset = 0;    // 5: IN_OFFSET, where xBC starts in a row (after z)
  uint32_t out_stride = 1;   // 6: OUT_STRIDE, floats between rows of xbc
  SpecConstants constants() const { return {local, CD, K, capacity, in_stride, in_offset, out_stride}; }
};

// mamba2_scan.comp's specialization constants, in its constant_id order.
struct ScanSpec {
  uint32_t local = 64;       // 0: threads per workgroup, one channel (h, p) each
  uint32_t E = 1;            // 1: H * P
  uint32_t N = 16;           // 2: d_state
  uint32_t P = 1;            // 3: head_dim
  uint32_t H = 1;            // 4: heads
  uint32_t G = 1;            // 5: groups
  uint32_t capacity = 1;     // 6: CAPACITY
  uint32_t zx_stride = 1;    // 7: ZX_STRIDE, in_proj output row: z | xBC | dt
  uint32_t dt_offset = 0;    // 8: DT_OFFSET, where dt starts in that row
  uint32_t xbc_stride = 1;   // 9: XBC_STRIDE
  uint32_t y_stride = 1;     // 10: Y_STRIDE
  float dt_min = 0.0f;       // 11: DT_MIN
  float dt_max = 1e30f;      // 12: DT_MAX
  SpecConstants constants() const {
    return {local, E, N, P, H, G, capacity, zx_stride, dt_offset, xbc_stride, y_stride, dt_min, dt_max};
  }
};

// mamba2_gated_norm.comp's specialization constants, in its constant_id order.
struct GatedNormSpec {
  uint32_t local = 64;   // 0: threads per workgroup (a power of two: tree reduction)
  uint32_t E = 1;        // 1: d_inner
  uint32_t G = 1;        // 2: groups, each normalised on its own
  uint32_t stride = 1;   // 3: STRIDE, floats between rows of y
  float eps = 1e-5f;     // 4: EPS
  SpecConstants constants() const { return {local, E, G, stride, eps}; }
};

// Bytes one stream costs: its recurrent state, its activations and its logits (device + 2 host).
uint64_t bytes_per_stream(const Mamba2Config& c) {
  return 4 * uint64_t(c.n_layer * (c.conv_dim() * c.d_conv + c.d_inner * c.d_state) + 2 * c.d_model +
                      c.in_proj_rows() + c.conv_dim() + c.d_inner + 64 + 3 * c.vocab_size);
}

WeightsPlanRequest weights_request(const Mamba2Weights& w, const LoadOptions& options) {
  WeightsPlanRequest r =
      plan_request(options, w.source_dtype, w.source, w.parameter_count(), bytes_per_stream(w.cfg));
  const Mamba2Config& c = w.cfg;
  r.slot_bytes = 4 * uint64_t(std::max(c.conv_dim() * c.d_conv, c.d_inner * c.d_state));  // a layer's state
  r.row_bytes = 4 * uint64_t(std::max<int64_t>({c.vocab_size, pad8(c.in_proj_rows()), pad8(c.conv_dim())}));
  r.slot_what = c.d_inner * c.d_state >= c.conv_dim() * c.d_conv ? "layer ssm state" : "layer conv state";
  r.row_what = c.vocab_size >= std::max<int64_t>(pad8(c.in_proj_rows()), pad8(c.conv_dim())) ? "step outputs (logits)"
                                                                                             : "in_proj output";
  r.matrices = {{"embeddings", &w.embeddings}, {"lm_head", &w.lm_head}};
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    r.matrices.insert(r.matrices.end(), {{p + "in_proj", &w.layers[i].in_proj}, {p + "out_proj", &w.layers[i].out_proj}});
  }
  return r;
}

class Mamba2Graph final : public StepGraph {
 public:
  Mamba2Graph(GraphBuilder& b, const Mamba2Weights& w, const LoadOptions& options);
  void record_body(StepRecorder& r) override;
  void record_head(StepRecorder& r) override { lm_->record_head(r); }

 private:
  struct Layer {
    ResidualBlockLayer block;  // norm + in_proj, out_proj
    GpuBuffer conv_w, conv_b, dt_bias, a_neg, d_skip, gate_norm;
    GpuBuffer* conv_state = nullptr;  // [capacity][CD][K], owned by the model (state slots)
    GpuBuffer* ssm_state = nullptr;   // [capacity][E][N]
    VkDescriptorSet conv_set, scan_set, norm_set;
  };

  void upload(GraphBuilder& b, const Mamba2Weights& w);
  void create_pipelines(GraphBuilder& b);

  Mamba2Config cfg_;
  Tuning tune_{};
  std::unique_ptr<WeightUploader> up_;
  uint32_t dpad_ = 0, epad_ = 0, zx_stride_ = 0, xbc_stride_ = 0;

  ResidualBlockShape block_shape_;
  std::unique_ptr<TokenLmHead> lm_;
  std::vector<Layer> layers_;
  GpuBuffer resid_, zx_, xbc_, y_;

  std::unique_ptr<ResidualBlock> block_;
  std::unique_ptr<ComputePipeline> conv_pipe_, scan_pipe_, norm_pipe_;
  std::unique_ptr<DescriptorArena> arena_;
};

Mamba2Graph::Mamba2Graph(GraphBuilder& b, const Mamba2Weights& w, const LoadOptions& options) : cfg_(w.cfg) {
  const WeightsPlan plan = plan_weights(weights_request(w, options), b.caps());
  up_ = std::make_unique<WeightUploader>(b.ctx(), plan.f16, plan.quant);
  // Auto: matrices a GGUF file stores in blocks the device reads stay in those blocks.
  if (options.weights == WeightStorage::Auto) up_->keep_file_blocks(&w.file_blocks);
  b.create_io(plan, 0, cfg_.vocab_size);

  const uint64_t rows = uint64_t(b.step_rows());
  dpad_ = pad8(cfg_.d_model);
  epad_ = pad8(cfg_.d_inner);
  zx_stride_ = pad8(cfg_.in_proj_rows());
  xbc_stride_ = pad8(cfg_.conv_dim());
  block_shape_ = {.d_model = cfg_.d_model, .in_rows = cfg_.in_proj_rows(), .in_stride = zx_stride_,
                  .d_inner = cfg_.d_inner, .bias = cfg_.use_bias, .norm_eps = cfg_.norm_eps};
  tune_ = tuning_for(b.caps(), TuningProfile::TokenModel);
  // Texel views: every layer's in_proj / out_proj, and the activations they read (the head's views
  // are tiles that fit by construction, see TokenLmHead).
  fit_texel_views(tune_, b.caps(), plan.f16,
                  std::max({uint64_t(cfg_.in_proj_rows()) * dpad_,
                            uint64_t(cfg_.d_model) * epad_, rows * dpad_, rows * epad_}) / 4);

  // After fit_texel_views(), which may turn texel reads off: the layout matvec.comp's variant reads.
  up_->band_block_rows(tune_.texel);
  upload(b, w);
  create_pipelines(b);
  b.describe(mamba2_model_info(w), mamba2_state_header(w), tune_, *up_);
}

void Mamba2Graph::upload(GraphBuilder& b, const Mamba2Weights& w) {
  const int64_t D = cfg_.d_model, E = cfg_.d_inner, N = cfg_.d_state, K = cfg_.d_conv;
  const int64_t CD = cfg_.conv_dim();
  const uint64_t rows = uint64_t(b.step_rows());
  WeightUploader& up = *up_;
  lm_ = std::make_unique<TokenLmHead>(
      up, TokenLmHeadWeights{&w.embeddings, &w.lm_head, &w.norm_f, cfg_.vocab_size, D, cfg_.norm_eps});
  layers_.resize(size_t(cfg_.n_layer));
  for (int64_t i = 0; i < cfg_.n_layer; ++i) {
    const Mamba2LayerWeights& lw = w.layers[size_t(i)];
    Layer& L = layers_[size_t(i)];
    const std::string name = "layer " + std::to_string(i) + " ";
    L.block = ResidualBlock::upload(up, block_shape_, lw, name);
    L.conv_w = up.floats(lw.conv_w, name + "conv1d weight");
    L.conv_b = up.floats(lw.conv_b, name + "conv1d bias");
    L.dt_bias = up.floats(lw.dt_bias, name + "dt_bias");
    std::vector<float> a(lw.A_log.size());
    for (size_t k = 0; k < a.size(); ++k) a[k] = -std::exp(lw.A_log[k]);  // A = -exp(A_log), once
    L.a_neg = up.floats(a, name + "A");
    L.d_skip = up.floats(lw.D, name + "D");
    L.gate_norm = up.floats(lw.gate_norm, name + "gated norm");
  }
  // State slots in the blob's order: every layer's conv state, then every layer's ssm state.
  for (int64_t i = 0; i < cfg_.n_layer; ++i)
    layers_[size_t(i)].conv_state = &b.add_state(uint64_t(CD * K), "layer " + std::to_string(i) + " conv state");
  for (int64_t i = 0; i < cfg_.n_layer; ++i)
    layers_[size_t(i)].ssm_state = &b.add_state(uint64_t(E * N), "layer " + std::to_string(i) + " ssm state");

  resid_ = up.zeros(rows * dpad_ * 4, "residual stream");
  zx_ = up.zeros(rows * zx_stride_ * 4, "in_proj output");
  xbc_ = up.zeros(rows * xbc_stride_ * 4, "conv output");
  y_ = up.zeros(rows * epad_ * 4, "ssm output");
}

void Mamba2Graph::create_pipelines(GraphBuilder& b) {
  VulkanContext& ctx = b.ctx();
  const uint32_t E = uint32_t(cfg_.d_inner), CD = uint32_t(cfg_.conv_dim());
  const uint32_t rows = uint32_t(b.step_rows());
  block_ = std::make_unique<ResidualBlock>(ctx, *up_, tune_, block_shape_);
  const ConvSpec conv{.local = tune_.local, .CD = CD, .K = uint32_t(cfg_.d_conv), .capacity = rows,
                      .in_stride = zx_stride_, .in_offset = E, .out_stride = xbc_stride_};
  conv_pipe_ = std::make_unique<ComputePipeline>(ctx, ShaderId::mamba2_conv, 6, conv.constants());
  const ScanSpec scan{.local = tune_.local, .E = E, .N = uint32_t(cfg_.d_state), .P = uint32_t(cfg_.head_dim),
                      .H = uint32_t(cfg_.n_heads), .G = uint32_t(cfg_.n_groups), .capacity = rows,
                      .zx_stride = zx_stride_, .dt_offset = E + CD, .xbc_stride = xbc_stride_, .y_stride = epad_,
                      .dt_min = cfg_.dt_min, .dt_max = cfg_.dt_max};
  scan_pipe_ = std::make_unique<ComputePipeline>(ctx, ShaderId::mamba2_scan, 8, scan.constants());
  const GatedNormSpec norm{.local = floor_pow2(tune_.local), .E = E, .G = uint32_t(cfg_.n_groups),
                           .stride = epad_, .eps = cfg_.norm_eps};
  norm_pipe_ = std::make_unique<ComputePipeline>(ctx, ShaderId::mamba2_gated_norm, 3, norm.constants());

  lm_->create(ctx, tune_, b.step_input(), resid_, b.outputs());
  const uint32_t sets = 5 * uint32_t(cfg_.n_layer);
  arena_ = std::make_unique<DescriptorArena>(ctx, sets, sets * 8);
  const BufferBinding step{&b.step_input()};
  for (Layer& L : layers_) {
    block_->bind(*arena_, b.step_input(), resid_, zx_, y_, L.block);
    L.conv_set = arena_->make_set(*conv_pipe_, {step, {&zx_}, {L.conv_state}, {&L.conv_w}, {&L.conv_b}, {&xbc_}});
    L.scan_set = arena_->make_set(*scan_pipe_, {step, {&zx_}, {&xbc_}, {&L.dt_bias}, {&L.a_neg}, {&L.d_skip},
                                                {L.ssm_state}, {&y_}});
    L.norm_set = arena_->make_set(*norm_pipe_, {step, {&y_}, {&L.gate_norm}});
  }
}

void Mamba2Graph::record_body(StepRecorder& r) {
  const uint32_t E = uint32_t(cfg_.d_inner), CD = uint32_t(cfg_.conv_dim());
  lm_->record_embed(r);
  for (const Layer& L : layers_) {
    r.dispatch(block_->in(L.block));
    r.dispatch(*conv_pipe_, L.conv_set, ceil_div(CD, tune_.local));
    r.dispatch(*scan_pipe_, L.scan_set, ceil_div(E, tune_.local));
    r.dispatch(*norm_pipe_, L.norm_set, uint32_t(cfg_.n_groups));
    r.dispatch(block_->out(L.block));
  }
}

}  // namespace

std::unique_ptr<Model> create_mamba2_vulkan(const Mamba2Weights& weights, const LoadOptions& options) {
  return create_vulkan_model(
      options, [&](GraphBuilder& b) { return std::make_unique<Mamba2Graph>(b, weights, options); });
}

}  // namespace vkssm

// Mamba-1 on Vulkan: the step graph on top of VulkanStepModel (engine/vulkan_step_graph.h).
//
//   embed_gather.comp                   token embeddings                  -> residual r [row][D]
//   per layer:
//     matvec.comp (NORM)                RMSNorm + in_proj                 -> xz [row][x | z]
//     mamba1_conv_x_proj.comp           conv + SiLU, x_proj split-K       -> xc, partial sums
//     mamba1_scan.comp                  dt, state update, D skip, gate    -> y [row][E]
//     (CPU drivers, whose matvec reads texel buffers: x_proj runs as one more matvec.comp dispatch
//     between the conv and the scan, which llvmpipe runs 2-3x faster than the loop over storage
//     buffers in the conv shader; the scan, built with DT_TEXEL, reads dt_proj's weights through
//     a texel buffer too.)
//     matvec.comp (ACCUM)               out_proj + residual               -> r
//   head: matvec.comp (NORM)            norm_f + lm_head                  -> logits [row][V]
// The embedding gather and the head are the shared TokenLmHead (engine/vulkan_lm_head.h), the two
// matvecs around the mixer the shared ResidualBlock (engine/vulkan_residual_block.h).
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/vk/compute_pipeline.h"
#include "engine/vk/dispatch_math.h"
#include "engine/vk/weight_uploader.h"
#include "engine/vulkan_lm_head.h"
#include "engine/vulkan_matvec.h"
#include "engine/vulkan_residual_block.h"
#include "engine/vulkan_sharded_model.h"
#include "engine/vulkan_step_model.h"
#include "engine/vulkan_weights_plan.h"
#include "engine/weight_storage.h"
#include "host/error.h"
#include "models/mamba1/mamba1_model.h"

namespace vkssm {
namespace {

// mamba1_conv_x_proj.comp's specialization constants, in its constant_id order.
struct ConvXProjSpec {
  uint32_t local = 64;      // 0: threads per workgroup
  uint32_t E = 1;           // 1: d_inner
  uint32_t K = 4;           // 2: d_conv
  uint32_t J = 1;           // 3: x_proj rows, dt_rank + 2 * d_state
  uint32_t chunk = 64;      // 4: CHUNK, channels per workgroup
  uint32_t nchunk = 1;      // 5: NCHUNK = ceil(E / CHUNK)
  uint32_t capacity = 1;    // 6: CAPACITY, the step input's row stride
  uint32_t xz_stride = 2;   // 7: XZ_STRIDE, floats between rows of xz
  uint32_t xc_stride = 1;   // 8: XC_STRIDE, floats between rows of xc
  bool x_proj = true;       // 9: XPROJ, x_proj in this shader (else a matvec after it)
  SpecConstants constants() const { return {local, E, K, J, chunk, nchunk, capacity, xz_stride, xc_stride, x_proj}; }
};

// mamba1_scan.comp's specialization constants, in its constant_id order.
struct ScanSpec {
  uint32_t local = 64;      // 0: threads per workgroup
  uint32_t E = 1;           // 1: d_inner
  uint32_t N = 16;          // 2: d_state
  uint32_t R = 1;           // 3: dt_rank
  uint32_t chunk = 64;      // 4: CHUNK, channels per workgroup
  uint32_t nchunk_in = 1;   // 5: NCHUNK_IN, x_proj partial sums per row
  uint32_t capacity = 1;    // 6: CAPACITY
  uint32_t xz_stride = 2;   // 7: XZ_STRIDE
  uint32_t xc_stride = 1;   // 8: XC_STRIDE
  uint32_t y_stride = 1;    // 9: Y_STRIDE
  uint32_t J = 1;           // 10: R + 2N
  bool dt_b_c_rms = false;  // 11: DT_B_C_RMS, Falcon-Mamba's weightless RMSNorm of dt_in, B and C
  float mixer_eps = 1e-6f;  // 12: MIXER_EPS, its epsilon
  uint32_t partial_stride = 1;  // 13: PARTIAL_STRIDE, floats between rows of the partial sums
  SpecConstants constants() const {
    return {local, E, N, R, chunk, nchunk_in, capacity, xz_stride, xc_stride, y_stride, J, dt_b_c_rms, mixer_eps,
            partial_stride};
  }
};

// Bytes one stream costs: its recurrent state, its activations and its logits (device + 2 host).
uint64_t bytes_per_stream(const Mamba1Config& c) {
  return 4 * uint64_t(c.n_layer * c.d_inner * (c.d_conv + c.d_state) + 2 * c.d_model + 6 * c.d_inner + 64 +
                      3 * c.vocab_size);
}

WeightsPlanRequest weights_request(const Mamba1Weights& w, const LoadOptions& options) {
  WeightsPlanRequest r =
      plan_request(options, w.source_dtype, w.source, w.parameter_count(), bytes_per_stream(w.cfg));
  const Mamba1Config& c = w.cfg;
  r.slot_bytes = 4 * uint64_t(c.d_inner) * uint64_t(std::max(c.d_conv, c.d_state));  // a layer's conv or ssm state
  r.row_bytes = 4 * uint64_t(std::max<int64_t>(c.vocab_size, pad8(2 * c.d_inner)));   // logits, in_proj output
  r.slot_what = c.d_state >= c.d_conv ? "layer ssm state" : "layer conv state";
  r.row_what = c.vocab_size >= pad8(2 * c.d_inner) ? "step outputs (logits)" : "in_proj output";
  r.matrices = {{"embeddings", &w.embeddings}, {"lm_head", &w.lm_head}};
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const Mamba1LayerWeights& l = w.layers[i];
    const std::string p = "layers." + std::to_string(i) + ".";
    r.matrices.insert(r.matrices.end(), {{p + "in_proj", &l.in_proj}, {p + "x_proj", &l.x_proj},
                                         {p + "dt_proj", &l.dt_proj_w}, {p + "out_proj", &l.out_proj}});
  }
  return r;
}

class Mamba1Graph final : public StepGraph {
 public:
  Mamba1Graph(GraphBuilder& b, const Mamba1Weights& w, const LoadOptions& options);
  void record_body(StepRecorder& r) override;
  void record_head(StepRecorder& r) override { lm_->record_head(r); }

 private:
  struct Layer {
    ResidualBlockLayer block;  // norm + in_proj, out_proj
    GpuBuffer conv_w, conv_b, dt_b, a_neg, d_skip;
    // x_proj: transposed for the conv shader, or [J][epad] rows for its matvec (x_proj_mv_);
    // dt_proj: [E][R] for the scan, or [E][pad8(R)] rows for its texel reads (DT_TEXEL).
    GpuBuffer x_proj, dt_w;
    GpuBuffer* conv_state = nullptr;  // [capacity][E][K], owned by the model (state slots)
    GpuBuffer* ssm_state = nullptr;   // [capacity][E][N]
    VkDescriptorSet conv_set, scan_set, x_proj_set = VK_NULL_HANDLE;
  };

  void upload(GraphBuilder& b, const Mamba1Weights& w);
  void create_pipelines(GraphBuilder& b);

  Mamba1Config cfg_;
  WeightStorage weights_;  // what LoadOptions asked for (x_proj on GPUs: see upload())
  Tuning tune_{};
  std::unique_ptr<WeightUploader> up_;
  uint32_t dpad_ = 0, epad_ = 0, xz_stride_ = 0, J_ = 0, nchunk_ = 0;
  bool x_proj_matvec_ = false, dt_texel_ = false;  // see the top of this file
  uint32_t partial_stride_ = 0;                      // floats between rows of partial_

  ResidualBlockShape block_shape_;
  std::unique_ptr<TokenLmHead> lm_;
  std::vector<Layer> layers_;
  GpuBuffer resid_, xz_, xc_, partial_, y_;

  std::unique_ptr<ResidualBlock> block_;
  std::unique_ptr<MatvecPipeline> x_proj_mv_;
  std::unique_ptr<ComputePipeline> conv_pipe_, scan_pipe_;
  std::unique_ptr<DescriptorArena> arena_;
};

Mamba1Graph::Mamba1Graph(GraphBuilder& b, const Mamba1Weights& w, const LoadOptions& options)
    : cfg_(w.cfg), weights_(options.weights) {
  const WeightsPlan plan = plan_weights(weights_request(w, options), b.caps());
  up_ = std::make_unique<WeightUploader>(b.ctx(), plan.f16, plan.quant);
  // Auto: matrices a GGUF file stores in blocks the device reads stay in those blocks.
  if (options.weights == WeightStorage::Auto) up_->keep_file_blocks(&w.file_blocks);
  b.create_io(plan, 0, cfg_.vocab_size);

  const int64_t D = cfg_.d_model, E = cfg_.d_inner, N = cfg_.d_state, R = cfg_.dt_rank;
  const uint64_t rows = uint64_t(b.step_rows());
  dpad_ = pad8(D);
  epad_ = pad8(E);
  xz_stride_ = pad8(2 * E);
  J_ = uint32_t(R + 2 * N);
  block_shape_ = {.d_model = D, .in_rows = 2 * E, .in_stride = xz_stride_, .d_inner = E, .bias = cfg_.use_bias,
                  .norm_eps = cfg_.norm_eps};
  tune_ = tuning_for(b.caps(), TuningProfile::TokenModel);
  // Texel views: every layer's in_proj / out_proj (and x_proj, dt_proj), and the activations they
  // read (the head's views are tiles that fit by construction, see TokenLmHead).
  fit_texel_views(tune_, b.caps(), plan.f16,
                  std::max({uint64_t(2 * E) * dpad_, uint64_t(D) * epad_, uint64_t(E) * pad8(R),
                            rows * dpad_, rows * epad_, rows * pad8(J_)}) / 4);
  x_proj_matvec_ = tune_.texel;
  dt_texel_ = tune_.texel;
  nchunk_ = x_proj_matvec_ ? 1 : ceil_div(E, tune_.conv_chunk);
  partial_stride_ = x_proj_matvec_ ? pad8(J_) : nchunk_ * J_;

  // After fit_texel_views(), which may turn texel reads off: the layout matvec.comp's variant reads.
  up_->band_block_rows(tune_.texel);
  upload(b, w);
  create_pipelines(b);
  b.describe(mamba1_model_info(w), mamba1_state_header(w), tune_, *up_);
}

void Mamba1Graph::upload(GraphBuilder& b, const Mamba1Weights& w) {
  const int64_t D = cfg_.d_model, E = cfg_.d_inner, N = cfg_.d_state, K = cfg_.d_conv;
  const uint64_t rows = uint64_t(b.step_rows());  // activations: one row per stream (or prompt token)
  WeightUploader& up = *up_;

  lm_ = std::make_unique<TokenLmHead>(
      up, TokenLmHeadWeights{&w.embeddings, &w.lm_head, &w.norm_f, cfg_.vocab_size, D, cfg_.norm_eps});
  layers_.resize(size_t(cfg_.n_layer));
  for (int64_t i = 0; i < cfg_.n_layer; ++i) {
    const Mamba1LayerWeights& lw = w.layers[size_t(i)];
    Layer& L = layers_[size_t(i)];
    const std::string name = "layer " + std::to_string(i) + " ";
    L.block = ResidualBlock::upload(up, block_shape_, lw, name);
    L.conv_w = up.floats(lw.conv_w, name + "conv1d weight");
    L.conv_b = up.floats(lw.conv_b, name + "conv1d bias");
    if (x_proj_matvec_) {
      L.x_proj = up.matrix(lw.x_proj, J_, E, name + "x_proj");  // in blocks when the others are
    } else {
      // mamba1_conv_x_proj.comp reads x_proj as floats, four input channels at a time: stored
      // transposed, as [epad / 4][J][4] (channel e of row j at ((e / 4) * J + j) * 4 + e % 4), zero
      // past E. Under a block type, the values of its blocks (store_as), as the CPU drivers'
      // matvec and the cpu backend compute with.
      std::vector<float> xp = lw.x_proj;
      store_as(weights_, xp, E);
      std::vector<float> xt(size_t(epad_) * J_, 0.0f);
      for (int64_t j = 0; j < J_; ++j)
        for (int64_t e = 0; e < E; ++e) xt[size_t(((e / 4) * J_ + j) * 4 + e % 4)] = xp[size_t(j * E + e)];
      L.x_proj = up.flat(xt, name + "x_proj");
    }
    L.dt_w = dt_texel_ ? up.flat_matrix(lw.dt_proj_w, E, cfg_.dt_rank, name + "dt_proj weight")
                        : up.flat(lw.dt_proj_w, name + "dt_proj weight");
    L.dt_b = up.floats(lw.dt_proj_b, name + "dt_proj bias");
    std::vector<float> a(lw.A_log.size());
    for (size_t k = 0; k < a.size(); ++k) a[k] = -std::exp(lw.A_log[k]);  // A = -exp(A_log), once
    L.a_neg = up.floats(a, name + "A");
    L.d_skip = up.floats(lw.D, name + "D");
  }
  // State slots, in the blob's order: every layer's conv state, then every layer's ssm state.
  for (int64_t i = 0; i < cfg_.n_layer; ++i)
    layers_[size_t(i)].conv_state = &b.add_state(uint64_t(E * K), "layer " + std::to_string(i) + " conv state");
  for (int64_t i = 0; i < cfg_.n_layer; ++i)
    layers_[size_t(i)].ssm_state = &b.add_state(uint64_t(E * N), "layer " + std::to_string(i) + " ssm state");

  resid_ = up.zeros(rows * dpad_ * 4, "residual stream");
  xz_ = up.zeros(rows * xz_stride_ * 4, "in_proj output");
  xc_ = up.zeros(rows * epad_ * 4, "conv output");
  partial_ = up.zeros(rows * partial_stride_ * 4, "x_proj partial sums");
  y_ = up.zeros(rows * epad_ * 4, "ssm output");
}

void Mamba1Graph::create_pipelines(GraphBuilder& b) {
  VulkanContext& ctx = b.ctx();
  const bool f16 = up_->f16();
  const uint32_t E = uint32_t(cfg_.d_inner);
  const uint32_t cap = uint32_t(b.step_rows());  // the step input's row stride
  block_ = std::make_unique<ResidualBlock>(ctx, *up_, tune_, block_shape_);  // (a), (d)
  const ConvXProjSpec conv{.local = tune_.local, .E = E, .K = uint32_t(cfg_.d_conv), .J = J_,
                           .chunk = tune_.conv_chunk, .nchunk = nchunk_, .capacity = cap,
                           .xz_stride = xz_stride_, .xc_stride = epad_, .x_proj = !x_proj_matvec_};
  conv_pipe_ = std::make_unique<ComputePipeline>(
      ctx, f16 ? ShaderId::mamba1_conv_x_proj_f16 : ShaderId::mamba1_conv_x_proj_f32, 8, conv.constants());
  const ScanSpec scan{.local = tune_.local, .E = E, .N = uint32_t(cfg_.d_state), .R = uint32_t(cfg_.dt_rank),
                      .chunk = tune_.ssm_chunk, .nchunk_in = nchunk_, .capacity = cap, .xz_stride = xz_stride_,
                      .xc_stride = epad_, .y_stride = epad_, .J = J_, .dt_b_c_rms = cfg_.dt_b_c_rms,
                      .mixer_eps = cfg_.mixer_rms_eps, .partial_stride = partial_stride_};
  scan_pipe_ = std::make_unique<ComputePipeline>(
      ctx, dt_texel_ ? ShaderId::mamba1_scan_texel : f16 ? ShaderId::mamba1_scan_f16 : ShaderId::mamba1_scan_f32, 10,
      scan.constants(), dt_texel_ ? 1u << 4 : 0u);
  if (x_proj_matvec_) {
    // x_proj's few rows (dt_rank + 2 d_state) take fewer per workgroup than the big matvecs' rows,
    // so they spread over the cores: 16 in blocks (the block passes' group of rows per read of x),
    // else J / 64 groups of 4.
    Tuning small = tune_;
    const bool blocks = !layers_.empty() && is_blocks(up_->format_of(layers_.front().x_proj));
    small.row_groups = blocks ? 4u : std::max(1u, std::min(tune_.row_groups, J_ / 64));
    x_proj_mv_ = std::make_unique<MatvecPipeline>(ctx, *up_, small,
                                                  MatvecParams{.rows = J_, .cols = E, .y_stride = partial_stride_});
  }

  lm_->create(ctx, tune_, b.step_input(), resid_, b.outputs());
  const uint32_t sets = 5 * uint32_t(cfg_.n_layer);  // in_proj, conv, x_proj, scan, out_proj
  arena_ = std::make_unique<DescriptorArena>(ctx, sets, sets * 10);
  const BufferBinding step{&b.step_input()};
  for (Layer& L : layers_) {
    block_->bind(*arena_, b.step_input(), resid_, xz_, y_, L.block);
    const GpuBuffer& unused = up_->placeholder();
    L.conv_set = arena_->make_set(*conv_pipe_, {step, {&xz_}, {L.conv_state}, {&L.conv_w}, {&L.conv_b},
                                                {x_proj_matvec_ ? &unused : &L.x_proj}, {&xc_}, {&partial_}});
    if (x_proj_matvec_)
      L.x_proj_set = x_proj_mv_->bind(*arena_, b.step_input(), {.x = &xc_, .w = &L.x_proj, .y = &partial_});
    const BufferBinding dt_w{&L.dt_w, 0, 0, dt_texel_ ? up_->view(L.dt_w, true) : VkBufferView(VK_NULL_HANDLE)};
    L.scan_set = arena_->make_set(*scan_pipe_, {step, {&partial_}, {&xz_}, {&xc_}, dt_w, {&L.dt_b}, {&L.a_neg},
                                                {&L.d_skip}, {L.ssm_state}, {&y_}});
  }
}

// Embedding, then 4 dispatches per layer (5 on CPU drivers). Recorded once at load, replayed for every step.
void Mamba1Graph::record_body(StepRecorder& r) {
  lm_->record_embed(r);
  for (const Layer& L : layers_) {
    r.dispatch(block_->in(L.block));                                                         // (a)
    r.dispatch(*conv_pipe_, L.conv_set, ceil_div(uint32_t(cfg_.d_inner), tune_.conv_chunk));  // (b)
    if (x_proj_mv_) r.dispatch(x_proj_mv_->dispatch(L.x_proj_set));
    r.dispatch(*scan_pipe_, L.scan_set, ceil_div(uint32_t(cfg_.d_inner), tune_.ssm_chunk));  // (c)
    r.dispatch(block_->out(L.block));                                                        // (d)
  }
}

}  // namespace

std::unique_ptr<Model> create_mamba1_vulkan(const Mamba1Weights& weights, const LoadOptions& options) {
  return create_vulkan_model(
      options, [&](GraphBuilder& b) { return std::make_unique<Mamba1Graph>(b, weights, options); });
}

}  // namespace vkssm

// S4D on Vulkan: the step graph on top of VulkanStepModel (engine/vulkan_step_graph.h).
//
//   frame_gather.comp                  the rows' input frames      -> in [row][d_input padded]
//   matvec.comp                        encoder                     -> x [row][H]
//   per layer:
//     (pre-norm) s4d_glu_norm.comp     u = LayerNorm(x)
//     s4d_scan.comp                    recurrence, D skip, GELU    -> y  (a stream's F frames in order)
//     matvec.comp                      output linear (1x1 conv)    -> a [row][2H]
//     s4d_glu_norm.comp (GLU_RESIDUAL) x += GLU(a); post-norm: x = LayerNorm(x)
//   head: matvec.comp                  decoder                     -> outputs [row][d_output]
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "engine/vk/compute_pipeline.h"
#include "engine/vk/dispatch_math.h"
#include "engine/vk/weight_uploader.h"
#include "engine/vulkan_matvec.h"
#include "engine/vulkan_sharded_model.h"
#include "engine/vulkan_step_model.h"
#include "engine/vulkan_weights_plan.h"
#include "models/s4d/s4d_model.h"

namespace vkssm {
namespace {

// frame_gather.comp's specialization constants, in its constant_id order.
struct FrameGatherSpec {
  uint32_t local = 64;     // 0: threads per workgroup, one column each
  uint32_t d_input = 1;    // 1: DIN, floats per frame
  uint32_t stride = 8;     // 2: STRIDE, floats between rows of the output (>= DIN)
  uint32_t capacity = 1;   // 3: CAPACITY, the step input's row stride
  SpecConstants constants() const { return {local, d_input, stride, capacity}; }
};

// s4d_scan.comp's specialization constants, in its constant_id order.
struct ScanSpec {
  uint32_t local = 64;     // 0: threads per workgroup, one row each
  uint32_t H = 1;          // 1: channels
  uint32_t M = 1;          // 2: complex modes per channel
  uint32_t capacity = 1;   // 3: CAPACITY
  uint32_t stride = 8;     // 4: STRIDE, floats between rows of u and y
  uint32_t bgroups = 1;    // 5: BGROUPS, workgroups per channel (covering the streams)
  uint32_t streams = 1;    // 6: STREAMS, streams per invocation (the texel variant)
  uint32_t max_frames = 1; // 7: MAXF, the most frames per stream a step takes
  SpecConstants constants() const { return {local, H, M, capacity, stride, bgroups, streams, max_frames}; }
};

// s4d_glu_norm.comp's specialization constants, in its constant_id order.
struct GluNormSpec {
  uint32_t local = 64;             // 0: threads per workgroup (a power of two unless per_row)
  uint32_t H = 1;                  // 1: channels
  uint32_t stride = 8;             // 2: STRIDE, floats between rows of x and out
  uint32_t a_stride = 8;           // 3: A_STRIDE, floats between rows of a
  bool glu_residual = false;       // 4: GLU_RESIDUAL, x += a[:H] * sigmoid(a[H:])
  bool norm = true;                // 5: NORM, out = LayerNorm(x) * w + b
  float eps = 1e-5f;               // 6: EPS
  bool per_row_invocation = false; // 7: PER_ROW_INVOCATION, one invocation walks a whole row
  SpecConstants constants() const {
    return {local, H, stride, a_stride, glu_residual, norm, eps, per_row_invocation};
  }
};

WeightsPlanRequest weights_request(const S4DWeights& w, const LoadOptions& options) {
  const S4DConfig& c = w.cfg;
  // State, and per frame a step takes: activations, the input frame and the outputs (device + 2
  // host copies).
  const uint64_t per_stream =
      4 * uint64_t(c.n_layers * c.d_model * c.modes() * 2 +
                   std::max(options.frames_per_step, 1) * (8 * c.d_model + c.d_input + 3 * c.d_output));
  WeightsPlanRequest r = plan_request(options, w.source_dtype, w.source, w.parameter_count(), per_stream);
  r.slot_bytes = 4 * uint64_t(c.d_model * c.modes() * 2);  // a layer's complex state
  // A stream has frames_per_step rows in a step.
  r.row_bytes = 4 * uint64_t(std::max(options.frames_per_step, 1)) *
                uint64_t(std::max<int64_t>({c.d_input, c.d_output, 2 * c.d_model}) + 8);
  r.slot_what = "layer state";
  r.row_what = "an activation or output row";
  r.auto_may_use_f16 = false;  // the matrices are small next to the per-step work: fp16 only when asked
  r.matrices = {{"encoder.weight", &w.encoder_w}, {"decoder.weight", &w.decoder_w}};
  for (size_t i = 0; i < w.layers.size(); ++i)
    r.matrices.push_back({"s4_layers." + std::to_string(i) + ".output_linear.0.weight", &w.layers[i].out_w});
  return r;
}

class S4DGraph final : public StepGraph {
 public:
  S4DGraph(GraphBuilder& b, const S4DWeights& w, const LoadOptions& options);
  void record_body(StepRecorder& r) override;
  void record_head(StepRecorder& r) override { r.dispatch(dec_pipe_->dispatch(dec_set_)); }

 private:
  struct Layer {
    GpuBuffer dA, dB, C, D, out_w, out_b, norm_w, norm_b;
    GpuBuffer* state = nullptr;  // [capacity][H][M] complex, owned by the model (state slots)
    VkDescriptorSet pre_set = VK_NULL_HANDLE, scan_set, out_set, post_set;
  };

  void upload(GraphBuilder& b, const S4DWeights& w);
  void create_pipelines(GraphBuilder& b);

  S4DConfig cfg_;
  Tuning tune_{};
  std::unique_ptr<WeightUploader> up_;
  uint32_t in_pad_ = 0, hpad_ = 0, h2pad_ = 0;
  static constexpr uint32_t kGatherLocal = 64;
  static constexpr uint32_t kScanLocal = 64;
  static constexpr uint32_t kScanTexelStreams = 4;  // s4d_scan_texel: streams per invocation
  uint32_t scan_groups_per_row_ = 1;  // s4d_scan workgroups per channel (covering the streams)
  bool state_texel_ = false;          // s4d_scan_texel: state and constants read through texel views
  static constexpr uint32_t kRowsPerNormGroup = 16;
  bool norm_per_row_ = false;         // s4d_glu_norm: one invocation per row (CPU drivers)
  bool norm_texel_ = false;           // s4d_glu_norm_rows instead: per row, reading texel views
  uint32_t norm_groups_ = 1;          // s4d_glu_norm workgroups per dispatch

  GpuBuffer enc_w_, enc_b_, dec_w_, dec_b_;
  std::vector<Layer> layers_;
  GpuBuffer frames_, x_, u_, y_, a_;

  std::unique_ptr<MatvecPipeline> enc_pipe_, out_pipe_, dec_pipe_;
  std::unique_ptr<ComputePipeline> gather_pipe_, pre_pipe_, scan_pipe_, post_pipe_;
  std::unique_ptr<DescriptorArena> arena_;
  VkDescriptorSet gather_set_ = VK_NULL_HANDLE, enc_set_ = VK_NULL_HANDLE, dec_set_ = VK_NULL_HANDLE;
};

S4DGraph::S4DGraph(GraphBuilder& b, const S4DWeights& w, const LoadOptions& options) : cfg_(w.cfg) {
  const WeightsPlan plan = plan_weights(weights_request(w, options), b.caps());
  up_ = std::make_unique<WeightUploader>(b.ctx(), plan.f16, plan.quant);
  b.create_io(plan, cfg_.d_input, cfg_.d_output);

  const int64_t H = cfg_.d_model;
  const uint64_t rows = uint64_t(b.step_rows());
  in_pad_ = pad8(cfg_.d_input);
  hpad_ = pad8(H);
  h2pad_ = pad8(2 * H);
  tune_ = tuning_for(b.caps(), TuningProfile::FrameModel);
  // Texel views: the encoder, every layer's output linear, the decoder, the activations and (on
  // CPU drivers) the state.
  fit_texel_views(tune_, b.caps(), plan.f16,
                  std::max({uint64_t(H) * in_pad_, uint64_t(2 * H) * hpad_, uint64_t(cfg_.d_output) * hpad_,
                            rows * in_pad_, rows * hpad_, uint64_t(b.capacity()) * uint64_t(H * cfg_.modes()) * 2}) /
                      4);

  // After fit_texel_views(), which may turn texel reads off: the layout matvec.comp's variant reads.
  up_->band_block_rows(tune_.texel);
  upload(b, w);
  create_pipelines(b);
  b.describe(s4d_model_info(w), s4d_state_header(w), tune_, *up_);
}

void S4DGraph::upload(GraphBuilder& b, const S4DWeights& w) {
  const int64_t H = cfg_.d_model, M = cfg_.modes();
  const uint64_t rows = uint64_t(b.step_rows());
  WeightUploader& up = *up_;
  enc_w_ = up.matrix(w.encoder_w, H, cfg_.d_input, "encoder weight");
  enc_b_ = up.floats(w.encoder_b, "encoder bias");
  dec_w_ = up.matrix(w.decoder_w, cfg_.d_output, H, "decoder weight");
  dec_b_ = up.floats(w.decoder_b, "decoder bias");
  layers_.resize(size_t(cfg_.n_layers));
  for (int64_t i = 0; i < cfg_.n_layers; ++i) {
    const S4DLayerWeights& lw = w.layers[size_t(i)];
    Layer& L = layers_[size_t(i)];
    const std::string name = "layer " + std::to_string(i) + " ";
    L.dA = up.floats(lw.dA, name + "dA");
    L.dB = up.floats(lw.dB, name + "dB");
    L.C = up.floats(lw.C, name + "C");
    L.D = up.floats(lw.D, name + "D");
    L.out_w = up.matrix(lw.out_w, 2 * H, H, name + "output linear");
    L.out_b = up.floats(lw.out_b, name + "output linear bias");
    L.norm_w = up.floats(lw.norm_w, name + "norm weight");
    L.norm_b = up.floats(lw.norm_b, name + "norm bias");
    L.state = &b.add_state(uint64_t(H * M * 2), name + "state");
  }
  frames_ = up.zeros(rows * in_pad_ * 4, "input frames");
  x_ = up.zeros(rows * hpad_ * 4, "residual stream");
  u_ = up.zeros(rows * hpad_ * 4, "layer input (pre-norm)");
  y_ = up.zeros(rows * hpad_ * 4, "recurrence output");
  a_ = up.zeros(rows * h2pad_ * 4, "output linear");
}

void S4DGraph::create_pipelines(GraphBuilder& b) {
  VulkanContext& ctx = b.ctx();
  const uint32_t H = uint32_t(cfg_.d_model), rows = uint32_t(b.step_rows());
  const float eps = cfg_.layer_norm_eps;

  // The three projections, each with its bias; on CPU drivers one stream per invocation (many
  // streams, small matrices: see matvec_stream_lanes.comp).
  auto linear = [&](uint32_t out_rows, uint32_t cols, uint32_t y_stride) {
    return std::make_unique<MatvecPipeline>(
        ctx, *up_, tune_,
        MatvecParams{.rows = out_rows, .cols = cols, .y_stride = y_stride, .bias = true, .eps = eps, .stream_lanes = true});
  };
  enc_pipe_ = linear(H, uint32_t(cfg_.d_input), hpad_);
  out_pipe_ = linear(2 * H, H, h2pad_);
  dec_pipe_ = linear(uint32_t(cfg_.d_output), H, uint32_t(cfg_.d_output));

  const FrameGatherSpec gather{.local = kGatherLocal, .d_input = uint32_t(cfg_.d_input), .stride = in_pad_,
                               .capacity = rows};
  gather_pipe_ = std::make_unique<ComputePipeline>(ctx, ShaderId::frame_gather, 2, gather.constants());
  // The scan has no cross-lane reduction: a 64-lane workgroup per channel, lanes along the rows,
  // so the channel's dA, dB, C and D loads are the same for every lane. On CPU drivers the state
  // and the channel's constants are read through texel views (a vector gather on llvmpipe, where a
  // storage read at an address that is not a compile-time constant is a loop over the lanes), two
  // modes a texel, and each invocation takes kScanTexelStreams streams.
  state_texel_ = tune_.texel && b.caps().is_cpu() && cfg_.modes() % 2 == 0;
  const uint32_t scan_streams = state_texel_ ? kScanTexelStreams : 1;
  // Workgroups cover the streams (each takes its F frames' rows in order).
  scan_groups_per_row_ = ceil_div(uint32_t(b.capacity()), kScanLocal * scan_streams);
  const ScanSpec scan{.local = kScanLocal, .H = H, .M = uint32_t(cfg_.modes()), .capacity = rows, .stride = hpad_,
                      .bgroups = scan_groups_per_row_, .streams = scan_streams,
                      .max_frames = uint32_t(b.frames_per_step())};
  constexpr uint32_t kScanTexelBindings = 0b1'0001'1100;  // dA, dB, C and the state's read view
  scan_pipe_ = state_texel_ ? std::make_unique<ComputePipeline>(ctx, ShaderId::s4d_scan_texel, 9, scan.constants(),
                                                                kScanTexelBindings)
                            : std::make_unique<ComputePipeline>(ctx, ShaderId::s4d_scan, 8, scan.constants());
  // On CPU drivers (local 1) an invocation takes a whole row; on GPUs a workgroup reduces a row.
  norm_per_row_ = tune_.local == 1;
  norm_groups_ = norm_per_row_ ? ceil_div(rows, kRowsPerNormGroup) : rows;
  const GluNormSpec pre{.local = norm_per_row_ ? kRowsPerNormGroup : floor_pow2(std::max(tune_.local, 32u)),
                        .H = H, .stride = hpad_, .a_stride = h2pad_, .glu_residual = false, .norm = true,
                        .eps = eps, .per_row_invocation = norm_per_row_};
  GluNormSpec post = pre;
  post.glu_residual = true;
  post.norm = !cfg_.prenorm;
  // A thread per row reading through texel views where channels come four at a time.
  norm_texel_ = norm_per_row_ && tune_.texel && H % 4 == 0;
  const ShaderId norm_shader = norm_texel_ ? ShaderId::s4d_glu_norm_rows : ShaderId::s4d_glu_norm;
  constexpr uint32_t kNormTexelBindings = 0b11110;  // x, a, w, bias
  const uint32_t norm_texels = norm_texel_ ? kNormTexelBindings : 0;
  pre_pipe_ = std::make_unique<ComputePipeline>(ctx, norm_shader, 6, pre.constants(), norm_texels);
  post_pipe_ = std::make_unique<ComputePipeline>(ctx, norm_shader, 6, post.constants(), norm_texels);

  const uint32_t sets = 3 + 4 * uint32_t(cfg_.n_layers);
  arena_ = std::make_unique<DescriptorArena>(ctx, sets, sets * 9);
  const GpuBuffer& step_in = b.step_input();
  const BufferBinding step{&step_in};
  gather_set_ = arena_->make_set(*gather_pipe_, {step, {&frames_}});
  enc_set_ = enc_pipe_->bind(*arena_, step_in, {&frames_, &enc_w_, nullptr, &enc_b_, &x_});
  dec_set_ = dec_pipe_->bind(*arena_, step_in, {&x_, &dec_w_, nullptr, &dec_b_, &b.outputs()});
  // The GLU/LayerNorm inputs (bindings 1-4), as texel views where norm_texel_.
  auto norm_in = [&](const GpuBuffer& g) {
    return BufferBinding{&g, 0, 0, norm_texel_ ? up_->view(g, false) : VkBufferView(VK_NULL_HANDLE)};
  };
  for (Layer& L : layers_) {
    const GpuBuffer& u = cfg_.prenorm ? u_ : x_;
    if (cfg_.prenorm)
      L.pre_set = arena_->make_set(*pre_pipe_, {step, norm_in(x_), norm_in(a_), norm_in(L.norm_w), norm_in(L.norm_b), {&u_}});
    std::vector<BufferBinding> scan_bindings = {step, {&u}, {&L.dA}, {&L.dB}, {&L.C}, {&L.D}, {L.state}, {&y_}};
    if (state_texel_) {
      for (int i : {2, 3, 4}) scan_bindings[size_t(i)].view = up_->view(*scan_bindings[size_t(i)].buffer, false);
      scan_bindings.push_back({L.state, 0, 0, up_->view(*L.state, false)});
    }
    L.scan_set = arena_->make_set(*scan_pipe_, scan_bindings);
    L.out_set = out_pipe_->bind(*arena_, step_in, {&y_, &L.out_w, nullptr, &L.out_b, &a_});
    L.post_set =
        arena_->make_set(*post_pipe_, {step, norm_in(x_), norm_in(a_), norm_in(L.norm_w), norm_in(L.norm_b), {&x_}});
  }
}

void S4DGraph::record_body(StepRecorder& r) {
  const uint32_t H = uint32_t(cfg_.d_model);
  r.dispatch(*gather_pipe_, gather_set_, ceil_div(in_pad_, kGatherLocal));
  r.dispatch(enc_pipe_->dispatch(enc_set_));
  for (const Layer& L : layers_) {
    if (cfg_.prenorm) r.dispatch(*pre_pipe_, L.pre_set, norm_groups_);
    r.dispatch(*scan_pipe_, L.scan_set, scan_groups_per_row_ * H);
    r.dispatch(out_pipe_->dispatch(L.out_set));
    r.dispatch(*post_pipe_, L.post_set, norm_groups_);
  }
}

}  // namespace

std::unique_ptr<Model> create_s4d_vulkan(const S4DWeights& weights, const LoadOptions& options) {
  return create_vulkan_model(
      options, [&](GraphBuilder& b) { return std::make_unique<S4DGraph>(b, weights, options); });
}

}  // namespace vkssm

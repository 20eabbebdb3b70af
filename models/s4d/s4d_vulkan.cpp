// S4D on Vulkan: the step graph on top of VulkanStepModel (engine/vulkan_step_model.h).
//
//   frame_gather.comp                  the rows' input frames      -> in [row][d_input padded]
//   matvec.comp                        encoder                     -> x [row][H]
//   per layer:
//     (pre-norm) s4d_norm.comp         u = LayerNorm(x)
//     s4d_scan.comp                    recurrence, D skip, GELU    -> y
//     matvec.comp                      output linear (1x1 conv)    -> a [row][2H]
//     s4d_norm.comp (GLU_RESIDUAL)     x += GLU(a); post-norm: x = LayerNorm(x)
//   head: matvec.comp                  decoder                     -> outputs [row][d_output]
#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/vk/compute_pipeline.h"
#include <cstdlib>

#include "engine/vk/dispatch_math.h"
#include "engine/vk/device_tuning.h"
#include "engine/vk/weight_uploader.h"
#include "engine/vulkan_step_model.h"
#include "host/error.h"
#include "models/s4d/s4d_model.h"

namespace vkssm {
namespace {

class S4DVulkan final : public VulkanStepModel {
 public:
  S4DVulkan(const S4DWeights& w, const LoadOptions& options);
  ~S4DVulkan() override { drain(); }

 private:
  struct Layer {
    GpuBuffer dA, dB, C, D, out_w, out_b, norm_w, norm_b;
    GpuBuffer* state = nullptr;  // [capacity][H][M] complex
    VkDescriptorSet pre_set = VK_NULL_HANDLE, scan_set, out_set, post_set;
  };

  void upload(const S4DWeights& w);
  void create_pipelines();
  void create_descriptor_sets();
  void record_body(VkCommandBuffer cb) override;
  void record_head(VkCommandBuffer cb) override;

  S4DConfig cfg_;
  Tuning tune_{};
  std::unique_ptr<WeightUploader> up_;
  uint32_t in_pad_ = 0, hpad_ = 0, h2pad_ = 0;
  static constexpr uint32_t kScanLocal = 64;
  uint32_t scan_groups_per_row_ = 1;  // s4d_scan workgroups per channel (covering the step rows)
  static constexpr uint32_t kRowsPerNormGroup = 16;
  bool norm_per_row_ = false;         // s4d_norm: one invocation per row (CPU drivers)

  GpuBuffer enc_w_, enc_b_, dec_w_, dec_b_, dummy_;
  std::vector<Layer> layers_;
  GpuBuffer frames_, x_, u_, y_, a_;

  std::unique_ptr<ComputePipeline> gather_pipe_, enc_pipe_, pre_pipe_, scan_pipe_, out_pipe_, post_pipe_, dec_pipe_;
  std::unique_ptr<DescriptorArena> arena_;
  VkDescriptorSet gather_set_ = VK_NULL_HANDLE, enc_set_ = VK_NULL_HANDLE, dec_set_ = VK_NULL_HANDLE;
};

S4DVulkan::S4DVulkan(const S4DWeights& w, const LoadOptions& options) : VulkanStepModel(options), cfg_(w.cfg) {
  tune_ = tuning_for(caps());
  // The CPU-driver row of the tuning table suits Mamba's large matrices (128 rows per workgroup);
  // S4D's are small (64-256 rows) and its batches large, so one invocation per 4-row workgroup
  // spreads them over the cores and needs no reduction barrier: measured with `vkssm listen
  // --bench 32` on lavapipe, 1.16x real time instead of 0.71x. VKSSM_TUNE still overrides.
  if (caps().is_cpu() && !std::getenv("VKSSM_TUNE")) tune_.local = 1, tune_.row_groups = 1;
  // The matrices are small next to the per-step work: fp16 only when asked for.
  const bool f16 = options.weights == WeightStorage::F16;
  up_ = std::make_unique<WeightUploader>(ctx(), f16);
  const int64_t H = cfg_.d_model, M = cfg_.modes();
  int capacity = options.max_streams;
  if (capacity == 0) {
    const uint64_t per_stream = 4 * uint64_t(cfg_.n_layers * H * M * 2 + 8 * H + cfg_.d_input + 3 * cfg_.d_output);
    capacity = int(std::clamp<uint64_t>(caps().device_local_bytes / 2 / per_stream, 1, 1024));
  }
  create_io(capacity, cfg_.d_input, cfg_.d_output);
  in_pad_ = pad8(cfg_.d_input);
  hpad_ = pad8(H);
  h2pad_ = pad8(2 * H);
  if (tune_.texel && (!caps().texel_rgba32f || (f16 && !caps().texel_rgba16f))) tune_.texel = false;
  upload(w);
  create_pipelines();
  create_descriptor_sets();
  ModelInfo info = s4d_model_info(w);
  info.weight_type = f16 ? "f16" : "f32";
  info.weight_bytes = up_->bytes();
  finish(info, s4d_state_header(w));
}

void S4DVulkan::upload(const S4DWeights& w) {
  const int64_t H = cfg_.d_model, M = cfg_.modes();
  const uint64_t rows = uint64_t(step_rows());
  WeightUploader& up = *up_;
  enc_w_ = up.matrix(w.encoder_w, H, cfg_.d_input, "encoder weight");
  enc_b_ = up.floats(w.encoder_b, "encoder bias");
  dec_w_ = up.matrix(w.decoder_w, cfg_.d_output, H, "decoder weight");
  dec_b_ = up.floats(w.decoder_b, "decoder bias");
  dummy_ = up.zeros(16, "placeholder");
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
    L.state = &add_state(uint64_t(H * M * 2), name + "state");
  }
  frames_ = up.zeros(rows * in_pad_ * 4, "input frames");
  x_ = up.zeros(rows * hpad_ * 4, "residual stream");
  u_ = up.zeros(rows * hpad_ * 4, "layer input (pre-norm)");
  y_ = up.zeros(rows * hpad_ * 4, "recurrence output");
  a_ = up.zeros(rows * h2pad_ * 4, "output linear");
}

void S4DVulkan::create_pipelines() {
  const std::string matvec = tune_.texel ? "matvec_texel" : std::string("matvec") + (up_->f16() ? "_f16" : "_f32");
  const uint32_t texel_mask = tune_.texel ? 0b1110 : 0;
  const uint32_t H = uint32_t(cfg_.d_model), DIN = uint32_t(cfg_.d_input), DOUT = uint32_t(cfg_.d_output);
  const uint32_t rows = uint32_t(step_rows());
  const uint32_t local = tune_.local, eps = float_bits(cfg_.layer_norm_eps);
  // matvec spec constants: local, ROWS, COLS, COLS4, Y_STRIDE, ROW_GROUPS, NORM, ACCUM, HAS_BIAS, EPS
  enc_pipe_ = std::make_unique<ComputePipeline>(ctx(), matvec, 6, 0, std::vector<uint32_t>{
      local, H, DIN, in_pad_ / 4, hpad_, tune_.row_groups, 0, 0, 1, eps}, texel_mask);
  out_pipe_ = std::make_unique<ComputePipeline>(ctx(), matvec, 6, 0, std::vector<uint32_t>{
      local, 2 * H, H, hpad_ / 4, h2pad_, tune_.row_groups, 0, 0, 1, eps}, texel_mask);
  dec_pipe_ = std::make_unique<ComputePipeline>(ctx(), matvec, 6, 0, std::vector<uint32_t>{
      local, DOUT, H, hpad_ / 4, DOUT, tune_.row_groups, 0, 0, 1, eps}, texel_mask);
  gather_pipe_ = std::make_unique<ComputePipeline>(ctx(), "frame_gather", 2, 0, std::vector<uint32_t>{
      64, DIN, in_pad_, rows});
  // The scan has no cross-lane reduction: a 64-lane workgroup per channel, lanes along the rows,
  // so the channel's dA, dB, C and D loads are the same for every lane.
  scan_groups_per_row_ = ceil_div(rows, kScanLocal);
  scan_pipe_ = std::make_unique<ComputePipeline>(ctx(), "s4d_scan", 8, 0, std::vector<uint32_t>{
      kScanLocal, H, uint32_t(cfg_.modes()), rows, hpad_, scan_groups_per_row_});
  // s4d_norm spec constants: local, H, STRIDE, A_STRIDE, GLU_RESIDUAL, NORM, EPS, PER_ROW_INVOCATION.
  // On CPU drivers (local 1) an invocation takes a whole row; on GPUs a workgroup reduces a row.
  norm_per_row_ = tune_.local == 1;
  const uint32_t red = norm_per_row_ ? kRowsPerNormGroup : floor_pow2(std::max(local, 32u));
  const uint32_t per_row = norm_per_row_ ? 1u : 0u;
  pre_pipe_ = std::make_unique<ComputePipeline>(ctx(), "s4d_norm", 6, 0, std::vector<uint32_t>{
      red, H, hpad_, h2pad_, 0, 1, eps, per_row});
  post_pipe_ = std::make_unique<ComputePipeline>(ctx(), "s4d_norm", 6, 0, std::vector<uint32_t>{
      red, H, hpad_, h2pad_, 1, cfg_.prenorm ? 0u : 1u, eps, per_row});
}

void S4DVulkan::create_descriptor_sets() {
  const uint32_t sets = 3 + 4 * uint32_t(cfg_.n_layers);
  arena_ = std::make_unique<DescriptorArena>(ctx(), sets, sets * 8);
  auto in = [&](const GpuBuffer& b, bool weights) {
    return BufferBinding{&b, 0, 0, tune_.texel ? up_->view(b, weights) : VkBufferView(VK_NULL_HANDLE)};
  };
  const BufferBinding step{&step_input()}, x_in = in(x_, false), y_in = in(y_, false), dummy_in = in(dummy_, false);
  gather_set_ = arena_->make_set(*gather_pipe_, {step, {&frames_}});
  enc_set_ = arena_->make_set(*enc_pipe_, {step, in(frames_, false), in(enc_w_, true), dummy_in, {&enc_b_}, {&x_}});
  dec_set_ = arena_->make_set(*dec_pipe_, {step, x_in, in(dec_w_, true), dummy_in, {&dec_b_}, {&outputs()}});
  for (Layer& L : layers_) {
    const GpuBuffer& u = cfg_.prenorm ? u_ : x_;
    if (cfg_.prenorm)
      L.pre_set = arena_->make_set(*pre_pipe_, {step, {&x_}, {&a_}, {&L.norm_w}, {&L.norm_b}, {&u_}});
    L.scan_set = arena_->make_set(*scan_pipe_, {step, {&u}, {&L.dA}, {&L.dB}, {&L.C}, {&L.D}, {L.state}, {&y_}});
    L.out_set = arena_->make_set(*out_pipe_, {step, y_in, in(L.out_w, true), dummy_in, {&L.out_b}, {&a_}});
    L.post_set = arena_->make_set(*post_pipe_, {step, {&x_}, {&a_}, {&L.norm_w}, {&L.norm_b}, {&x_}});
  }
}

void S4DVulkan::record_body(VkCommandBuffer cb) {
  const uint32_t rows_per_wg = 4 * tune_.row_groups;
  const uint32_t H = uint32_t(cfg_.d_model), rows = uint32_t(step_rows());
  dispatch(cb, *gather_pipe_, gather_set_, ceil_div(in_pad_, 64));
  dispatch(cb, *enc_pipe_, enc_set_, ceil_div(H, rows_per_wg));
  for (const Layer& L : layers_) {
    const uint32_t norm_groups = norm_per_row_ ? ceil_div(rows, kRowsPerNormGroup) : rows;
    if (cfg_.prenorm) dispatch(cb, *pre_pipe_, L.pre_set, norm_groups);
    dispatch(cb, *scan_pipe_, L.scan_set, scan_groups_per_row_ * H);
    dispatch(cb, *out_pipe_, L.out_set, ceil_div(2 * H, rows_per_wg));
    dispatch(cb, *post_pipe_, L.post_set, norm_groups);
  }
}

void S4DVulkan::record_head(VkCommandBuffer cb) {
  dispatch(cb, *dec_pipe_, dec_set_, ceil_div(uint32_t(cfg_.d_output), 4 * tune_.row_groups));
}

}  // namespace

std::unique_ptr<Model> create_s4d_vulkan(const S4DWeights& weights, const LoadOptions& options) {
  return std::make_unique<S4DVulkan>(weights, options);
}

}  // namespace vkssm

// Mamba-2 on Vulkan: the step graph on top of VulkanStepModel (engine/vulkan_step_model.h).
//
// Per layer, 5 dispatches:
//   matvec.comp (NORM)     RMSNorm + in_proj            -> zx [row][z | xBC | dt]
//   mamba2_conv.comp       conv over x|B|C + SiLU       -> xbc [row][x | B | C]
//   mamba2_scan.comp       dt, state update, D, gate    -> y [row][E]
//   group_rms_norm.comp    gated RMSNorm per group      -> y (in place)
//   matvec.comp (ACCUM)    out_proj + residual          -> residual stream
// plus the embedding gather first and norm_f + lm_head as the head.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/vk/compute_pipeline.h"
#include "engine/vk/dispatch_math.h"
#include "engine/vk/device_tuning.h"
#include "engine/vk/weight_uploader.h"
#include "engine/vulkan_step_model.h"
#include "host/error.h"
#include "models/mamba2/mamba2_model.h"

namespace vkssm {
namespace {

class Mamba2Vulkan final : public VulkanStepModel {
 public:
  Mamba2Vulkan(const Mamba2Weights& w, const LoadOptions& options);
  ~Mamba2Vulkan() override { drain(); }

 private:
  struct Layer {
    GpuBuffer norm, in_proj, in_proj_b, conv_w, conv_b, dt_bias, a_neg, d_skip, gate_norm, out_proj, out_proj_b;
    GpuBuffer* conv_state = nullptr;  // [capacity][CD][K]
    GpuBuffer* ssm_state = nullptr;   // [capacity][E][N]
    VkDescriptorSet in_set, conv_set, scan_set, norm_set, out_set;
  };

  void upload(const Mamba2Weights& w);
  void create_pipelines();
  void create_descriptor_sets();
  void record_body(VkCommandBuffer cb) override;
  void record_head(VkCommandBuffer cb) override;

  Mamba2Config cfg_;
  Tuning tune_{};
  std::unique_ptr<WeightUploader> up_;
  uint32_t dpad_ = 0, epad_ = 0, zx_stride_ = 0, xbc_stride_ = 0;

  GpuBuffer embeddings_, lm_head_, norm_f_, dummy_;
  std::vector<Layer> layers_;
  GpuBuffer resid_, zx_, xbc_, y_;

  std::unique_ptr<ComputePipeline> embed_pipe_, in_pipe_, conv_pipe_, scan_pipe_, norm_pipe_, out_pipe_, head_pipe_;
  std::unique_ptr<DescriptorArena> arena_;
  VkDescriptorSet embed_set_ = VK_NULL_HANDLE, head_set_ = VK_NULL_HANDLE;
};

bool has_beyond_fp16(const Mamba2Weights& w) {
  auto beyond = [](const std::vector<float>& v) {
    return std::any_of(v.begin(), v.end(), [](float x) { return std::fabs(x) > 65504.0f; });
  };
  if (beyond(w.embeddings) || beyond(w.lm_head)) return true;
  for (const auto& l : w.layers)
    if (beyond(l.in_proj) || beyond(l.out_proj)) return true;
  return false;
}

int automatic_capacity(const Mamba2Weights& w, const DeviceCaps& caps, bool f16) {
  const Mamba2Config& c = w.cfg;
  const uint64_t per_stream =
      4 * uint64_t(c.n_layer * (c.conv_dim() * c.d_conv + c.d_inner * c.d_state) +  // state
                   2 * c.d_model + c.in_proj_rows() + c.conv_dim() + c.d_inner + 64 +  // activations
                   3 * c.vocab_size);                                                // logits
  const uint64_t weights = uint64_t(w.parameter_count()) * (f16 ? 2 : 4);
  const uint64_t budget = caps.device_local_bytes / 2;
  if (budget <= weights + per_stream) return 1;
  return int(std::min<uint64_t>(1024, (budget - weights) / per_stream));
}

Mamba2Vulkan::Mamba2Vulkan(const Mamba2Weights& w, const LoadOptions& options)
    : VulkanStepModel(options), cfg_(w.cfg) {
  tune_ = tuning_for(caps());
  bool f16 = false;
  switch (options.weights) {
    case WeightStorage::F32: f16 = false; break;
    case WeightStorage::F16: f16 = true; break;
    case WeightStorage::Auto: f16 = w.source_dtype != DType::F32 && caps().storage16; break;
  }
  if (f16 && has_beyond_fp16(w)) {
    if (options.weights == WeightStorage::F16)
      throw Error("a matrix of " + w.source + " has values beyond the fp16 range (65504); load it with f32 weights");
    f16 = false;
  }
  up_ = std::make_unique<WeightUploader>(ctx(), f16);
  create_io(options.max_streams == 0 ? automatic_capacity(w, caps(), f16) : options.max_streams, 0, cfg_.vocab_size);

  dpad_ = pad8(cfg_.d_model);
  epad_ = pad8(cfg_.d_inner);
  zx_stride_ = pad8(cfg_.in_proj_rows());
  xbc_stride_ = pad8(cfg_.conv_dim());
  const uint64_t head_texels = uint64_t(cfg_.vocab_size) * dpad_ / 4;
  const uint64_t in_texels = uint64_t(cfg_.in_proj_rows()) * dpad_ / 4;
  if (tune_.texel && (!caps().texel_rgba32f || (f16 && !caps().texel_rgba16f) ||
                      std::max(head_texels, in_texels) > caps().max_texel_buffer_elements))
    tune_.texel = false;

  upload(w);
  create_pipelines();
  create_descriptor_sets();
  ModelInfo info = mamba2_model_info(w);
  info.weight_type = f16 ? "f16" : "f32";
  info.weight_bytes = up_->bytes();
  finish(info, mamba2_state_header(w));
}

void Mamba2Vulkan::upload(const Mamba2Weights& w) {
  const int64_t D = cfg_.d_model, E = cfg_.d_inner, N = cfg_.d_state, K = cfg_.d_conv, V = cfg_.vocab_size;
  const int64_t CD = cfg_.conv_dim();
  const uint64_t rows = uint64_t(step_rows());
  WeightUploader& up = *up_;
  embeddings_ = up.matrix(w.embeddings, V, D, "token embeddings");
  const uint64_t embedding_bytes = up.bytes();
  lm_head_ = w.lm_head.empty() ? GpuBuffer() : up.matrix(w.lm_head, V, D, "lm_head");
  norm_f_ = up.floats(w.norm_f, "norm_f", dpad_);
  dummy_ = up.zeros(16, "placeholder");
  layers_.resize(size_t(cfg_.n_layer));
  for (int64_t i = 0; i < cfg_.n_layer; ++i) {
    const Mamba2LayerWeights& lw = w.layers[size_t(i)];
    Layer& L = layers_[size_t(i)];
    const std::string name = "layer " + std::to_string(i) + " ";
    L.norm = up.floats(lw.norm, name + "norm", dpad_);
    L.in_proj = up.matrix(lw.in_proj, cfg_.in_proj_rows(), D, name + "in_proj");
    if (!lw.in_proj_b.empty()) L.in_proj_b = up.floats(lw.in_proj_b, name + "in_proj bias");
    L.conv_w = up.floats(lw.conv_w, name + "conv1d weight");
    L.conv_b = up.floats(lw.conv_b, name + "conv1d bias");
    L.dt_bias = up.floats(lw.dt_bias, name + "dt_bias");
    std::vector<float> a(lw.A_log.size());
    for (size_t k = 0; k < a.size(); ++k) a[k] = -std::exp(lw.A_log[k]);  // A = -exp(A_log), once
    L.a_neg = up.floats(a, name + "A");
    L.d_skip = up.floats(lw.D, name + "D");
    L.gate_norm = up.floats(lw.gate_norm, name + "gated norm");
    L.out_proj = up.matrix(lw.out_proj, D, E, name + "out_proj");
    if (!lw.out_proj_b.empty()) L.out_proj_b = up.floats(lw.out_proj_b, name + "out_proj bias");
  }
  // State slots in the blob's order: every layer's conv state, then every layer's ssm state.
  for (int64_t i = 0; i < cfg_.n_layer; ++i)
    layers_[size_t(i)].conv_state = &add_state(uint64_t(CD * K), "layer " + std::to_string(i) + " conv state");
  for (int64_t i = 0; i < cfg_.n_layer; ++i)
    layers_[size_t(i)].ssm_state = &add_state(uint64_t(E * N), "layer " + std::to_string(i) + " ssm state");
  if (!w.lm_head.empty()) up.discount(embedding_bytes);

  resid_ = up.zeros(rows * dpad_ * 4, "residual stream");
  zx_ = up.zeros(rows * zx_stride_ * 4, "in_proj output");
  xbc_ = up.zeros(rows * xbc_stride_ * 4, "conv output");
  y_ = up.zeros(rows * epad_ * 4, "ssm output");
}

void Mamba2Vulkan::create_pipelines() {
  const std::string suffix = up_->f16() ? "_f16" : "_f32";
  const std::string matvec = tune_.texel ? "matvec_texel" : "matvec" + suffix;
  const uint32_t texel_mask = tune_.texel ? 0b1110 : 0;  // x, W, norm_w
  const uint32_t D = uint32_t(cfg_.d_model), E = uint32_t(cfg_.d_inner), V = uint32_t(cfg_.vocab_size);
  const uint32_t CD = uint32_t(cfg_.conv_dim()), H = uint32_t(cfg_.n_heads);
  const uint32_t rows = uint32_t(step_rows());
  const uint32_t eps = float_bits(cfg_.norm_eps);
  const bool bias = cfg_.use_bias;
  const uint32_t local = tune_.local;
  // matvec spec constants: local, ROWS, COLS, COLS4, Y_STRIDE, ROW_GROUPS, NORM, ACCUM, HAS_BIAS, EPS
  in_pipe_ = std::make_unique<ComputePipeline>(ctx(), matvec, 6, 0, std::vector<uint32_t>{
      local, uint32_t(cfg_.in_proj_rows()), D, dpad_ / 4, zx_stride_, tune_.row_groups, 1, 0, bias, eps}, texel_mask);
  out_pipe_ = std::make_unique<ComputePipeline>(ctx(), matvec, 6, 0, std::vector<uint32_t>{
      local, D, E, epad_ / 4, dpad_, tune_.row_groups, 0, 1, bias, eps}, texel_mask);
  head_pipe_ = std::make_unique<ComputePipeline>(ctx(), matvec, 6, 0, std::vector<uint32_t>{
      local, V, D, dpad_ / 4, V, tune_.row_groups, 1, 0, 0, eps}, texel_mask);
  conv_pipe_ = std::make_unique<ComputePipeline>(ctx(), "mamba2_conv", 6, 0, std::vector<uint32_t>{
      local, CD, uint32_t(cfg_.d_conv), rows, zx_stride_, E, xbc_stride_});
  scan_pipe_ = std::make_unique<ComputePipeline>(ctx(), "mamba2_scan", 8, 0, std::vector<uint32_t>{
      local, E, uint32_t(cfg_.d_state), uint32_t(cfg_.head_dim), H, uint32_t(cfg_.n_groups), rows, zx_stride_,
      E + CD, xbc_stride_, epad_, float_bits(cfg_.dt_min), float_bits(cfg_.dt_max)});
  norm_pipe_ = std::make_unique<ComputePipeline>(ctx(), "group_rms_norm", 3, 0, std::vector<uint32_t>{
      floor_pow2(local), E, uint32_t(cfg_.n_groups), epad_, eps});
  embed_pipe_ = std::make_unique<ComputePipeline>(ctx(), "embed_gather" + suffix, 3, 0, std::vector<uint32_t>{
      64, D, dpad_, dpad_});
}

void Mamba2Vulkan::create_descriptor_sets() {
  const uint32_t sets = 2 + 5 * uint32_t(cfg_.n_layer);
  arena_ = std::make_unique<DescriptorArena>(ctx(), sets, sets * 8);
  const GpuBuffer& head = lm_head_.handle() ? lm_head_ : embeddings_;
  auto in = [&](const GpuBuffer& b, bool weights) {
    return BufferBinding{&b, 0, 0, tune_.texel ? up_->view(b, weights) : VkBufferView(VK_NULL_HANDLE)};
  };
  const BufferBinding resid_in = in(resid_, false), y_in = in(y_, false), dummy_in = in(dummy_, false);
  const BufferBinding step{&step_input()};
  embed_set_ = arena_->make_set(*embed_pipe_, {step, {&embeddings_}, {&resid_}});
  head_set_ = arena_->make_set(*head_pipe_, {step, resid_in, in(head, true), in(norm_f_, false), {&dummy_},
                                             {&outputs()}});
  for (Layer& L : layers_) {
    const GpuBuffer& in_b = L.in_proj_b.handle() ? L.in_proj_b : dummy_;
    const GpuBuffer& out_b = L.out_proj_b.handle() ? L.out_proj_b : dummy_;
    L.in_set = arena_->make_set(*in_pipe_, {step, resid_in, in(L.in_proj, true), in(L.norm, false), {&in_b}, {&zx_}});
    L.conv_set = arena_->make_set(*conv_pipe_, {step, {&zx_}, {L.conv_state}, {&L.conv_w}, {&L.conv_b}, {&xbc_}});
    L.scan_set = arena_->make_set(*scan_pipe_, {step, {&zx_}, {&xbc_}, {&L.dt_bias}, {&L.a_neg}, {&L.d_skip},
                                                {L.ssm_state}, {&y_}});
    L.norm_set = arena_->make_set(*norm_pipe_, {step, {&y_}, {&L.gate_norm}});
    L.out_set = arena_->make_set(*out_pipe_, {step, y_in, in(L.out_proj, true), dummy_in, {&out_b}, {&resid_}});
  }
}

void Mamba2Vulkan::record_body(VkCommandBuffer cb) {
  const uint32_t rows_per_wg = 4 * tune_.row_groups;
  const uint32_t D = uint32_t(cfg_.d_model), E = uint32_t(cfg_.d_inner), CD = uint32_t(cfg_.conv_dim());
  dispatch(cb, *embed_pipe_, embed_set_, ceil_div(D, 64));
  for (const Layer& L : layers_) {
    dispatch(cb, *in_pipe_, L.in_set, ceil_div(uint64_t(cfg_.in_proj_rows()), rows_per_wg));
    dispatch(cb, *conv_pipe_, L.conv_set, ceil_div(CD, tune_.local));
    dispatch(cb, *scan_pipe_, L.scan_set, ceil_div(E, tune_.local));
    dispatch(cb, *norm_pipe_, L.norm_set, uint32_t(cfg_.n_groups));
    dispatch(cb, *out_pipe_, L.out_set, ceil_div(D, rows_per_wg));
  }
}

void Mamba2Vulkan::record_head(VkCommandBuffer cb) {
  dispatch(cb, *head_pipe_, head_set_, ceil_div(uint32_t(cfg_.vocab_size), 4 * tune_.row_groups));
}

}  // namespace

std::unique_ptr<Model> create_mamba2_vulkan(const Mamba2Weights& weights, const LoadOptions& options) {
  return std::make_unique<Mamba2Vulkan>(weights, options);
}

}  // namespace vkssm

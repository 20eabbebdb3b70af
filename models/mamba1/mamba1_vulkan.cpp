#include "models/mamba1/mamba1_vulkan.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/vk/compute_pipeline.h"
#include "engine/vk/dispatch_math.h"
#include "engine/vk/device_tuning.h"
#include "engine/vk/gpu_buffer.h"
#include "engine/vk/weight_uploader.h"
#include "engine/vulkan_step_model.h"
#include "host/dtype.h"
#include "host/error.h"

namespace vkssm {
namespace {

// The name of the first matrix stored as fp16 that holds a value fp16 cannot represent, or "".
std::string first_beyond_fp16(const Mamba1Weights& w) {
  auto beyond = [](const std::vector<float>& v) {
    for (float x : v)
      if (std::fabs(x) > 65504.0f) return true;
    return false;
  };
  if (beyond(w.embeddings)) return "embeddings";
  if (beyond(w.lm_head)) return "lm_head";
  for (size_t i = 0; i < w.layers.size(); ++i) {
    const auto& l = w.layers[i];
    const std::string p = "layers." + std::to_string(i) + ".";
    if (beyond(l.in_proj)) return p + "in_proj";
    if (beyond(l.x_proj)) return p + "x_proj";
    if (beyond(l.dt_proj_w)) return p + "dt_proj";
    if (beyond(l.out_proj)) return p + "out_proj";
  }
  return "";
}

// As many streams as fit in half the device-local memory once the weights are in (1 to 1024):
// each stream costs its recurrent state, its activations and its logits.
int automatic_capacity(const Mamba1Weights& w, const DeviceCaps& caps, bool f16) {
  const Mamba1Config& c = w.cfg;
  const uint64_t per_stream = 4 * uint64_t(c.n_layer * c.d_inner * (c.d_conv + c.d_state) +  // state
                                           2 * c.d_model + 6 * c.d_inner + 64 +               // activations
                                           3 * c.vocab_size);  // logits: device + 2 host copies
  const uint64_t weights = uint64_t(w.parameter_count()) * (f16 ? 2 : 4);
  const uint64_t budget = caps.device_local_bytes / 2;
  if (budget <= weights + per_stream) return 1;
  return int(std::min<uint64_t>(1024, (budget - weights) / per_stream));
}

class Mamba1Vulkan final : public VulkanStepModel {
 public:
  Mamba1Vulkan(const Mamba1Weights& w, const LoadOptions& options);
  ~Mamba1Vulkan() override { drain(); }  // the GPU may still use this class's buffers

 private:
  struct Layer {
    GpuBuffer norm, in_proj, in_proj_b, conv_w, conv_b, x_proj_t, dt_w, dt_b, a_neg, d_skip;
    GpuBuffer out_proj, out_proj_b;
    GpuBuffer* conv_state = nullptr;  // [capacity][E][K], owned by the base (state slots)
    GpuBuffer* ssm_state = nullptr;   // [capacity][E][N]
    VkDescriptorSet in_set, conv_set, ssm_set, out_set;
  };

  void upload(const Mamba1Weights& w);
  void create_pipelines();
  void create_descriptor_sets();
  void record_body(VkCommandBuffer cb) override;
  void record_head(VkCommandBuffer cb) override;

  Mamba1Config cfg_;
  Tuning tune_{};
  std::unique_ptr<WeightUploader> up_;
  uint32_t dpad_ = 0, epad_ = 0, xz_stride_ = 0, J_ = 0, nchunk_ = 0;

  GpuBuffer embeddings_, lm_head_, norm_f_, dummy_;
  std::vector<Layer> layers_;
  GpuBuffer resid_, xz_, xc_, partial_, y_;

  std::unique_ptr<ComputePipeline> embed_pipe_, in_pipe_, conv_pipe_, ssm_pipe_, out_pipe_, head_pipe_;
  std::unique_ptr<DescriptorArena> arena_;
  VkDescriptorSet embed_set_ = VK_NULL_HANDLE, head_set_ = VK_NULL_HANDLE;
};

Mamba1Vulkan::Mamba1Vulkan(const Mamba1Weights& w, const LoadOptions& options)
    : VulkanStepModel(options), cfg_(w.cfg) {
  tune_ = tuning_for(caps());
  bool f16 = false;
  switch (options.weights) {
    case WeightStorage::F32: f16 = false; break;
    case WeightStorage::F16: f16 = true; break;
    case WeightStorage::Auto: f16 = w.source_dtype != DType::F32 && caps().storage16; break;
  }
  // A bf16 checkpoint can hold values fp16 cannot: keep fp32 then (or refuse, if fp16 was asked).
  if (f16) {
    if (std::string big = first_beyond_fp16(w); !big.empty()) {
      if (options.weights == WeightStorage::F16)
        throw Error("tensor " + big + " of " + w.source + " has values beyond the fp16 range (65504); "
                    "load it with f32 weights");
      f16 = false;
    }
  }
  up_ = std::make_unique<WeightUploader>(ctx(), f16);
  create_io(options.max_streams == 0 ? automatic_capacity(w, caps(), f16) : options.max_streams, 0,
            cfg_.vocab_size);

  const int64_t D = cfg_.d_model, E = cfg_.d_inner, N = cfg_.d_state, R = cfg_.dt_rank;
  dpad_ = pad8(D);
  epad_ = pad8(E);
  xz_stride_ = pad8(2 * E);
  J_ = uint32_t(R + 2 * N);
  nchunk_ = ceil_div(E, tune_.conv_chunk);

  // Texel buffers only where the device can view the biggest matrix as one.
  const uint64_t head_texels = uint64_t(cfg_.vocab_size) * dpad_ / 4;
  const uint64_t in_texels = uint64_t(2 * E) * dpad_ / 4;
  if (tune_.texel && (!caps().texel_rgba32f || (f16 && !caps().texel_rgba16f) ||
                      std::max(head_texels, in_texels) > caps().max_texel_buffer_elements))
    tune_.texel = false;

  upload(w);
  create_pipelines();
  create_descriptor_sets();
  ModelInfo info = mamba1_model_info(w);
  info.weight_type = f16 ? "f16" : "f32";
  info.weight_bytes = up_->bytes();
  finish(info, mamba1_state_header(w));
}

void Mamba1Vulkan::upload(const Mamba1Weights& w) {
  const int64_t D = cfg_.d_model, E = cfg_.d_inner, N = cfg_.d_state, K = cfg_.d_conv, V = cfg_.vocab_size;
  const uint64_t rows = uint64_t(step_rows());  // activations: one row per stream (or prompt token)
  WeightUploader& up = *up_;

  embeddings_ = up.matrix(w.embeddings, V, D, "token embeddings");
  const uint64_t embedding_bytes = up.bytes();
  lm_head_ = w.lm_head.empty() ? GpuBuffer() : up.matrix(w.lm_head, V, D, "lm_head");
  norm_f_ = up.floats(w.norm_f, "norm_f", dpad_);
  dummy_ = up.zeros(16, "placeholder");

  layers_.resize(cfg_.n_layer);
  for (int64_t i = 0; i < cfg_.n_layer; ++i) {
    const auto& lw = w.layers[i];
    Layer& L = layers_[i];
    const std::string name = "layer " + std::to_string(i) + " ";
    L.norm = up.floats(lw.norm, name + "norm", dpad_);
    L.in_proj = up.matrix(lw.in_proj, 2 * E, D, name + "in_proj");
    if (!lw.in_proj_b.empty()) L.in_proj_b = up.floats(lw.in_proj_b, name + "in_proj bias");
    L.conv_w = up.floats(lw.conv_w, name + "conv1d weight");
    L.conv_b = up.floats(lw.conv_b, name + "conv1d bias");
    // x_proj is read one input channel at a time by conv_x_proj.comp: store it transposed.
    std::vector<float> xt(size_t(E) * J_);
    for (int64_t j = 0; j < J_; ++j)
      for (int64_t e = 0; e < E; ++e) xt[e * J_ + j] = lw.x_proj[j * E + e];
    L.x_proj_t = up.flat(xt, name + "x_proj");
    L.dt_w = up.flat(lw.dt_proj_w, name + "dt_proj weight");
    L.dt_b = up.floats(lw.dt_proj_b, name + "dt_proj bias");
    std::vector<float> a(lw.A_log.size());
    for (size_t k = 0; k < a.size(); ++k) a[k] = -std::exp(lw.A_log[k]);  // A = -exp(A_log), once
    L.a_neg = up.floats(a, name + "A");
    L.d_skip = up.floats(lw.D, name + "D");
    L.out_proj = up.matrix(lw.out_proj, D, E, name + "out_proj");
    if (!lw.out_proj_b.empty()) L.out_proj_b = up.floats(lw.out_proj_b, name + "out_proj bias");
  }
  // State slots, in the blob's order: every layer's conv state, then every layer's ssm state.
  for (int64_t i = 0; i < cfg_.n_layer; ++i)
    layers_[i].conv_state = &add_state(uint64_t(E * K), "layer " + std::to_string(i) + " conv state");
  for (int64_t i = 0; i < cfg_.n_layer; ++i)
    layers_[i].ssm_state = &add_state(uint64_t(E * N), "layer " + std::to_string(i) + " ssm state");
  // A step reads one embedding row, not the whole table (unless it doubles as the head).
  if (!w.lm_head.empty()) up.discount(embedding_bytes);

  resid_ = up.zeros(rows * dpad_ * 4, "residual stream");
  xz_ = up.zeros(rows * xz_stride_ * 4, "in_proj output");
  xc_ = up.zeros(rows * epad_ * 4, "conv output");
  partial_ = up.zeros(rows * nchunk_ * J_ * 4, "x_proj partial sums");
  y_ = up.zeros(rows * epad_ * 4, "ssm output");
}

void Mamba1Vulkan::create_pipelines() {
  const std::string suffix = up_->f16() ? "_f16" : "_f32";
  const std::string matvec = tune_.texel ? "matvec_texel" : "matvec" + suffix;
  const uint32_t texel_mask = tune_.texel ? 0b1110 : 0;  // x, W, norm_w
  const uint32_t D = uint32_t(cfg_.d_model), E = uint32_t(cfg_.d_inner), V = uint32_t(cfg_.vocab_size);
  const uint32_t cap = uint32_t(step_rows());  // the step input's row stride
  const uint32_t eps = float_bits(cfg_.norm_eps);
  const bool bias = cfg_.use_bias;
  // matvec spec constants: local, ROWS, COLS, COLS4, Y_STRIDE, ROW_GROUPS, NORM, ACCUM, HAS_BIAS, EPS
  in_pipe_ = std::make_unique<ComputePipeline>(ctx(), matvec, 6, 0, std::vector<uint32_t>{
      tune_.local, 2 * E, D, dpad_ / 4, xz_stride_, tune_.row_groups, 1, 0, bias, eps}, texel_mask);
  out_pipe_ = std::make_unique<ComputePipeline>(ctx(), matvec, 6, 0, std::vector<uint32_t>{
      tune_.local, D, E, epad_ / 4, dpad_, tune_.row_groups, 0, 1, bias, eps}, texel_mask);
  head_pipe_ = std::make_unique<ComputePipeline>(ctx(), matvec, 6, 0, std::vector<uint32_t>{
      tune_.local, V, D, dpad_ / 4, V, tune_.row_groups, 1, 0, 0, eps}, texel_mask);
  conv_pipe_ = std::make_unique<ComputePipeline>(ctx(), "conv_x_proj" + suffix, 8, 0, std::vector<uint32_t>{
      tune_.local, E, uint32_t(cfg_.d_conv), J_, tune_.conv_chunk, nchunk_, cap, xz_stride_, epad_});
  ssm_pipe_ = std::make_unique<ComputePipeline>(ctx(), "ssm_update" + suffix, 10, 0, std::vector<uint32_t>{
      tune_.local, E, uint32_t(cfg_.d_state), uint32_t(cfg_.dt_rank), tune_.ssm_chunk, nchunk_, cap,
      xz_stride_, epad_, epad_, J_});
  embed_pipe_ = std::make_unique<ComputePipeline>(ctx(), "embed_gather" + suffix, 3, 0, std::vector<uint32_t>{
      64, D, dpad_, dpad_});
}

void Mamba1Vulkan::create_descriptor_sets() {
  const uint32_t sets = 2 + 4 * uint32_t(cfg_.n_layer);
  arena_ = std::make_unique<DescriptorArena>(ctx(), sets, sets * 10);
  const GpuBuffer& head = lm_head_.handle() ? lm_head_ : embeddings_;
  // matvec inputs: plain storage bindings, or texel views of the same buffers.
  auto in = [&](const GpuBuffer& b, bool weights) {
    return BufferBinding{&b, 0, 0, tune_.texel ? up_->view(b, weights) : VkBufferView(VK_NULL_HANDLE)};
  };
  const BufferBinding resid_in = in(resid_, false), y_in = in(y_, false), dummy_in = in(dummy_, false);
  embed_set_ = arena_->make_set(*embed_pipe_, {{&step_input()}, {&embeddings_}, {&resid_}});
  head_set_ = arena_->make_set(*head_pipe_, {{&step_input()}, resid_in, in(head, true), in(norm_f_, false),
                                             {&dummy_}, {&outputs()}});
  for (Layer& L : layers_) {
    const GpuBuffer& in_b = L.in_proj_b.handle() ? L.in_proj_b : dummy_;
    const GpuBuffer& out_b = L.out_proj_b.handle() ? L.out_proj_b : dummy_;
    L.in_set = arena_->make_set(*in_pipe_, {{&step_input()}, resid_in, in(L.in_proj, true), in(L.norm, false),
                                            {&in_b}, {&xz_}});
    L.conv_set = arena_->make_set(*conv_pipe_, {{&step_input()}, {&xz_}, {L.conv_state}, {&L.conv_w},
                                                {&L.conv_b}, {&L.x_proj_t}, {&xc_}, {&partial_}});
    L.ssm_set = arena_->make_set(*ssm_pipe_, {{&step_input()}, {&partial_}, {&xz_}, {&xc_}, {&L.dt_w}, {&L.dt_b},
                                              {&L.a_neg}, {&L.d_skip}, {L.ssm_state}, {&y_}});
    L.out_set = arena_->make_set(*out_pipe_, {{&step_input()}, y_in, in(L.out_proj, true), dummy_in, {&out_b},
                                              {&resid_}});
  }
}

// Embedding, then 4 dispatches per layer. Recorded once at load, replayed for every step.
void Mamba1Vulkan::record_body(VkCommandBuffer cb) {
  const uint32_t rows_per_wg = 4 * tune_.row_groups;
  const uint32_t E = uint32_t(cfg_.d_inner), D = uint32_t(cfg_.d_model);
  dispatch(cb, *embed_pipe_, embed_set_, ceil_div(D, 64));
  for (const Layer& L : layers_) {
    dispatch(cb, *in_pipe_, L.in_set, ceil_div(2 * E, rows_per_wg));     // (a) RMSNorm + in_proj
    dispatch(cb, *conv_pipe_, L.conv_set, nchunk_);                      // (b) conv + SiLU + x_proj
    dispatch(cb, *ssm_pipe_, L.ssm_set, ceil_div(E, tune_.ssm_chunk));   // (c) dt, scan, D, gate
    dispatch(cb, *out_pipe_, L.out_set, ceil_div(D, rows_per_wg));       // (d) out_proj + residual
  }
}

// norm_f + lm_head into the step outputs.
void Mamba1Vulkan::record_head(VkCommandBuffer cb) {
  dispatch(cb, *head_pipe_, head_set_, ceil_div(uint32_t(cfg_.vocab_size), 4 * tune_.row_groups));
}

}  // namespace

std::unique_ptr<Model> create_mamba1_vulkan(const Mamba1Weights& weights, const LoadOptions& options) {
  return std::make_unique<Mamba1Vulkan>(weights, options);
}

}  // namespace vkssm

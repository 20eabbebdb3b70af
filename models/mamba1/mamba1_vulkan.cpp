#include "models/mamba1/mamba1_vulkan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "engine/vk/compute_pipeline.h"
#include "engine/vk/gpu_buffer.h"
#include "engine/vk/vk_check.h"
#include "engine/vk/vulkan_context.h"
#include "host/dtype.h"
#include "host/error.h"
#include "host/state_file.h"

namespace vkssm {
namespace {

uint32_t pad8(int64_t n) { return uint32_t((n + 7) / 8 * 8); }
uint32_t ceil_div(uint64_t a, uint64_t b) { return uint32_t((a + b - 1) / b); }
uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Work split per device. GPUs want many threads per workgroup; llvmpipe (lavapipe) runs one
// invocation per workgroup fastest, because uniform loads compile to plain vector loads there.
struct Tuning {
  uint32_t local;           // threads per workgroup in matvec / conv / ssm
  uint32_t row_groups;      // matvec rows per workgroup = 4 * row_groups
  uint32_t conv_chunk;      // channels per workgroup in conv_x_proj
  uint32_t ssm_chunk;       // channels per workgroup in ssm_update
  bool texel;               // matvec reads through uniform texel buffers
};

Tuning tuning_for(const DeviceCaps& caps) {
  Tuning t;
  if (caps.is_cpu()) {
    // llvmpipe runs 8 invocations as one SIMD vector; texelFetch becomes a vector gather while
    // storage-buffer loads with varying offsets become a per-lane loop there.
    t = {8, 32, 256, 256, true};
  } else {
    uint32_t local = std::min<uint32_t>(64, caps.max_workgroup_invocations);
    t = {local, 1, local, local, false};
  }
  // VKSSM_TUNE=local,row_groups,conv_chunk,ssm_chunk,texel overrides the table (for tuning new devices).
  if (const char* env = std::getenv("VKSSM_TUNE")) {
    unsigned v[5];
    if (std::sscanf(env, "%u,%u,%u,%u,%u", &v[0], &v[1], &v[2], &v[3], &v[4]) == 5 && v[0] && v[1] && v[2] &&
        v[3] && v[0] <= caps.max_workgroup_invocations)
      t = {v[0], v[1], v[2], v[3], v[4] != 0};
  }
  return t;
}

// Dispatch size for `groups` workgroups within maxComputeWorkGroupCount[0]; matvec.comp folds
// the y index back into a linear workgroup index.
void dispatch_linear(VkCommandBuffer cb, uint32_t groups, uint32_t max_x) {
  uint32_t x = std::min(groups, max_x);
  vkCmdDispatch(cb, x, ceil_div(groups, x), 1);
}

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
                                           c.vocab_size);                                     // logits
  const uint64_t weights = uint64_t(w.parameter_count()) * (f16 ? 2 : 4);
  const uint64_t budget = caps.device_local_bytes / 2;
  if (budget <= weights + per_stream) return 1;
  return int(std::min<uint64_t>(1024, (budget - weights) / per_stream));
}

class Mamba1Vulkan final : public Model {
 public:
  Mamba1Vulkan(const Mamba1Weights& w, const LoadOptions& options);
  ~Mamba1Vulkan() override;

  const ModelInfo& info() const override { return info_; }
  int capacity() const override { return capacity_; }
  void reset(int slot) override;
  void step(const int32_t* tokens, const int32_t* slots, int batch, float* logits) override;
  StepCounters counters() const override { return counters_; }
  std::vector<uint8_t> snapshot(int slot) const override;
  void restore(int slot, const uint8_t* data, size_t size) override;
  void fork(int from_slot, int to_slot) override;

 private:
  struct Layer {
    GpuBuffer norm, in_proj, in_proj_b, conv_w, conv_b, x_proj_t, dt_w, dt_b, a_neg, d_skip;
    GpuBuffer out_proj, out_proj_b;
    GpuBuffer conv_state, ssm_state;  // [capacity][E][K], [capacity][E][N]
    VkDescriptorSet in_set, conv_set, ssm_set, out_set;
  };

  GpuBuffer matrix(const std::vector<float>& m, int64_t rows, int64_t cols, const std::string& what);
  GpuBuffer flat_weights(const std::vector<float>& v, const std::string& what);
  GpuBuffer floats(const std::vector<float>& v, const std::string& what, size_t padded = 0);
  GpuBuffer zeros(uint64_t bytes, const std::string& what);
  void upload(const Mamba1Weights& w);
  void create_pipelines();
  void create_descriptor_sets();
  void record();
  void record_step(VkCommandBuffer cb, bool with_head);
  void barrier(VkCommandBuffer cb);
  void submit_and_wait(VkCommandBuffer cb);
  void warm_up();
  VkBufferView view(const GpuBuffer& b, bool weights);
  void check_slot(int slot) const;
  // Records copies of every layer's conv/ssm state of `slot` to or from `host` (blob layout).
  void copy_slot_states(VkCommandBuffer cb, int slot, VkBuffer host, bool to_host) const;

  // Declared first so it is destroyed last: every other member holds Vulkan objects of it.
  std::unique_ptr<VulkanContext> ctx_;
  Mamba1Config cfg_;
  ModelInfo info_;
  int capacity_ = 1;
  bool f16_ = false;
  Tuning tune_{};
  uint32_t dpad_ = 0, epad_ = 0, xz_stride_ = 0, J_ = 0, nchunk_ = 0;
  uint64_t weight_bytes_ = 0;

  GpuBuffer embeddings_, lm_head_, norm_f_, dummy_;
  std::vector<Layer> layers_;
  GpuBuffer resid_, xz_, xc_, partial_, y_, step_in_, logits_;

  std::unique_ptr<ComputePipeline> embed_pipe_, in_pipe_, conv_pipe_, ssm_pipe_, out_pipe_, head_pipe_;
  std::unique_ptr<DescriptorArena> arena_;
  std::vector<VkBufferView> views_;
  VkDescriptorSet embed_set_ = VK_NULL_HANDLE, head_set_ = VK_NULL_HANDLE;
  // Two recordings of the step: with the final norm + lm_head, and without it for steps whose
  // logits nobody reads (prompt tokens), which skips the largest matrix of a small model.
  VkCommandBuffer cmd_ = VK_NULL_HANDLE, cmd_no_head_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  uint32_t dispatches_per_step_ = 0;  // with the head; one fewer without
  StepCounters counters_;
  std::vector<uint8_t> fresh_;       // per slot: next step starts from a zero state
  std::vector<uint8_t> slot_marks_;  // duplicate-slot check in step(), all zero between steps
  StateHeader state_header_;    // what a state blob of this model says
};

Mamba1Vulkan::Mamba1Vulkan(const Mamba1Weights& w, const LoadOptions& options)
    : cfg_(w.cfg), capacity_(options.max_streams) {
  if (capacity_ < 0) throw Error("max_streams must be at least 1 (or 0 for automatic), got " +
                                 std::to_string(capacity_));
  ctx_ = std::make_unique<VulkanContext>(
      VulkanContext::Options{options.device, options.validation, options.cache_dir});
  const DeviceCaps& caps = ctx_->caps();
  tune_ = tuning_for(caps);

  switch (options.weights) {
    case WeightStorage::F32: f16_ = false; break;
    case WeightStorage::F16: f16_ = true; break;
    case WeightStorage::Auto: f16_ = w.source_dtype != DType::F32 && caps.storage16; break;
  }
  // A bf16 checkpoint can hold values fp16 cannot: keep fp32 then (or refuse, if fp16 was asked).
  if (f16_) {
    if (std::string big = first_beyond_fp16(w); !big.empty()) {
      if (options.weights == WeightStorage::F16)
        throw Error("tensor " + big + " of " + w.source + " has values beyond the fp16 range (65504); "
                    "load it with f32 weights");
      f16_ = false;
    }
  }
  if (capacity_ == 0) capacity_ = automatic_capacity(w, caps, f16_);

  const int64_t D = cfg_.d_model, E = cfg_.d_inner, N = cfg_.d_state, R = cfg_.dt_rank;
  dpad_ = pad8(D);
  epad_ = pad8(E);
  xz_stride_ = pad8(2 * E);
  J_ = uint32_t(R + 2 * N);
  nchunk_ = ceil_div(E, tune_.conv_chunk);

  // Texel buffers only where the device can view the biggest matrix as one.
  const uint64_t head_texels = uint64_t(cfg_.vocab_size) * dpad_ / 4;
  const uint64_t in_texels = uint64_t(2 * E) * dpad_ / 4;
  if (tune_.texel && (!caps.texel_rgba32f || (f16_ && !caps.texel_rgba16f) ||
                      std::max(head_texels, in_texels) > caps.max_texel_buffer_elements))
    tune_.texel = false;

  upload(w);
  create_pipelines();
  create_descriptor_sets();
  record();
  warm_up();
  ctx_->save_pipeline_cache();
  fresh_.assign(capacity_, 1);
  slot_marks_.assign(capacity_, 0);

  info_ = mamba1_model_info(w);
  info_.backend = "vulkan";
  info_.device_name = caps.name;
  info_.weight_type = f16_ ? "f16" : "f32";
  info_.weight_bytes = weight_bytes_;
  state_header_ = mamba1_state_header(w);
}

Mamba1Vulkan::~Mamba1Vulkan() {
  if (!ctx_) return;
  vkDeviceWaitIdle(ctx_->device());
  if (fence_) vkDestroyFence(ctx_->device(), fence_, nullptr);
  for (VkBufferView v : views_) vkDestroyBufferView(ctx_->device(), v, nullptr);
  if (cmd_) vkFreeCommandBuffers(ctx_->device(), ctx_->command_pool(), 1, &cmd_);
  if (cmd_no_head_) vkFreeCommandBuffers(ctx_->device(), ctx_->command_pool(), 1, &cmd_no_head_);
}

// A weight matrix [rows, cols] with rows padded to 8 columns, in the weight storage type.
GpuBuffer Mamba1Vulkan::matrix(const std::vector<float>& m, int64_t rows, int64_t cols,
                               const std::string& what) {
  const uint32_t stride = pad8(cols);
  std::vector<float> padded(size_t(rows) * stride, 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    std::copy_n(m.data() + r * cols, cols, padded.data() + r * stride);
  return flat_weights(padded, what);
}

GpuBuffer Mamba1Vulkan::flat_weights(const std::vector<float>& v, const std::string& what) {
  if (!f16_) return floats(v, what);
  std::vector<uint16_t> h(v.size() + (v.size() & 1), 0);
  for (size_t i = 0; i < v.size(); ++i) h[i] = float_to_half(v[i]);
  GpuBuffer b(*ctx_, h.size() * 2, GpuBuffer::Kind::DeviceLocal, what);
  b.upload(h.data(), h.size() * 2);
  weight_bytes_ += h.size() * 2;
  return b;
}

GpuBuffer Mamba1Vulkan::floats(const std::vector<float>& v, const std::string& what, size_t padded) {
  std::vector<float> data(v);
  if (padded > data.size()) data.resize(padded, 0.0f);
  GpuBuffer b(*ctx_, data.size() * 4, GpuBuffer::Kind::DeviceLocal, what);
  b.upload(data.data(), data.size() * 4);
  weight_bytes_ += data.size() * 4;
  return b;
}

GpuBuffer Mamba1Vulkan::zeros(uint64_t bytes, const std::string& what) {
  GpuBuffer b(*ctx_, bytes, GpuBuffer::Kind::DeviceLocal, what);
  b.fill_zero();
  return b;
}

void Mamba1Vulkan::upload(const Mamba1Weights& w) {
  const int64_t D = cfg_.d_model, E = cfg_.d_inner, N = cfg_.d_state, K = cfg_.d_conv;
  const int64_t R = cfg_.dt_rank, V = cfg_.vocab_size;
  const uint64_t cap = uint64_t(capacity_);

  embeddings_ = matrix(w.embeddings, V, D, "token embeddings");
  const uint64_t embedding_bytes = weight_bytes_;
  lm_head_ = w.lm_head.empty() ? GpuBuffer() : matrix(w.lm_head, V, D, "lm_head");
  norm_f_ = floats(w.norm_f, "norm_f", dpad_);
  dummy_ = zeros(16, "placeholder");

  layers_.resize(cfg_.n_layer);
  for (int64_t i = 0; i < cfg_.n_layer; ++i) {
    const auto& lw = w.layers[i];
    Layer& L = layers_[i];
    const std::string name = "layer " + std::to_string(i) + " ";
    L.norm = floats(lw.norm, name + "norm", dpad_);
    L.in_proj = matrix(lw.in_proj, 2 * E, D, name + "in_proj");
    if (!lw.in_proj_b.empty()) L.in_proj_b = floats(lw.in_proj_b, name + "in_proj bias");
    L.conv_w = floats(lw.conv_w, name + "conv1d weight");
    L.conv_b = floats(lw.conv_b, name + "conv1d bias");
    // x_proj is read one input channel at a time by conv_x_proj.comp: store it transposed.
    std::vector<float> xt(size_t(E) * J_);
    for (int64_t j = 0; j < J_; ++j)
      for (int64_t e = 0; e < E; ++e) xt[e * J_ + j] = lw.x_proj[j * E + e];
    L.x_proj_t = flat_weights(xt, name + "x_proj");
    L.dt_w = flat_weights(lw.dt_proj_w, name + "dt_proj weight");
    L.dt_b = floats(lw.dt_proj_b, name + "dt_proj bias");
    std::vector<float> a(lw.A_log.size());
    for (size_t k = 0; k < a.size(); ++k) a[k] = -std::exp(lw.A_log[k]);  // A = -exp(A_log), once
    L.a_neg = floats(a, name + "A");
    L.d_skip = floats(lw.D, name + "D");
    L.out_proj = matrix(lw.out_proj, D, E, name + "out_proj");
    if (!lw.out_proj_b.empty()) L.out_proj_b = floats(lw.out_proj_b, name + "out_proj bias");
    L.conv_state = zeros(cap * E * K * 4, name + "conv state");
    L.ssm_state = zeros(cap * E * N * 4, name + "ssm state");
  }
  (void)R;
  // A step reads one embedding row, not the whole table (unless it doubles as the head).
  if (!w.lm_head.empty()) weight_bytes_ -= embedding_bytes;

  resid_ = zeros(cap * dpad_ * 4, "residual stream");
  xz_ = zeros(cap * xz_stride_ * 4, "in_proj output");
  xc_ = zeros(cap * epad_ * 4, "conv output");
  partial_ = zeros(cap * nchunk_ * J_ * 4, "x_proj partial sums");
  y_ = zeros(cap * epad_ * 4, "ssm output");
  step_in_ = GpuBuffer(*ctx_, (4 + 3 * cap) * 4, GpuBuffer::Kind::Upload, "step input");
  step_in_.fill_zero();
  logits_ = GpuBuffer(*ctx_, cap * uint64_t(V) * 4, GpuBuffer::Kind::Readback, "logits");
}

void Mamba1Vulkan::create_pipelines() {
  const std::string suffix = f16_ ? "_f16" : "_f32";
  const std::string matvec = tune_.texel ? "matvec_texel" : "matvec" + suffix;
  const uint32_t texel_mask = tune_.texel ? 0b1110 : 0;  // x, W, norm_w
  const uint32_t D = uint32_t(cfg_.d_model), E = uint32_t(cfg_.d_inner), V = uint32_t(cfg_.vocab_size);
  const uint32_t cap = uint32_t(capacity_);
  const uint32_t eps = float_bits(cfg_.norm_eps);
  const bool bias = cfg_.use_bias;
  // matvec spec constants: local, ROWS, COLS, COLS4, Y_STRIDE, ROW_GROUPS, NORM, ACCUM, HAS_BIAS, EPS
  in_pipe_ = std::make_unique<ComputePipeline>(*ctx_, matvec, 6, 0, std::vector<uint32_t>{
      tune_.local, 2 * E, D, dpad_ / 4, xz_stride_, tune_.row_groups, 1, 0, bias, eps}, texel_mask);
  out_pipe_ = std::make_unique<ComputePipeline>(*ctx_, matvec, 6, 0, std::vector<uint32_t>{
      tune_.local, D, E, epad_ / 4, dpad_, tune_.row_groups, 0, 1, bias, eps}, texel_mask);
  head_pipe_ = std::make_unique<ComputePipeline>(*ctx_, matvec, 6, 0, std::vector<uint32_t>{
      tune_.local, V, D, dpad_ / 4, V, tune_.row_groups, 1, 0, 0, eps}, texel_mask);
  conv_pipe_ = std::make_unique<ComputePipeline>(*ctx_, "conv_x_proj" + suffix, 8, 0, std::vector<uint32_t>{
      tune_.local, E, uint32_t(cfg_.d_conv), J_, tune_.conv_chunk, nchunk_, cap, xz_stride_, epad_});
  ssm_pipe_ = std::make_unique<ComputePipeline>(*ctx_, "ssm_update" + suffix, 10, 0, std::vector<uint32_t>{
      tune_.local, E, uint32_t(cfg_.d_state), uint32_t(cfg_.dt_rank), tune_.ssm_chunk, nchunk_, cap,
      xz_stride_, epad_, epad_, J_});
  embed_pipe_ = std::make_unique<ComputePipeline>(*ctx_, "embed_gather" + suffix, 3, 0, std::vector<uint32_t>{
      64, D, dpad_, dpad_});
}

void Mamba1Vulkan::create_descriptor_sets() {
  const uint32_t sets = 2 + 4 * uint32_t(cfg_.n_layer);
  arena_ = std::make_unique<DescriptorArena>(*ctx_, sets, sets * 10);
  const GpuBuffer& head = lm_head_.handle() ? lm_head_ : embeddings_;
  // matvec inputs: plain storage bindings, or texel views of the same buffers.
  auto in = [&](const GpuBuffer& b, bool weights) {
    return BufferBinding{&b, 0, 0, tune_.texel ? view(b, weights) : VkBufferView(VK_NULL_HANDLE)};
  };
  const BufferBinding resid_in = in(resid_, false), y_in = in(y_, false), dummy_in = in(dummy_, false);
  embed_set_ = arena_->make_set(*embed_pipe_, {{&step_in_}, {&embeddings_}, {&resid_}});
  head_set_ = arena_->make_set(*head_pipe_, {{&step_in_}, resid_in, in(head, true), in(norm_f_, false),
                                             {&dummy_}, {&logits_}});
  for (Layer& L : layers_) {
    const GpuBuffer& in_b = L.in_proj_b.handle() ? L.in_proj_b : dummy_;
    const GpuBuffer& out_b = L.out_proj_b.handle() ? L.out_proj_b : dummy_;
    L.in_set = arena_->make_set(*in_pipe_, {{&step_in_}, resid_in, in(L.in_proj, true), in(L.norm, false),
                                            {&in_b}, {&xz_}});
    L.conv_set = arena_->make_set(*conv_pipe_, {{&step_in_}, {&xz_}, {&L.conv_state}, {&L.conv_w},
                                                {&L.conv_b}, {&L.x_proj_t}, {&xc_}, {&partial_}});
    L.ssm_set = arena_->make_set(*ssm_pipe_, {{&step_in_}, {&partial_}, {&xz_}, {&xc_}, {&L.dt_w}, {&L.dt_b},
                                              {&L.a_neg}, {&L.d_skip}, {&L.ssm_state}, {&y_}});
    L.out_set = arena_->make_set(*out_pipe_, {{&step_in_}, y_in, in(L.out_proj, true), dummy_in, {&out_b},
                                              {&resid_}});
  }
}

VkBufferView Mamba1Vulkan::view(const GpuBuffer& b, bool weights) {
  VkBufferViewCreateInfo ci{};
  ci.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO;
  ci.buffer = b.handle();
  ci.format = weights && f16_ ? VK_FORMAT_R16G16B16A16_SFLOAT : VK_FORMAT_R32G32B32A32_SFLOAT;
  ci.offset = 0;
  ci.range = VK_WHOLE_SIZE;
  VkBufferView v = VK_NULL_HANDLE;
  VK_CHECK(vkCreateBufferView(ctx_->device(), &ci, nullptr, &v));
  views_.push_back(v);
  return v;
}

void Mamba1Vulkan::barrier(VkCommandBuffer cb) {
  VkMemoryBarrier mb{};
  mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
  mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
  mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
  vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1,
                       &mb, 0, nullptr, 0, nullptr);
}

// The whole step, recorded once: embedding, 4 dispatches per layer, final norm + lm_head.
void Mamba1Vulkan::record() {
  VkDevice dev = ctx_->device();
  VkCommandBufferAllocateInfo ai{};
  ai.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
  ai.commandPool = ctx_->command_pool();
  ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  ai.commandBufferCount = 1;
  VK_CHECK(vkAllocateCommandBuffers(dev, &ai, &cmd_));
  VK_CHECK(vkAllocateCommandBuffers(dev, &ai, &cmd_no_head_));
  VkFenceCreateInfo fi{};
  fi.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
  VK_CHECK(vkCreateFence(dev, &fi, nullptr, &fence_));
  record_step(cmd_, true);
  record_step(cmd_no_head_, false);
}

void Mamba1Vulkan::record_step(VkCommandBuffer cb, bool with_head) {
  const uint32_t max_x = ctx_->caps().max_workgroup_count_x;
  const uint32_t rows_per_wg = 4 * tune_.row_groups;
  const uint32_t E = uint32_t(cfg_.d_inner), D = uint32_t(cfg_.d_model), V = uint32_t(cfg_.vocab_size);
  VkCommandBufferBeginInfo bi{};
  bi.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
  VK_CHECK(vkBeginCommandBuffer(cb, &bi));
  uint32_t n = 0;
  auto run = [&](const ComputePipeline& p, VkDescriptorSet set, uint32_t groups) {
    vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, p.handle());
    vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE, p.layout(), 0, 1, &set, 0, nullptr);
    dispatch_linear(cb, groups, max_x);
    barrier(cb);
    ++n;
  };
  run(*embed_pipe_, embed_set_, ceil_div(D, 64));
  for (const Layer& L : layers_) {
    run(*in_pipe_, L.in_set, ceil_div(2 * E, rows_per_wg));          // (a) RMSNorm + in_proj
    run(*conv_pipe_, L.conv_set, nchunk_);                           // (b) conv + SiLU + x_proj
    run(*ssm_pipe_, L.ssm_set, ceil_div(E, tune_.ssm_chunk));        // (c) dt, scan, D, gate
    run(*out_pipe_, L.out_set, ceil_div(D, rows_per_wg));            // (d) out_proj + residual
  }
  if (with_head) {
    run(*head_pipe_, head_set_, ceil_div(V, rows_per_wg));           // norm_f + lm_head
    // The logits were written straight into host-visible memory: make them visible to the host.
    VkMemoryBarrier mb{};
    mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
    mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0,
                         nullptr, 0, nullptr);
    dispatches_per_step_ = n;
  }
  VK_CHECK(vkEndCommandBuffer(cb));
  counters_.recordings++;
}

void Mamba1Vulkan::submit_and_wait(VkCommandBuffer cb) {
  VkSubmitInfo si{};
  si.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
  si.commandBufferCount = 1;
  si.pCommandBuffers = &cb;
  VK_CHECK(vkQueueSubmit(ctx_->queue(), 1, &si, fence_));
  VK_CHECK(vkWaitForFences(ctx_->device(), 1, &fence_, VK_TRUE, UINT64_MAX));
  VK_CHECK(vkResetFences(ctx_->device(), 1, &fence_));
}

// Runs the recorded step once with zero streams at load time: drivers that finish compiling on
// first use do it now, not on the first token, and no state is touched.
void Mamba1Vulkan::warm_up() {
  static_cast<uint32_t*>(step_in_.mapped())[0] = 0;
  submit_and_wait(cmd_);
  submit_and_wait(cmd_no_head_);
}

void Mamba1Vulkan::check_slot(int slot) const {
  if (slot < 0 || slot >= capacity_)
    throw Error("slot " + std::to_string(slot) + " out of range [0, " + std::to_string(capacity_) + ")");
}

void Mamba1Vulkan::reset(int slot) {
  check_slot(slot);
  fresh_[slot] = 1;
}

// ---- state snapshot / restore / fork: one-time command buffers, never on the step path ------

namespace {
// Orders the state copies after (or before) the compute shaders of earlier (later) steps, and
// makes copies into host-visible memory visible to the host.
void state_barrier(VkCommandBuffer cb, VkPipelineStageFlags src_stage, VkAccessFlags src,
                   VkPipelineStageFlags dst_stage, VkAccessFlags dst) {
  VkMemoryBarrier mb{};
  mb.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
  mb.srcAccessMask = src;
  mb.dstAccessMask = dst;
  vkCmdPipelineBarrier(cb, src_stage, dst_stage, 0, 1, &mb, 0, nullptr, 0, nullptr);
}
constexpr VkAccessFlags kShaderRW = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
constexpr VkAccessFlags kTransferRW = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
}  // namespace

void Mamba1Vulkan::copy_slot_states(VkCommandBuffer cb, int slot, VkBuffer host, bool to_host) const {
  const uint64_t L = uint64_t(cfg_.n_layer), E = uint64_t(cfg_.d_inner);
  const uint64_t conv = E * uint64_t(cfg_.d_conv) * 4, ssm = E * uint64_t(cfg_.d_state) * 4;
  for (uint64_t l = 0; l < L; ++l) {
    const Layer& layer = layers_[l];
    VkBufferCopy c{uint64_t(slot) * conv, l * conv, conv};
    VkBufferCopy s{uint64_t(slot) * ssm, L * conv + l * ssm, ssm};
    if (to_host) {
      vkCmdCopyBuffer(cb, layer.conv_state.handle(), host, 1, &c);
      vkCmdCopyBuffer(cb, layer.ssm_state.handle(), host, 1, &s);
    } else {
      std::swap(c.srcOffset, c.dstOffset);
      std::swap(s.srcOffset, s.dstOffset);
      vkCmdCopyBuffer(cb, host, layer.conv_state.handle(), 1, &c);
      vkCmdCopyBuffer(cb, host, layer.ssm_state.handle(), 1, &s);
    }
  }
}

std::vector<uint8_t> Mamba1Vulkan::snapshot(int slot) const {
  check_slot(slot);
  std::vector<float> payload(state_header_.payload_floats, 0.0f);
  if (!fresh_[slot]) {  // a fresh slot logically holds zeros, whatever its buffers still contain
    GpuBuffer host(*ctx_, payload.size() * 4, GpuBuffer::Kind::Readback, "state snapshot");
    ctx_->run_once([&](VkCommandBuffer cb) {
      state_barrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
                    VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_READ_BIT);
      copy_slot_states(cb, slot, host.handle(), true);
      state_barrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                    VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
    });
    std::memcpy(payload.data(), host.mapped(), payload.size() * 4);
  }
  return encode_state(state_header_, payload.data(), payload.size());
}

void Mamba1Vulkan::restore(int slot, const uint8_t* data, size_t size) {
  check_slot(slot);
  const std::vector<float> payload = decode_state(data, size, state_header_);  // throws before any change
  GpuBuffer host(*ctx_, payload.size() * 4, GpuBuffer::Kind::Upload, "state restore");
  std::memcpy(host.mapped(), payload.data(), payload.size() * 4);
  ctx_->run_once([&](VkCommandBuffer cb) {
    // (The host's writes to `host` are visible to the GPU by the submit itself.)
    state_barrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, kShaderRW, VK_PIPELINE_STAGE_TRANSFER_BIT,
                  kTransferRW);
    copy_slot_states(cb, slot, host.handle(), false);
    state_barrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                  VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, kShaderRW);
  });
  fresh_[slot] = 0;
}

void Mamba1Vulkan::fork(int from_slot, int to_slot) {
  check_slot(from_slot);
  check_slot(to_slot);
  if (from_slot == to_slot) return;
  fresh_[to_slot] = fresh_[from_slot];
  if (fresh_[from_slot]) return;  // both now start from zeros: nothing to copy
  const uint64_t E = uint64_t(cfg_.d_inner);
  const uint64_t conv = E * uint64_t(cfg_.d_conv) * 4, ssm = E * uint64_t(cfg_.d_state) * 4;
  ctx_->run_once([&](VkCommandBuffer cb) {
    state_barrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, kShaderRW, VK_PIPELINE_STAGE_TRANSFER_BIT,
                  kTransferRW);
    // Same buffer, distinct slots: the regions never overlap.
    const VkBufferCopy c{uint64_t(from_slot) * conv, uint64_t(to_slot) * conv, conv};
    const VkBufferCopy s{uint64_t(from_slot) * ssm, uint64_t(to_slot) * ssm, ssm};
    for (const Layer& layer : layers_) {
      vkCmdCopyBuffer(cb, layer.conv_state.handle(), layer.conv_state.handle(), 1, &c);
      vkCmdCopyBuffer(cb, layer.ssm_state.handle(), layer.ssm_state.handle(), 1, &s);
    }
    state_barrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                  VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, kShaderRW);
  });
}

void Mamba1Vulkan::step(const int32_t* tokens, const int32_t* slots, int batch, float* logits) {
  if (batch < 1 || batch > capacity_)
    throw Error("batch of " + std::to_string(batch) + " streams exceeds the capacity of " +
                std::to_string(capacity_) + " (LoadOptions::max_streams)");
  const int64_t V = cfg_.vocab_size;
  // Validate everything before touching anything. slot_marks_ is preallocated: the per-token path
  // allocates nothing.
  int bad = -1;
  std::string why;
  for (int b = 0; b < batch && bad < 0; ++b) {
    if (tokens[b] < 0 || tokens[b] >= V)
      why = "token id " + std::to_string(tokens[b]) + " out of range [0, " + std::to_string(V) + ")";
    else if (slots[b] < 0 || slots[b] >= capacity_)
      why = "slot " + std::to_string(slots[b]) + " out of range [0, " + std::to_string(capacity_) + ")";
    else if (slot_marks_[slots[b]])
      why = "slot " + std::to_string(slots[b]) + " appears twice in one step";
    else
      slot_marks_[slots[b]] = 1;
    if (!why.empty()) bad = b;
  }
  for (int b = 0; b < (bad < 0 ? batch : bad); ++b) slot_marks_[slots[b]] = 0;
  if (bad >= 0) throw Error(why);

  uint32_t* in = static_cast<uint32_t*>(step_in_.mapped());
  const uint32_t cap = uint32_t(capacity_);
  in[0] = uint32_t(batch);
  for (int b = 0; b < batch; ++b) {
    in[4 + b] = uint32_t(tokens[b]);
    in[4 + cap + b] = uint32_t(slots[b]);
    in[4 + 2 * cap + b] = fresh_[slots[b]];
  }
  submit_and_wait(logits ? cmd_ : cmd_no_head_);
  for (int b = 0; b < batch; ++b) fresh_[slots[b]] = 0;
  if (logits) std::memcpy(logits, logits_.mapped(), size_t(batch) * V * 4);
  counters_.steps++;
  counters_.submits++;
  counters_.dispatches += logits ? dispatches_per_step_ : dispatches_per_step_ - 1;
}

}  // namespace

std::unique_ptr<Model> create_mamba1_vulkan(const Mamba1Weights& weights, const LoadOptions& options) {
  return std::make_unique<Mamba1Vulkan>(weights, options);
}

}  // namespace vkssm

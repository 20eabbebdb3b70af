// Mamba-1 on the `cpu` backend: the reference step (mamba1_cpu.cpp) on the flat state layout of
// state blobs (or, for `cpu`, mamba1_cpu_fast.cpp's stepper), plus what ModelInfo and the state header say about a Mamba-1 model (shared with
// the Vulkan backend, so both describe and serialise a model identically).
#include <algorithm>

#include "engine/cpu_model.h"
#include "engine/weight_storage.h"
#include "host/error.h"
#include "models/mamba1/mamba1_model.h"

namespace vkssm {

ModelInfo mamba1_model_info(const Mamba1Weights& w) {
  const Mamba1Config& c = w.cfg;
  ModelInfo info;
  info.architecture = mamba1_architecture_name(c);
  info.vocab_size = c.vocab_size;
  info.d_output = c.vocab_size;
  info.d_model = c.d_model;
  info.n_layer = c.n_layer;
  info.weight_bytes = uint64_t(w.parameter_count()) * 4;
  info.state_bytes_per_stream = uint64_t(c.n_layer) * c.d_inner * (c.d_conv + c.d_state) * 4;
  return info;
}

StateHeader mamba1_state_header(const Mamba1Weights& w) {
  const Mamba1Config& c = w.cfg;
  return {mamba1_fingerprint(w), mamba1_architecture_name(c),
          {uint64_t(c.n_layer), uint64_t(c.d_inner), uint64_t(c.d_conv), uint64_t(c.d_state)},
          uint64_t(c.n_layer) * c.d_inner * (c.d_conv + c.d_state)};
}

namespace {

// Blob payload = conv states [L][E][K], then ssm states [L][E][N]: the reference's State, flat.
class Mamba1CpuStepper final : public CpuStepper {
 public:
  explicit Mamba1CpuStepper(const Mamba1Weights& w) : weights_(w), ref_(weights_), scratch_(ref_.new_state()) {}
  size_t state_floats() const override { return scratch_.conv.size() + scratch_.ssm.size(); }
  void step_token(float* state, int32_t token, float* out) const override {
    const size_t nc = scratch_.conv.size(), ns = scratch_.ssm.size();
    std::copy_n(state, nc, scratch_.conv.begin());
    std::copy_n(state + nc, ns, scratch_.ssm.begin());
    ref_.step(scratch_, token, out);
    std::copy_n(scratch_.conv.begin(), nc, state);
    std::copy_n(scratch_.ssm.begin(), ns, state + nc);
  }

 private:
  Mamba1Weights weights_;
  Mamba1CpuReference ref_;
  mutable Mamba1CpuReference::State scratch_;
};

// The stepper `options` asks for, on weights already as the backend computes with them.
std::unique_ptr<CpuStepper> make_stepper(const Mamba1Weights& w, const LoadOptions& options) {
  if (options.backend != BackendKind::Cpu) return std::make_unique<Mamba1CpuStepper>(w);
#if VKSSM_CPU_FAST
  return make_mamba1_cpu_fast(w, options);
#else
  throw Error("backend cpu: this vkssm was built without it (cmake -DVKSSM_CPU_FAST=OFF)");
#endif
}

}  // namespace

std::unique_ptr<Model> create_mamba1_cpu(const Mamba1Weights& weights, const LoadOptions& options) {
  ModelInfo info = mamba1_model_info(weights);
  if (options.backend == BackendKind::Cpu && options.weights == WeightStorage::F16) info.weight_type = "f16";
  if (quant_type_of(options.weights)) {
    // The matrices mamba1_vulkan.cpp uploads with WeightUploader::matrix, as it stores them.
    Mamba1Weights q = weights;
    store_token_model_ends_as(options.weights, q, q.cfg.d_model);
    for (Mamba1LayerWeights& l : q.layers) {
      store_as(options.weights, l.in_proj, q.cfg.d_model);
      store_as(options.weights, l.x_proj, q.cfg.d_inner);
      store_as(options.weights, l.out_proj, q.cfg.d_inner);
    }
    return create_cpu_model(make_stepper(q, options), info, mamba1_state_header(q), options);
  }
  return create_cpu_model(make_stepper(weights, options), info, mamba1_state_header(weights), options);
}

}  // namespace vkssm

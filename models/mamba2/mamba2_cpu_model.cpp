// Mamba-2 on the `cpu` backend: the reference step (mamba2_cpu.cpp) behind engine/cpu_model.h
// (or, for `cpu`, mamba2_cpu_fast.cpp's stepper),
// plus what ModelInfo and the state header say about a Mamba-2 model (shared with the Vulkan
// backend, so both describe and serialise a model identically).
#include "engine/cpu_model.h"
#include "engine/weight_storage.h"
#include "host/error.h"
#include "models/mamba2/mamba2_model.h"

namespace vkssm {

ModelInfo mamba2_model_info(const Mamba2Weights& w) {
  const Mamba2Config& c = w.cfg;
  ModelInfo info;
  info.architecture = "mamba2";
  info.vocab_size = c.vocab_size;
  info.d_output = c.vocab_size;
  info.d_model = c.d_model;
  info.n_layer = c.n_layer;
  info.weight_bytes = uint64_t(w.parameter_count()) * 4;
  info.state_bytes_per_stream = uint64_t(c.n_layer) * uint64_t(c.conv_dim() * c.d_conv + c.d_inner * c.d_state) * 4;
  return info;
}

StateHeader mamba2_state_header(const Mamba2Weights& w) {
  const Mamba2Config& c = w.cfg;
  return {mamba2_fingerprint(w), "mamba2",
          {uint64_t(c.n_layer), uint64_t(c.conv_dim()), uint64_t(c.d_conv), uint64_t(c.n_heads),
           uint64_t(c.head_dim), uint64_t(c.d_state)},
          uint64_t(c.n_layer) * uint64_t(c.conv_dim() * c.d_conv + c.d_inner * c.d_state)};
}

namespace {

// The stepper `options` asks for; the reference already steps the blob's flat layout in place.
std::unique_ptr<CpuStepper> make_stepper(const Mamba2Weights& w, const LoadOptions& options) {
  if (options.backend != BackendKind::Cpu)
    return std::make_unique<FlatReferenceStepper<Mamba2Weights, Mamba2CpuReference, false>>(w);
#if VKSSM_CPU_FAST
  return make_mamba2_cpu_fast(w, options);
#else
  throw Error("backend cpu: this vkssm was built without it (cmake -DVKSSM_CPU_FAST=OFF)");
#endif
}

}  // namespace

std::unique_ptr<Model> create_mamba2_cpu(const Mamba2Weights& weights, const LoadOptions& options) {
  ModelInfo info = mamba2_model_info(weights);
  if (options.backend == BackendKind::Cpu && options.weights == WeightStorage::F16) info.weight_type = "f16";
  if (quant_type_of(options.weights)) {
    // The matrices mamba2_vulkan.cpp uploads with WeightUploader::matrix, as it stores them.
    Mamba2Weights q = weights;
    store_token_model_ends_as(options.weights, q, q.cfg.d_model);
    for (Mamba2LayerWeights& l : q.layers) {
      store_as(options.weights, l.in_proj, q.cfg.d_model);
      store_as(options.weights, l.out_proj, q.cfg.d_inner);
    }
    return create_cpu_model(make_stepper(q, options), info, mamba2_state_header(q), options);
  }
  return create_cpu_model(make_stepper(weights, options), info, mamba2_state_header(weights), options);
}

}  // namespace vkssm

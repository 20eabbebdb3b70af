// S4D on the `reference` backend: the reference step (s4d_cpu.cpp) behind the Model interface (or,
// for `cpu`, s4d_cpu_fast.cpp's stepper), plus what ModelInfo and the state header say about an S4D
// model (shared with any other backend, so all describe and serialise a model identically).
#include "engine/cpu_model.h"
#include "engine/weight_storage.h"
#include "host/error.h"
#include "models/s4d/s4d_model.h"

namespace vkssm {

ModelInfo s4d_model_info(const S4DWeights& w) {
  const S4DConfig& c = w.cfg;
  ModelInfo info;
  info.architecture = "s4d";
  info.vocab_size = 0;
  info.d_input = c.d_input;
  info.d_output = c.d_output;
  info.d_model = c.d_model;
  info.n_layer = c.n_layers;
  info.weight_bytes = uint64_t(w.step_weight_floats()) * 4;
  info.state_bytes_per_stream = uint64_t(c.n_layers) * uint64_t(c.d_model) * uint64_t(c.d_state) * 4;
  return info;
}

StateHeader s4d_state_header(const S4DWeights& w) {
  const S4DConfig& c = w.cfg;
  return {s4d_fingerprint(w), "s4d",
          {uint64_t(c.n_layers), uint64_t(c.d_model), uint64_t(c.modes()), 2},
          uint64_t(c.n_layers) * uint64_t(c.d_model) * uint64_t(c.d_state)};
}

namespace {

// The stepper `options` asks for, on weights already as the backend computes with them. The
// reference already steps the blob's flat layout in place.
std::unique_ptr<CpuStepper> make_stepper(const S4DWeights& w, const LoadOptions& options) {
  if (options.backend != BackendKind::Cpu)
    return std::make_unique<FlatReferenceStepper<S4DWeights, S4DCpuReference, true>>(w);
#if VKSSM_CPU_FAST
  return make_s4d_cpu_fast(w, options);
#else
  throw Error("backend cpu: this vkssm was built without it (cmake -DVKSSM_CPU_FAST=OFF)");
#endif
}

}  // namespace

std::unique_ptr<Model> create_s4d_cpu(const S4DWeights& weights, const LoadOptions& options) {
  ModelInfo info = s4d_model_info(weights);
  if (options.backend == BackendKind::Cpu && options.weights == WeightStorage::F16) info.weight_type = "f16";
  if (quant_type_of(options.weights)) {
    // The matrices s4d_vulkan.cpp uploads with WeightUploader::matrix, as it stores them.
    S4DWeights q = weights;
    store_as(options.weights, q.encoder_w, q.cfg.d_input);
    store_as(options.weights, q.decoder_w, q.cfg.d_model);
    for (auto& l : q.layers) store_as(options.weights, l.out_w, q.cfg.d_model);
    return create_cpu_model(make_stepper(q, options), info, s4d_state_header(q), options);
  }
  return create_cpu_model(make_stepper(weights, options), info, s4d_state_header(weights), options);
}

}  // namespace vkssm

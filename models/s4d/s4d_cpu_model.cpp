// S4D on the `cpu` backend: the reference step (s4d_cpu.cpp) behind the Model interface, plus what
// ModelInfo and the state header say about an S4D model (shared with any other backend, so all
// describe and serialise a model identically).
#include "engine/cpu_model.h"
#include "engine/weight_storage.h"
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

// The reference already steps the blob's flat layout in place.
std::unique_ptr<Model> create_s4d_cpu(const S4DWeights& weights, const LoadOptions& options) {
  using Stepper = FlatReferenceStepper<S4DWeights, S4DCpuReference, true>;
  if (quant_type_of(options.weights)) {
    // The matrices s4d_vulkan.cpp uploads with WeightUploader::matrix, as it stores them.
    S4DWeights q = weights;
    store_as(options.weights, q.encoder_w, q.cfg.d_input);
    store_as(options.weights, q.decoder_w, q.cfg.d_model);
    for (auto& l : q.layers) store_as(options.weights, l.out_w, q.cfg.d_model);
    return create_cpu_model(std::make_unique<Stepper>(q), s4d_model_info(q), s4d_state_header(q), options);
  }
  return create_cpu_model(std::make_unique<Stepper>(weights), s4d_model_info(weights), s4d_state_header(weights),
                          options);
}

}  // namespace vkssm

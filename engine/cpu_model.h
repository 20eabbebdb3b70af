#pragma once
// The `cpu` backend: any architecture's CPU reference behind the Model interface, so the CLI and
// the tests switch backends with one flag. The reference only has to step one stream held as a
// flat float vector (the payload of a state blob, host/state_file.h); this file does the rest:
// slots, batch checks, snapshot/restore/fork, the rollback ring, sampling and counters.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/vkssm.hpp"
#include "host/state_file.h"

namespace vkssm {

// One architecture's reference step on a flat per-stream state.
class CpuStepper {
 public:
  virtual ~CpuStepper() = default;
  // Floats in one stream's state (equal to the blob payload; zeros = a fresh stream).
  virtual size_t state_floats() const = 0;
  // Token models: advances `state` by `token` (already range-checked), writes vocab_size logits.
  virtual void step_token(float* state, int32_t token, float* out) const;
  // Frame models: advances `state` by one frame of d_input floats, writes d_output floats.
  virtual void step_frame(float* state, const float* frame, float* out) const;
  // Token models, all streams of a step at once (distinct states): stream b writes its logits at
  // out + b * out_stride. out_stride 0 means nobody reads them (out is one row of scratch), and a
  // stepper may skip computing them. The default steps the streams one by one.
  virtual void step_tokens(float* const* states, const int32_t* tokens, int batch, float* out,
                           size_t out_stride) const;
  // Frame models, all streams of a step at once (distinct states): stream b's frame is at
  // frames + b * frame_stride, its outputs go to out + b * out_stride (out_stride 0 as above).
  // The default steps the streams one by one.
  virtual void step_frames(float* const* states, const float* frames, size_t frame_stride, int batch, float* out,
                           size_t out_stride) const;
  // Token models: advances `state` by the n >= 1 tokens of a prompt, writes the last one's logits
  // to `last`. The default steps them one by one (a fast stepper runs the projections for many
  // tokens at once: each weight read once per chunk of the prompt).
  virtual void prefill(float* state, const int32_t* tokens, int n, float* last) const;
  // What ModelInfo::device_name says; empty for the reference (CpuModel then names it).
  virtual std::string device_name() const { return ""; }
  // ModelInfo::weight_bytes, given what the weights take as fp32: a fast stepper stores its
  // matrices in panels, as fp16 under WeightStorage::F16, else as int8 blocks where exact
  // (engine/cpu/matmul.h).
  virtual uint64_t weight_bytes(uint64_t f32_bytes) const { return f32_bytes; }
  // ModelInfo::weight_type when the stepper stores weights other than as fp32; else empty.
  virtual std::string weight_type() const { return ""; }
};

// The stepper of a reference that already steps the blob's flat layout in place:
// Reference(const Weights&), Reference::state_floats(), and Reference::step(state, token or
// frame, out). It keeps its own copy of the weights, which the reference points into.
template <class Weights, class Reference, bool kFrameModel>
class FlatReferenceStepper final : public CpuStepper {
 public:
  explicit FlatReferenceStepper(const Weights& w) : weights_(w), ref_(weights_) {}
  size_t state_floats() const override { return ref_.state_floats(); }
  void step_token(float* state, int32_t token, float* out) const override {
    if constexpr (kFrameModel) CpuStepper::step_token(state, token, out);
    else ref_.step(state, token, out);
  }
  void step_frame(float* state, const float* frame, float* out) const override {
    if constexpr (kFrameModel) ref_.step(state, frame, out);
    else CpuStepper::step_frame(state, frame, out);
  }

 private:
  Weights weights_;  // ref_ points here: declared first, so built first
  Reference ref_;
};

// `info` describes the model (architecture, sizes; backend and device are filled in here);
// `header` is what its state blobs say. Throws vkssm::Error when capacity < 1. Under
// BackendKind::Cpu a reference stepper (no device_name) runs as the backend's fallback, and
// ModelInfo::device_name says so.
std::unique_ptr<Model> create_cpu_model(std::unique_ptr<CpuStepper> stepper, const ModelInfo& info,
                                        const StateHeader& header, const LoadOptions& options);

}  // namespace vkssm

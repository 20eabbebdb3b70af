// The `cpu` backend: the Mamba-1 CPU reference behind the same Model interface as the GPU path,
// so the CLI and tests can switch backends with one flag.
#include "engine/cpu_model.h"

#include <algorithm>
#include <cstring>

#include "host/error.h"
#include "host/state_file.h"

namespace vkssm {
namespace {

class Mamba1CpuModel final : public Model {
 public:
  Mamba1CpuModel(const Mamba1Weights& w, int capacity) : weights_(w), ref_(weights_) {
    if (capacity < 1) throw Error("max_streams must be at least 1, got " + std::to_string(capacity));
    states_.assign(capacity, ref_.new_state());
    const auto& c = weights_.cfg;
    info_.architecture = "mamba";
    info_.backend = "cpu";
    info_.device_name = "host CPU (reference)";
    info_.weight_type = "f32";
    info_.vocab_size = c.vocab_size;
    info_.d_model = c.d_model;
    info_.n_layer = c.n_layer;
    info_.weight_bytes = uint64_t(weights_.parameter_count()) * 4;
    info_.state_bytes_per_stream = uint64_t(c.n_layer) * c.d_inner * (c.d_conv + c.d_state) * 4;
    header_ = {mamba1_fingerprint(weights_), "mamba",
               {uint64_t(c.n_layer), uint64_t(c.d_inner), uint64_t(c.d_conv), uint64_t(c.d_state)},
               uint64_t(c.n_layer) * c.d_inner * (c.d_conv + c.d_state)};
  }
  const ModelInfo& info() const override { return info_; }
  int capacity() const override { return int(states_.size()); }
  void reset(int slot) override {
    check_slot(slot);
    states_[slot] = ref_.new_state();
  }
  void step(const int32_t* tokens, const int32_t* slots, int batch, float* logits) override {
    if (batch < 1 || batch > capacity())
      throw Error("batch of " + std::to_string(batch) + " streams exceeds the capacity of " +
                  std::to_string(capacity()) + " (LoadOptions::max_streams)");
    const int64_t V = info_.vocab_size;
    for (int b = 0; b < batch; ++b) {
      check_slot(slots[b]);
      if (tokens[b] < 0 || tokens[b] >= V)
        throw Error("token id " + std::to_string(tokens[b]) + " out of range [0, " + std::to_string(V) + ")");
      for (int c = 0; c < b; ++c)
        if (slots[c] == slots[b]) throw Error("slot " + std::to_string(slots[b]) + " appears twice in one step");
    }
    std::vector<float> scratch(V);
    for (int b = 0; b < batch; ++b)
      ref_.step(states_[slots[b]], tokens[b], logits ? logits + size_t(b) * V : scratch.data());
    counters_.steps++;
  }
  StepCounters counters() const override { return counters_; }

  // The reference state already has the blob's layout: conv [L][E][K], then ssm [L][E][N].
  std::vector<uint8_t> snapshot(int slot) const override {
    check_slot(slot);
    const auto& st = states_[slot];
    std::vector<float> payload(st.conv);
    payload.insert(payload.end(), st.ssm.begin(), st.ssm.end());
    return encode_state(header_, payload.data(), payload.size());
  }
  void restore(int slot, const uint8_t* data, size_t size) override {
    check_slot(slot);
    std::vector<float> payload = decode_state(data, size, header_);  // validated before any change
    auto& st = states_[slot];
    std::copy_n(payload.begin(), st.conv.size(), st.conv.begin());
    std::copy_n(payload.begin() + st.conv.size(), st.ssm.size(), st.ssm.begin());
  }
  void fork(int from_slot, int to_slot) override {
    check_slot(from_slot);
    check_slot(to_slot);
    states_[to_slot] = states_[from_slot];
  }

 private:
  void check_slot(int slot) const {
    if (slot < 0 || slot >= capacity())
      throw Error("slot " + std::to_string(slot) + " out of range [0, " + std::to_string(capacity()) + ")");
  }
  Mamba1Weights weights_;
  Mamba1CpuReference ref_;
  std::vector<Mamba1CpuReference::State> states_;
  ModelInfo info_;
  StepCounters counters_;
  StateHeader header_;  // what a state blob of this model says
};

}  // namespace

std::unique_ptr<Model> create_mamba1_cpu(const Mamba1Weights& weights, int capacity) {
  return std::make_unique<Mamba1CpuModel>(weights, capacity);
}

}  // namespace vkssm

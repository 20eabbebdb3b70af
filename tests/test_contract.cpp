// The contract every architecture keeps on both backends, checked the same way for all of them:
// state snapshots (exact bytes, restorable into any slot and into the other backend), fork,
// rollback, prefill, asynchronous submit/collect, streams joining and leaving a batch, sampling on
// the device, create/destroy cycles, and the exact errors for bad input.
//
// Every architecture is ONE entry of kArchitectures below: how to make a small random model of it
// and its CPU reference. A new architecture gets the whole suite by adding its entry. Values are
// checked against the reference within tolerance(backend): exactly for the reference backend,
// within 1e-3 of max(1, |want|) for Vulkan and cpu; a backend is checked against itself bit for bit where the
// engine promises identical results (same state, same inputs; prefill vs steps; rollback).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/vkssm.hpp"
#include "host/sampling.h"
#include "host/state_file.h"
#include "models/mamba1/mamba1_model.h"
#include "models/mamba2/mamba2_model.h"
#include "models/s4d/s4d_model.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

using testing::HasSubstr;
using testing::StartsWith;
using testing_helpers::error_of;
using testing_helpers::max_rel_error;

constexpr int64_t kVocab = 300;  // token models: past one sampler block per thread, still quick
constexpr uint64_t kSeed = 11;

// The inputs of one stream, one row per step: token ids, or frames of d_input floats.
struct Inputs {
  std::vector<int32_t> tokens;
  std::vector<float> frames;
  int64_t d_input = 0;  // 0: token ids

  size_t size() const { return d_input ? frames.size() / size_t(d_input) : tokens.size(); }
  int32_t token(size_t t) const { return tokens[t]; }
  const float* frame(size_t t) const { return frames.data() + t * size_t(d_input); }
  Inputs slice(size_t from, size_t to) const {
    Inputs s{{}, {}, d_input};
    if (d_input)
      s.frames.assign(frame(from), frame(to));
    else
      s.tokens.assign(tokens.begin() + std::ptrdiff_t(from), tokens.begin() + std::ptrdiff_t(to));
    return s;
  }
  Inputs then(const Inputs& more) const {
    Inputs s = *this;
    s.tokens.insert(s.tokens.end(), more.tokens.begin(), more.tokens.end());
    s.frames.insert(s.frames.end(), more.frames.begin(), more.frames.end());
    return s;
  }
};

// ---- the architectures ---------------------------------------------------------------------------

// A random model's weights: the model on either backend, and the CPU reference.
class ArchModel {
 public:
  virtual ~ArchModel() = default;
  virtual std::unique_ptr<Model> create(const LoadOptions& options) const = 0;
  // The reference's outputs [n][d_output] for one stream fed `in` from a zero state.
  virtual std::vector<float> reference(const Inputs& in) const = 0;
};

template <class Weights, class Create, class Reference>
class ArchModelOf final : public ArchModel {
 public:
  ArchModelOf(Weights w, Create create, Reference reference)
      : w_(std::move(w)), create_(create), reference_(reference) {}
  std::unique_ptr<Model> create(const LoadOptions& options) const override { return create_(w_, options); }
  std::vector<float> reference(const Inputs& in) const override { return reference_(w_, in); }

 private:
  Weights w_;
  Create create_;
  Reference reference_;
};

template <class Weights, class Create, class Reference>
std::unique_ptr<ArchModel> arch_model(Weights w, Create create, Reference reference) {
  return std::make_unique<ArchModelOf<Weights, Create, Reference>>(std::move(w), create, reference);
}

// Runs step_one(t, out) for every row of `in`, each writing d_output floats.
template <class StepOne>
std::vector<float> run_reference(const Inputs& in, int64_t d_output, StepOne&& step_one) {
  std::vector<float> out(in.size() * size_t(d_output));
  for (size_t t = 0; t < in.size(); ++t) step_one(t, out.data() + t * size_t(d_output));
  return out;
}

// For references that step a flat state of state_floats() floats: ref.step(state, input, out),
// the input of row t being (in.*input)(t).
template <class Reference, class Weights, class Input>
std::vector<float> flat_state_reference(const Weights& w, const Inputs& in, int64_t d_output,
                                        Input (Inputs::*input)(size_t) const) {
  Reference ref(w);
  std::vector<float> state(ref.state_floats(), 0.0f);
  return run_reference(in, d_output, [&](size_t t, float* out) { ref.step(state.data(), (in.*input)(t), out); });
}

struct ContractArch {
  const char* name;  // in test names
  bool frame_model;
  std::function<std::unique_ptr<ArchModel>(uint64_t seed)> random;  // a small random model
};

// Mamba-1 and the architectures that are Mamba-1 with a flag (Falcon-Mamba) share this.
std::unique_ptr<ArchModel> mamba1_model(const Mamba1Config& config, uint64_t seed) {
  return arch_model(
      random_mamba1(config, seed), [](const Mamba1Weights& w, const LoadOptions& o) { return create_mamba1(w, o); },
      [](const Mamba1Weights& w, const Inputs& in) {
        Mamba1CpuReference ref(w);
        Mamba1CpuReference::State state = ref.new_state();
        return run_reference(in, w.cfg.vocab_size, [&](size_t t, float* out) { ref.step(state, in.tokens[t], out); });
      });
}

Mamba2Config small_mamba2_config() {
  return {.d_model = 16, .n_layer = 2, .vocab_size = kVocab, .d_state = 8, .expand = 2, .head_dim = 8, .n_groups = 1};
}

S4DConfig small_s4d_config() { return {.d_input = 3, .d_model = 16, .d_state = 8, .n_layers = 2, .d_output = 5}; }

Mamba1Config falcon_config() {
  Mamba1Config c = testing_helpers::small_mamba1_config(kVocab);
  c.dt_b_c_rms = true;
  return c;
}

const ContractArch kArchitectures[] = {
    {"mamba1", false, [](uint64_t seed) { return mamba1_model(testing_helpers::small_mamba1_config(kVocab), seed); }},
    {"falcon_mamba", false, [](uint64_t seed) { return mamba1_model(falcon_config(), seed); }},
    {"mamba2", false,
     [](uint64_t seed) {
       return arch_model(
           random_mamba2(small_mamba2_config(), seed),
           [](const Mamba2Weights& w, const LoadOptions& o) { return create_mamba2(w, o); },
           [](const Mamba2Weights& w, const Inputs& in) {
             return flat_state_reference<Mamba2CpuReference>(w, in, w.cfg.vocab_size, &Inputs::token);
           });
     }},
    {"s4d", true,
     [](uint64_t seed) {
       return arch_model(
           random_s4d(small_s4d_config(), seed),
           [](const S4DWeights& w, const LoadOptions& o) { return create_s4d(w, o); },
           [](const S4DWeights& w, const Inputs& in) {
             return flat_state_reference<S4DCpuReference>(w, in, w.cfg.d_output, &Inputs::frame);
           });
     }},
};

// Largest relative error each backend may show against the CPU reference: none for the
// reference backend, which runs the reference itself; Vulkan and cpu compute in fp32 with other
// summation orders.
float tolerance(BackendKind b) { return b == BackendKind::Reference ? 0.0f : 1e-3f; }

// ---- stepping helpers ----------------------------------------------------------------------------

// One row of a batched step: row t of a stream's inputs.
struct Row {
  const Inputs* in;
  size_t t;
};

// Steps `rows` (row i in slots[i]) as one batch; writes outputs [rows][d_output] when `out` is set.
void step_rows(Model& m, const std::vector<int32_t>& slots, const std::vector<Row>& rows, float* out) {
  if (m.info().d_input > 0) {
    std::vector<float> frames;
    for (const Row& r : rows) frames.insert(frames.end(), r.in->frame(r.t), r.in->frame(r.t + 1));
    m.step_frames(frames.data(), slots.data(), int(rows.size()), out);
  } else {
    std::vector<int32_t> tokens;
    for (const Row& r : rows) tokens.push_back(r.in->tokens[r.t]);
    m.step(tokens.data(), slots.data(), int(rows.size()), out);
  }
}

// Feeds `in` to `slot` one step per row; returns the outputs [rows][d_output].
std::vector<float> feed(Model& m, int slot, const Inputs& in) {
  const size_t d = size_t(m.info().d_output);
  std::vector<float> out(in.size() * d);
  for (size_t t = 0; t < in.size(); ++t) step_rows(m, {slot}, {{&in, t}}, out.data() + t * d);
  return out;
}

// The outputs of rows [from, end) of `all`.
std::vector<float> rows_from(const std::vector<float>& all, size_t from, int64_t d_output) {
  return std::vector<float>(all.begin() + std::ptrdiff_t(from * size_t(d_output)), all.end());
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, float tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  ASSERT_FALSE(got.empty()) << what;
  ASSERT_TRUE(std::all_of(got.begin(), got.end(), [](float x) { return std::isfinite(x); })) << what;
  EXPECT_LE(max_rel_error(got.data(), want.data(), int64_t(want.size())), tol) << what;
}

// ---- the suite -----------------------------------------------------------------------------------

struct ContractParam {
  const ContractArch* arch;
  BackendKind backend;
};

std::vector<ContractParam> all_params() {
  std::vector<ContractParam> p;
  for (const ContractArch& a : kArchitectures)
    for (BackendKind b : {BackendKind::Vulkan, BackendKind::Reference, BackendKind::Cpu}) {
#if !VKSSM_CPU_FAST
      if (b == BackendKind::Cpu) continue;  // built without it
#endif
      p.push_back({&a, b});
    }
  return p;
}

std::string param_name(const testing::TestParamInfo<ContractParam>& i) {
  return std::string(i.param.arch->name) + "_" + backend_name(i.param.backend);
}

void PrintTo(const ContractParam& p, std::ostream* os) { *os << p.arch->name << " on " << backend_name(p.backend); }

class Contract : public testing::TestWithParam<ContractParam> {
 protected:
  void SetUp() override { weights_ = arch().random(kSeed); }

  const ContractArch& arch() const { return *GetParam().arch; }
  bool frame_model() const { return arch().frame_model; }
  BackendKind backend() const { return GetParam().backend; }
  BackendKind other_backend() const { return backend() == BackendKind::Reference ? BackendKind::Vulkan : BackendKind::Reference; }
  float tol() const { return tolerance(backend()); }

  std::unique_ptr<Model> make(int streams = 4, int rollback = 0) const { return make_on(backend(), streams, rollback); }
  std::unique_ptr<Model> make_on(BackendKind b, int streams = 4, int rollback = 0) const {
    LoadOptions opt;
    opt.backend = b;
    opt.max_streams = streams;
    opt.rollback_depth = rollback;
    auto m = weights_->create(opt);
    if (!info_) info_ = std::make_unique<ModelInfo>(m->info());
    return m;
  }
  const ModelInfo& info() const {
    if (!info_) make_on(BackendKind::Reference, 1);
    return *info_;
  }
  int64_t d_output() const { return info().d_output; }

  // n rows of a stream's inputs; `salt` tells streams apart.
  Inputs inputs(int n, int salt) const {
    Inputs in{{}, {}, info().d_input};
    for (int t = 0; t < n; ++t) {
      if (in.d_input == 0) {
        in.tokens.push_back(int32_t((t * 37 + salt * 101 + 5) % info().vocab_size));
      } else {
        for (int64_t i = 0; i < in.d_input; ++i)
          in.frames.push_back(std::sin(0.7f * float(t) + 0.37f * float(i) + 1.3f * float(salt)));
      }
    }
    return in;
  }
  std::vector<float> reference(const Inputs& in) const { return weights_->reference(in); }

  std::unique_ptr<ArchModel> weights_;
  mutable std::unique_ptr<ModelInfo> info_;
};

// The blob layout host/state_file.h describes: magic, version, header bytes at offset 12, the
// header, the fp32 payload (state_bytes_per_stream) and an 8-byte checksum.
void expect_blob_layout(const std::vector<uint8_t>& blob, const ModelInfo& info) {
  ASSERT_GT(blob.size(), 16u);
  EXPECT_EQ(std::memcmp(blob.data(), "VKSSMST\0", 8), 0);
  uint32_t version = 0, header_bytes = 0;
  std::memcpy(&version, blob.data() + 8, 4);
  std::memcpy(&header_bytes, blob.data() + 12, 4);
  EXPECT_EQ(version, kStateFormatVersion);
  EXPECT_EQ(blob.size(), header_bytes + info.state_bytes_per_stream + 8);
  uint64_t sum = 0;
  std::memcpy(&sum, blob.data() + blob.size() - 8, 8);
  EXPECT_EQ(sum, fnv1a64(blob.data(), blob.size() - 8));
}

// Each backend names itself; on `cpu` every architecture runs its fast stepper (the device names
// its threads and SIMD target), not the reference the backend would fall back to without one.
TEST_P(Contract, InfoNamesTheBackendAndItsDevice) {
  auto m = make();
  EXPECT_EQ(m->info().backend, backend_name(backend()));
  if (backend() == BackendKind::Cpu) EXPECT_THAT(m->info().device_name, testing::StartsWith("host CPU (cpu: "));
  else if (backend() == BackendKind::Reference) EXPECT_EQ(m->info().device_name, "host CPU (reference)");
  else EXPECT_THAT(m->info().device_name, testing::Not(testing::StartsWith("host CPU")));
}

TEST_P(Contract, SnapshotRestoresIntoAnotherSlotAndTheOtherBackend) {
  const Inputs doc = inputs(12, 1);
  const std::vector<float> want = rows_from(reference(doc), 7, d_output());
  auto m = make();
  feed(*m, 0, doc.slice(0, 7));
  const std::vector<uint8_t> blob = m->snapshot(0);
  expect_blob_layout(blob, m->info());
  EXPECT_EQ(m->snapshot(0), blob);  // taking a snapshot changes nothing

  m->restore(3, blob.data(), blob.size());
  EXPECT_EQ(m->snapshot(3), blob);
  const std::vector<float> from_3 = feed(*m, 3, doc.slice(7, 12));
  const std::vector<float> from_0 = feed(*m, 0, doc.slice(7, 12));
  EXPECT_EQ(from_3, from_0);  // same backend, same state: the same outputs bit for bit
  expect_close(from_0, want, tol(), "slot 0 after its snapshot");

  // The same bytes restore on the other backend and continue like the reference.
  auto other = make_on(other_backend());
  other->restore(1, blob.data(), blob.size());
  EXPECT_EQ(other->snapshot(1), blob);
  expect_close(feed(*other, 1, doc.slice(7, 12)), want, tolerance(BackendKind::Vulkan), "the other backend");
}

TEST_P(Contract, ForkedSlotsFollowTheirOwnContinuations) {
  const Inputs prefix = inputs(5, 2), cont_a = inputs(6, 3), cont_b = inputs(6, 4);
  const std::vector<float> want_a = rows_from(reference(prefix.then(cont_a)), prefix.size(), d_output());
  const std::vector<float> want_b = rows_from(reference(prefix.then(cont_b)), prefix.size(), d_output());
  auto m = make();
  feed(*m, 0, prefix);
  m->fork(0, 2);
  m->fork(0, 0);  // a no-op
  EXPECT_EQ(m->snapshot(2), m->snapshot(0));

  const size_t d = size_t(d_output());
  std::vector<float> got_a, got_b, both(2 * d);
  for (size_t t = 0; t < cont_a.size(); ++t) {
    step_rows(*m, {2, 0}, {{&cont_b, t}, {&cont_a, t}}, both.data());
    got_b.insert(got_b.end(), both.begin(), both.begin() + std::ptrdiff_t(d));
    got_a.insert(got_a.end(), both.begin() + std::ptrdiff_t(d), both.end());
  }
  expect_close(got_a, want_a, tol(), "the original");
  expect_close(got_b, want_b, tol(), "the fork");

  // A fresh slot's state is zeros; forking it, or restoring its blob, makes a slot fresh.
  m->reset(1);
  const std::vector<uint8_t> zero = m->snapshot(1);
  const size_t payload = size_t(m->info().state_bytes_per_stream), header = zero.size() - payload - 8;
  EXPECT_TRUE(std::all_of(zero.begin() + std::ptrdiff_t(header), zero.end() - 8, [](uint8_t x) { return x == 0; }));
  m->fork(1, 2);
  EXPECT_EQ(m->snapshot(2), zero);
  expect_close(feed(*m, 2, cont_a), reference(cont_a), tol(), "forked from a fresh slot");
  m->restore(0, zero.data(), zero.size());
  expect_close(feed(*m, 0, cont_b), reference(cont_b), tol(), "restored from a fresh slot");
}

TEST_P(Contract, RollbackEqualsNeverHavingStepped) {
  auto m = make(2, 4);
  const Inputs a = inputs(6, 1), b = inputs(3, 2), c = inputs(4, 3);
  feed(*m, 0, a);
  const std::vector<uint8_t> after_a = m->snapshot(0);
  EXPECT_EQ(m->rollback_available(0), 4);  // 6 steps, depth 4
  feed(*m, 0, b);
  m->rollback(0, 3);
  EXPECT_EQ(m->snapshot(0), after_a);  // bit-identical state
  EXPECT_EQ(m->rollback_available(0), 1);
  // Continuing after the rollback equals continuing without the undone steps.
  auto straight = make(2, 0);
  feed(*straight, 0, a);
  const std::vector<float> got = feed(*m, 0, c);
  EXPECT_EQ(got, feed(*straight, 0, c));
  expect_close(got, rows_from(reference(a.then(c)), a.size(), d_output()), tol(), "after the rollback");
  EXPECT_EQ(m->rollback_available(0), 4);

  // Back to the very start: a fresh slot's zeros.
  m->reset(1);
  const std::vector<uint8_t> zero = m->snapshot(1);
  feed(*m, 1, inputs(2, 4));
  m->rollback(1, 2);
  EXPECT_EQ(m->snapshot(1), zero);
  EXPECT_EQ(m->rollback_available(1), 0);

  // Beyond what is kept or available: a clear error, and nothing changes.
  feed(*m, 1, inputs(1, 5));
  const std::vector<uint8_t> before0 = m->snapshot(0), before1 = m->snapshot(1);
  EXPECT_EQ(error_of([&] { m->rollback(0, 5); }),
            "rollback of 5 steps on slot 0 exceeds the rollback depth of 4 (LoadOptions::rollback_depth)");
  EXPECT_EQ(error_of([&] { m->rollback(1, 2); }),
            "rollback of 2 steps on slot 1: only 1 steps since its last reset, restore or fork");
  EXPECT_EQ(error_of([&] { m->rollback(0, -1); }), "rollback of -1 steps: must be >= 0");
  EXPECT_EQ(error_of([&] { m->rollback(2, 1); }), "slot 2 out of range [0, 2)");
  EXPECT_EQ(m->snapshot(0), before0);
  EXPECT_EQ(m->snapshot(1), before1);
  EXPECT_EQ(m->rollback_available(0), 4);
  // A restore or fork starts the history afresh.
  m->restore(0, after_a.data(), after_a.size());
  EXPECT_EQ(m->rollback_available(0), 0);
  m->fork(1, 0);
  EXPECT_EQ(m->rollback_available(0), 0);
  EXPECT_EQ(error_of([&] { m->rollback(0, 1); }),
            "rollback of 1 steps on slot 0: only 0 steps since its last reset, restore or fork");

  // Without a ring nothing can be undone.
  EXPECT_EQ(error_of([&] { straight->rollback(0, 1); }),
            "rollback of 1 steps on slot 0 exceeds the rollback depth of 0 (LoadOptions::rollback_depth)");
}

// Token models: prefill leaves the state and last outputs that stepping leaves (with and without a
// rollback ring, which makes Vulkan prefill one step per token). Frame models have no prompt:
// prefill refuses, naming the architecture.
TEST_P(Contract, PrefillLeavesTheSteppedState) {
  const std::string arch_name = info().architecture;
  if (frame_model()) {
    auto m = make(2);
    feed(*m, 0, inputs(2, 1));
    const std::vector<uint8_t> before = m->snapshot(0);
    const int32_t tokens[2] = {1, 2};
    EXPECT_EQ(error_of([&] { m->prefill(0, tokens, 2, nullptr); }),
              "model '" + arch_name + "' takes input frames, not a token prompt");
    EXPECT_EQ(m->snapshot(0), before);
    return;
  }
  const Inputs prompt = inputs(70, 5);  // more than one 64-row prefill step
  const size_t d = size_t(d_output());
  auto stepped = make(2);
  const std::vector<float> all = feed(*stepped, 1, prompt);
  const std::vector<float> want_last = rows_from(reference(prompt), prompt.size() - 1, d_output());
  for (int rollback : {0, 2}) {
    SCOPED_TRACE("rollback depth " + std::to_string(rollback));
    auto m = make(2, rollback);
    std::vector<float> last(d);
    m->prefill(1, prompt.tokens.data(), int(prompt.size()), last.data());
    EXPECT_EQ(m->snapshot(1), stepped->snapshot(1));
    EXPECT_LE(max_rel_error(last.data(), all.data() + (prompt.size() - 1) * d, int64_t(d)), 1e-6f);
    expect_close(last, want_last, tol(), "last outputs");
    EXPECT_EQ(m->counters().steps, prompt.size());
    if (backend() == BackendKind::Vulkan) {
      // 69 tokens as the rows of 64-row steps, then the last one: 2 submits; with a rollback ring
      // one step per token, 32 per submit: 3.
      EXPECT_EQ(m->counters().submits, rollback == 0 ? 2u : 3u);
    }
    EXPECT_EQ(m->rollback_available(1), rollback);
  }
  // A prefill continues a stream like steps do.
  auto m = make(2);
  feed(*m, 0, prompt.slice(0, 10));
  m->prefill(0, prompt.tokens.data() + 10, 60, nullptr);
  auto r = make(2);
  feed(*r, 0, prompt.slice(0, 70));
  EXPECT_EQ(m->snapshot(0), r->snapshot(0));

  const int32_t bad[2] = {1, int32_t(kVocab)};
  const std::vector<uint8_t> before = m->snapshot(0);
  EXPECT_EQ(error_of([&] { m->prefill(0, bad, 2, nullptr); }), "prompt token 1 (id 300) out of range [0, 300)");
  EXPECT_EQ(error_of([&] { m->prefill(0, bad, 0, nullptr); }), "prefill needs at least one token, got 0");
  EXPECT_EQ(error_of([&] { m->prefill(2, bad, 1, nullptr); }), "slot 2 out of range [0, 2)");
  EXPECT_EQ(m->snapshot(0), before);
}

// A model refuses the other kind of input, naming its architecture, and changes nothing.
TEST_P(Contract, WrongKindOfInputIsRefused) {
  auto m = make(2);
  feed(*m, 0, inputs(2, 1));
  const std::vector<uint8_t> before = m->snapshot(0);
  const std::string arch_name = m->info().architecture;
  const int32_t slot = 0, token = 1;
  if (frame_model()) {
    EXPECT_EQ(error_of([&] { m->step(&token, &slot, 1, nullptr); }),
              "model '" + arch_name + "' takes input frames (step_frames), not token ids");
    SamplingParams p{0.0f, 0, 1};
    int32_t next = 0;
    EXPECT_THAT(error_of([&] { m->step_sample(&token, &slot, 1, &p, &next, nullptr); }), HasSubstr("takes input frames"));
  } else {
    const std::vector<float> frame(8, 0.5f);
    EXPECT_EQ(error_of([&] { m->step_frames(frame.data(), &slot, 1, nullptr); }),
              "model '" + arch_name + "' takes token ids (step), not input frames");
  }
  EXPECT_EQ(m->snapshot(0), before);
  EXPECT_EQ(m->counters().steps, 2u);
}

TEST_P(Contract, SubmitCollectEqualsStep) {
  auto m = make(4);
  auto twin = make(4);
  const Inputs a = inputs(4, 1), b = inputs(4, 2);
  const size_t d = size_t(d_output());
  std::vector<float> all_a, all_b;
  // The request for row t of `in` in `slot`.
  const auto request = [&](const Inputs& in, size_t t, const int32_t* slot, bool outputs) {
    Model::StepRequest r;
    r.tokens = frame_model() ? nullptr : &in.tokens[t];
    r.frames = frame_model() ? in.frame(t) : nullptr;
    r.slots = slot;
    r.batch = 1;
    r.want_outputs = outputs;
    return r;
  };
  const int32_t s0 = 0, s2 = 2;
  for (size_t t = 0; t < a.size(); ++t) {
    SCOPED_TRACE("step " + std::to_string(t));
    // Two steps of independent streams in flight at once.
    m->submit(request(a, t, &s0, true));
    m->submit(request(b, t, &s2, true));
    EXPECT_EQ(m->in_flight(), 2);
    EXPECT_EQ(error_of([&] { m->submit(request(a, t, &s0, true)); }), "two steps are already in flight; collect() one first");
    std::vector<float> got_a(d), got_b(d), want_a(d), want_b(d);
    m->collect(nullptr, got_a.data());
    m->collect(nullptr, got_b.data());
    step_rows(*twin, {s0}, {{&a, t}}, want_a.data());
    step_rows(*twin, {s2}, {{&b, t}}, want_b.data());
    EXPECT_EQ(got_a, want_a);
    EXPECT_EQ(got_b, want_b);
    all_a.insert(all_a.end(), got_a.begin(), got_a.end());
    all_b.insert(all_b.end(), got_b.begin(), got_b.end());
  }
  expect_close(all_a, reference(a), tol(), "stream a");
  expect_close(all_b, reference(b), tol(), "stream b");
  EXPECT_EQ(m->in_flight(), 0);
  EXPECT_EQ(error_of([&] { m->collect(nullptr, nullptr); }), "collect: no submitted step to collect");
  // A step submitted without outputs still advances its stream.
  const Inputs c = inputs(1, 3);
  m->submit(request(c, 0, &s0, false));
  m->collect(nullptr, nullptr);
  step_rows(*twin, {s0}, {{&c, 0}}, nullptr);
  EXPECT_EQ(m->snapshot(0), twin->snapshot(0));
  EXPECT_EQ(m->snapshot(2), twin->snapshot(2));
}

// Streams join (a reset slot) and leave (their slot is reused) between steps, and each step
// advances a different subset of the open streams, in shuffled slot order: every stream's
// outputs equal its own run alone.
TEST_P(Contract, StreamsJoiningAndLeavingMatchSoloRuns) {
  constexpr int kCapacity = 4, kStreams = 7;
  auto m = make(kCapacity);
  std::vector<Inputs> in;
  for (int s = 0; s < kStreams; ++s) in.push_back(inputs(3 + (s * 5) % 7, s + 10));
  const size_t d = size_t(d_output());
  std::vector<std::vector<float>> got(kStreams);
  std::vector<int> slot_of(kStreams, -1);
  std::vector<size_t> done(kStreams, 0);
  std::vector<int> owner(kCapacity, -1);  // the stream in each slot
  int next = 0, max_batch = 0, min_batch = kCapacity;
  for (int step = 0; step < 200; ++step) {
    // Join: the next stream takes a free slot (the highest first, so slots get reused out of order).
    for (int slot = kCapacity - 1; slot >= 0 && next < kStreams; --slot) {
      if (owner[size_t(slot)] >= 0 || (step + slot) % 2 != 0) continue;
      m->reset(slot);
      owner[size_t(slot)] = next;
      slot_of[size_t(next++)] = slot;
    }
    // This step's subset: streams sit out in a pattern that differs per stream and step.
    std::vector<int32_t> slots;
    std::vector<Row> rows;
    std::vector<int> streams;
    for (int slot = 0; slot < kCapacity; ++slot) {
      const int s = owner[size_t(slot)];
      if (s < 0 || (step * 3 + s) % 4 == 0) continue;
      slots.insert(slots.begin(), slot);  // descending slot order
      rows.insert(rows.begin(), Row{&in[size_t(s)], done[size_t(s)]});
      streams.insert(streams.begin(), s);
    }
    if (!rows.empty()) {
      std::vector<float> out(rows.size() * d);
      step_rows(*m, slots, rows, out.data());
      max_batch = std::max(max_batch, int(rows.size()));
      min_batch = std::min(min_batch, int(rows.size()));
      for (size_t i = 0; i < rows.size(); ++i) {
        const size_t s = size_t(streams[i]);
        got[s].insert(got[s].end(), out.begin() + std::ptrdiff_t(i * d), out.begin() + std::ptrdiff_t((i + 1) * d));
        // Leave once all inputs are stepped.
        if (++done[s] == in[s].size()) owner[size_t(slot_of[s])] = -1;
      }
    }
    if (next == kStreams && std::all_of(owner.begin(), owner.end(), [](int s) { return s < 0; })) break;
  }
  EXPECT_EQ(next, kStreams);
  EXPECT_GE(max_batch, 3) << "streams never shared a step";
  EXPECT_EQ(min_batch, 1);
  for (int s = 0; s < kStreams; ++s) {
    SCOPED_TRACE("stream " + std::to_string(s));
    expect_close(got[size_t(s)], reference(in[size_t(s)]), tol(), "against the reference");
    auto alone = make(1);
    expect_close(got[size_t(s)], feed(*alone, 0, in[size_t(s)]), 1e-6f, "against the same backend alone");
  }
}

// Token models: sampling on the device. Temperature 0 picks the argmax of the logits; other
// settings follow host/sampling.cpp's rule on the backend's own logits and are reproducible from
// the seed. Frame models have nothing to sample.
TEST_P(Contract, DeviceSamplingIsArgmaxAtZeroAndReproducible) {
  auto m = make(4);
  if (frame_model()) {
    const std::vector<uint8_t> before = m->snapshot(0);
    const int32_t slot = 0, token = 1;
    int32_t next = -1;
    SamplingParams p{0.0f, 0, 1};
    EXPECT_THAT(error_of([&] { m->step_sample(&token, &slot, 1, &p, &next, nullptr); }), HasSubstr("takes input frames"));
    EXPECT_EQ(m->snapshot(0), before);
    return;
  }
  const int B = 4;
  const int64_t V = info().vocab_size;
  const std::vector<int32_t> slots = {2, 0, 3, 1};
  // Greedy, all tokens, top-k, and top-k 1 (greedy again).
  const std::vector<SamplingParams> params = {{0.0f, 0, 1}, {0.8f, 0, 42}, {1.3f, 20, 7}, {0.5f, 1, 9}};
  // Runs `steps` sampling steps from fresh slots; returns the sampled ids [steps][B].
  const auto run = [&](Model& model, int steps, bool check) {
    std::vector<int32_t> tokens = {1, 2, 3, 4}, sampled;
    for (int t = 0; t < steps; ++t) {
      std::vector<int32_t> next(B, -1);
      std::vector<float> logits(size_t(B * V));
      model.step_sample(tokens.data(), slots.data(), B, params.data(), next.data(), logits.data());
      for (int b = 0; b < B && check; ++b) {
        const float* row = logits.data() + b * V;
        if (params[size_t(b)].temperature == 0.0f || params[size_t(b)].top_k == 1) {
          EXPECT_EQ(next[size_t(b)], int32_t(std::max_element(row, row + V) - row)) << "step " << t;
        }
        EXPECT_EQ(next[size_t(b)], sample_nth(row, int(V), params[size_t(b)], uint64_t(t)))
            << "step " << t << " stream " << b;
      }
      sampled.insert(sampled.end(), next.begin(), next.end());
      tokens = next;
    }
    return sampled;
  };
  const std::vector<int32_t> first = run(*m, 8, true);
  auto again = make(4);
  EXPECT_EQ(run(*again, 8, false), first);  // the same seeds, the same tokens
  for (int32_t s : slots) m->reset(s);      // a reset restarts each stream's draws
  EXPECT_EQ(run(*m, 8, false), first);

  // Only the ids come back unless logits are asked for; the draws are the same.
  auto ids_only = make(4);
  std::vector<int32_t> tokens = {1, 2, 3, 4}, next(B, -1);
  ids_only->step_sample(tokens.data(), slots.data(), B, params.data(), next.data(), nullptr);
  EXPECT_EQ(next, std::vector<int32_t>(first.begin(), first.begin() + B));

  SamplingParams hot{-1.0f, 0, 0};
  EXPECT_EQ(error_of([&] { m->step_sample(tokens.data(), slots.data(), 1, &hot, next.data(), nullptr); }),
            "sampling temperature must be finite and >= 0 (got -1.000000)");
  SamplingParams k{1.0f, -2, 0};
  EXPECT_EQ(error_of([&] { m->step_sample(tokens.data(), slots.data(), 1, &k, next.data(), nullptr); }),
            "sampling top_k must be >= 0 (got -2)");
}

TEST_P(Contract, BadInputIsRefusedWithItsErrorAndChangesNothing) {
  auto m = make(4);
  const Inputs a = inputs(3, 1), b = inputs(3, 2);
  feed(*m, 0, a.slice(0, 2));
  feed(*m, 1, b.slice(0, 2));
  const std::vector<uint8_t> before0 = m->snapshot(0), before1 = m->snapshot(1);
  const uint64_t steps = m->counters().steps;
  const auto step = [&](std::vector<int32_t> slots) {
    std::vector<Row> rows(slots.size(), Row{&a, 2});
    return error_of([&] { step_rows(*m, slots, rows, nullptr); });
  };
  EXPECT_EQ(step({4}), "slot 4 out of range [0, 4)");
  EXPECT_EQ(step({0, -1}), "slot -1 out of range [0, 4)");
  EXPECT_EQ(step({0, 1, 1}), "slot 1 appears twice in one step");
  EXPECT_EQ(step({0, 1, 2, 3, 0}), "batch of 5 streams exceeds the capacity of 4 (LoadOptions::max_streams)");
  EXPECT_EQ(error_of([&] {  // valid arrays, batch 0
    const int32_t slot = 0;
    if (frame_model())
      m->step_frames(a.frame(0), &slot, 0, nullptr);
    else
      m->step(a.tokens.data(), &slot, 0, nullptr);
  }),
            "batch of 0 streams exceeds the capacity of 4 (LoadOptions::max_streams)");
  if (!frame_model()) {
    const int32_t slots[2] = {0, 1};
    for (int32_t bad : {int32_t(kVocab), -1}) {
      const int32_t tokens[2] = {5, bad};
      EXPECT_EQ(error_of([&] { m->step(tokens, slots, 2, nullptr); }),
                "token id " + std::to_string(bad) + " out of range [0, 300)");
    }
  }
  const int32_t bad_slot = 4;
  Model::StepRequest r;
  r.tokens = frame_model() ? nullptr : a.tokens.data();
  r.frames = frame_model() ? a.frame(0) : nullptr;
  r.slots = &bad_slot;
  r.batch = 1;
  EXPECT_EQ(error_of([&] { m->submit(r); }), "slot 4 out of range [0, 4)");
  EXPECT_EQ(m->in_flight(), 0);
  EXPECT_EQ(error_of([&] { m->reset(4); }), "slot 4 out of range [0, 4)");
  EXPECT_EQ(error_of([&] { (void)m->snapshot(-1); }), "slot -1 out of range [0, 4)");
  EXPECT_EQ(error_of([&] { m->fork(0, 4); }), "slot 4 out of range [0, 4)");
  EXPECT_EQ(error_of([&] { m->fork(4, 0); }), "slot 4 out of range [0, 4)");
  EXPECT_EQ(error_of([&] { m->restore(4, before0.data(), before0.size()); }), "slot 4 out of range [0, 4)");
  EXPECT_EQ(error_of([&] { (void)m->rollback_available(4); }), "slot 4 out of range [0, 4)");

  // Blobs that are not this model's state.
  const auto restore = [&](const std::vector<uint8_t>& blob) {
    return error_of([&] { m->restore(0, blob.data(), blob.size()); });
  };
  LoadOptions cpu;
  cpu.backend = BackendKind::Reference;
  cpu.max_streams = 1;
  for (const ContractArch& other : kArchitectures) {
    if (&other == &arch()) continue;
    EXPECT_THAT(restore(other.random(kSeed)->create(cpu)->snapshot(0)),
                StartsWith("state: saved from a different model (fingerprint "))
        << other.name << "'s state";
  }
  EXPECT_THAT(restore(arch().random(kSeed + 1)->create(cpu)->snapshot(0)),
              StartsWith("state: saved from a different model (fingerprint "))
      << "another " << arch().name << "'s state";
  const size_t payload = size_t(m->info().state_bytes_per_stream);
  const size_t header = before0.size() - payload - 8;
  EXPECT_EQ(restore(std::vector<uint8_t>(before0.begin(), before0.end() - 1)),
            "state: truncated: " + std::to_string(before0.size() - 1) + " bytes, the header announces " +
                std::to_string(payload) + " payload bytes plus an 8-byte checksum after " + std::to_string(header) +
                " header bytes");
  EXPECT_EQ(restore({}), "state: only 0 bytes: too small to be a vkssm state");
  std::vector<uint8_t> corrupt = before0;
  corrupt[header + payload / 2] ^= 1;
  EXPECT_EQ(restore(corrupt), "state: checksum mismatch: the data is corrupt");
  std::vector<uint8_t> magic = before0;
  magic[0] = 'X';
  EXPECT_EQ(restore(magic), "state: not a vkssm state (bad magic)");
  std::vector<uint8_t> v2 = before0;
  const uint32_t two = 2;
  std::memcpy(v2.data() + 8, &two, 4);
  const uint64_t sum = fnv1a64(v2.data(), v2.size() - 8);
  std::memcpy(v2.data() + v2.size() - 8, &sum, 8);
  EXPECT_EQ(restore(v2), "state: format version 2 is not supported (this vkssm reads version 1)");
  // Any flipped bit, in the header, the payload or the checksum, is refused.
  for (size_t pos : {size_t(0), size_t(9), size_t(13), size_t(17), size_t(30), header - 1, header,
                     before0.size() - 9, before0.size() - 1}) {
    std::vector<uint8_t> flipped = before0;
    flipped[pos] ^= 0x20;
    EXPECT_THAT(restore(flipped), StartsWith("state: ")) << "flipped byte " << pos;
  }

  // Nothing changed: both streams continue as if no bad call had been made.
  EXPECT_EQ(m->counters().steps, steps);
  EXPECT_EQ(m->snapshot(0), before0);
  EXPECT_EQ(m->snapshot(1), before1);
  expect_close(feed(*m, 0, a.slice(2, 3)), rows_from(reference(a), 2, d_output()), tol(), "stream 0");
  expect_close(feed(*m, 1, b.slice(2, 3)), rows_from(reference(b), 2, d_output()), tol(), "stream 1");
}

INSTANTIATE_TEST_SUITE_P(Architectures, Contract, testing::ValuesIn(all_params()), param_name);

// Create/use/destroy cycles: CI runs *Leaks* under AddressSanitizer + LeakSanitizer, which fails
// on anything a cycle leaves behind; here every cycle must also give the same results.
class ContractLeaks : public Contract {};

TEST_P(ContractLeaks, CreateUseDestroyCycles) {
  const Inputs a = inputs(3, 1), b = inputs(2, 2);
  std::vector<uint8_t> first;
  for (int cycle = 0; cycle < 8; ++cycle) {
    auto m = make(3, 2);
    feed(*m, 0, a);
    std::vector<uint8_t> blob = m->snapshot(0);
    m->restore(1, blob.data(), blob.size());
    m->fork(1, 2);
    feed(*m, 2, b);
    m->rollback(2, 2);
    EXPECT_EQ(m->snapshot(2), blob);
    const int32_t slot = 1;
    Model::StepRequest r;
    r.tokens = frame_model() ? nullptr : b.tokens.data();
    r.frames = frame_model() ? b.frame(0) : nullptr;
    r.slots = &slot;
    r.batch = 1;
    r.want_outputs = true;
    std::vector<float> out(static_cast<size_t>(d_output()));
    m->submit(r);
    m->collect(nullptr, out.data());
    blob = m->snapshot(1);
    if (cycle == 0) first = blob;
    EXPECT_EQ(blob, first) << "cycle " << cycle;
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, ContractLeaks, testing::ValuesIn(all_params()), param_name);

}  // namespace
}  // namespace vkssm

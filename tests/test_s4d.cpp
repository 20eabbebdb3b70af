// S4D: config parsing, checkpoint loading, the CPU reference against the independent PyTorch
// reference (models/s4d/reference.py, FFT convolution form) and a hand-computed toy, and the
// frame-model behaviour of the `cpu` backend (snapshot/restore/fork, refused calls).
#include <cmath>
#include <complex>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/vkssm.hpp"
#include "host/checkpoint.h"
#include "host/error.h"
#include "host/npy.h"
#include "host/safetensors.h"
#include "models/mamba1/mamba1_model.h"
#include "models/s4d/s4d_model.h"
#include "tests/test_helpers.h"

namespace vkssm {
namespace {

using nlohmann::json;
using testing::HasSubstr;
using testing_helpers::error_of;
namespace fs = std::filesystem;

const std::string kData = std::string(VKSSM_SOURCE_DIR) + "/tests/data";
const char* kSrc = "cfg.json";

json valid_config() {
  return {{"model_type", "s4d"}, {"architectures", {"S4DClassifier"}}, {"d_input", 3}, {"d_model", 12},
          {"d_state", 8}, {"n_layers", 2}, {"d_output", 5}, {"prenorm", false}, {"layer_norm_eps", 1e-5},
          {"activation", "gelu"}};
}

std::string parse_error(const std::function<void(json&)>& edit) {
  json j = valid_config();
  edit(j);
  return error_of([&] { parse_s4d_config(j, kSrc); });
}

S4DConfig small_config(bool prenorm = false) {
  S4DConfig c;
  c.d_input = 3;
  c.d_model = 8;
  c.d_state = 6;
  c.n_layers = 2;
  c.d_output = 4;
  c.prenorm = prenorm;
  return c;
}

std::unique_ptr<Model> cpu_model(const S4DWeights& w, int streams = 1) {
  LoadOptions opt;
  opt.backend = BackendKind::Reference;
  opt.max_streams = streams;
  return create_s4d(w, opt);
}

std::vector<float> run_frames(Model& m, int slot, const std::vector<float>& frames) {
  const int64_t din = m.info().d_input, dout = m.info().d_output;
  const size_t T = frames.size() / size_t(din);
  std::vector<float> out(T * size_t(dout));
  for (size_t t = 0; t < T; ++t) m.step_frames(frames.data() + t * din, &slot, 1, out.data() + t * dout);
  return out;
}

// ---- config -------------------------------------------------------------------------------------

TEST(S4DConfig, ParsesAllKeysAndDefaults) {
  S4DConfig c = parse_s4d_config(valid_config(), kSrc);
  EXPECT_EQ(c.d_input, 3);
  EXPECT_EQ(c.d_model, 12);
  EXPECT_EQ(c.d_state, 8);
  EXPECT_EQ(c.modes(), 4);
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.d_output, 5);
  EXPECT_FALSE(c.prenorm);
  EXPECT_FLOAT_EQ(c.layer_norm_eps, 1e-5f);

  json j = {{"architectures", {"S4DClassifier"}}, {"d_input", 1}, {"d_model", 4}, {"n_layers", 1},
            {"d_output", 10}, {"prenorm", true}, {"layer_norm_eps", 1e-6}};
  c = parse_s4d_config(j, kSrc);  // no model_type: architectures names it; d_state defaults to 64
  EXPECT_EQ(c.d_state, 64);
  EXPECT_TRUE(c.prenorm);
  EXPECT_FLOAT_EQ(c.layer_norm_eps, 1e-6f);
}

TEST(S4DConfig, BadKeysGiveExactMessages) {
  EXPECT_EQ(error_of([] { parse_s4d_config(json::array(), kSrc); }), "config cfg.json is not a JSON object");
  EXPECT_EQ(parse_error([](json& j) { j["model_type"] = "mamba"; }),
            "unsupported architecture 'mamba' in cfg.json (vkssm supports: mamba, falcon_mamba, mamba2, s4d)");
  EXPECT_EQ(parse_error([](json& j) { j.erase("d_model"); }), "missing key 'd_model' in cfg.json");
  EXPECT_EQ(parse_error([](json& j) { j["d_input"] = "3"; }),
            "key 'd_input' in cfg.json must be an integer, got \"3\"");
  EXPECT_EQ(parse_error([](json& j) { j["n_layers"] = 0; }),
            "S4D n_layers in cfg.json must be between 1 and 4096, got 0");
  EXPECT_EQ(parse_error([](json& j) { j["d_output"] = -2; }),
            "S4D d_output in cfg.json must be between 1 and 1048576, got -2");
  EXPECT_EQ(parse_error([](json& j) { j["prenorm"] = "yes"; }),
            "key 'prenorm' in cfg.json must be true or false, got \"yes\"");
  EXPECT_EQ(parse_error([](json& j) { j["layer_norm_eps"] = -1; }),
            "S4D layer_norm_eps in cfg.json must be a positive number, got -1");
  EXPECT_EQ(parse_error([](json& j) { j["layer_norm_eps"] = "small"; }),
            "key 'layer_norm_eps' in cfg.json must be a number, got \"small\"");
}

TEST(S4DConfig, OddDStateIsRefused) {
  EXPECT_EQ(parse_error([](json& j) { j["d_state"] = 7; }),
            "S4D d_state in cfg.json must be even (d_state/2 complex modes per channel), got 7");
  EXPECT_EQ(parse_error([](json& j) { j["d_state"] = 0; }),
            "S4D d_state in cfg.json must be between 1 and 4096, got 0");
}

TEST(S4DConfig, OnlyGeluActivation) {
  EXPECT_EQ(parse_error([](json& j) { j["activation"] = "relu"; }),
            "S4D activation 'relu' in cfg.json is not supported (vkssm implements upstream's exact erf "
            "GELU: \"gelu\")");
  EXPECT_EQ(parse_error([](json& j) { j["activation"] = 3; }),
            "key 'activation' in cfg.json must be a string, got 3");
}

// ---- loading ------------------------------------------------------------------------------------

class S4DFiles : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::path(testing::TempDir()) /
            ("vkssm_s4d_" + std::string(testing::UnitTest::GetInstance()->current_test_info()->name())))
               .string();
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string file(const std::string& name) const { return (fs::path(dir_) / name).string(); }

  void edit_tensors(const std::function<void(std::vector<TensorToWrite>&)>& edit) const {
    std::vector<TensorToWrite> tensors;
    {
      auto f = SafetensorsFile::open(file("model.safetensors"));
      for (const auto& t : f->tensors())
        tensors.push_back({t.name, t.dtype, t.shape, std::vector<uint8_t>(t.data, t.data + t.nbytes)});
    }
    edit(tensors);
    write_safetensors(file("model.safetensors"), tensors);
  }
  void edit_config(const std::function<void(json&)>& edit) const {
    json j = read_json_file(file("config.json"));
    edit(j);
    std::ofstream(file("config.json")) << j.dump(2);
  }

  std::string dir_;
};

std::vector<const std::vector<float>*> all_vectors(const S4DWeights& w) {
  std::vector<const std::vector<float>*> v = {&w.encoder_w, &w.encoder_b, &w.decoder_w, &w.decoder_b};
  for (const auto& L : w.layers)
    for (const auto* p : {&L.log_dt, &L.C, &L.log_A_real, &L.A_imag, &L.D, &L.out_w, &L.out_b, &L.norm_w,
                          &L.norm_b, &L.dA, &L.dB})
      v.push_back(p);
  return v;
}

TEST_F(S4DFiles, SaveLoadRoundTripIsExact) {
  S4DWeights w = random_s4d(small_config(true), 11);
  save_s4d(w, dir_);
  S4DWeights back = load_s4d(Checkpoint::open(dir_));
  EXPECT_EQ(back.cfg.d_input, 3);
  EXPECT_EQ(back.cfg.d_model, 8);
  EXPECT_EQ(back.cfg.d_state, 6);
  EXPECT_EQ(back.cfg.n_layers, 2);
  EXPECT_EQ(back.cfg.d_output, 4);
  EXPECT_TRUE(back.cfg.prenorm);
  EXPECT_EQ(back.cfg.layer_norm_eps, w.cfg.layer_norm_eps);
  EXPECT_EQ(back.source, dir_);
  EXPECT_EQ(back.parameter_count(), w.parameter_count());
  auto a = all_vectors(w), b = all_vectors(back);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(*a[i], *b[i]) << "vector " << i;
  EXPECT_EQ(s4d_fingerprint(w), s4d_fingerprint(back));

  // Same outputs through the Model API, and the checkpoint folder loads by path.
  LoadOptions opt;
  opt.backend = BackendKind::Reference;
  std::unique_ptr<Model> loaded = load_model(dir_, opt);
  std::unique_ptr<Model> direct = cpu_model(w);
  const std::vector<float> frames = {0.5f, -1.0f, 2.0f, 0.1f, 0.2f, 0.3f, -0.7f, 0.0f, 1.5f};
  EXPECT_EQ(run_frames(*loaded, 0, frames), run_frames(*direct, 0, frames));

  // f16 storage: every parameter comes back rounded to half precision.
  fs::remove_all(dir_);
  save_s4d(w, dir_, DType::F16);
  back = load_s4d(Checkpoint::open(dir_));
  EXPECT_EQ(back.source_dtype, DType::F16);
  for (size_t i = 0; i < w.layers[1].C.size(); ++i)
    ASSERT_EQ(back.layers[1].C[i], half_to_float(float_to_half(w.layers[1].C[i]))) << i;
}

TEST_F(S4DFiles, MissingTensorIsNamed) {
  save_s4d(random_s4d(small_config(), 1), dir_);
  edit_tensors([](std::vector<TensorToWrite>& t) {
    std::erase_if(t, [](const TensorToWrite& x) { return x.name == "s4_layers.1.kernel.A_imag"; });
  });
  EXPECT_EQ(error_of([&] { load_s4d(Checkpoint::open(dir_)); }),
            "tensor s4_layers.1.kernel.A_imag not found in checkpoint " + dir_);
}

TEST_F(S4DFiles, WrongShapeIsNamed) {
  save_s4d(random_s4d(small_config(), 1), dir_);
  edit_tensors([](std::vector<TensorToWrite>& t) {
    for (auto& x : t)
      if (x.name == "s4_layers.0.kernel.C") x.shape = {8, 6};  // [H, N] instead of [H, N/2, 2]
  });
  EXPECT_EQ(error_of([&] { load_s4d(Checkpoint::open(dir_)); }),
            "tensor s4_layers.0.kernel.C in " + file("model.safetensors") +
                " has shape [8, 6], expected [8, 3, 2]");
}

TEST_F(S4DFiles, ConfigWithFewerLayersThanTheWeightsIsRefused) {
  save_s4d(random_s4d(small_config(), 1), dir_);
  edit_config([](json& j) { j["n_layers"] = 1; });
  EXPECT_EQ(error_of([&] { load_s4d(Checkpoint::open(dir_)); }),
            "checkpoint " + dir_ + " has tensor s4_layers.1.D but " + file("config.json") +
                " gives n_layers 1");
}

TEST_F(S4DFiles, ConfigErrorsNameTheFile) {
  save_s4d(random_s4d(small_config(), 1), dir_);
  edit_config([](json& j) { j["activation"] = "silu"; });
  LoadOptions opt;
  opt.backend = BackendKind::Reference;
  EXPECT_THAT(error_of([&] { load_model(dir_, opt); }),
              HasSubstr("S4D activation 'silu' in " + file("config.json") + " is not supported"));
}

TEST_F(S4DFiles, AbsurdTimescaleIsRefusedAtLoad) {
  S4DWeights w = random_s4d(small_config(), 1);
  w.layers[1].log_A_real[4] = 1000.0f;  // exp overflows: A = -inf
  save_s4d(w, dir_);
  EXPECT_THAT(error_of([&] { load_s4d(Checkpoint::open(dir_)); }),
              HasSubstr("S4D layer 1 of " + dir_ + ": the zero-order hold of channel 1, mode 1 is not finite"));
}

TEST(S4DModel, InfoDescribesAFrameModel) {
  S4DWeights w = random_s4d(small_config(), 2);
  std::unique_ptr<Model> m = cpu_model(w);
  const ModelInfo& info = m->info();
  EXPECT_EQ(info.architecture, "s4d");
  EXPECT_EQ(info.backend, "reference");
  EXPECT_EQ(info.vocab_size, 0);
  EXPECT_EQ(info.d_input, 3);
  EXPECT_EQ(info.d_output, 4);
  EXPECT_EQ(info.d_model, 8);
  EXPECT_EQ(info.n_layer, 2);
  EXPECT_EQ(info.state_bytes_per_stream, uint64_t(2 * 8 * 6 * 4));
  // encoder 8·4, per layer dA/dB/C 3·8·6 + D 8 + output linear 16·8 + 16 + norm 16, decoder 4·9.
  EXPECT_EQ(info.weight_bytes, uint64_t(32 + 2 * (144 + 8 + 128 + 16 + 16) + 36) * 4);
}

// ---- numerics -----------------------------------------------------------------------------------

// The float dA / dB a GPU backend reads are the double discretisation, rounded.
TEST(S4DModel, DiscretisedWeightsAreTheRoundedZeroOrderHold) {
  S4DWeights w = random_s4d(small_config(), 3);
  const int64_t H = w.cfg.d_model, M = w.cfg.modes();
  for (const S4DLayerWeights& L : w.layers) {
    ASSERT_EQ(L.dA.size(), size_t(2 * H * M));
    for (int64_t h = 0; h < H; ++h)
      for (int64_t m = 0; m < M; ++m) {
        const size_t k = size_t(h * M + m);
        const double dt = std::exp(double(L.log_dt[size_t(h)]));
        const std::complex<double> A(-std::exp(double(L.log_A_real[k])), double(L.A_imag[k]));
        const std::complex<double> dA = std::exp(dt * A), dB = (dA - 1.0) / A;
        EXPECT_EQ(L.dA[2 * k], float(dA.real()));
        EXPECT_EQ(L.dA[2 * k + 1], float(dA.imag()));
        EXPECT_NEAR(L.dB[2 * k], dB.real(), 1e-7 * std::abs(dB));
        EXPECT_NEAR(L.dB[2 * k + 1], dB.imag(), 1e-7 * std::abs(dB));
      }
  }
}

// tests/data/s4d_tiny*: weights, inputs and outputs from models/s4d/reference.py (upstream's FFT
// convolution form in float64; see s4d_tiny_ref.txt).
void expect_matches_python_reference(const std::string& model, const std::string& ref_file) {
  LoadOptions opt;
  opt.backend = BackendKind::Reference;
  std::unique_ptr<Model> m = load_model(kData + "/" + model, opt);
  NpyArray in = read_npy_f32(kData + "/s4d_tiny_inputs.npy");
  NpyArray ref = read_npy_f32(kData + "/" + ref_file);
  ASSERT_EQ(in.shape, (std::vector<int64_t>{24, 3}));
  ASSERT_EQ(ref.shape, (std::vector<int64_t>{24, 5}));
  std::vector<float> got = run_frames(*m, 0, in.data);
  ASSERT_EQ(got.size(), ref.data.size());
  float worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], ref.data[i], 1e-4f) << "step " << i / 5 << ", output " << i % 5;
    worst = std::max(worst, std::fabs(got[i] - ref.data[i]));
  }
  std::printf("[ info ] %s: max |cpu - python reference| = %.3g over 24 steps\n", model.c_str(), worst);
}

TEST(S4DModel, CpuMatchesPythonReferencePostNorm) { expect_matches_python_reference("s4d_tiny", "s4d_tiny_ref.npy"); }

TEST(S4DModel, CpuMatchesPythonReferencePreNorm) {
  expect_matches_python_reference("s4d_tiny_prenorm", "s4d_tiny_prenorm_ref.npy");
}

// One layer, one channel, one complex mode. LayerNorm over a single channel gives its bias, so
// with prenorm the layer input is the constant u = norm bias and the SSM output has a closed form:
//   s_t = dB·u·Σ_{k<=t} dA^k = dB·u·(1 - dA^{t+1}) / (1 - dA),   y_t = 2·Re(C·s_t) + D·u
// and the model output is decoder(encoder(frame_t) + GLU(W·gelu(y_t) + b)).
S4DWeights toy_weights(bool prenorm) {
  S4DWeights w;
  w.cfg.d_input = 1;
  w.cfg.d_model = 1;
  w.cfg.d_state = 2;
  w.cfg.n_layers = 1;
  w.cfg.d_output = 1;
  w.cfg.prenorm = prenorm;
  w.encoder_w = {0.7f};
  w.encoder_b = {0.1f};
  S4DLayerWeights L;
  L.log_dt = {std::log(0.3f)};
  L.C = {0.8f, -0.5f};
  L.log_A_real = {std::log(0.4f)};
  L.A_imag = {2.0f};
  L.D = {0.3f};
  L.out_w = {1.2f, -0.7f};
  L.out_b = {0.1f, 0.2f};
  L.norm_w = {1.3f};
  L.norm_b = {0.4f};
  w.layers.push_back(L);
  w.decoder_w = {1.5f};
  w.decoder_b = {-0.2f};
  w.source = "toy";
  s4d_discretise(w);
  return w;
}

TEST(S4DModel, OneChannelToyMatchesTheClosedForm) {
  const std::vector<float> frames = {0.5f, -1.0f, 2.0f, 0.0f, 0.25f, -0.3f, 1.1f, 3.0f};
  S4DWeights w = toy_weights(true);
  std::unique_ptr<Model> m = cpu_model(w);
  std::vector<float> got = run_frames(*m, 0, frames);

  const double u = double(0.4f);
  const double dt = std::exp(double(std::log(0.3f)));
  const std::complex<double> A(-std::exp(double(std::log(0.4f))), 2.0), C(double(0.8f), -double(0.5f));
  const std::complex<double> dA = std::exp(dt * A), dB = (dA - 1.0) / A;
  for (size_t t = 0; t < frames.size(); ++t) {
    const std::complex<double> s = dB * u * (1.0 - std::pow(dA, double(t + 1))) / (1.0 - dA);
    const double y = 2.0 * (C * s).real() + double(0.3f) * u;
    const double g = 0.5 * y * (1.0 + std::erf(y / std::sqrt(2.0)));
    const double a0 = double(1.2f) * g + double(0.1f), a1 = double(-0.7f) * g + double(0.2f);
    const double x = double(0.7f) * frames[t] + double(0.1f) + a0 / (1.0 + std::exp(-a1));
    const double want = double(1.5f) * x + double(-0.2f);
    EXPECT_NEAR(got[t], want, 2e-6) << "step " << t;
  }

  // Post-norm: the last LayerNorm leaves only its bias, whatever came in.
  std::unique_ptr<Model> post = cpu_model(toy_weights(false));
  for (float v : run_frames(*post, 0, frames)) EXPECT_FLOAT_EQ(v, 1.5f * 0.4f - 0.2f);
}

// ---- state and the Model interface --------------------------------------------------------------

TEST(S4DModel, StatePayloadIsTheComplexStatePerLayerChannelMode) {
  S4DWeights w = random_s4d(small_config(), 4);
  std::unique_ptr<Model> m = cpu_model(w);
  const std::vector<float> frame = {0.3f, -0.6f, 1.2f};
  const int32_t slot = 0;
  std::vector<float> out(4);
  m->step_frames(frame.data(), &slot, 1, out.data());
  std::vector<uint8_t> blob = m->snapshot(0);

  StateHeader expect = s4d_state_header(w);
  EXPECT_EQ(expect.architecture, "s4d");
  EXPECT_EQ(expect.shape, (std::vector<uint64_t>{2, 8, 3, 2}));
  std::vector<float> payload = decode_state(blob.data(), blob.size(), expect);
  ASSERT_EQ(payload.size(), size_t(2 * 8 * 3 * 2));
  // Post-norm: layer 0's input is the encoder output, and from zeros s = dB·u.
  for (int64_t h = 0; h < 8; ++h) {
    double u = w.encoder_b[size_t(h)];
    for (int j = 0; j < 3; ++j) u += double(w.encoder_w[size_t(h * 3 + j)]) * frame[size_t(j)];
    for (int64_t mode = 0; mode < 3; ++mode) {
      const size_t k = size_t(h * 3 + mode);
      EXPECT_NEAR(payload[2 * k], w.layers[0].dB[2 * k] * u, 1e-6) << "channel " << h << " mode " << mode;
      EXPECT_NEAR(payload[2 * k + 1], w.layers[0].dB[2 * k + 1] * u, 1e-6) << "channel " << h << " mode " << mode;
    }
  }
}

TEST(S4DModel, SnapshotRestoreAndForkContinueExactly) {
  S4DWeights w = random_s4d(small_config(true), 5);
  std::unique_ptr<Model> m = cpu_model(w, 3);
  std::vector<float> frames(3 * 12);
  for (size_t i = 0; i < frames.size(); ++i) frames[i] = std::sin(0.7f * float(i)) * 1.5f;
  const std::vector<float> head(frames.begin(), frames.begin() + 15), tail(frames.begin() + 15, frames.end());

  run_frames(*m, 0, head);
  std::vector<uint8_t> blob = m->snapshot(0);
  m->fork(0, 2);
  const std::vector<float> want = run_frames(*m, 0, tail);

  m->restore(1, blob.data(), blob.size());
  EXPECT_EQ(run_frames(*m, 1, tail), want);
  EXPECT_EQ(run_frames(*m, 2, tail), want);

  // A fresh model of the same weights continues from the blob too; one of other weights refuses it.
  std::unique_ptr<Model> again = cpu_model(w);
  again->restore(0, blob.data(), blob.size());
  EXPECT_EQ(run_frames(*again, 0, tail), want);
  S4DWeights other_w = w;
  other_w.cfg.prenorm = false;
  std::unique_ptr<Model> other = cpu_model(other_w);
  EXPECT_THAT(error_of([&] { other->restore(0, blob.data(), blob.size()); }), HasSubstr("fingerprint"));

  // reset() starts again from zeros: the same outputs as the first run from slot 0.
  m->reset(1);
  std::unique_ptr<Model> fresh = cpu_model(w);
  EXPECT_EQ(run_frames(*m, 1, frames), run_frames(*fresh, 0, frames));
}

TEST(S4DModel, BatchedStepsEqualSingleStreamSteps) {
  S4DWeights w = random_s4d(small_config(), 6);
  std::unique_ptr<Model> m = cpu_model(w, 2);
  std::unique_ptr<Model> solo = cpu_model(w);
  const std::vector<float> a = {0.1f, 0.2f, 0.3f, -1.0f, 0.5f, 0.0f}, b = {2.0f, -0.4f, 0.9f, 0.3f, 0.3f, 0.3f};
  std::vector<float> batched(2 * 2 * 4);
  for (int t = 0; t < 2; ++t) {
    std::vector<float> in = {a[size_t(3 * t)], a[size_t(3 * t + 1)], a[size_t(3 * t + 2)],
                             b[size_t(3 * t)], b[size_t(3 * t + 1)], b[size_t(3 * t + 2)]};
    const int32_t slots[2] = {1, 0};  // stream a in slot 1, b in slot 0
    m->step_frames(in.data(), slots, 2, batched.data() + t * 8);
  }
  std::vector<float> want_a = run_frames(*solo, 0, a);
  solo->reset(0);
  std::vector<float> want_b = run_frames(*solo, 0, b);
  for (int t = 0; t < 2; ++t)
    for (int o = 0; o < 4; ++o) {
      EXPECT_EQ(batched[size_t(t * 8 + o)], want_a[size_t(t * 4 + o)]);
      EXPECT_EQ(batched[size_t(t * 8 + 4 + o)], want_b[size_t(t * 4 + o)]);
    }
}

TEST(S4DModel, TokenCallsOnAFrameModelAreRefused) {
  std::unique_ptr<Model> m = cpu_model(random_s4d(small_config(), 7));
  const int32_t token = 1, slot = 0;
  float out[4];
  EXPECT_EQ(error_of([&] { m->step(&token, &slot, 1, out); }),
            "model 's4d' takes input frames (step_frames), not token ids");
  const float frame[3] = {0, 0, 0};
  const int32_t bad_slot = 1;
  EXPECT_THAT(error_of([&] { m->step_frames(frame, &bad_slot, 1, out); }), HasSubstr("slot"));
}

TEST(S4DModel, FrameCallsOnATokenModelAreRefused) {
  LoadOptions opt;
  opt.backend = BackendKind::Reference;
  std::unique_ptr<Model> m = create_mamba1(random_mamba1(testing_helpers::small_mamba1_config(20), 1), opt);
  const float frame[3] = {0, 0, 0};
  const int32_t slot = 0;
  std::vector<float> out(20);
  EXPECT_EQ(error_of([&] { m->step_frames(frame, &slot, 1, out.data()); }),
            "model 'mamba' takes token ids (step), not input frames");
}

}  // namespace
}  // namespace vkssm

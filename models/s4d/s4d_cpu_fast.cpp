// S4D on the cpu backend: the reference's step (s4d_cpu.cpp) for all streams of a step at once.
// A step runs as passes of up to kMaxRows rows, one row per stream (a frame model has no prompt,
// so every row has its own state). The encoder, each layer's output linear and the decoder are
// one product over all rows (engine/cpu/matmul: each weight read once per pass); the complex
// diagonal recurrence (engine/cpu/ssm_kernels' s4d_scan), the GLU and the LayerNorms run row by
// row, the rows split across threads. Sums are fp32 (the reference's are double), and
// every output is computed by the same instructions whatever the batch or thread count.
#include <algorithm>
#include <cmath>
#include <complex>
#include <string>
#include <vector>

#include "engine/cpu/matmul.h"
#include "engine/cpu/ssm_kernels.h"
#include "engine/cpu/thread_pool.h"
#include "engine/cpu_model.h"
#include "models/s4d/s4d_model.h"

namespace vkssm {
namespace {

// One layer in the layouts the kernels read (ssm_kernels.h, S4DScanRow): every vector [H][2M].
struct FastLayer {
  std::vector<float> dA_re, dA_im, dB, C2, D;
  CpuMatrix out_w;  // [2H][H]
  std::vector<float> out_b, norm_w, norm_b;
};

// nn.LayerNorm over n values in fp32: biased variance, eps inside the square root.
void layer_norm_row(const float* x, size_t n, const float* weight, const float* bias, float eps, float* out) {
  float mean = 0.0f;
  for (size_t i = 0; i < n; ++i) mean += x[i];
  mean /= float(n);
  float var = 0.0f;
  for (size_t i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= float(n);
  const float inv = 1.0f / std::sqrt(var + eps);
  for (size_t i = 0; i < n; ++i) out[i] = (x[i] - mean) * inv * weight[i] + bias[i];
}

class S4DFastStepper final : public CpuStepper {
 public:
  // Rows per pass: bounds the activation scratch; bigger batches take several passes.
  static constexpr size_t kMaxRows = 64;

  S4DFastStepper(const S4DWeights& w, const LoadOptions& options)
      : cfg_(w.cfg), IN_(size_t(w.cfg.d_input)), H_(size_t(w.cfg.d_model)), M_(size_t(w.cfg.modes())),
        OUT_(size_t(w.cfg.d_output)), pool_(options.cpu_threads),
        matmul_(pool_), store_(options.weights == WeightStorage::F16) {
    encoder_ = matrix(w.encoder_w, H_, IN_);
    encoder_b_ = w.encoder_b;
    decoder_ = matrix(w.decoder_w, OUT_, H_);
    decoder_b_ = w.decoder_b;
    const size_t HM = H_ * M_;
    std::vector<std::complex<double>> dA, dB;
    for (size_t i = 0; i < w.layers.size(); ++i) {
      const S4DLayerWeights& lw = w.layers[i];
      // The discretisation from the checkpoint's parameters, as the reference makes it (and
      // rounded as s4d_discretise() rounds it for Vulkan), whether or not lw.dA is filled in.
      s4d_zoh(lw, cfg_.d_model, cfg_.modes(), "S4D layer " + std::to_string(i) + " of " + w.source, dA, dB);
      FastLayer l;
      l.dA_re.resize(2 * HM), l.dA_im.resize(2 * HM), l.dB.resize(2 * HM), l.C2.resize(2 * HM);
      for (size_t k = 0; k < HM; ++k) {
        const float re = float(dA[k].real()), im = float(dA[k].imag());
        l.dA_re[2 * k] = l.dA_re[2 * k + 1] = re;
        l.dA_im[2 * k] = -im;
        l.dA_im[2 * k + 1] = im;
        l.dB[2 * k] = float(dB[k].real());
        l.dB[2 * k + 1] = float(dB[k].imag());
        l.C2[2 * k] = 2.0f * lw.C[2 * k];
        l.C2[2 * k + 1] = -2.0f * lw.C[2 * k + 1];
      }
      l.D = lw.D;
      l.out_w = matrix(lw.out_w, 2 * H_, H_);
      l.out_b = lw.out_b;
      l.norm_w = lw.norm_w;
      l.norm_b = lw.norm_b;
      layers_.push_back(std::move(l));
    }
    x_.resize(kMaxRows * H_);
    u_.resize(kMaxRows * H_);
    y_.resize(kMaxRows * H_);
    a_.resize(kMaxRows * 2 * H_);
  }

  size_t state_floats() const override { return layers_.size() * H_ * M_ * 2; }
  std::string device_name() const override { return cpu_backend_device_name(pool_); }
  uint64_t weight_bytes(uint64_t f32_bytes) const override { return store_.weight_bytes(f32_bytes); }
  std::string weight_type() const override { return store_.weight_type(); }

  void step_frame(float* state, const float* frame, float* out) const override {
    run(&state, frame, IN_, 1, out, OUT_);
  }
  void step_frames(float* const* states, const float* frames, size_t frame_stride, int batch, float* out,
                   size_t out_stride) const override {
    for (size_t i = 0; i < size_t(batch); i += kMaxRows) {
      const size_t n = std::min(kMaxRows, size_t(batch) - i);
      run(states + i, frames + i * frame_stride, frame_stride, n, out + i * out_stride, out_stride);
    }
  }

 private:
  // Rows [0, n) through the model; out_stride 0: nobody reads the outputs, so no decoder.
  void run(float* const* states, const float* frames, size_t frame_stride, size_t n, float* out,
           size_t out_stride) const {
    const float eps = cfg_.layer_norm_eps;
    const size_t H = H_, W = 2 * M_;
    matmul_(encoder_, {frames, frame_stride, n, x_.data(), H, encoder_b_.data(), false});
    for (size_t l = 0; l < layers_.size(); ++l) {
      const FastLayer& w = layers_[l];
      // The scan's input: the residual stream itself, or (pre-norm) its LayerNorm.
      const float* u = x_.data();
      if (cfg_.prenorm) {
        pool_.parallel_for(n, ThreadPool::grain_for(4 * H, 1), [&](size_t r0, size_t r1, int) {
          for (size_t r = r0; r < r1; ++r)
            layer_norm_row(x_.data() + r * H, H, w.norm_w.data(), w.norm_b.data(), eps, u_.data() + r * H);
        });
        u = u_.data();
      }
      // Split by row (every row has its own state): a row's state of the layer is then walked
      // from start to end, which the hardware prefetches; split by channel, each row's state
      // came in short pieces, and the scan waited on memory. Per row: H·M complex multiply-adds.
      pool_.parallel_for(n, ThreadPool::grain_for(H * 4 * W, 1), [&](size_t r0, size_t r1, int) {
        for (size_t r = r0; r < r1; ++r) {
          S4DScanRow row;
          row.modes = M_;
          row.dA_re = w.dA_re.data();
          row.dA_im = w.dA_im.data();
          row.dB = w.dB.data();
          row.C2 = w.C2.data();
          row.D = w.D.data();
          row.u = u + r * H;
          row.state = states[r] + l * H * W;
          row.y = y_.data() + r * H;
          s4d_scan(row, 0, H);
        }
      });
      matmul_(w.out_w, {y_.data(), H, n, a_.data(), 2 * H, w.out_b.data(), false});
      // GLU into the residual stream, then (post-norm) its LayerNorm, row by row.
      pool_.parallel_for(n, ThreadPool::grain_for(8 * H, 1), [&](size_t r0, size_t r1, int) {
        for (size_t r = r0; r < r1; ++r) {
          float* x = x_.data() + r * H;
          const float* a = a_.data() + r * 2 * H;
          glu_residual(x, a, H);
          if (!cfg_.prenorm) layer_norm_row(x, H, w.norm_w.data(), w.norm_b.data(), eps, x);
        }
      });
    }
    if (out_stride == 0) return;
    matmul_(decoder_, {x_.data(), H, n, out, out_stride, decoder_b_.data(), false});
  }

  CpuMatrix matrix(const std::vector<float>& m, size_t rows, size_t cols) { return store_.make(m, rows, cols); }

  S4DConfig cfg_;
  size_t IN_, H_, M_, OUT_;
  mutable ThreadPool pool_;
  Matmul matmul_;
  CpuMatrixStore store_;  // fp16 under WeightStorage::F16, else int8 blocks where exact, else fp32
  CpuMatrix encoder_, decoder_;
  std::vector<float> encoder_b_, decoder_b_;
  std::vector<FastLayer> layers_;
  // Activations of one pass, [kMaxRows][...]: sized at load, reused by every step.
  mutable std::vector<float> x_, u_, y_, a_;
};

}  // namespace

std::unique_ptr<CpuStepper> make_s4d_cpu_fast(const S4DWeights& weights, const LoadOptions& options) {
  S4DCpuReference check(weights);  // checks every tensor's size against the config, naming it
  return std::make_unique<S4DFastStepper>(weights, options);
}

}  // namespace vkssm

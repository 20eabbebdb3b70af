#include "host/audio/log_mel.h"

#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <mutex>

namespace vkssm {
namespace {

using S = LogMelSpec;
constexpr int kBins = S::kFft / 2 + 1;

double hz_to_mel(double f) { return 2595.0 * std::log10(1.0 + f / 700.0); }
double mel_to_hz(double m) { return 700.0 * (std::pow(10.0, m / 2595.0) - 1.0); }

// FFTW's planner is not thread-safe (executing a plan is): plans are made under this lock.
std::mutex& fftw_planner_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

const std::vector<double>& log_mel_window() {
  static const std::vector<double> w = [] {
    std::vector<double> v(S::kWindow);
    for (int n = 0; n < S::kWindow; ++n) v[n] = 0.5 - 0.5 * std::cos(2.0 * M_PI * n / S::kWindow);
    return v;
  }();
  return w;
}

const std::vector<double>& log_mel_filterbank() {
  static const std::vector<double> fb = [] {
    std::vector<double> edges(S::kMels + 2);
    double lo = hz_to_mel(S::kFMin), hi = hz_to_mel(S::kFMax);
    // As numpy.linspace computes it: lo + i * step, the last point exactly hi.
    double step = (hi - lo) / (S::kMels + 1);
    for (int i = 0; i < S::kMels + 2; ++i) edges[i] = mel_to_hz(i == S::kMels + 1 ? hi : lo + i * step);
    std::vector<double> v(size_t(S::kMels) * kBins, 0.0);
    for (int m = 0; m < S::kMels; ++m) {
      for (int k = 0; k < kBins; ++k) {
        double f = double(k) * S::kSampleRate / S::kFft;
        double up = (f - edges[m]) / (edges[m + 1] - edges[m]);
        double down = (edges[m + 2] - f) / (edges[m + 2] - edges[m + 1]);
        v[size_t(m) * kBins + k] = std::max(0.0, std::min(up, down));
      }
    }
    return v;
  }();
  return fb;
}

namespace {

// Each triangular filter's nonzero bins [first, last): about 2 of the 257 bins per band on
// average, so the filterbank costs ~500 multiply-adds per frame instead of ~10,000 (at hundreds
// of streams the dense product was the front-end's largest cost). The sum over the range gives
// the same bits as over the whole row: the terms outside it are exact zeros.
struct BandRange {
  int first = 0, last = 0;
};
const std::vector<BandRange>& log_mel_band_ranges() {
  static const std::vector<BandRange> ranges = [] {
    const auto& fb = log_mel_filterbank();
    std::vector<BandRange> r(S::kMels);
    for (int m = 0; m < S::kMels; ++m) {
      const double* row = fb.data() + size_t(m) * kBins;
      int first = 0, last = kBins;
      while (first < kBins && row[first] == 0.0) ++first;
      while (last > first && row[last - 1] == 0.0) --last;
      r[size_t(m)] = {first, last};
    }
    return r;
  }();
  return ranges;
}

}  // namespace

size_t log_mel_frame_count(size_t n) { return n < size_t(S::kWindow) ? 0 : (n - S::kWindow) / S::kHop + 1; }

struct LogMelStream::Fft {
  double* in = nullptr;          // kFft reals
  fftw_complex* out = nullptr;   // kBins
  fftw_plan plan = nullptr;
  Fft() {
    in = fftw_alloc_real(S::kFft);
    out = fftw_alloc_complex(kBins);
    std::lock_guard<std::mutex> lock(fftw_planner_mutex());
    // FFTW_ESTIMATE: no timing runs, so the plan (and the rounding) is the same on every run.
    plan = fftw_plan_dft_r2c_1d(S::kFft, in, out, FFTW_ESTIMATE);
  }
  ~Fft() {
    {
      std::lock_guard<std::mutex> lock(fftw_planner_mutex());
      fftw_destroy_plan(plan);
    }
    fftw_free(in);
    fftw_free(out);
  }
  // Features of the 400 samples at `frame`.
  void features(const float* frame, float* dst) {
    const auto& w = log_mel_window();
    for (int n = 0; n < S::kWindow; ++n) in[n] = double(frame[n]) * w[n];
    for (int n = S::kWindow; n < S::kFft; ++n) in[n] = 0.0;
    fftw_execute(plan);
    double power[kBins];
    for (int k = 0; k < kBins; ++k) power[k] = out[k][0] * out[k][0] + out[k][1] * out[k][1];
    const auto& fb = log_mel_filterbank();
    const auto& ranges = log_mel_band_ranges();
    for (int m = 0; m < S::kMels; ++m) {
      const double* row = fb.data() + size_t(m) * kBins;
      double e = 0.0;
      for (int k = ranges[size_t(m)].first; k < ranges[size_t(m)].last; ++k) e += row[k] * power[k];
      dst[m] = float(std::log(e + S::kLogFloor));
    }
  }
};

LogMelStream::LogMelStream() : fft_(std::make_unique<Fft>()) { pending_.reserve(S::kWindow * 4); }
LogMelStream::~LogMelStream() = default;

void LogMelStream::push(const float* samples, size_t n) {
  // Drop consumed samples only now and then, so a large push costs O(n), not O(n * frames).
  if (start_ > 0 && start_ >= pending_.size() / 2) {
    pending_.erase(pending_.begin(), pending_.begin() + long(start_));
    start_ = 0;
  }
  pending_.insert(pending_.end(), samples, samples + n);
  pushed_ += n;
}

size_t LogMelStream::frames_ready() const { return log_mel_frame_count(pending_.size() - start_); }

bool LogMelStream::pop_frame(float* features) {
  if (pending_.size() - start_ < size_t(S::kWindow)) return false;
  fft_->features(pending_.data() + start_, features);
  start_ += S::kHop;  // the last 240 samples of this window start the next one
  ++popped_;
  return true;
}

size_t LogMelStream::pop_frames(float* dst, size_t count) {
  size_t t = 0;
  while (t < count && pop_frame(dst + t * S::kMels)) ++t;
  std::fill(dst + t * S::kMels, dst + count * S::kMels, 0.0f);
  return t;
}

void LogMelStream::end_audio(size_t silence) {
  if (audio_ended()) return;
  audio_frames_ = popped_ + frames_ready();
  pending_.resize(pending_.size() + silence, 0.0f);
  pushed_ += silence;
}

void LogMelStream::reset() {
  pending_.clear();
  start_ = 0;
  pushed_ = popped_ = 0;
  audio_frames_ = kNoEnd;
}

std::vector<float> log_mel(const float* samples, size_t n) {
  LogMelStream s;
  s.push(samples, n);
  std::vector<float> out(s.frames_ready() * S::kMels);
  for (size_t t = 0; t * S::kMels < out.size(); ++t) s.pop_frame(out.data() + t * S::kMels);
  return out;
}

}  // namespace vkssm

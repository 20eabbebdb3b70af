// vkssm_bench: decode throughput and latency, against the device's own copy bandwidth.
//
//   vkssm_bench [--model PATH] [--backend vulkan|cpu] [--device N] [--weights f32|f16]
//               [--tokens N] [--batch 1,4,16] [--json]
//
// Without --model it builds a random model shaped like mamba-130m (D 768, 24 layers, V 50280).
// A benchmark, not a test: it asserts nothing.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "bench/copy_bandwidth.h"
#include "engine/vkssm.hpp"
#include "host/error.h"
#include "models/mamba1/mamba1_model.h"

using namespace vkssm;

namespace {

struct Args {
  std::string model;
  BackendKind backend = BackendKind::Vulkan;
  int device = -1;
  WeightStorage weights = WeightStorage::F32;
  int tokens = 64;
  std::vector<int> batches{1};
  bool json = false;
  int64_t d_model = 768, n_layer = 24, vocab = 50280;
};

[[noreturn]] void usage(int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: vkssm_bench [--model PATH] [--backend vulkan|cpu] [--device N] [--weights f32|f16]\n"
               "                   [--tokens N] [--batch 1,4,16] [--json] [--d-model D --layers L --vocab V]\n");
  std::exit(code);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(2);
      return argv[++i];
    };
    if (f == "--help" || f == "-h") usage(0);
    else if (f == "--model") a.model = value();
    else if (f == "--backend") a.backend = value() == "cpu" ? BackendKind::Cpu : BackendKind::Vulkan;
    else if (f == "--device") a.device = std::atoi(value().c_str());
    else if (f == "--weights") a.weights = value() == "f16" ? WeightStorage::F16 : WeightStorage::F32;
    else if (f == "--tokens") a.tokens = std::max(2, std::atoi(value().c_str()));
    else if (f == "--json") a.json = true;
    else if (f == "--d-model") a.d_model = std::atoll(value().c_str());
    else if (f == "--layers") a.n_layer = std::atoll(value().c_str());
    else if (f == "--vocab") a.vocab = std::atoll(value().c_str());
    else if (f == "--batch") {
      a.batches.clear();
      std::string v = value();
      for (size_t p = 0; p < v.size();) {
        size_t q = v.find(',', p);
        if (q == std::string::npos) q = v.size();
        a.batches.push_back(std::max(1, std::atoi(v.substr(p, q - p).c_str())));
        p = q + 1;
      }
    } else usage(2);
  }
  return a;
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

struct Row {
  int batch = 1;
  double tokens_per_s = 0, step_p50_ms = 0, step_p99_ms = 0, host_us_per_step = 0;
  double submits = 0, dispatches = 0, recordings = 0;  // per step
  double weight_gbps = 0, roofline_fraction = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Args a = parse(argc, argv);
  try {
    int max_batch = *std::max_element(a.batches.begin(), a.batches.end());
    LoadOptions opt;
    opt.backend = a.backend;
    opt.device = a.device;
    opt.weights = a.weights;
    opt.max_streams = max_batch;
    std::unique_ptr<Model> model;
    std::string source = a.model;
    if (a.model.empty()) {
      Mamba1Config c;
      c.d_model = a.d_model;
      c.n_layer = a.n_layer;
      c.vocab_size = a.vocab;
      c.d_inner = 2 * a.d_model;
      c.dt_rank = (a.d_model + 15) / 16;
      Mamba1Weights w = random_mamba1(c, 42);
      model = create_mamba1(w, opt);
      source = "random mamba-130m shape (D " + std::to_string(c.d_model) + ", " + std::to_string(c.n_layer) +
               " layers, V " + std::to_string(c.vocab_size) + ")";
    } else {
      model = load_model(a.model, opt);
    }
    const ModelInfo& info = model->info();
    CopyBandwidth bw;
    if (a.backend == BackendKind::Vulkan) bw = measure_copy_bandwidth(a.device);

    std::vector<Row> rows;
    const int64_t V = info.vocab_size;
    for (int B : a.batches) {
      std::vector<int32_t> slots(B), tokens(B);
      for (int b = 0; b < B; ++b) {
        slots[b] = b;
        model->reset(b);
      }
      std::vector<float> logits(size_t(B) * V);
      std::vector<double> times;
      StepCounters before{};
      double cpu0 = 0;
      for (int t = 0; t < a.tokens + 3; ++t) {
        if (t == 3) {  // three warm-up steps
          before = model->counters();
          cpu0 = thread_cpu_seconds();
        }
        for (int b = 0; b < B; ++b) tokens[b] = int32_t((t * 7919 + b * 104729) % V);
        auto t0 = std::chrono::steady_clock::now();
        model->step(tokens.data(), slots.data(), B, logits.data());
        if (t >= 3) times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      double cpu = thread_cpu_seconds() - cpu0;
      StepCounters after = model->counters();
      double total = 0;
      for (double s : times) total += s;
      std::vector<double> sorted = times;
      std::sort(sorted.begin(), sorted.end());
      Row r;
      r.batch = B;
      const double n = double(times.size());
      r.tokens_per_s = n * B / total;
      r.step_p50_ms = 1e3 * sorted[sorted.size() / 2];
      r.step_p99_ms = 1e3 * sorted[std::min(sorted.size() - 1, size_t(0.99 * double(sorted.size())))];
      r.host_us_per_step = 1e6 * cpu / n;
      r.submits = double(after.submits - before.submits) / n;
      r.dispatches = double(after.dispatches - before.dispatches) / n;
      r.recordings = double(after.recordings - before.recordings) / n;
      r.weight_gbps = double(info.weight_bytes) * n / total / 1e9;
      if (bw.bytes_per_second > 0) r.roofline_fraction = r.weight_gbps * 1e9 / bw.bytes_per_second;
      rows.push_back(r);
    }

    if (a.json) {
      std::printf("{\n  \"model\": \"%s\",\n  \"backend\": \"%s\",\n  \"device\": \"%s\",\n  \"weights\": \"%s\",\n",
                  source.c_str(), info.backend.c_str(), info.device_name.c_str(), info.weight_type.c_str());
      std::printf("  \"weight_bytes_per_step\": %llu,\n  \"state_bytes_per_stream\": %llu,\n",
                  (unsigned long long)info.weight_bytes, (unsigned long long)info.state_bytes_per_stream);
      std::printf("  \"copy_bandwidth_gbps\": %.2f,\n  \"results\": [\n", bw.bytes_per_second / 1e9);
      for (size_t i = 0; i < rows.size(); ++i) {
        const Row& r = rows[i];
        std::printf("    {\"batch\": %d, \"tokens_per_s\": %.2f, \"step_p50_ms\": %.3f, \"step_p99_ms\": %.3f, "
                    "\"host_us_per_step\": %.1f, \"submits_per_step\": %.2f, \"dispatches_per_step\": %.1f, "
                    "\"recordings_per_step\": %.3f, \"weight_gbps\": %.2f, \"roofline_fraction\": %.3f}%s\n",
                    r.batch, r.tokens_per_s, r.step_p50_ms, r.step_p99_ms, r.host_us_per_step, r.submits,
                    r.dispatches, r.recordings, r.weight_gbps, r.roofline_fraction, i + 1 < rows.size() ? "," : "");
      }
      std::printf("  ]\n}\n");
      return 0;
    }
    std::printf("model     %s\n", source.c_str());
    std::printf("backend   %s on %s, %s weights\n", info.backend.c_str(), info.device_name.c_str(),
                info.weight_type.c_str());
    std::printf("weights   %.1f MB read per step; state %.2f MB per stream\n", info.weight_bytes / 1e6,
                info.state_bytes_per_stream / 1e6);
    if (bw.bytes_per_second > 0)
      std::printf("roofline  copy bandwidth %.1f GB/s (read+write) -> %.1f steps/s if weight reads ran at it\n",
                  bw.bytes_per_second / 1e9, bw.bytes_per_second / double(info.weight_bytes));
    std::printf("\n%6s %10s %9s %9s %10s %8s %11s %11s %8s %9s\n", "batch", "tokens/s", "p50 ms", "p99 ms",
                "host us", "submits", "dispatches", "recordings", "GB/s", "roofline");
    for (const Row& r : rows)
      std::printf("%6d %10.2f %9.3f %9.3f %10.1f %8.2f %11.1f %11.3f %8.2f %8.0f%%\n", r.batch, r.tokens_per_s,
                  r.step_p50_ms, r.step_p99_ms, r.host_us_per_step, r.submits, r.dispatches, r.recordings,
                  r.weight_gbps, 100 * r.roofline_fraction);
    std::printf("(per step: submits, dispatches, recordings; host us = CPU time of the calling thread)\n");
  } catch (const Error& e) {
    std::fprintf(stderr, "vkssm_bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

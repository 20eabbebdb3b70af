// vkssm_bench: decode throughput and latency, against the device's own copy bandwidth (the cpu
// backend: the host's read bandwidth with the same threads), and the
// time to first token for a document read by prefill versus restored from a saved state.
//
//   vkssm_bench [--model PATH] [--backend auto|vulkan|cpu|reference] [--device N] [--weights f32,q8_0,...|all]
//               [--tokens N] [--batch 1,4,16] [--ttft N] [--json | --csv]
//
// Without --model it builds a random model shaped like mamba-130m (D 768, 24 layers, V 50280).
// A benchmark, not a test: it asserts nothing.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "bench/copy_bandwidth.h"
#if VKSSM_CPU_FAST
#include "engine/cpu/read_bandwidth.h"
#endif
#include "bench/quant_quality.h"
#include "engine/architecture.h"
#include "engine/vkssm.hpp"
#include "host/error.h"

using namespace vkssm;

namespace {

struct Args {
  std::string model;
  BackendKind backend = BackendKind::Auto;
  int device = -1;
  int threads = 0;  // cpu backend: threads in all (0: $VKSSM_THREADS, else every core)
  std::vector<WeightStorage> weights{WeightStorage::F32};  // one run per entry, in order
  int tokens = 64;
  std::vector<int> batches{1};
  int ttft = 0;  // document length for the time-to-first-token comparison; 0 = skip it
  bool json = false;
  bool csv = false;
  BenchShape shape;             // the random model's size (mamba-130m's by default)
  std::string arch = "mamba";   // the random model's architecture (a registry name)
};

// The registered architectures the bench can make random models of.
std::string bench_architectures() {
  std::string s;
  for (const Architecture* arch : architectures())
    if (arch->random) s += (s.empty() ? "" : ", ") + arch->name;
  return s;
}

[[noreturn]] void usage(int code) {
  std::fprintf(
      code ? stderr : stdout,
      "usage: vkssm_bench [--model PATH] [--backend auto|vulkan|cpu|reference] [--device N] [--threads N]\n"
      "                   [--weights LIST|all] [--tokens N] [--batch 1,4,16] [--ttft N] [--json | --csv] [--d-model D --layers L --vocab V]\n"
      "                   [--arch NAME]\n"
      "\n"
      "  --model PATH      checkpoint folder; default: a random model (shape from --d-model/--layers/--vocab,\n"
      "                    default D 768, 24 layers, V 50280 = mamba-130m)\n"
      "  --arch NAME       the random model's architecture, one of: %s (default mamba;\n"
      "                    mamba2 takes the mamba2-130m layout: d_state 128, head_dim 64, 1 group)\n"
      "  --backend B       auto (default: Vulkan on a GPU, else cpu), vulkan, cpu (threads + SIMD) or\n"
      "                    reference (the plain reference)\n"
      "  --device N        Vulkan device index (default: $VKSSM_DEVICE, else the best device)\n"
      "  --threads N       cpu backend: threads in all, also for its read-bandwidth roofline\n"
      "                    (default: $VKSSM_THREADS, else every core)\n"
      "  --weights LIST    weight storage, comma-separated for one run each: f32 (default), f16, q8_0,\n"
      "                    q4_0, q4_k, q5_k, q6_k (ggml blocks, quantized at load); all = the tables'\n"
      "                    list, f32,f16,q8_0,q4_0,q4_k (bench/quant_quality.h)\n"
      "  --tokens N        timed decode steps per batch size, after 3 warm-up steps, and for the\n"
      "                    single-stream decode rate in --ttft (default 64, min 2)\n"
      "  --batch LIST      comma-separated batch sizes, e.g. 1,2,4,...,256 (default 1); state slots\n"
      "                    allocated = the largest; with 1 in the list a speed-up vs B=1 column is shown\n"
      "  --ttft N          also time the first token after an N-token document: Model::prefill + 1\n"
      "                    query step vs restore of the saved state + 1 query step (median of 7), and\n"
      "                    prompt tokens/s of prefill vs one step per token\n"
      "  --json            print the results as JSON instead of tables (an array of them for a list)\n"
      "  --csv             print one CSV row per weight storage and batch size (no --ttft figures)\n",
      bench_architectures().c_str());
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
    else if (f == "--backend") {
      const std::optional<BackendKind> b = backend_from_name(value());
      if (!b) usage(2);
      a.backend = *b;
    }
    else if (f == "--device") a.device = std::atoi(value().c_str());
    else if (f == "--threads") {
      a.threads = std::atoi(value().c_str());
      if (a.threads < 1 || a.threads > 1024) usage(2);
    }
    else if (f == "--weights") {
      try {
        a.weights = parse_weight_storage_list(value(), "--weights");
      } catch (const Error& e) {
        std::fprintf(stderr, "vkssm_bench: %s\n", e.what());
        std::exit(2);
      }
    }
    else if (f == "--tokens") a.tokens = std::max(2, std::atoi(value().c_str()));
    else if (f == "--ttft") {
      a.ttft = std::atoi(value().c_str());
      if (a.ttft < 0) usage(2);
    } else if (f == "--json") a.json = true;
    else if (f == "--csv") a.csv = true;
    else if (f == "--d-model") a.shape.d_model = std::atoll(value().c_str());
    else if (f == "--layers") a.shape.n_layer = std::atoll(value().c_str());
    else if (f == "--vocab") a.shape.vocab_size = std::atoll(value().c_str());
    else if (f == "--arch") {
      a.arch = value();
      const Architecture* arch = find_architecture(a.arch);
      if (!arch || !arch->random) usage(2);
    }
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
  if (a.json && a.csv) {
    std::fprintf(stderr, "vkssm_bench: --json and --csv exclude each other\n");
    std::exit(2);
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
  double speedup_vs_b1 = 0;  // aggregate tokens/s over B=1's; 0 when B=1 was not measured
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Time to first token for a question about an N-token document: read the document with
// Model::prefill (prompt tokens as the rows of one step), or one step per token, or restore its
// saved state.
struct Ttft {
  int doc_tokens = 0;
  int restore_repeats = 0;
  double prefill_ms = 0;         // Model::prefill of the N document tokens
  double stepwise_ms = 0;        // the same N tokens one step each (no logits)
  double stepwise_tokens_per_s = 0;
  double query_step_ms = 0;      // the query step after the prefill
  double prefill_ttft_ms = 0;    // prefill + query step
  double prompt_tokens_per_s = 0;
  double decode_tokens_per_s = 0;  // single stream, logits read back every step
  double snapshot_ms = 0;
  double restore_ms = 0;           // median over the repeats
  double restore_query_step_ms = 0;  // median
  double restore_ttft_ms = 0;        // median of (restore + query step)
  uint64_t blob_bytes = 0;
  double max_logit_diff = 0;  // restored vs prefilled logits for the query token (should be ~0)
};

Ttft measure_ttft(Model& model, int doc_tokens, int decode_steps) {
  constexpr int kRepeats = 7;
  const int64_t V = model.info().vocab_size;
  const int32_t doc_slot = 0, restore_slot = 1;
  const int32_t query = int32_t(31337 % V);
  std::vector<float> prefill_logits(V), logits(V);
  Ttft r;
  r.doc_tokens = doc_tokens;
  r.restore_repeats = kRepeats;

  std::vector<int32_t> doc(doc_tokens);
  for (int t = 0; t < doc_tokens; ++t) doc[t] = int32_t((int64_t(t) * 7919 + 12345) % V);
  // Token by token first (into the slot the restores use later), then by prefill.
  model.reset(restore_slot);
  auto tw = std::chrono::steady_clock::now();
  for (int t = 0; t < doc_tokens; ++t) model.step(&doc[t], &restore_slot, 1, nullptr);
  r.stepwise_ms = 1e3 * seconds_since(tw);
  r.stepwise_tokens_per_s = doc_tokens / (r.stepwise_ms / 1e3);

  model.reset(doc_slot);
  auto t0 = std::chrono::steady_clock::now();
  model.prefill(doc_slot, doc.data(), doc_tokens, nullptr);  // no logits until the query
  const double prefill_s = seconds_since(t0);

  auto ts = std::chrono::steady_clock::now();
  const std::vector<uint8_t> blob = model.snapshot(doc_slot);
  r.snapshot_ms = 1e3 * seconds_since(ts);
  r.blob_bytes = blob.size();

  auto tq = std::chrono::steady_clock::now();
  model.step(&query, &doc_slot, 1, prefill_logits.data());
  const double query_s = seconds_since(tq);
  r.prefill_ms = 1e3 * prefill_s;
  r.query_step_ms = 1e3 * query_s;
  r.prefill_ttft_ms = 1e3 * (prefill_s + query_s);
  r.prompt_tokens_per_s = doc_tokens / prefill_s;

  // Keep decoding the same stream to compare per-token cost with logits read back.
  auto td = std::chrono::steady_clock::now();
  for (int t = 0; t < decode_steps; ++t) {
    const int32_t tok = int32_t((int64_t(t) * 104729 + 7) % V);
    model.step(&tok, &doc_slot, 1, logits.data());
  }
  r.decode_tokens_per_s = decode_steps / seconds_since(td);

  // One unmeasured round first: the first restore may pay one-time costs the others do not.
  std::vector<double> restore_s, step_s, total_s;
  for (int rep = 0; rep <= kRepeats; ++rep) {
    model.reset(restore_slot);
    auto t1 = std::chrono::steady_clock::now();
    model.restore(restore_slot, blob.data(), blob.size());
    const double rs = seconds_since(t1);
    auto t2 = std::chrono::steady_clock::now();
    model.step(&query, &restore_slot, 1, logits.data());
    const double ss = seconds_since(t2);
    if (rep == 0) continue;
    restore_s.push_back(rs);
    step_s.push_back(ss);
    total_s.push_back(rs + ss);
  }
  r.restore_ms = 1e3 * median(restore_s);
  r.restore_query_step_ms = 1e3 * median(step_s);
  r.restore_ttft_ms = 1e3 * median(total_s);
  for (int64_t i = 0; i < V; ++i)
    r.max_logit_diff = std::max(r.max_logit_diff, double(std::abs(logits[i] - prefill_logits[i])));
  return r;
}

// Loads (or builds) the model with `weights` and measures it at every batch size; prints one JSON
// object, CSV rows or the tables. `first` / `last` place it among the runs of a --weights list.
void run_weights(const Args& a, WeightStorage weights, const CopyBandwidth& bw, bool first, bool last) {
  const int max_batch = *std::max_element(a.batches.begin(), a.batches.end());
  LoadOptions opt;
  opt.backend = a.backend;
  opt.device = a.device;
  opt.cpu_threads = a.threads;
  opt.weights = weights;
  opt.max_streams = a.ttft > 0 ? std::max(2, max_batch) : max_batch;  // TTFT restores into slot 1
  std::unique_ptr<Model> model;
  std::string source = a.model;
  if (a.model.empty()) {
    const Architecture& arch = *find_architecture(a.arch);
    model = arch.random(a.shape, opt);
    source = "random " + arch.name + " model (D " + std::to_string(a.shape.d_model) + ", " +
             std::to_string(a.shape.n_layer) + " layers, V " + std::to_string(a.shape.vocab_size) + "; " +
             arch.bench_layout + ")";
  } else {
    model = load_model(a.model, opt);
  }
  const ModelInfo& info = model->info();
  if (info.vocab_size == 0)  // frame models have no token steps to time
    throw Error(source + " is a frame model (" + info.architecture +
                "); it is measured by 'vkssm listen --bench N' (speech-command models) instead");

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
  const auto b1 = std::find_if(rows.begin(), rows.end(), [](const Row& r) { return r.batch == 1; });
  if (b1 != rows.end())
    for (Row& r : rows) r.speedup_vs_b1 = r.tokens_per_s / b1->tokens_per_s;

  Ttft ttft;
  if (a.ttft > 0) ttft = measure_ttft(*model, a.ttft, a.tokens);
  const double state_mb = info.state_bytes_per_stream / 1e6;
  uint64_t device_bytes = 0;  // every weight tensor on the device (Vulkan)
  for (const TensorStorage& t : info.tensors) device_bytes += t.bytes;

  if (a.json) {
    std::printf("{\n  \"model\": \"%s\",\n  \"backend\": \"%s\",\n  \"device\": \"%s\",\n  \"weights\": \"%s\",\n",
                source.c_str(), info.backend.c_str(), info.device_name.c_str(), info.weight_type.c_str());
    std::printf("  \"weight_bytes_per_step\": %llu,\n  \"weight_device_bytes\": %llu,\n"
                "  \"state_bytes_per_stream\": %llu,\n",
                (unsigned long long)info.weight_bytes, (unsigned long long)device_bytes,
                (unsigned long long)info.state_bytes_per_stream);
    std::printf("  \"copy_bandwidth_gbps\": %.2f,\n  \"read_bandwidth_gbps\": %.2f,\n  \"results\": [\n",
                bw.read_only ? 0.0 : bw.bytes_per_second / 1e9, bw.read_bytes_per_second / 1e9);
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      std::printf("    {\"batch\": %d, \"tokens_per_s\": %.2f, \"step_p50_ms\": %.3f, \"step_p99_ms\": %.3f, "
                  "\"host_us_per_step\": %.1f, \"submits_per_step\": %.2f, \"dispatches_per_step\": %.1f, "
                  "\"recordings_per_step\": %.3f, \"weight_gbps\": %.2f, \"roofline_fraction\": %.3f, "
                  "\"weight_bytes_per_token\": %.0f, \"state_bytes\": %llu, \"speedup_vs_b1\": ",
                  r.batch, r.tokens_per_s, r.step_p50_ms, r.step_p99_ms, r.host_us_per_step, r.submits,
                  r.dispatches, r.recordings, r.weight_gbps, r.roofline_fraction, double(info.weight_bytes) / r.batch,
                  (unsigned long long)(uint64_t(r.batch) * info.state_bytes_per_stream));
      if (r.speedup_vs_b1 > 0) std::printf("%.2f}", r.speedup_vs_b1);
      else std::printf("null}");
      std::printf("%s\n", i + 1 < rows.size() ? "," : "");
    }
    std::printf("  ]");
    if (a.ttft > 0) {
      const Ttft& t = ttft;
      std::printf(",\n  \"ttft\": {\"doc_tokens\": %d, \"state_blob_bytes\": %llu, \"prefill_ms\": %.3f, "
                  "\"query_step_ms\": %.3f, \"prefill_ttft_ms\": %.3f, \"prompt_tokens_per_s\": %.2f, "
                  "\"stepwise_prompt_ms\": %.3f, \"stepwise_prompt_tokens_per_s\": %.2f, "
                  "\"decode_tokens_per_s\": %.2f, \"snapshot_ms\": %.3f, \"restore_ms\": %.3f, "
                  "\"restore_query_step_ms\": %.3f, \"restore_ttft_ms\": %.3f, \"restore_repeats\": %d, "
                  "\"speedup\": %.2f, \"max_logit_diff\": %.3g}",
                  t.doc_tokens, (unsigned long long)t.blob_bytes, t.prefill_ms, t.query_step_ms,
                  t.prefill_ttft_ms, t.prompt_tokens_per_s, t.stepwise_ms, t.stepwise_tokens_per_s,
                  t.decode_tokens_per_s, t.snapshot_ms, t.restore_ms,
                  t.restore_query_step_ms, t.restore_ttft_ms, t.restore_repeats,
                  t.prefill_ttft_ms / t.restore_ttft_ms, t.max_logit_diff);
    }
    std::printf("\n}%s\n", last ? "" : ",");
    return;
  }
  if (a.csv) {
    for (const Row& r : rows)
      std::printf("%s,%s,%s,%d,%.3f,%.3f,%.3f,%.0f,%llu,%.3f,%.2f,%.3f,%.3f\n", info.architecture.c_str(),
                  info.backend.c_str(), info.weight_type.c_str(), r.batch, r.tokens_per_s, r.step_p50_ms,
                  r.step_p99_ms, double(info.weight_bytes) / r.batch, (unsigned long long)device_bytes,
                  r.weight_gbps, bw.bytes_per_second / 1e9, r.roofline_fraction, r.speedup_vs_b1);
    return;
  }
  if (!first) std::printf("\n");
  std::printf("model     %s\n", source.c_str());
  std::printf("backend   %s on %s, %s weights\n", info.backend.c_str(), info.device_name.c_str(),
              info.weight_type.c_str());
  std::printf("weights   %.1f MB read per step, %.1f MB on the device; state %.2f MB per stream\n",
              info.weight_bytes / 1e6, device_bytes / 1e6, info.state_bytes_per_stream / 1e6);
  if (bw.read_only)
    std::printf("roofline  read bandwidth %.1f GB/s (%d threads) -> %.1f steps/s if weight reads ran at it\n",
                bw.bytes_per_second / 1e9, bw.threads, bw.bytes_per_second / double(info.weight_bytes));
  else if (bw.bytes_per_second > 0)
    std::printf("roofline  copy bandwidth %.1f GB/s (read+write) -> %.1f steps/s if weight reads ran at it\n",
                bw.bytes_per_second / 1e9, bw.bytes_per_second / double(info.weight_bytes));
  const bool speedup = b1 != rows.end();
  std::printf("\n%6s %10s %9s %9s %9s %10s %8s %11s %11s %8s %9s %9s %9s\n", "batch", "tokens/s",
              "vs B=1", "p50 ms", "p99 ms", "host us", "submits", "dispatches", "recordings", "GB/s",
              "roofline", "MB/token", "state MB");
  for (const Row& r : rows) {
    char vs[32] = "-";
    if (speedup) std::snprintf(vs, sizeof vs, "%.2fx", r.speedup_vs_b1);
    std::printf("%6d %10.2f %9s %9.3f %9.3f %10.1f %8.2f %11.1f %11.3f %8.2f %8.0f%% %9.2f %9.2f\n", r.batch,
                r.tokens_per_s, vs, r.step_p50_ms, r.step_p99_ms, r.host_us_per_step, r.submits, r.dispatches,
                r.recordings, r.weight_gbps, 100 * r.roofline_fraction, info.weight_bytes / 1e6 / r.batch,
                r.batch * state_mb);
  }
  std::printf("(per step: submits, dispatches, recordings; host us = CPU time of the calling thread;\n"
              " vs B=1 = aggregate tokens/s over B=1's; MB/token = weight bytes read per step / B;\n"
              " state MB = B x %.2f MB per stream)\n",
              state_mb);
  if (a.ttft > 0) {
    const Ttft& t = ttft;
    std::printf("\ntime to first token after a %d-token document (state blob %llu bytes)\n", t.doc_tokens,
                (unsigned long long)t.blob_bytes);
    std::printf("%-9s %10s %10s %10s\n", "path", "TTFT ms", "doc ms", "query ms");
    std::printf("%-9s %10.2f %10.2f %10.3f\n", "prefill", t.prefill_ttft_ms, t.prefill_ms, t.query_step_ms);
    std::printf("%-9s %10.2f %10.3f %10.3f   (medians of %d)\n", "restore", t.restore_ttft_ms, t.restore_ms,
                t.restore_query_step_ms, t.restore_repeats);
    std::printf("(doc ms = getting the %d-token document into the state: Model::prefill, or one restore of its blob)\n",
                t.doc_tokens);
    std::printf("prompt by prefill %.1f tokens/s vs one step per token %.1f tokens/s (%.2fx)\n",
                t.prompt_tokens_per_s, t.stepwise_tokens_per_s, t.prompt_tokens_per_s / t.stepwise_tokens_per_s);
    std::printf("restore is %.1fx faster; prefill %.1f prompt tokens/s vs decode %.1f tokens/s (1 stream);\n"
                "snapshot took %.2f ms; restored vs prefilled query logits differ by at most %.3g\n",
                t.prefill_ttft_ms / t.restore_ttft_ms, t.prompt_tokens_per_s, t.decode_tokens_per_s,
                t.snapshot_ms, t.max_logit_diff);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Args a = parse(argc, argv);
  try {
    if (a.backend == BackendKind::Auto) {
      // Decided once, up front: the copy bandwidth below is only measured for Vulkan. On stderr,
      // so --json and --csv output stays machine-readable.
      const BackendChoice c = choose_auto_backend(a.device);
      a.backend = c.backend;
      if (c.backend == BackendKind::Vulkan) a.device = c.device;
      std::fprintf(stderr, "vkssm_bench: auto backend: %s\n", c.reason.c_str());
    }
    CopyBandwidth bw;
    if (a.backend == BackendKind::Vulkan) bw = measure_copy_bandwidth(a.device);
#if VKSSM_CPU_FAST
    if (a.backend == BackendKind::Cpu) {
      // The same number of threads as the backend's pool, reading as its kernels read.
      ThreadPool pool(a.threads);
      bw.read_only = true;
      bw.threads = pool.size();
      bw.bytes_per_second = bw.read_bytes_per_second = measure_read_bandwidth(pool);
    }
#endif
    // One format prints the JSON object it always did; a list prints an array of them.
    const bool array = a.json && a.weights.size() > 1;
    if (array) std::printf("[\n");
    if (a.csv)
      std::printf("architecture,backend,weights,batch,tokens_per_s,step_p50_ms,step_p99_ms,"
                  "weight_bytes_per_token,weight_device_bytes,weight_gbps,copy_bandwidth_gbps,roofline_fraction,"
                  "speedup_vs_b1\n");
    for (size_t i = 0; i < a.weights.size(); ++i) {
      run_weights(a, a.weights[i], bw, i == 0, i + 1 == a.weights.size());
      std::fflush(stdout);  // each format's result as soon as it is measured
    }
    if (array) std::printf("]\n");
  } catch (const Error& e) {
    std::fprintf(stderr, "vkssm_bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

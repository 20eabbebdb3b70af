// vkssm_quality: what each weight storage costs in quality, through the engine's own logits.
//
//   vkssm_quality [--backend auto|vulkan|cpu|reference] [--weights LIST|all] [--model DIR --text FILE]
//                 [--windows N] [--window T] [--kl-tokens N] [--d-model D --layers L --vocab V]
//
// (a) With --model and --text: the model's cross-entropy (nats per token) on the held-out end of
//     the text, the last 10% of its bytes (what models/mamba1/train_tiny.py holds out of
//     tinyshakespeare), as N windows of T + 1 tokens spread evenly over it, each window from a
//     zero state, predicting its tokens 1..T (train_tiny.py's validation: 128-token windows).
// (b) Always: a random Mamba-1 model (mamba-130m's shape unless --d-model/--layers/--vocab; the
//     bench's seed) fed a fixed token sequence; the mean over positions of KL(f32 || storage) of
//     the next-token distributions.
// A measurement, not a test: it asserts nothing.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "bench/quant_quality.h"
#include "engine/architecture.h"
#include "engine/vkssm.hpp"
#include "engine/weight_storage.h"
#include "host/error.h"
#include "host/tokenizer.h"

using namespace vkssm;

namespace {

struct Args {
  BackendKind backend = BackendKind::Auto;
  std::vector<WeightStorage> weights = measured_weight_storages();
  std::string model, text;
  int windows = 32, window = 128, kl_tokens = 32;
  BenchShape shape;
};

[[noreturn]] void usage(int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: vkssm_quality [--backend auto|vulkan|cpu|reference] [--weights LIST|all] [--model DIR --text FILE]\n"
               "                     [--windows N] [--window T] [--kl-tokens N] [--d-model D --layers L --vocab V]\n"
               "\n"
               "  --weights LIST  comma-separated storages (f32 first: the others are compared with it);\n"
               "                  default all\n"
               "  --model DIR     a checkpoint with a tokenizer, e.g. models/mamba1/tiny-shakespeare\n"
               "  --text FILE     its text; the last 10%% of the bytes are the held-out part\n"
               "  --windows N     held-out windows, one stream each (default 32)\n"
               "  --window T      tokens predicted per window (default 128)\n"
               "  --kl-tokens N   length of the random model's token sequence (default 32; 0 = skip)\n"
               "  --d-model, --layers, --vocab  the random model's shape (default mamba-130m's)\n");
  std::exit(code);
}

int positive(const char* flag, const std::string& v) {
  const int n = std::atoi(v.c_str());
  if (n < 0 || std::to_string(n) != v) {
    std::fprintf(stderr, "vkssm_quality: %s: expected a number >= 0, got '%s'\n", flag, v.c_str());
    std::exit(2);
  }
  return n;
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(2);
      return argv[++i];
    };
    if (f == "--help" || f == "-h") usage(0);
    else if (f == "--backend") {
      const std::optional<BackendKind> b = backend_from_name(value());
      if (!b) usage(2);
      a.backend = *b;
    } else if (f == "--weights") {
      try {
        a.weights = parse_weight_storage_list(value(), "--weights");
      } catch (const Error& e) {
        std::fprintf(stderr, "vkssm_quality: %s\n", e.what());
        std::exit(2);
      }
    } else if (f == "--model") a.model = value();
    else if (f == "--text") a.text = value();
    else if (f == "--windows") a.windows = std::max(1, positive("--windows", value()));
    else if (f == "--window") a.window = std::max(1, positive("--window", value()));
    else if (f == "--kl-tokens") a.kl_tokens = positive("--kl-tokens", value());
    else if (f == "--d-model") a.shape.d_model = positive("--d-model", value());
    else if (f == "--layers") a.shape.n_layer = positive("--layers", value());
    else if (f == "--vocab") a.shape.vocab_size = positive("--vocab", value());
    else usage(2);
  }
  if (a.model.empty() != a.text.empty()) {
    std::fprintf(stderr, "vkssm_quality: --model and --text go together\n");
    std::exit(2);
  }
  return a;
}

// The held-out tokens: the text's last 10% of bytes, through the model's tokenizer.
std::vector<int32_t> held_out_tokens(const Args& a) {
  std::ifstream in(a.text, std::ios::binary);
  if (!in) throw Error("cannot read --text " + a.text);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::unique_ptr<Tokenizer> tok = load_tokenizer_for_path(a.model);
  if (!tok) throw Error("model " + a.model + " has no tokenizer to read --text with");
  return tok->encode(text.substr(text.size() - text.size() / 10));
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  try {
    LoadOptions opt;
    opt.backend = a.backend;
    if (opt.backend == BackendKind::Auto) {
      // Decided once for every model below, and said in the table's header.
      const BackendChoice c = choose_auto_backend();
      opt.backend = c.backend;
      opt.device = c.device;
      std::fprintf(stderr, "vkssm_quality: auto backend: %s\n", c.reason.c_str());
    }
    std::vector<std::vector<int32_t>> windows;
    if (!a.model.empty()) windows = even_windows(held_out_tokens(a), a.windows, a.window);
    std::vector<int32_t> seq;
    for (int t = 0; t < a.kl_tokens; ++t) seq.push_back(int32_t((int64_t(t) * 7919 + 12345) % a.shape.vocab_size));
    const Architecture& mamba = *find_architecture("mamba");
    std::vector<float> f32_logits;
    if (!seq.empty()) {  // the reference distribution, whatever the list holds
      opt.weights = WeightStorage::F32;
      f32_logits = sequence_logits(*mamba.random(a.shape, opt), seq);
    }
    double f32_loss = -1;
    std::printf("%-8s %16s %10s %14s   (%s backend)\n", "weights", "held-out nats", "vs f32", "KL vs f32",
                backend_name(opt.backend));
    for (WeightStorage w : a.weights) {
      opt.weights = w;
      char loss[32] = "-", delta[32] = "-", kl[32] = "-";
      if (!windows.empty()) {
        opt.max_streams = int(windows.size());
        const double ce = mean_cross_entropy(*load_model(a.model, opt), windows);
        std::snprintf(loss, sizeof loss, "%.5f", ce);
        if (w == WeightStorage::F32) f32_loss = ce;
        if (f32_loss >= 0) std::snprintf(delta, sizeof delta, "%+.5f", ce - f32_loss);
      }
      if (!seq.empty()) {
        opt.max_streams = 1;
        const std::vector<float> q = sequence_logits(*mamba.random(a.shape, opt), seq);
        std::snprintf(kl, sizeof kl, "%.3e", mean_kl(f32_logits, q, a.shape.vocab_size));
      }
      std::printf("%-8s %16s %10s %14s\n", weight_storage_name(w), loss, delta, kl);
      std::fflush(stdout);
    }
    if (!windows.empty())
      std::printf("held-out: %zu windows of %d tokens predicted, from the last 10%% of %s\n", windows.size(), a.window,
                  a.text.c_str());
    if (!seq.empty())
      std::printf("KL: random mamba model (D %lld, %lld layers, V %lld), %zu positions from a zero state\n",
                  (long long)a.shape.d_model, (long long)a.shape.n_layer, (long long)a.shape.vocab_size, seq.size());
  } catch (const Error& e) {
    std::fprintf(stderr, "vkssm_quality: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

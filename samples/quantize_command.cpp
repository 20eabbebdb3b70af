// `vkssm quantize` (samples/quantize_command.h).
#include "samples/quantize_command.h"

#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "engine/architecture.h"
#include "host/checkpoint.h"
#include "host/error.h"
#include "host/gguf.h"
#include "host/gguf_vocab.h"
#include "models/mamba1/mamba1_gguf.h"
#include "models/mamba2/mamba2_gguf.h"

namespace vkssm::cli {

const std::vector<Flag> kQuantizeFlags = {
    {"--model", "PATH", "checkpoint folder (config.json + *.safetensors) or .gguf file (re-quantized)"},
    {"--type", "TYPE", "q8_0, q4_0, q4_k (also f32, f16, q4_1, q5_0, q5_1, q2_k, q3_k, q5_k, q6_k)"},
    {"--out", "FILE", "the GGUF file to write"},
    {"--name", "TEXT", "general.name (default: the model folder's name)"},
};

const char* const kQuantizeDetails =
    "Writes what llama.cpp's convert_hf_to_gguf.py writes for the model (architecture \"mamba\":\n"
    "tensor names, metadata keys, tokenizer.ggml.* from tokenizer.json or the byte tokenizer;\n"
    "without either, tokenizer.ggml.model \"none\" and {arch}.vocab_size, which llama.cpp needs),\n"
    "with every matrix in TYPE as `llama-quantize --pure` would: norms, conv1d, A, D and biases\n"
    "stay F32; a matrix whose rows are not whole TYPE blocks falls back as llama.cpp does\n"
    "(q4_k -> q5_0 -> f16, as llama-quantize; q8_0 / q4_0 -> f16, as convert_hf_to_gguf.py,\n"
    "where llama-quantize refuses the file). Blocks are quantized with llama.cpp's reference\n"
    "rounding, so `--weights q8_0` on the original and on the file use the same blocks.\n"
    "Mamba-1, Falcon-Mamba and Mamba-2 models.\n";

namespace {

// The --type names, as llama-quantize spells them in lower case.
uint32_t parse_type(const std::string& text) {
  static const std::map<std::string, uint32_t> kTypes = {
      {"f32", ggml_type::F32},   {"f16", ggml_type::F16},   {"q4_0", ggml_type::Q4_0}, {"q4_1", ggml_type::Q4_1},
      {"q5_0", ggml_type::Q5_0}, {"q5_1", ggml_type::Q5_1}, {"q8_0", ggml_type::Q8_0}, {"q2_k", ggml_type::Q2_K},
      {"q3_k", ggml_type::Q3_K}, {"q4_k", ggml_type::Q4_K}, {"q5_k", ggml_type::Q5_K}, {"q6_k", ggml_type::Q6_K}};
  const auto it = kTypes.find(text);
  if (it == kTypes.end())
    throw UsageError("--type '" + text + "' is not one of f32, f16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, "
                     "q4_k, q5_k, q6_k");
  return it->second;
}

}  // namespace

int cmd_quantize(const Args& args) {
  const std::string model = args.get("--model"), out = args.get("--out");
  const uint32_t target = parse_type(args.get("--type"));
  std::error_code ec;
  if (!std::filesystem::exists(model, ec)) throw Error("model path '" + model + "' does not exist");
  const Checkpoint ckpt = Checkpoint::open(model);
  const Architecture& arch = architecture_of(ckpt.config(), ckpt.config_source());
  const bool mamba1 = arch.name == "mamba" || arch.name == "falcon_mamba";
  if (!mamba1 && arch.name != "mamba2")
    throw Error("vkssm quantize writes Mamba-1, Falcon-Mamba and Mamba-2 models; " + model + " is " + arch.name);
  std::optional<Mamba1Weights> w1;
  std::optional<Mamba2Weights> w2;
  if (mamba1) w1 = load_mamba1(ckpt);
  else w2 = load_mamba2(ckpt);
  const int64_t vocab_size = mamba1 ? w1->cfg.vocab_size : w2->cfg.vocab_size;
  // A GGUF source keeps its tokenizer in its metadata, which Checkpoint does not carry over.
  const std::string gguf = find_gguf_file(model);
  const std::optional<GgufVocab> vocab = gguf.empty() ? gguf_vocab_for_model(ckpt.dir(), ckpt.config(), vocab_size)
                                                      : gguf_vocab_from_file(*GgufFile::open(gguf));
  std::string name = args.get_or("--name", "");
  if (name.empty()) name = std::filesystem::path(model).lexically_normal().filename().string();
  if (name.empty()) name = std::filesystem::path(model).lexically_normal().parent_path().filename().string();

  const std::vector<GgufTensorSummary> tensors = mamba1 ? write_mamba1_gguf(*w1, target, name, vocab, out)
                                                        : write_mamba2_gguf(*w2, target, name, vocab, out);
  std::map<std::string, std::pair<int, uint64_t>> by_type;  // type -> tensors, bytes
  uint64_t total = 0;
  for (const GgufTensorSummary& t : tensors) {
    auto& [count, bytes] = by_type[ggml_type_name(t.type)];
    ++count;
    bytes += t.bytes;
    total += t.bytes;
  }
  std::printf("wrote %s: %zu tensors, %.2f MB of tensor data\n", out.c_str(), tensors.size(), double(total) / 1e6);
  for (const auto& [type, cb] : by_type)
    std::printf("  %-5s %4d tensors %10.2f MB\n", type.c_str(), cb.first, double(cb.second) / 1e6);
  if (!vocab)
    std::printf("note: %s has no tokenizer vkssm can store (no tokenizer.json or byte tokenizer); the file has "
                "tokenizer.ggml.model \"none\" and no token list\n",
                model.c_str());
  return 0;
}

}  // namespace vkssm::cli

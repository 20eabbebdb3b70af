// `vkssm`: the command-line front end of the library.
//
//   vkssm devices  [--profile NAME | --list-profiles]  list Vulkan devices (as a device profile sees them)
//                                                      and where --backend auto runs
//   vkssm info     --model PATH                        what a checkpoint holds and where it runs
//   vkssm logits   --model PATH --ids 1,2,3 --out F    logits of each position, as .npy
//                  (--ids given N times: N streams stepped together, --out a folder)
//   vkssm logits   --model PATH --inputs X.npy --out F  frame models (S4D): outputs of each step
//   vkssm generate --model PATH --prompt TEXT -n N     sample text
//   vkssm listen   [--model DIR] INPUT...              spoken commands in audio streams
//   vkssm serve    --model PATH [--port N] [--redis URL]  sessions and completions over HTTP
//   vkssm tokenize / detokenize (--tokenizer F | --model PATH) [--jsonl]   text <-> ids on stdin/stdout
//   vkssm quantize --model PATH --type q8_0 --out F.gguf  the model as a llama.cpp GGUF file
//
// Exit codes: 0 success, 1 runtime error ("vkssm: error: ..."), 2 usage error. Arguments are all
// checked before a model is loaded, so a typo fails fast.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/architecture.h"
#include "engine/vk/device_profiles.h"
#include "engine/vkssm.hpp"
#include "host/checkpoint.h"
#include "host/dtype.h"
#include "host/error.h"
#include "host/npy.h"
#include "host/sampling.h"
#include "host/tokenizer.h"
#include "samples/cli_args.h"
#include "samples/listen_command.h"
#ifdef VKSSM_SERVE
#include "samples/serve/serve_command.h"
#endif
#include "samples/load_options.h"
#include "samples/quantize_command.h"
#include "samples/tokenize_command.h"

namespace vkssm::cli {
namespace {

// ---- options shared by the commands that load a model -------------------------------------

const std::vector<Flag> kModelFlags = {
    {"--model", "PATH", "checkpoint folder (config.json + *.safetensors)"},
    {"--backend", "NAME", kBackendHelp},
    {"--device", "N", "Vulkan device index (default: $VKSSM_DEVICE, else the best)"},
    {"--threads", "N", kThreadsHelp},
    {"--weights", "TYPE", "auto (default), f32, f16, q8_0, q4_0, q4_k, q5_k or q6_k (ggml blocks, quantized at load)"},
};

std::vector<Flag> with_model_flags(std::vector<Flag> flags) {
  flags.insert(flags.begin(), kModelFlags.begin(), kModelFlags.end());
  return flags;
}

// The library's own message for a missing folder depends on which file it tried first; this one
// names exactly what the user typed.
void require_model_path(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error("model path '" + path + "' does not exist");
}

// The model's tokenizer: a GGUF file's own, else the checkpoint folder's (see tokenizer.h).
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) { return load_tokenizer_for_path(path); }

// Fails with a message naming the position rather than letting step() reject the id mid-run.
void check_ids(const std::vector<int32_t>& ids, int64_t vocab_size, const std::string& what) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] >= vocab_size) {
      throw Error("token id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                  " of " + what + " is out of range for vocabulary size " + std::to_string(vocab_size));
    }
  }
}

std::string format_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char buf[64];
  if (u == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else std::snprintf(buf, sizeof buf, "%.2f %s", v, units[u]);
  return buf;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// ---- vkssm devices --------------------------------------------------------------------------

// The effective limits and features under a profile, and the fallbacks the engine takes with them
// (the same decisions as engine/vk/device_tuning.cpp, vulkan_weights_plan.cpp and
// vulkan_step_model.cpp make at load).
void print_effective(const DeviceInfo& d) {
  auto yes_no = [](bool b) { return b ? "yes" : "no"; };
  std::cout << "    profile:                   " << d.profile << "\n"
            << "    maxStorageBufferRange:     " << d.max_storage_buffer_range << "\n"
            << "    maxTexelBufferElements:    " << d.max_texel_buffer_elements << "\n"
            << "    maxMemoryAllocationSize:   " << d.max_memory_allocation_size << "\n"
            << "    maxMemoryAllocationCount:  " << d.max_memory_allocation_count << "\n"
            << "    storage buffers per stage: " << d.max_per_stage_storage_buffers << "\n"
            << "    subgroup arithmetic:       " << yes_no(d.subgroup_arithmetic) << "\n"
            << "    timeline semaphores:       " << yes_no(d.timeline_semaphores) << "\n"
            << "    fallbacks:\n"
            << "      step completion:         " << (d.timeline_semaphores ? "timeline semaphore" : "fences") << "\n"
            << "      matvec reductions:       "
            << (d.subgroup_arithmetic ? "subgroup adds" : "shared memory (at most 32 threads)") << "\n"
            << "      fp16 weights:            "
            << (d.storage16 ? "auto for fp16/bf16 checkpoints"
                            : "only with --weights f16 (packed in 32-bit words; no 16-bit storage)")
            << "\n"
            << "      large tensors:           split into bindings of at most "
            << format_bytes(d.max_storage_buffer_range) << "\n"
            << "      pipeline cache on disk:  " << yes_no(d.pipeline_cache_on_disk) << "\n";
}

int cmd_devices(const Args& args) {
  if (args.has("--list-profiles")) {
    for (const std::string& name : device_profile_names()) std::cout << name << "\n";
    return 0;
  }
  const bool with_profile = args.has("--profile");
  const std::string profile = args.get_or("--profile", "");
  if (with_profile) {
    const std::vector<std::string> names = device_profile_names();
    if (std::find(names.begin(), names.end(), profile) == names.end()) {
      std::string known;
      for (const std::string& n : names) known += (known.empty() ? "" : ", ") + n;
      throw UsageError("--profile '" + profile + "' is not a known device profile (known: " + known + ")");
    }
  }
  // What --backend auto (the default) would run on, after the list: on a machine without Vulkan
  // that is the answer to "where will my model run", so the command says it instead of failing.
  auto print_auto = [&] {
    const BackendChoice c = choose_auto_backend();
    std::cout << "auto backend: " << backend_name(c.backend) << " \u2014 " << c.why << "\n";
  };
  std::vector<DeviceInfo> devices;
  try {
    devices = with_profile ? list_devices(profile) : list_devices();
  } catch (const Error& e) {
    if (with_profile) throw;  // the profile's limits were asked for: there are none to show
    std::cout << "no Vulkan devices: " << e.what() << "\n";
    print_auto();
    return 0;
  }
  if (devices.empty()) {
    std::cout << "no Vulkan devices found\n";
    print_auto();
    return 0;
  }
  auto yes_no = [](bool b) { return b ? "yes" : "no"; };
  auto list = [](const std::vector<std::string>& items) {
    std::string s;
    for (const std::string& i : items) s += (s.empty() ? "" : ", ") + i;
    return s.empty() ? std::string("none") : s;
  };
  for (const DeviceInfo& d : devices) {
    // VK_API_VERSION_MAJOR/MINOR/PATCH, spelled out so this file needs no Vulkan header.
    uint32_t v = d.api_version;
    std::cout << "[" << d.index << "] " << d.name << (d.is_default ? "  (default)" : "") << "\n"
              << "    type:                      " << d.type << "\n"
              << "    Vulkan API:                " << ((v >> 22) & 0x7F) << "." << ((v >> 12) & 0x3FF)
              << "." << (v & 0xFFF) << "\n"
              << "    16-bit storage:            " << yes_no(d.storage16) << "\n"
              << "    fp16 arithmetic:           " << yes_no(d.float16) << "\n"
              << "    8-bit storage:             " << yes_no(d.storage8) << "\n"
              << "    subgroup size:             " << d.subgroup_size << "\n"
              << "    shared memory:             " << format_bytes(d.shared_memory) << "\n"
              << "    max workgroup invocations: " << d.max_workgroup_invocations << "\n"
              << "    device-local memory:       " << format_bytes(d.device_local_bytes) << "\n"
              << "    driver:                    " << d.driver << "\n"
              << "    quirks:                    " << list(d.quirks) << "\n";
    if (with_profile) print_effective(d);
  }
  print_auto();
  return 0;
}

// ---- vkssm info -----------------------------------------------------------------------------

// The Vulkan backend's memory plan: what the weights, the state slots, the outputs and the
// rollback rings take, how many streams and why.
void print_memory_plan(const ModelInfo& info) {
  const MemoryPlan& m = info.memory;
  if (info.backend != "vulkan") return;
  auto bytes = [](uint64_t n) { return format_bytes(n) + " (" + std::to_string(n) + " bytes)"; };
  std::cout << "unified memory:   " << (m.unified_memory ? "yes" : "no") << " (uploads " << m.upload << ")\n"
            << "memory budget:    " << bytes(m.budget_bytes) << "\n";
  std::string weights;
  for (const auto& [type, n] : m.weights) weights += (weights.empty() ? "" : ", ") + type + " " + bytes(n);
  std::cout << "weights memory:   " << weights << "\n"
            << "streams:          " << m.capacity << " (" << m.capacity_reason
            << (m.capacity_detail.empty() ? "" : ": " + m.capacity_detail) << ")\n"
            << "state memory:     " << bytes(m.state_bytes) << ", " << info.state_bytes_per_stream
            << " bytes per stream\n"
            << (info.d_input > 0 ? "outputs memory:   " : "logits memory:    ") << bytes(m.outputs_bytes) << "\n"
            << "rollback memory:  " << bytes(m.rollback_bytes) << "\n"
            << "other memory:     " << bytes(m.other_bytes) << " (activations, step inputs)\n"
            << "total memory:     " << bytes(m.total_bytes) << "\n";
}

// The name the Vulkan graphs give a checkpoint tensor when they upload it (WeightUploader's
// "what"), for the tensor listing: "backbone.layers.3.mixer.in_proj.weight" -> "layer 3 in_proj"
// (or "layer 3 in_proj weight"), A_log -> "layer 3 A". Candidates in the order to try.
std::vector<std::string> device_names_of(const std::string& name) {
  if (name == "backbone.embeddings.weight") return {"token embeddings"};
  if (name == "backbone.norm_f.weight") return {"norm_f"};
  if (name == "lm_head.weight") return {"lm_head"};
  const std::string layers = "backbone.layers.";
  if (name.compare(0, layers.size(), layers) != 0) return {name};
  const size_t dot = name.find('.', layers.size());
  if (dot == std::string::npos) return {name};
  const std::string prefix = "layer " + name.substr(layers.size(), dot - layers.size()) + " ";
  std::string rest = name.substr(dot + 1);
  if (rest.compare(0, 6, "mixer.") == 0) rest = rest.substr(6);
  if (rest == "A_log") return {prefix + "A"};
  if (rest == "norm.weight" && name.find(".mixer.") != std::string::npos) return {prefix + "gated norm"};
  for (const char* suffix : {".weight", ".bias"}) {
    const size_t n = std::char_traits<char>::length(suffix);
    if (rest.size() > n && rest.compare(rest.size() - n, n, suffix) == 0) {
      const std::string base = rest.substr(0, rest.size() - n);
      return {prefix + base + " " + (suffix + 1), prefix + base};
    }
  }
  return {prefix + rest};
}

// Every checkpoint tensor with the type its file stores it in and how the backend holds it:
// "backbone.layers.0.mixer.in_proj.weight  Q4_K in file, f16 on device".
void print_tensor_storage(const std::string& path, const ModelInfo& info) {
  const Checkpoint ck = Checkpoint::open(path);
  std::vector<const TensorInfo*> tensors = ck.tensors();
  size_t width = 0;
  for (const TensorInfo* t : tensors) width = std::max(width, t->name.size());
  std::cout << "tensors:          " << tensors.size() << " (type in the file, storage on the "
            << (info.backend == "vulkan" ? "device" : "cpu backend") << ")\n";
  for (const TensorInfo* t : tensors) {
    const std::string file_type = t->file_type.empty() ? dtype_name(t->dtype) : t->file_type;
    std::string stored = "f32 on the cpu backend";
    if (info.backend == "vulkan") {
      stored = "not on device";  // e.g. folded into another tensor at load
      for (const std::string& d : device_names_of(t->name)) {
        auto it = std::find_if(info.tensors.begin(), info.tensors.end(),
                               [&](const TensorStorage& s) { return s.name == d; });
        if (it != info.tensors.end()) {
          stored = it->type + " on device";
          break;
        }
      }
    }
    std::cout << "  " << t->name << std::string(width + 2 - t->name.size(), ' ') << file_type
              << " in file, " << stored << "\n";
  }
}

int cmd_info(const Args& args) {
  const std::string& path = args.get("--model");
  LoadOptions opt = load_options(args);
  if (args.has("--streams")) opt.max_streams = int(parse_int("--streams", args.get("--streams"), 0, 1 << 20));
  if (args.has("--rollback")) opt.rollback_depth = int(parse_int("--rollback", args.get("--rollback"), 0, 1 << 20));
  require_model_path(path);
  std::unique_ptr<Model> model = load_model(path, opt);
  std::unique_ptr<Tokenizer> tok = load_tokenizer(path);
  const ModelInfo& info = model->info();
  const bool frame_model = info.d_input > 0;
  std::cout << "model:            " << path << "\n"
            << "architecture:     " << info.architecture << "\n"
            << "layers:           " << info.n_layer << "\n"
            << "d_model:          " << info.d_model << "\n";
  if (frame_model) {
    std::cout << "d_input:          " << info.d_input << " (floats per input frame)\n"
              << "d_output:         " << info.d_output << " (floats per step)\n";
  } else {
    std::cout << "vocabulary:       " << info.vocab_size << "\n";
  }
  std::cout << "weights:          " << info.weight_type << ", " << format_bytes(info.weight_bytes)
            << " (" << info.weight_bytes << " bytes)\n"
            << "state per stream: " << format_bytes(info.state_bytes_per_stream) << " ("
            << info.state_bytes_per_stream << " bytes)\n"
            << "backend:          " << info.backend << "\n"
            << "backend reason:   " << info.backend_reason << "\n"
            << "device:           " << info.device_name << "\n";
  print_memory_plan(info);
  print_tensor_storage(path, info);
  if (frame_model) return 0;  // frames in, no tokens: nothing to tokenize
  std::cout << "tokenizer:        ";
  if (tok) {
    std::cout << "vocabulary " << tok->vocab_size();
    if (tok->eos_id() >= 0) std::cout << ", eos " << tok->eos_id();
    std::cout << "\n";
  } else {
    std::cout << "none (use --ids)\n";
  }
  return 0;
}

// ---- vkssm logits ---------------------------------------------------------------------------

// With several streams --out names a folder. A regular file in its place would only fail at the
// first write, after the whole run, so it is refused before the model is loaded.
void require_output_folder(const std::string& out) {
  std::error_code ec;
  if (std::filesystem::exists(out, ec) && !std::filesystem::is_directory(out, ec)) {
    throw Error("--out '" + out + "' exists and is not a folder (with several --ids or --inputs, --out " +
                "names the folder that receives stream-0.npy, stream-1.npy, ...)");
  }
}

// Steps the streams in `slots` (a subset of 0..n-1, ascending) by their input at position t and
// writes their outputs [slots.size(), d_output].
using StepAt = std::function<void(size_t t, const std::vector<int32_t>& slots, float* outputs)>;

// Runs every stream from a zero state (stream 0 from `start` when given), all streams together:
// time step t is ONE batched step over the streams that still have input at t, so a stream leaves
// the batch once its input runs out. Stream s uses state slot s and has lengths[s] steps. Returns
// each stream's outputs [T_s, d_output], row-major.
std::vector<std::vector<float>> run_streams(Model& model, const std::vector<size_t>& lengths, const StepAt& step,
                                            const std::vector<uint8_t>* start = nullptr,
                                            const std::string& start_file = "") {
  const size_t width = static_cast<size_t>(model.info().d_output);
  std::vector<std::vector<float>> outputs(lengths.size());
  size_t longest = 0;
  for (size_t s = 0; s < lengths.size(); ++s) {
    model.reset(static_cast<int>(s));
    outputs[s].resize(lengths[s] * width);
    longest = std::max(longest, lengths[s]);
  }
  if (start) {
    try {
      model.restore(0, start->data(), start->size());
    } catch (const Error& e) {
      throw Error("--load-state '" + start_file + "': " + e.what());
    }
  }
  std::vector<int32_t> slots;
  std::vector<float> batch_outputs;
  for (size_t t = 0; t < longest; ++t) {
    slots.clear();
    for (size_t s = 0; s < lengths.size(); ++s)
      if (t < lengths[s]) slots.push_back(static_cast<int32_t>(s));
    batch_outputs.resize(slots.size() * width);
    step(t, slots, batch_outputs.data());
    for (size_t b = 0; b < slots.size(); ++b)
      std::copy_n(batch_outputs.data() + b * width, width, outputs[slots[b]].data() + t * width);
  }
  return outputs;
}

// One --inputs file: float32 (or float64, converted) [T, d_input] with T >= 1. The width is checked
// against the model once it is loaded.
NpyArray read_frames(const std::string& file) {
  NpyArray a = read_npy_f32(file);
  if (a.shape.size() != 2) {
    std::string shape;
    for (size_t i = 0; i < a.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(a.shape[i]);
    throw Error("--inputs '" + file + "' has shape [" + shape + "]; expected a 2-D float32 array [T, d_input]");
  }
  if (a.shape[0] == 0) throw Error("--inputs '" + file + "' holds no frames (shape [0, " + std::to_string(a.shape[1]) + "])");
  return a;
}

int cmd_logits(const Args& args) {
  const std::string& path = args.get("--model");
  const bool frames_given = args.has("--inputs");
  if (frames_given && args.has("--ids")) throw UsageError("give --ids (token models) or --inputs (frame models), not both");
  if (!frames_given && !args.has("--ids")) throw UsageError("give --ids (token models) or --inputs (frame models)");
  std::vector<std::vector<int32_t>> streams;
  std::vector<NpyArray> frames;
  std::vector<size_t> lengths;
  const std::vector<std::string>& inputs = frames_given ? args.get_all("--inputs") : std::vector<std::string>();
  if (!frames_given) {
    for (const std::string& text : args.get_all("--ids")) streams.push_back(parse_ids("--ids", text));
    for (const auto& ids : streams) lengths.push_back(ids.size());
  }
  const bool several = (frames_given ? inputs.size() : streams.size()) > 1;
  const std::string& out = args.get("--out");
  LoadOptions opt = load_options(args);
  opt.max_streams = static_cast<int>(frames_given ? inputs.size() : streams.size());
  if (several) require_output_folder(out);
  const std::string save_state = args.get_or("--save-state", "");
  const std::string load_state = args.get_or("--load-state", "");
  if (several && (args.has("--save-state") || args.has("--load-state")))
    throw UsageError("--save-state and --load-state need a single --ids or --inputs");
  // Input files and the state are read before the (slow) model load, so a bad one fails fast.
  for (const std::string& file : inputs) {
    frames.push_back(read_frames(file));
    lengths.push_back(static_cast<size_t>(frames.back().shape[0]));
  }
  std::vector<uint8_t> start;
  if (args.has("--load-state")) start = load_state_file(load_state);

  require_model_path(path);
  std::unique_ptr<Model> model = load_model(path, opt);
  const ModelInfo& info = model->info();
  const int64_t width = info.d_output;
  const bool frame_model = info.d_input > 0;
  if (frame_model && !frames_given)
    throw Error("model '" + path + "' (" + info.architecture + ") takes input frames, not token ids: " +
                "give --inputs FRAMES.npy (float32 [T, " + std::to_string(info.d_input) + "])");
  if (!frame_model && frames_given)
    throw Error("model '" + path + "' (" + info.architecture + ") takes token ids, not input frames: give --ids");

  StepAt step;
  std::vector<int32_t> tokens;
  std::vector<float> batch_frames;
  if (frame_model) {
    for (size_t s = 0; s < frames.size(); ++s) {
      if (frames[s].shape[1] != info.d_input)
        throw Error("--inputs '" + inputs[s] + "' has frames of " + std::to_string(frames[s].shape[1]) +
                    " floats, but model '" + path + "' takes d_input " + std::to_string(info.d_input));
    }
    step = [&](size_t t, const std::vector<int32_t>& slots, float* outputs) {
      const size_t d = static_cast<size_t>(info.d_input);
      batch_frames.resize(slots.size() * d);
      for (size_t b = 0; b < slots.size(); ++b)
        std::copy_n(frames[size_t(slots[b])].data.data() + t * d, d, batch_frames.data() + b * d);
      model->step_frames(batch_frames.data(), slots.data(), static_cast<int>(slots.size()), outputs);
    };
  } else {
    for (size_t s = 0; s < streams.size(); ++s)
      check_ids(streams[s], info.vocab_size, several ? "stream " + std::to_string(s) + " (--ids)" : "--ids");
    step = [&](size_t t, const std::vector<int32_t>& slots, float* outputs) {
      tokens.clear();
      for (int32_t s : slots) tokens.push_back(streams[size_t(s)][t]);
      model->step(tokens.data(), slots.data(), static_cast<int>(slots.size()), outputs);
    };
  }

  std::vector<std::vector<float>> outputs =
      run_streams(*model, lengths, step, args.has("--load-state") ? &start : nullptr, load_state);
  const char* unit = frame_model ? " frames" : " tokens";
  if (args.has("--save-state")) {
    save_state_file(save_state, model->snapshot(0));
    std::cerr << "saved the state after " << lengths[0] << unit << " to " << save_state << "\n";
  }
  if (!several) {
    write_npy_f32(out, outputs[0].data(), {static_cast<int64_t>(lengths[0]), width});
    std::cerr << "wrote " << out << " [" << lengths[0] << ", " << width << "]\n";
    return 0;
  }
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec) throw Error("cannot create output folder '" + out + "': " + ec.message());
  for (size_t s = 0; s < lengths.size(); ++s) {
    std::string file = (std::filesystem::path(out) / ("stream-" + std::to_string(s) + ".npy")).string();
    write_npy_f32(file, outputs[s].data(), {static_cast<int64_t>(lengths[s]), width});
    std::cerr << "wrote " << file << " [" << lengths[s] << ", " << width << "]\n";
  }
  return 0;
}

// ---- vkssm generate -------------------------------------------------------------------------

// Writes token bytes to stdout as they come, holding back a trailing incomplete UTF-8 sequence
// (byte-level tokenizers may split a character across tokens) so the terminal never shows
// replacement characters mid-stream.
class Utf8Printer {
 public:
  void write(const std::string& bytes) {
    pending_ += bytes;
    size_t cut = complete_prefix(pending_);
    std::cout << pending_.substr(0, cut) << std::flush;
    pending_.erase(0, cut);
  }
  void finish() { std::cout << pending_ << std::flush; pending_.clear(); }

 private:
  // Length of the longest prefix not ending inside a multi-byte sequence. Invalid bytes are let
  // through: only a genuinely unfinished sequence of at most 3 bytes is held back.
  static size_t complete_prefix(const std::string& s) {
    for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
      unsigned char c = static_cast<unsigned char>(s[s.size() - back]);
      if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
      size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
      return need > back ? s.size() - back : s.size();
    }
    return s.size();
  }
  std::string pending_;
};

int cmd_generate(const Args& args) {
  const std::string& path = args.get("--model");
  if (args.has("--ids") == args.has("--prompt")) throw UsageError("give exactly one of --ids and --prompt");
  std::vector<int32_t> ids;
  if (args.has("--ids")) ids = parse_ids("--ids", args.get("--ids"));
  const int n = static_cast<int>(parse_int("-n", args.get("-n"), 0, 1 << 30));
  SamplingParams sp;
  sp.temperature = parse_float("--temperature", args.get_or("--temperature", "0"), 0.0f, 1000.0f);
  sp.top_k = static_cast<int>(parse_int("--top-k", args.get_or("--top-k", "0"), 0, 1 << 30));
  sp.seed = parse_u64("--seed", args.get_or("--seed", "0"));
  LoadOptions opt = load_options(args);

  require_model_path(path);
  std::unique_ptr<Tokenizer> tok = load_tokenizer(path);
  if (args.has("--prompt")) {
    if (!tok) throw Error("model '" + path + "' has no tokenizer: give the prompt as --ids");
    ids = tok->encode(args.get("--prompt"));
    if (ids.empty()) throw Error("the prompt encodes to no tokens: give a non-empty --prompt");
  }
  std::unique_ptr<Model> model = load_model(path, opt);
  report_backend_choice(model->info());
  if (model->info().d_input > 0)
    throw Error("model '" + path + "' (" + model->info().architecture + ") takes input frames, not text: " +
                "generate needs a token model (use logits --inputs)");
  const int64_t vocab = model->info().vocab_size;
  check_ids(ids, vocab, args.has("--ids") ? "--ids" : "the encoded prompt");

  // Echo the prompt, then stream the continuation.
  Utf8Printer text;
  auto print_token = [&](int32_t id, bool first) {
    if (tok) text.write(tok->decode_token(id));
    else std::cout << (first ? "" : " ") << id << std::flush;
  };
  for (size_t i = 0; i < ids.size(); ++i) print_token(ids[i], i == 0);

  const int32_t slot = 0;
  model->reset(slot);
  auto t0 = std::chrono::steady_clock::now();
  // All prompt tokens but the last go in by prefill (many tokens per submit on Vulkan); the last
  // one is the first step that samples.
  if (ids.size() > 1) model->prefill(slot, ids.data(), static_cast<int>(ids.size() - 1), nullptr);
  const double prompt_s = seconds_since(t0);

  // Sampling happens on the device: each step feeds one token and returns the next one's id.
  const int32_t eos = tok ? tok->eos_id() : -1;
  int generated = 0;
  int32_t fed = ids.back();
  t0 = std::chrono::steady_clock::now();
  while (generated < n) {
    int32_t next = -1;
    model->step_sample(&fed, &slot, 1, &sp, &next);
    if (next == eos) break;
    print_token(next, false);
    ++generated;
    fed = next;
  }
  const double gen_s = seconds_since(t0);
  text.finish();
  std::cout << std::endl;

  char line[256];
  std::snprintf(line, sizeof line,
                "prompt: %zu tokens, prefill %.1f tokens/s | generation: %d tokens, %.1f tokens/s | %s on %s\n",
                ids.size(), prompt_s > 0 ? double(ids.size() - 1) / prompt_s : 0.0, generated,
                gen_s > 0 ? generated / gen_s : 0.0, model->info().backend.c_str(),
                model->info().device_name.c_str());
  std::cerr << line;
  return 0;
}

// ---- dispatch -------------------------------------------------------------------------------

struct Command {
  std::string name;
  std::string synopsis;  // after "vkssm NAME "
  std::string summary;
  std::vector<Flag> flags;
  int (*run)(const Args&);
  std::string details = "";  // more help, shown after the options
  bool positionals = false;  // takes arguments that are not options (listen's INPUTs)
};

const std::vector<Command>& commands() {
  static const std::vector<Command> list = {
      {"devices", "[--profile NAME | --list-profiles]",
       "list Vulkan devices, mark the default one and say where --backend auto runs",
       {{"--profile", "NAME", "show the limits, features and fallbacks the engine uses under a device profile"},
        {"--list-profiles", "", "print the device profiles' names, one per line"}},
       cmd_devices},
      {"info", "--model PATH [options]", "show a model's architecture, sizes and device",
       with_model_flags({{"--streams", "N", "plan for N streams; 0 = as many as the device holds (default 1)"},
                         {"--rollback", "K", "plan a rollback ring of K steps per stream (default 0)"}}),
       cmd_info},
      {"logits", "--model PATH (--ids 1,2,3 | --inputs FRAMES.npy) [...] --out FILE.npy|DIR [options]",
       "run token ids (or input frames) from a zero state; write float32 [T, vocab or d_output] as .npy",
       with_model_flags({{"--ids", "IDS", "comma-separated token ids, fed one at a time (repeatable)", true},
                         {"--inputs", "FILE", "frame models (S4D): .npy float32 [T, d_input], a frame per step "
                                              "(repeatable)", true},
                         {"--out", "PATH", "output .npy file; with several streams, an output folder"},
                         {"--save-state", "FILE", "save the stream's state after the last step (single stream)"},
                         {"--load-state", "FILE", "start from a saved state instead of zeros (single stream)"}}),
       cmd_logits,
       "Token models take --ids; frame models (S4D) take --inputs and write decoder outputs\n"
       "[T, d_output], one row per frame (upstream's pooled classifier output is their mean).\n"
       "Several streams: give --ids (or --inputs) once per stream. The streams run together, one\n"
       "batched step per position (a stream leaves the batch when its input runs out), and --out\n"
       "names a folder (created if missing) that receives stream-0.npy, stream-1.npy, ... in\n"
       "command-line order, each float32 [T_i, vocab or d_output].\n"
       "State files: --save-state then --load-state with the next input gives the same outputs as\n"
       "one run over all of it. A state only loads into the checkpoint (and shape) that saved it.\n"},
      {"generate", "--model PATH (--prompt TEXT | --ids 1,2,3) -n N [options]",
       "feed a prompt, then sample N tokens and print them as they come",
       with_model_flags({{"--prompt", "TEXT", "prompt text (needs the model's tokenizer)"},
                         {"--ids", "IDS", "prompt as comma-separated token ids"},
                         {"-n", "N", "number of tokens to generate (stops early at end of text)"},
                         {"--temperature", "T", "sampling temperature; 0 = greedy (default 0)"},
                         {"--top-k", "K", "sample among the K most likely tokens; 0 = all (default 0)"},
                         {"--seed", "S", "random seed (default 0)"}}),
       cmd_generate},
      {"listen", "[options] INPUT...",
       "recognize spoken commands in audio streams (WAV files or '-' for a microphone pipe), all stepped together",
       kListenFlags, cmd_listen, kListenDetails, true},
#ifdef VKSSM_SERVE
      {"serve", "--model PATH [--port N] [--max-streams N] [--redis URL] [--api-key KEY] [options]",
       "serve sessions and completions over HTTP, every active session in one batched step", kServeFlags,
       cmd_serve, kServeDetails},
#endif
      {"tokenize", "(--tokenizer FILE | --model PATH) [--jsonl] < TEXT",
       "print the token ids of standard input's text", kTokenizeFlags, cmd_tokenize, kTokenizeDetails},
      {"detokenize", "(--tokenizer FILE | --model PATH) [--jsonl] < IDS",
       "print the text of standard input's token ids", kTokenizeFlags, cmd_detokenize, kDetokenizeDetails},
      {"quantize", "--model PATH --type q8_0|q4_0|q4_k --out FILE.gguf",
       "write the model as a llama.cpp GGUF file with its matrices in one ggml block type", kQuantizeFlags,
       cmd_quantize, kQuantizeDetails},
  };
  return list;
}

std::string tool_usage() {
  std::ostringstream out;
  out << "Usage: vkssm COMMAND [options]\n\n"
      << "State Space Model inference on Vulkan.\n\nCommands:\n";
  for (const Command& c : commands()) {
    out << "  " << c.name << std::string(12 - c.name.size(), ' ') << c.summary << "\n";
  }
  out << "\nArchitectures (recognised from config.json or GGUF metadata):\n";
  for (const Architecture* a : architectures())
    out << "  " << a->name << std::string(a->name.size() < 14 ? 14 - a->name.size() : 1, ' ') << a->description
        << "\n";
  out << "\nRun 'vkssm COMMAND --help' for a command's options.\n"
      << "Environment: VKSSM_DEVICE (default device index), VKSSM_VALIDATION=1 (validation layer),\n"
      << "             VKSSM_CACHE_DIR (pipeline cache folder), VKSSM_THREADS (cpu backend threads).\n";
  return out.str();
}

std::string command_usage(const Command& c) {
  std::ostringstream out;
  out << "Usage: vkssm " << c.name << (c.synopsis.empty() ? "" : " ") << c.synopsis << "\n\n"
      << static_cast<char>(std::toupper(static_cast<unsigned char>(c.summary[0]))) << c.summary.substr(1)
      << ".\n\nOptions:\n"
      << format_flags(c.flags);
  if (!c.details.empty()) out << "\n" << c.details;
  return out.str();
}

int run(const std::vector<std::string>& words) {
  std::string help_hint = "Run 'vkssm --help' for usage.";
  try {
    if (words.empty()) {
      std::cerr << tool_usage();
      return 2;
    }
    if (words[0] == "-h" || words[0] == "--help" || words[0] == "help") {
      std::cout << tool_usage();
      return 0;
    }
    const Command* cmd = nullptr;
    for (const Command& c : commands())
      if (c.name == words[0]) cmd = &c;
    if (!cmd) throw UsageError("unknown command '" + words[0] + "'");
    help_hint = "Run 'vkssm " + cmd->name + " --help' for usage.";

    Args args(std::vector<std::string>(words.begin() + 1, words.end()), cmd->flags, cmd->positionals);
    if (args.help()) {
      std::cout << command_usage(*cmd);
      return 0;
    }
    return cmd->run(args);
  } catch (const UsageError& e) {
    std::cerr << "vkssm: " << e.what() << "\n" << help_hint << "\n";
    return 2;
  } catch (const std::exception& e) {  // vkssm::Error, and anything else (bad_alloc, ...)
    std::cout << std::flush;
    std::cerr << "vkssm: error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace
}  // namespace vkssm::cli

int main(int argc, char** argv) {
  return vkssm::cli::run(std::vector<std::string>(argv + 1, argv + argc));
}

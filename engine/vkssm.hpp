#pragma once
// vkssm public C++ API.
//
//   auto model = vkssm::load_model("path/to/mamba-130m-hf");       // a GPU, else the cpu backend
//   int slot = 0;                                                  // a state slot = one stream
//   std::vector<float> logits(model->info().vocab_size);
//   for (int32_t tok : prompt) model->step(&tok, &slot, 1, logits.data());
//
// A Model owns read-only weights and a pool of `capacity()` recurrent states ("slots"). step()
// advances any set of slots by one token each in a single GPU submit.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

// Relative to this header: found in the source tree (through -I<root>) and installed as
// <vkssm/vkssm.hpp> next to <vkssm/host/...>.
#include "host/error.h"
#include "host/sampling.h"
#include "host/vkssm_export.h"

namespace vkssm {

// Reference: the plain C++ reference (one stream at a time, one thread), the tests' oracle. Cpu:
// threads + SIMD kernels (engine/cpu/) for architectures that have a fast stepper, the reference
// for the others. Auto (the default): Vulkan on a GPU, the cpu backend where the only Vulkan
// devices are CPU implementations (lavapipe, SwiftShader) or there is no Vulkan at all; a device
// named by LoadOptions::device or $VKSSM_DEVICE runs Vulkan whatever its type
// (choose_auto_backend() says what Auto picks, ModelInfo::backend_reason what it picked).
enum class BackendKind { Vulkan, Reference, Cpu, Auto };
// How the big matrices are stored on the device. Auto: a GGUF file's matrices in Q8_0, Q4_0, Q4_K,
// Q5_K or Q6_K keep those very blocks; the others are fp16 when the checkpoint is 16-bit (or
// quantized) and the device can, else fp32. Q8_0 / Q4_0 / Q4_K / Q5_K / Q6_K: ggml's blocks, quantized at load as
// llama.cpp does (a K-quant matrix whose rows are not a multiple of 256 values takes Q8_0, one
// whose rows are not a multiple of 32 keeps fp32); the cpu backend computes with the same
// dequantized values.
enum class WeightStorage { Auto, F32, F16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K };

// How one weight tensor is stored on the device (ModelInfo::tensors).
struct TensorStorage {
  std::string name;  // e.g. "layer 3 in_proj"
  std::string type;  // "f32", "f16", "q8_0", "q4_0", "q4_k", "q5_k" or "q6_k"
  uint64_t bytes = 0;
};

struct LoadOptions {
  BackendKind backend = BackendKind::Auto;
  int device = -1;           // -1: $VKSSM_DEVICE, else the best device (discrete > integrated > virtual > CPU)
  int max_streams = 4;       // state slots; 0 = as many as fit in half the device memory (<= 1024)
  WeightStorage weights = WeightStorage::Auto;
  bool validation = false;   // Khronos validation layer (also on when $VKSSM_VALIDATION=1)
  std::string cache_dir;     // pipeline cache folder; "" = $VKSSM_CACHE_DIR or ~/.cache/vkssm
  int rollback_depth = 0;    // K: each stream keeps its last K states so rollback() can undo K steps
  int cpu_threads = 0;       // cpu backend: threads in all; 0 = $VKSSM_THREADS, else one per core
  // Frame models: the most consecutive frames one step may take per stream
  // (StepRequest::frames_per_stream, 1..64). Sizes the step's rows (max_streams x this).
  int frames_per_step = 1;
};

// Where a Vulkan model's memory goes, decided at load (`vkssm info` prints it). Bytes are the
// buffers' sizes; the cpu backend leaves this empty.
struct MemoryPlan {
  std::vector<std::pair<std::string, uint64_t>> weights;  // stored weight bytes per type ("f32", "f16", ...)
  uint64_t state_bytes = 0;     // every slot's state: capacity x state_bytes_per_stream
  uint64_t outputs_bytes = 0;   // logits (outputs): [step rows][d_output] on the device + 2 host copies
  uint64_t rollback_bytes = 0;  // rollback rings: capacity x depth x state_bytes_per_stream
  uint64_t other_bytes = 0;     // activations, step inputs and their staging buffers, sampled ids
  uint64_t total_bytes = 0;     // all of the above
  int capacity = 0;             // stream slots
  int shards = 1;               // more than 1: the slots are split over shards of one binding each
  std::string capacity_reason;  // "requested", "memory budget", "binding limit" or "automatic maximum"
  std::string capacity_detail;  // the numbers behind it
  uint64_t budget_bytes = 0;    // what an automatic capacity may spend on weights and streams
  bool unified_memory = false;  // device-local memory the host can map (weights written in place)
  std::string upload;           // "staged", "mapped" or "flushed" (VKSSM_UPLOAD)
};

struct ModelInfo {
  std::string architecture;  // a name from supported_architectures(): "mamba", "mamba2", "s4d", ...
  std::string backend;       // "vulkan", "reference" or "cpu"
  // Why this backend: "requested" when LoadOptions named it, else BackendKind::Auto's reason, e.g.
  // "cpu: the only Vulkan device, llvmpipe (LLVM 15.0.6, 256 bits), is a CPU implementation".
  std::string backend_reason;
  std::string device_name;
  std::string weight_type;   // "f32", "f16", "q8_0" or "q4_0": how the big matrices are stored
  int64_t vocab_size = 0;    // token models; 0 for frame models (S4D)
  int64_t d_input = 0;       // frame models: floats per input frame; 0 for token models
  int64_t d_output = 0;      // floats each step writes per stream (= vocab_size for token models)
  int64_t d_model = 0;
  int64_t n_layer = 0;
  uint64_t weight_bytes = 0;           // bytes of weights read by one step
  uint64_t state_bytes_per_stream = 0;
  std::vector<TensorStorage> tensors;  // Vulkan: every weight tensor on the device, in upload order
  MemoryPlan memory;                   // Vulkan: where the device memory goes
};

struct StepCounters {
  uint64_t steps = 0;
  uint64_t submits = 0;
  uint64_t dispatches = 0;   // recorded into command buffers that were submitted, summed per submit
  uint64_t recordings = 0;   // command buffers recorded (happens at load time only)
};

class VKSSM_API Model {
 public:
  virtual ~Model() = default;
  virtual const ModelInfo& info() const = 0;
  virtual int capacity() const = 0;
  // Zeroes the state of `slot`.
  virtual void reset(int slot) = 0;
  // Advances stream slots[i] by token tokens[i] for i < batch (slots distinct, batch <= capacity).
  // Writes logits [batch, vocab] when `logits` is non-null. Throws vkssm::Error on a bad token id
  // or slot, before anything is changed.
  // Token models only (frame models throw).
  virtual void step(const int32_t* tokens, const int32_t* slots, int batch, float* logits) = 0;
  // Frame models (S4D): advances slots[i] by one input frame frames[i * d_input ...] and writes
  // outputs [batch, d_output] when `outputs` is non-null. Token models throw.
  virtual void step_frames(const float* frames, const int32_t* slots, int batch, float* outputs);
  // Token models: a step that also picks each stream's next token (params[i] for slots[i]; the
  // draw is a pure function of the seed and the number of tokens sampled for that slot since its
  // reset, so runs are reproducible). On the GPU only the ids come back unless `logits` is non-null.
  virtual void step_sample(const int32_t* tokens, const int32_t* slots, int batch,
                           const SamplingParams* params, int32_t* next_tokens, float* logits = nullptr);
  // Feeds n prompt tokens to one slot without a host round trip per token (Vulkan: many tokens per
  // submit). Writes the logits after the last token when `last_logits` is non-null. The state it
  // leaves equals n calls of step().
  virtual void prefill(int slot, const int32_t* tokens, int n, float* last_logits);
  // Undoes the last `steps` steps of `slot` (needs LoadOptions::rollback_depth >= steps and that
  // many steps since the slot's last reset/restore/fork). Throws vkssm::Error otherwise, unchanged.
  virtual void rollback(int slot, int steps);
  // How many steps rollback() can undo on `slot` right now.
  virtual int rollback_available(int slot) const;

  // Asynchronous stepping: submit() queues a step and returns without waiting for it (on Vulkan:
  // the step's inputs go to one of two staging buffers, so the host prepares step t+1 while step t
  // runs; completion is tracked with a timeline semaphore). collect() waits for the oldest
  // submitted step and writes its results. At most two steps are in flight: a third submit()
  // throws. All checks happen in submit(); nothing else may use the model while steps are in flight.
  struct StepRequest {
    const int32_t* tokens = nullptr;   // token models: [batch]
    const float* frames = nullptr;     // frame models: [batch, d_input]
    const int32_t* slots = nullptr;    // [batch], distinct
    int batch = 0;
    const SamplingParams* sampling = nullptr;  // [batch] to sample next tokens on the device
    bool want_outputs = false;                 // copy logits / outputs back
    // Frame models: each slot advances by this many consecutive frames in one step (frames
    // [batch][frames_per_stream][d_input], outputs [batch][frames_per_stream][d_output]), the
    // same as that many steps; at most LoadOptions::frames_per_step. One step's fixed costs
    // (its dispatches, reading and writing every slot's state) are then paid once for them all.
    int frames_per_stream = 1;
  };
  virtual void submit(const StepRequest& request);
  // next_tokens: [batch] when the step sampled; outputs: [batch x frames_per_stream, d_output] when
  // asked for.
  virtual void collect(int32_t* next_tokens, float* outputs);
  virtual int in_flight() const;
  // The largest SamplingParams::top_k step_sample() takes with a temperature (0 = no limit). The
  // Vulkan backend's device sampler has one; StreamPool checks it when a stream's sampling is set.
  virtual int max_top_k() const { return 0; }
  virtual StepCounters counters() const = 0;

  // Per-stream state: read a document once, keep its state, continue from it later.
  // The slot's full recurrent state as a self-describing blob (format: host/state_file.h). A slot
  // that was reset and not stepped since gives zeros. Both backends write the same layout, so a
  // blob restores into any backend running the same checkpoint.
  virtual std::vector<uint8_t> snapshot(int slot) const = 0;
  // Replaces the state of `slot` with a blob from snapshot(). Validates it first (checksum, model
  // fingerprint, shape, size): on error throws vkssm::Error and changes nothing.
  virtual void restore(int slot, const uint8_t* data, size_t size) = 0;
  // `to_slot` gets an exact copy of `from_slot`'s state (on the GPU: a device-side copy).
  virtual void fork(int from_slot, int to_slot) = 0;
};

// A snapshot blob to / from a file (defined in host/state_file.cpp). Errors name the file.
VKSSM_API void save_state_file(const std::string& path, const std::vector<uint8_t>& blob);
VKSSM_API std::vector<uint8_t> load_state_file(const std::string& path);

// Loads a checkpoint: a folder (config.json + safetensors) or a llama.cpp GGUF file, of any
// architecture in supported_architectures(). Throws vkssm::Error.
VKSSM_API std::unique_ptr<Model> load_model(const std::string& path, const LoadOptions& options = {});
// The architecture names load_model() accepts ("mamba", "falcon_mamba", ...).
VKSSM_API std::vector<std::string> supported_architectures();

struct DeviceInfo {
  int index = 0;
  std::string name;
  std::string type;  // "discrete", "integrated", "virtual", "cpu", "other"
  uint32_t api_version = 0;
  bool storage16 = false, float16 = false, storage8 = false;
  uint32_t subgroup_size = 0;
  uint32_t shared_memory = 0;
  uint32_t max_workgroup_invocations = 0;
  uint64_t device_local_bytes = 0;
  bool is_default = false;  // the device chosen when none is named
  // What the engine would use there: after the driver quirks and the device profile.
  std::string driver;               // the decoded driver version, e.g. "Mesa 24.2.8", "ARM r32p1"
  std::vector<std::string> quirks;  // driver quirks applied (docs/DEVICE_PROFILES.md)
  std::string profile;              // the device profile applied ("" = none)
  uint64_t max_storage_buffer_range = 0, max_texel_buffer_elements = 0, max_memory_allocation_size = 0;
  uint32_t max_per_stage_storage_buffers = 0;
  bool subgroup_arithmetic = false, timeline_semaphores = false, pipeline_cache_on_disk = true;
  uint32_t max_memory_allocation_count = 0;
};
// The devices as the engine sees them under $VKSSM_DEVICE_PROFILE.
VKSSM_API std::vector<DeviceInfo> list_devices();
// The same under the device profile `profile` ("" = none); an unknown name throws vkssm::Error
// listing the known ones.
VKSSM_API std::vector<DeviceInfo> list_devices(const std::string& profile);

// What BackendKind::Auto picks for LoadOptions::device = `device` (-1: $VKSSM_DEVICE, else none
// named) and why, in one line ("vulkan: <the GPU's name> (discrete)", "cpu: no Vulkan driver
// (...)"). Probes the devices; a named device that does not exist throws vkssm::Error.
struct BackendChoice {
  BackendKind backend = BackendKind::Cpu;
  int device = -1;     // Vulkan: the device index it runs on
  std::string why;     // "the only Vulkan device, llvmpipe (...), is a CPU implementation"
  std::string reason;  // "<backend>: <why>", as ModelInfo::backend_reason says it
};
VKSSM_API BackendChoice choose_auto_backend(int device = -1);
// "vulkan", "reference", "cpu" or "auto": as --backend, Python and ModelInfo::backend spell them.
VKSSM_API const char* backend_name(BackendKind backend);
// The inverse, for every parser of those names (CLI, bench, Python); nullopt for any other name.
VKSSM_API std::optional<BackendKind> backend_from_name(const std::string& name);

// Validation-layer messages seen since the process started (tests require 0).
VKSSM_API uint64_t validation_message_count();

}  // namespace vkssm

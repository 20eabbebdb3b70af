// The C API (engine/vkssm.h): a thin shell over vkssm::Model and vkssm::StreamPool that turns every
// C++ exception into a vkssm_status plus a thread-local message, so nothing unwinds through a C
// caller's frames.
#include "engine/vkssm.h"

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/listener.h"
#include "engine/model_checks.h"
#include "engine/stream_pool.h"
#include "engine/vkssm.hpp"
#include "host/error.h"

struct vkssm_model {
  std::unique_ptr<vkssm::Model> model;
  // Steps record into shared command buffers and staging memory: one caller at a time.
  mutable std::mutex lock;
  // A state blob's size is fixed by the model, so the size query of vkssm_model_snapshot is
  // answered without a device read-back once one snapshot was taken. Guarded by `lock`.
  size_t snapshot_bytes = 0;
};

struct vkssm_listener {
  std::unique_ptr<vkssm::Listener> listener;
};

struct vkssm_pool {
  vkssm_model* owner = nullptr;
  std::unique_ptr<vkssm::StreamPool> pool;
};

namespace {

thread_local std::string t_last_error;

vkssm_status fail(vkssm_status status, std::string message) {
  // Assigning may itself throw bad_alloc; an empty message is better than escaping to C.
  try {
    t_last_error = std::move(message);
  } catch (...) {
    t_last_error.clear();
  }
  return status;
}

// Runs `body`, mapping any exception to VKSSM_ERROR with its message. A body may return its own
// status (for failures that are the caller's, found only once the engine was asked).
template <typename Body>
vkssm_status guarded(const char* function, Body&& body) {
  try {
    if constexpr (std::is_void_v<decltype(body())>) {
      body();
      return VKSSM_OK;
    } else {
      return body();
    }
  } catch (const vkssm::Error& e) {
    return fail(VKSSM_ERROR, e.what());
  } catch (const std::bad_alloc&) {
    return fail(VKSSM_ERROR, std::string(function) + ": out of host memory");
  } catch (const std::exception& e) {
    return fail(VKSSM_ERROR, std::string(function) + ": " + e.what());
  } catch (...) {
    return fail(VKSSM_ERROR, std::string(function) + ": unknown error");
  }
}

vkssm_status null_argument(const char* function, const char* argument) {
  return fail(VKSSM_INVALID_ARGUMENT, std::string(function) + ": " + argument + " is NULL");
}

std::vector<vkssm::SamplingParams> to_params(const vkssm_sampling* params, int batch) {
  std::vector<vkssm::SamplingParams> out(size_t(batch > 0 ? batch : 0));
  for (size_t i = 0; i < out.size(); ++i) out[i] = {params[i].temperature, params[i].top_k, params[i].seed};
  return out;
}

// Copies `blob` into the caller's buffer under the two-call protocol of vkssm_model_snapshot.
vkssm_status hand_out_blob(const char* function, const std::vector<uint8_t>& blob, void* buffer,
                           size_t capacity, size_t* size) {
  *size = blob.size();
  if (!buffer) return VKSSM_OK;
  if (capacity < blob.size())
    return fail(VKSSM_INVALID_ARGUMENT, std::string(function) + ": buffer of " + std::to_string(capacity) +
                                            " bytes is too small for the " + std::to_string(blob.size()) +
                                            "-byte state blob");
  std::copy(blob.begin(), blob.end(), static_cast<uint8_t*>(buffer));
  return VKSSM_OK;
}

// Stream handles: the generation in the high 32 bits, slot + 1 in the low ones, so 0 is no stream.
vkssm_stream encode(vkssm::StreamHandle h) { return (uint64_t(h.generation) << 32) | (uint64_t(h.slot) + 1); }

bool decode(const char* function, vkssm_stream s, vkssm::StreamHandle& h, vkssm_status& status) {
  const uint32_t low = uint32_t(s & 0xffffffffu);
  if (low == 0) {
    status = fail(VKSSM_INVALID_ARGUMENT, std::string(function) + ": stream " + std::to_string(s) +
                                              " is not a stream handle");
    return false;
  }
  h = {low - 1, uint32_t(s >> 32)};
  return true;
}

// Copies pool step results into the caller's arrays.
void hand_out_results(const std::vector<vkssm::StepResult>& rs, int64_t d_output, vkssm_step_result* results,
                      float* outputs, int* count) {
  for (size_t i = 0; i < rs.size(); ++i) {
    results[i].stream = encode(rs[i].stream);
    results[i].token_fed = rs[i].token_fed;
    results[i].sampled = rs[i].sampled;
    if (outputs) std::copy(rs[i].logits.begin(), rs[i].logits.end(), outputs + i * size_t(d_output));
  }
  *count = int(rs.size());
}

// One pointer argument that must not be NULL: its name, and whether it is NULL.
struct Required {
  const char* name;
  bool missing;
};

// The caller's error for the first missing argument, or VKSSM_OK.
vkssm_status check_required(const char* function, std::initializer_list<Required> required) {
  for (const Required& r : required)
    if (r.missing) return null_argument(function, r.name);
  return VKSSM_OK;
}

// Which lock a call takes around its body: the model's (everything that uses the model), or none
// (calls that only touch the pool's queues, or that lock part of their work themselves).
enum class Lock { Model, None };

// The lock of the model a handle uses.
std::mutex& model_lock(vkssm_model& model) { return model.lock; }
std::mutex& model_lock(vkssm_pool& pool) { return pool.owner->lock; }

// A call on a handle (a model or a pool): the handle, then the `required` arguments in order;
// then body(handle), under the model's lock when `lock` says so, with exceptions mapped as
// guarded() does.
template <typename Handle, typename Body>
vkssm_status with_handle(const char* function, Handle* handle, const char* handle_name,
                         std::initializer_list<Required> required, Lock lock, Body&& body) {
  if (!handle) return null_argument(function, handle_name);
  if (vkssm_status s = check_required(function, required); s != VKSSM_OK) return s;
  return guarded(function, [&] {
    std::unique_lock<std::mutex> hold(model_lock(*handle), std::defer_lock);
    if (lock == Lock::Model) hold.lock();
    return body(*handle);
  });
}

template <typename Body>
vkssm_status with_model(const char* function, vkssm_model* model, std::initializer_list<Required> required,
                        Lock lock, Body&& body) {
  return with_handle(function, model, "model", required, lock, std::forward<Body>(body));
}

template <typename Body>
vkssm_status with_pool(const char* function, vkssm_pool* pool, std::initializer_list<Required> required,
                       Lock lock, Body&& body) {
  return with_handle(function, pool, "pool", required, lock, std::forward<Body>(body));
}

// A call on one stream of a pool: as with_pool, with the stream handle decoded after the
// arguments are checked; body(pool, handle).
template <typename Body>
vkssm_status with_stream(const char* function, vkssm_pool* pool, vkssm_stream stream,
                         std::initializer_list<Required> required, Lock lock, Body&& body) {
  if (!pool) return null_argument(function, "pool");
  if (vkssm_status s = check_required(function, required); s != VKSSM_OK) return s;
  vkssm::StreamHandle h;
  vkssm_status status = VKSSM_OK;
  if (!decode(function, stream, h, status)) return status;
  return with_pool(function, pool, {}, lock, [&](vkssm_pool& p) { return body(*p.pool, h); });
}

// A getter: the value `get` reads from the handle, or `none` with the NULL-argument error.
template <typename T, typename Handle, typename Get>
T get_or(const char* function, const Handle* handle, const char* handle_name, T none, Get&& get) {
  if (!handle) {
    null_argument(function, handle_name);
    return none;
  }
  return get(*handle);
}

// Steps under the model's lock, then copies the results out without it.
template <typename Step>
vkssm_status pool_step(const char* fn, vkssm_pool* pool, vkssm_step_result* results, float* outputs, int* count,
                       Step&& step) {
  if (count) *count = 0;
  return with_pool(fn, pool, {{"results", !results}, {"count", !count}}, Lock::None, [&](vkssm_pool& p) {
    std::vector<vkssm::StepResult> rs;
    {
      std::lock_guard<std::mutex> hold(p.owner->lock);
      rs = step(*p.pool);
    }
    hand_out_results(rs, p.owner->model->info().d_output, results, outputs, count);
  });
}

// A number from the model's info(), or 0 with the NULL-argument error.
template <typename T>
T info_field(const char* function, const vkssm_model* model, T vkssm::ModelInfo::*field) {
  return get_or(function, model, "model", T(0), [&](const vkssm_model& m) { return m.model->info().*field; });
}

}  // namespace

extern "C" void vkssm_load_options_default(vkssm_load_options* opts);

namespace {

// The C options as LoadOptions; NULL means the defaults. Range errors are the caller's.
vkssm_status to_load_options(const char* fn, const vkssm_load_options* opts, vkssm::LoadOptions& lo) {
  vkssm_load_options o;
  vkssm_load_options_default(&o);
  if (opts) o = *opts;
  if (o.backend < 0 || o.backend > 3)
    return fail(VKSSM_INVALID_ARGUMENT, std::string(fn) +
                                            ": backend must be 0 (vulkan), 1 (reference), 2 (cpu) or 3 (auto), got " +
                                            std::to_string(o.backend));
  // The bound of $VKSSM_THREADS (engine/cpu/thread_pool.cpp), so both ways of asking agree.
  if (o.cpu_threads < 0 || o.cpu_threads > 1024)
    return fail(VKSSM_INVALID_ARGUMENT, std::string(fn) +
                                            ": cpu_threads must be 0 ($VKSSM_THREADS, else one per core) or in "
                                            "[1, 1024], got " + std::to_string(o.cpu_threads));
  if (o.weights < 0 || o.weights > 7)
    return fail(VKSSM_INVALID_ARGUMENT, std::string(fn) +
                                            ": weights must be 0 (auto), 1 (f32), 2 (f16), 3 (q8_0), 4 (q4_0), "
                                            "5 (q4_k), 6 (q5_k) or 7 (q6_k), got " +
                                            std::to_string(o.weights));
  lo.backend = o.backend == 3   ? vkssm::BackendKind::Auto
               : o.backend == 2 ? vkssm::BackendKind::Cpu
               : o.backend == 1 ? vkssm::BackendKind::Reference
                                : vkssm::BackendKind::Vulkan;
  lo.device = o.device;
  lo.max_streams = o.max_streams;
  lo.weights = o.weights == 1   ? vkssm::WeightStorage::F32
               : o.weights == 2 ? vkssm::WeightStorage::F16
               : o.weights == 3 ? vkssm::WeightStorage::Q8_0
               : o.weights == 4 ? vkssm::WeightStorage::Q4_0
               : o.weights == 5 ? vkssm::WeightStorage::Q4_K
               : o.weights == 6 ? vkssm::WeightStorage::Q5_K
               : o.weights == 7 ? vkssm::WeightStorage::Q6_K
                                : vkssm::WeightStorage::Auto;
  lo.validation = o.validation != 0;
  if (o.cache_dir) lo.cache_dir = o.cache_dir;
  lo.rollback_depth = o.rollback_depth;
  lo.cpu_threads = o.cpu_threads;
  if (o.frames_per_step < 1 || o.frames_per_step > vkssm::kMaxFramesPerStep)
    return fail(VKSSM_INVALID_ARGUMENT, std::string(fn) + ": frames_per_step must be within 1 .. " +
                                            std::to_string(vkssm::kMaxFramesPerStep) + ", got " +
                                            std::to_string(o.frames_per_step));
  lo.frames_per_step = o.frames_per_step;
  return VKSSM_OK;
}

}  // namespace

extern "C" {

void vkssm_load_options_default(vkssm_load_options* opts) {
  if (!opts) return;
  const vkssm::LoadOptions d;
  switch (d.backend) {
    case vkssm::BackendKind::Vulkan: opts->backend = 0; break;
    case vkssm::BackendKind::Reference: opts->backend = 1; break;
    case vkssm::BackendKind::Cpu: opts->backend = 2; break;
    case vkssm::BackendKind::Auto: opts->backend = 3; break;
  }
  opts->device = d.device;
  opts->max_streams = d.max_streams;
  opts->weights = static_cast<int>(d.weights);
  opts->validation = d.validation ? 1 : 0;
  opts->cache_dir = nullptr;
  opts->rollback_depth = d.rollback_depth;
  opts->cpu_threads = d.cpu_threads;
  opts->frames_per_step = d.frames_per_step;
}

vkssm_status vkssm_model_load(const char* path, const vkssm_load_options* opts, vkssm_model** out) {
  const char* fn = "vkssm_model_load";
  if (!out) return null_argument(fn, "out");
  *out = nullptr;
  if (!path) return null_argument(fn, "path");

  vkssm::LoadOptions lo;
  if (vkssm_status s = to_load_options(fn, opts, lo); s != VKSSM_OK) return s;
  return guarded(fn, [&] {
    auto handle = std::make_unique<vkssm_model>();
    handle->model = vkssm::load_model(path, lo);
    *out = handle.release();
  });
}

void vkssm_model_free(vkssm_model* model) {
  try {
    delete model;
  } catch (...) {
    // A destructor that throws has already released what it could; C callers cannot handle it.
  }
}

// ---- getters ------------------------------------------------------------------------------------

// info() is fixed for the model's life, so its strings may be handed out.
int64_t vkssm_model_vocab_size(const vkssm_model* model) {
  return info_field("vkssm_model_vocab_size", model, &vkssm::ModelInfo::vocab_size);
}
int64_t vkssm_model_d_input(const vkssm_model* model) {
  return info_field("vkssm_model_d_input", model, &vkssm::ModelInfo::d_input);
}
int64_t vkssm_model_d_output(const vkssm_model* model) {
  return info_field("vkssm_model_d_output", model, &vkssm::ModelInfo::d_output);
}
const char* vkssm_model_architecture(const vkssm_model* model) {
  return get_or("vkssm_model_architecture", model, "model", static_cast<const char*>(nullptr),
                [](const vkssm_model& m) { return m.model->info().architecture.c_str(); });
}

const char* vkssm_model_backend(const vkssm_model* model) {
  return get_or("vkssm_model_backend", model, "model", static_cast<const char*>(nullptr),
                [](const vkssm_model& m) { return m.model->info().backend.c_str(); });
}

const char* vkssm_model_device_name(const vkssm_model* model) {
  return get_or("vkssm_model_device_name", model, "model", static_cast<const char*>(nullptr),
                [](const vkssm_model& m) { return m.model->info().device_name.c_str(); });
}

const char* vkssm_model_backend_reason(const vkssm_model* model) {
  return get_or("vkssm_model_backend_reason", model, "model", static_cast<const char*>(nullptr),
                [](const vkssm_model& m) { return m.model->info().backend_reason.c_str(); });
}

int vkssm_model_capacity(const vkssm_model* model) {
  return get_or("vkssm_model_capacity", model, "model", 0, [](const vkssm_model& m) { return m.model->capacity(); });
}

uint64_t vkssm_model_state_bytes_per_stream(const vkssm_model* model) {
  return info_field("vkssm_model_state_bytes_per_stream", model, &vkssm::ModelInfo::state_bytes_per_stream);
}
uint64_t vkssm_model_weight_bytes(const vkssm_model* model) {
  return info_field("vkssm_model_weight_bytes", model, &vkssm::ModelInfo::weight_bytes);
}

int vkssm_model_in_flight(const vkssm_model* model) {
  return get_or("vkssm_model_in_flight", model, "model", 0, [](const vkssm_model& m) {
    try {
      std::lock_guard<std::mutex> hold(m.lock);
      return m.model->in_flight();
    } catch (...) {  // a mutex failure: nothing sensible to report through an int
      fail(VKSSM_ERROR, "vkssm_model_in_flight: could not take the model's lock");
      return 0;
    }
  });
}

// ---- stepping -----------------------------------------------------------------------------------

vkssm_status vkssm_model_reset(vkssm_model* model, int slot) {
  return with_model("vkssm_model_reset", model, {}, Lock::Model, [&](vkssm_model& m) { m.model->reset(slot); });
}

// With batch < 1 the engine rejects a step before reading the arrays, with its own message, so
// arrays are only required when there is something to read.
vkssm_status vkssm_model_step(vkssm_model* model, const int32_t* tokens, const int32_t* slots,
                              int batch, float* logits) {
  return with_model("vkssm_model_step", model, {{"tokens", batch > 0 && !tokens}, {"slots", batch > 0 && !slots}},
                    Lock::Model, [&](vkssm_model& m) { m.model->step(tokens, slots, batch, logits); });
}

vkssm_status vkssm_model_step_frames(vkssm_model* model, const float* frames, const int32_t* slots,
                                     int batch, float* outputs) {
  return with_model("vkssm_model_step_frames", model,
                    {{"frames", batch > 0 && !frames}, {"slots", batch > 0 && !slots}}, Lock::Model,
                    [&](vkssm_model& m) { m.model->step_frames(frames, slots, batch, outputs); });
}

vkssm_status vkssm_model_step_sample(vkssm_model* model, const int32_t* tokens, const int32_t* slots,
                                     int batch, const vkssm_sampling* params, int32_t* next_tokens,
                                     float* logits) {
  const bool some = batch > 0;
  return with_model("vkssm_model_step_sample", model,
                    {{"tokens", some && !tokens}, {"slots", some && !slots}, {"params", some && !params},
                     {"next_tokens", some && !next_tokens}},
                    Lock::Model, [&](vkssm_model& m) {
                      const std::vector<vkssm::SamplingParams> p = to_params(params, batch);
                      m.model->step_sample(tokens, slots, batch, p.data(), next_tokens, logits);
                    });
}

vkssm_status vkssm_model_prefill(vkssm_model* model, int slot, const int32_t* tokens, int n,
                                 float* last_logits) {
  return with_model("vkssm_model_prefill", model, {{"tokens", n > 0 && !tokens}}, Lock::Model,
                    [&](vkssm_model& m) { m.model->prefill(slot, tokens, n, last_logits); });
}

vkssm_status vkssm_model_rollback(vkssm_model* model, int slot, int steps) {
  return with_model("vkssm_model_rollback", model, {}, Lock::Model,
                    [&](vkssm_model& m) { m.model->rollback(slot, steps); });
}

vkssm_status vkssm_model_rollback_available(vkssm_model* model, int slot, int* available) {
  return with_model("vkssm_model_rollback_available", model, {{"available", !available}}, Lock::Model,
                    [&](vkssm_model& m) { *available = m.model->rollback_available(slot); });
}

vkssm_status vkssm_model_submit(vkssm_model* model, const int32_t* tokens, const float* frames,
                                const int32_t* slots, int batch, const vkssm_sampling* sampling,
                                int want_outputs) {
  const bool frame_model = model && model->model->info().d_input > 0;
  return with_model("vkssm_model_submit", model,
                    {{"tokens", batch > 0 && !frame_model && !tokens},
                     {"frames", batch > 0 && frame_model && !frames},
                     {"slots", batch > 0 && !slots}},
                    Lock::Model, [&](vkssm_model& m) {
                      const std::vector<vkssm::SamplingParams> p = sampling ? to_params(sampling, batch)
                                                                            : std::vector<vkssm::SamplingParams>{};
                      vkssm::Model::StepRequest r;
                      r.tokens = tokens;
                      r.frames = frames;
                      r.slots = slots;
                      r.batch = batch;
                      r.sampling = sampling ? p.data() : nullptr;
                      r.want_outputs = want_outputs != 0;
                      m.model->submit(r);
                    });
}

vkssm_status vkssm_model_submit_frames(vkssm_model* model, const float* frames, const int32_t* slots, int batch,
                                      int frames_per_stream, int want_outputs) {
  return with_model("vkssm_model_submit_frames", model, {{"frames", batch > 0 && !frames}, {"slots", batch > 0 && !slots}},
                    Lock::Model, [&](vkssm_model& m) {
                      if (m.model->info().d_input == 0)
                        throw vkssm::Error("this model takes token ids (vkssm_model_submit), not input frames");
                      m.model->submit({.frames = frames,
                                       .slots = slots,
                                       .batch = batch,
                                       .want_outputs = want_outputs != 0,
                                       .frames_per_stream = frames_per_stream});
                    });
}

vkssm_status vkssm_model_collect(vkssm_model* model, int32_t* next_tokens, float* outputs) {
  return with_model("vkssm_model_collect", model, {}, Lock::Model,
                    [&](vkssm_model& m) { m.model->collect(next_tokens, outputs); });
}

// ---- state --------------------------------------------------------------------------------------

vkssm_status vkssm_model_fork(vkssm_model* model, int from_slot, int to_slot) {
  return with_model("vkssm_model_fork", model, {}, Lock::Model,
                    [&](vkssm_model& m) { m.model->fork(from_slot, to_slot); });
}

vkssm_status vkssm_model_snapshot(vkssm_model* model, int slot, void* buffer, size_t capacity, size_t* size) {
  const char* fn = "vkssm_model_snapshot";
  return with_model(fn, model, {{"size", !size}}, Lock::Model, [&](vkssm_model& m) {
    if (!buffer && m.snapshot_bytes > 0) {
      vkssm::check_slot_index(slot, m.model->capacity());
      *size = m.snapshot_bytes;
      return VKSSM_OK;
    }
    const std::vector<uint8_t> blob = m.model->snapshot(slot);
    m.snapshot_bytes = blob.size();
    return hand_out_blob(fn, blob, buffer, capacity, size);
  });
}

vkssm_status vkssm_model_restore(vkssm_model* model, int slot, const void* data, size_t size) {
  return with_model("vkssm_model_restore", model, {{"data", !data}}, Lock::Model,
                    [&](vkssm_model& m) { m.model->restore(slot, static_cast<const uint8_t*>(data), size); });
}

// File I/O happens outside the model's lock.
vkssm_status vkssm_model_snapshot_to_file(vkssm_model* model, int slot, const char* path) {
  return with_model("vkssm_model_snapshot_to_file", model, {{"path", !path}}, Lock::None, [&](vkssm_model& m) {
    std::vector<uint8_t> blob;
    {
      std::lock_guard<std::mutex> hold(m.lock);
      blob = m.model->snapshot(slot);
    }
    vkssm::save_state_file(path, blob);
  });
}

vkssm_status vkssm_model_restore_from_file(vkssm_model* model, int slot, const char* path) {
  return with_model("vkssm_model_restore_from_file", model, {{"path", !path}}, Lock::None, [&](vkssm_model& m) {
    const std::vector<uint8_t> blob = vkssm::load_state_file(path);
    std::lock_guard<std::mutex> hold(m.lock);
    m.model->restore(slot, blob.data(), blob.size());
  });
}

// ---- streams ------------------------------------------------------------------------------------
// Lock order: the model's lock (only by calls that use the model), then the pool's own mutex
// inside StreamPool. Calls that only touch queues (feed, pending, close, ...) skip the model lock,
// so feeding never waits for a direct call on the model.

vkssm_status vkssm_pool_create(vkssm_model* model, vkssm_pool** out) {
  const char* fn = "vkssm_pool_create";
  if (!out) return null_argument(fn, "out");
  *out = nullptr;
  return with_model(fn, model, {}, Lock::Model, [&](vkssm_model& m) {
    auto pool = std::make_unique<vkssm_pool>();
    pool->owner = &m;
    pool->pool = std::make_unique<vkssm::StreamPool>(*m.model);
    *out = pool.release();
  });
}

void vkssm_pool_free(vkssm_pool* pool) {
  try {
    delete pool;
  } catch (...) {
  }
}

int vkssm_pool_open_count(vkssm_pool* pool) {
  return get_or("vkssm_pool_open_count", pool, "pool", 0, [](const vkssm_pool& p) {
    try {
      return p.pool->open_count();
    } catch (...) {  // a mutex failure: nothing sensible to report through an int
      fail(VKSSM_ERROR, "vkssm_pool_open_count: could not take the pool's lock");
      return 0;
    }
  });
}

vkssm_status vkssm_pool_open(vkssm_pool* pool, vkssm_stream* out) {
  const char* fn = "vkssm_pool_open";
  if (!out) return null_argument(fn, "out");
  *out = 0;
  return with_pool(fn, pool, {}, Lock::Model, [&](vkssm_pool& p) { *out = encode(p.pool->open()); });
}

vkssm_status vkssm_pool_close(vkssm_pool* pool, vkssm_stream stream) {
  return with_stream("vkssm_pool_close", pool, stream, {}, Lock::None,
                     [&](vkssm::StreamPool& p, vkssm::StreamHandle h) { p.close(h); });
}

vkssm_status vkssm_pool_reset(vkssm_pool* pool, vkssm_stream stream) {
  return with_stream("vkssm_pool_reset", pool, stream, {}, Lock::Model,
                     [&](vkssm::StreamPool& p, vkssm::StreamHandle h) { p.reset(h); });
}

vkssm_status vkssm_pool_fork(vkssm_pool* pool, vkssm_stream stream, vkssm_stream* out) {
  const char* fn = "vkssm_pool_fork";
  if (!out) return null_argument(fn, "out");
  *out = 0;
  return with_stream(fn, pool, stream, {}, Lock::Model,
                     [&](vkssm::StreamPool& p, vkssm::StreamHandle h) { *out = encode(p.fork(h)); });
}

vkssm_status vkssm_pool_feed(vkssm_pool* pool, vkssm_stream stream, const int32_t* tokens, size_t n) {
  return with_stream("vkssm_pool_feed", pool, stream, {{"tokens", n > 0 && !tokens}}, Lock::None,
                     [&](vkssm::StreamPool& p, vkssm::StreamHandle h) { p.feed(h, tokens, n); });
}

vkssm_status vkssm_pool_feed_frames(vkssm_pool* pool, vkssm_stream stream, const float* frames, size_t n) {
  return with_stream("vkssm_pool_feed_frames", pool, stream, {{"frames", n > 0 && !frames}}, Lock::None,
                     [&](vkssm::StreamPool& p, vkssm::StreamHandle h) { p.feed_frames(h, frames, n); });
}

vkssm_status vkssm_pool_pending(vkssm_pool* pool, vkssm_stream stream, size_t* out) {
  return with_stream("vkssm_pool_pending", pool, stream, {{"out", !out}}, Lock::None,
                     [&](vkssm::StreamPool& p, vkssm::StreamHandle h) { *out = p.pending(h); });
}

vkssm_status vkssm_pool_set_sampling(vkssm_pool* pool, vkssm_stream stream, const vkssm_sampling* params) {
  return with_stream("vkssm_pool_set_sampling", pool, stream, {{"params", !params}}, Lock::None,
                     [&](vkssm::StreamPool& p, vkssm::StreamHandle h) { p.set_sampling(h, to_params(params, 1)[0]); });
}

vkssm_status vkssm_pool_step(vkssm_pool* pool, vkssm_step_result* results, float* outputs, int* count) {
  return pool_step("vkssm_pool_step", pool, results, outputs, count,
                   [&](vkssm::StreamPool& p) { return p.step(outputs != nullptr); });
}

vkssm_status vkssm_pool_step_sample(vkssm_pool* pool, int feed_back, vkssm_step_result* results,
                                    float* outputs, int* count) {
  return pool_step("vkssm_pool_step_sample", pool, results, outputs, count, [&](vkssm::StreamPool& p) {
    vkssm::SampleOptions o;
    o.want_logits = outputs != nullptr;
    o.feed_back = feed_back != 0;
    return p.step_sample(o);
  });
}

vkssm_status vkssm_pool_prefill(vkssm_pool* pool, vkssm_stream stream, size_t* consumed) {
  if (consumed) *consumed = 0;
  return with_stream("vkssm_pool_prefill", pool, stream, {}, Lock::Model,
                     [&](vkssm::StreamPool& p, vkssm::StreamHandle h) {
                       const size_t n = p.prefill(h);
                       if (consumed) *consumed = n;
                     });
}

vkssm_status vkssm_pool_rollback(vkssm_pool* pool, vkssm_stream stream, int steps) {
  return with_stream("vkssm_pool_rollback", pool, stream, {}, Lock::Model,
                     [&](vkssm::StreamPool& p, vkssm::StreamHandle h) { p.rollback(h, steps); });
}

vkssm_status vkssm_pool_rollback_available(vkssm_pool* pool, vkssm_stream stream, int* available) {
  return with_stream("vkssm_pool_rollback_available", pool, stream, {{"available", !available}}, Lock::Model,
                     [&](vkssm::StreamPool& p, vkssm::StreamHandle h) { *available = p.rollback_available(h); });
}

vkssm_status vkssm_pool_snapshot(vkssm_pool* pool, vkssm_stream stream, void* buffer, size_t capacity,
                                 size_t* size) {
  const char* fn = "vkssm_pool_snapshot";
  return with_stream(fn, pool, stream, {{"size", !size}}, Lock::Model,
                     [&](vkssm::StreamPool& p, vkssm::StreamHandle h) {
                       const std::vector<uint8_t> blob = p.snapshot(h);
                       pool->owner->snapshot_bytes = blob.size();
                       return hand_out_blob(fn, blob, buffer, capacity, size);
                     });
}

vkssm_status vkssm_pool_restore(vkssm_pool* pool, const void* data, size_t size, vkssm_stream* out) {
  const char* fn = "vkssm_pool_restore";
  if (!out) return null_argument(fn, "out");
  *out = 0;
  return with_pool(fn, pool, {{"data", !data}}, Lock::Model, [&](vkssm_pool& p) {
    *out = encode(p.pool->restore(static_cast<const uint8_t*>(data), size));
  });
}

const char* vkssm_last_error(void) { return t_last_error.c_str(); }


// ---- speech-command listener ----------------------------------------------------------------------

vkssm_status vkssm_listener_create(const char* model_dir, const vkssm_load_options* opts, float threshold,
                                   vkssm_listener** out) {
  const char* fn = "vkssm_listener_create";
  if (!out) return null_argument(fn, "out");
  *out = nullptr;
  vkssm::ListenerOptions lo;
  if (vkssm_status s = to_load_options(fn, opts, lo.load); s != VKSSM_OK) return s;
  if (!(threshold >= 0.0f && threshold <= 1.0f))
    return fail(VKSSM_INVALID_ARGUMENT, std::string(fn) + ": threshold must be 0 (the model's) or in (0, 1], got " +
                                            std::to_string(threshold));
  lo.threshold = threshold;
  return guarded(fn, [&] {
    std::string dir = model_dir ? model_dir : vkssm::Listener::default_model_dir();
    if (dir.empty()) throw vkssm::Error("the shipped speech-commands model was not found; pass its folder");
    auto handle = std::make_unique<vkssm_listener>();
    handle->listener = std::make_unique<vkssm::Listener>(dir, lo);
    *out = handle.release();
  });
}

void vkssm_listener_free(vkssm_listener* listener) {
  try {
    delete listener;
  } catch (...) {
  }
}

int vkssm_listener_command_count(const vkssm_listener* listener) {
  return listener ? int(listener->listener->commands().size()) : 0;
}

const char* vkssm_listener_command(const vkssm_listener* listener, int index) {
  if (!listener || index < 0 || index >= int(listener->listener->commands().size())) return nullptr;
  return listener->listener->commands()[size_t(index)].c_str();
}

vkssm_status vkssm_listener_open_stream(vkssm_listener* listener, int sample_rate, int* stream) {
  const char* fn = "vkssm_listener_open_stream";
  if (!listener) return null_argument(fn, "listener");
  if (!stream) return null_argument(fn, "stream");
  return guarded(fn, [&] { *stream = listener->listener->open_stream(sample_rate); });
}

vkssm_status vkssm_listener_push_s16(vkssm_listener* listener, int stream, const int16_t* samples, size_t n) {
  const char* fn = "vkssm_listener_push_s16";
  if (!listener) return null_argument(fn, "listener");
  if (!samples && n > 0) return null_argument(fn, "samples");
  return guarded(fn, [&] { listener->listener->push_s16(stream, samples, n); });
}

vkssm_status vkssm_listener_push_f32(vkssm_listener* listener, int stream, const float* samples, size_t n) {
  const char* fn = "vkssm_listener_push_f32";
  if (!listener) return null_argument(fn, "listener");
  if (!samples && n > 0) return null_argument(fn, "samples");
  return guarded(fn, [&] { listener->listener->push(stream, samples, n); });
}

vkssm_status vkssm_listener_finish_stream(vkssm_listener* listener, int stream) {
  const char* fn = "vkssm_listener_finish_stream";
  if (!listener) return null_argument(fn, "listener");
  return guarded(fn, [&] { listener->listener->finish(stream); });
}

vkssm_status vkssm_listener_close_stream(vkssm_listener* listener, int stream) {
  const char* fn = "vkssm_listener_close_stream";
  if (!listener) return null_argument(fn, "listener");
  return guarded(fn, [&] { listener->listener->close(stream); });
}

vkssm_status vkssm_listener_stream_done(vkssm_listener* listener, int stream, int* done) {
  const char* fn = "vkssm_listener_stream_done";
  if (!listener) return null_argument(fn, "listener");
  if (!done) return null_argument(fn, "done");
  return guarded(fn, [&] { *done = listener->listener->done(stream) ? 1 : 0; });
}

vkssm_status vkssm_listener_process(vkssm_listener* listener, int* hops) {
  const char* fn = "vkssm_listener_process";
  if (!listener) return null_argument(fn, "listener");
  return guarded(fn, [&] {
    int n = listener->listener->process();
    if (hops) *hops = n;
  });
}

vkssm_status vkssm_listener_poll(vkssm_listener* listener, vkssm_listen_event* events, int capacity, int* count) {
  const char* fn = "vkssm_listener_poll";
  if (!listener) return null_argument(fn, "listener");
  if (!count) return null_argument(fn, "count");
  *count = 0;
  if (capacity < 0) return fail(VKSSM_INVALID_ARGUMENT, std::string(fn) + ": capacity is negative");
  if (!events && capacity > 0) return null_argument(fn, "events");
  return guarded(fn, [&] {
    const auto& words = listener->listener->commands();
    for (const vkssm::ListenerEvent& e : listener->listener->poll(size_t(capacity))) {
      events[*count] = {e.stream, e.command, words[size_t(e.command)].c_str(), e.time, e.score};
      ++*count;
    }
  });
}

}  // extern "C"

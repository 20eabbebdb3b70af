// The C API (engine/vkssm.h): a thin shell over vkssm::Model that turns every C++ exception into a
// vkssm_status plus a thread-local message, so nothing unwinds through a C caller's frames.
#include "engine/vkssm.h"

#include <mutex>
#include <new>
#include <string>

#include "engine/vkssm.hpp"
#include "host/error.h"

struct vkssm_model {
  std::unique_ptr<vkssm::Model> model;
  // step/reset record into shared command buffers and staging memory: one caller at a time.
  std::mutex lock;
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

// Runs `body`, mapping any exception to VKSSM_ERROR with its message.
template <typename Body>
vkssm_status guarded(const char* function, Body&& body) {
  try {
    body();
    return VKSSM_OK;
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

}  // namespace

extern "C" {

void vkssm_load_options_default(vkssm_load_options* opts) {
  if (!opts) return;
  const vkssm::LoadOptions d;
  opts->backend = d.backend == vkssm::BackendKind::Cpu ? 1 : 0;
  opts->device = d.device;
  opts->max_streams = d.max_streams;
  opts->weights = static_cast<int>(d.weights);
  opts->validation = d.validation ? 1 : 0;
  opts->cache_dir = nullptr;
}

vkssm_status vkssm_model_load(const char* path, const vkssm_load_options* opts, vkssm_model** out) {
  const char* fn = "vkssm_model_load";
  if (!out) return null_argument(fn, "out");
  *out = nullptr;
  if (!path) return null_argument(fn, "path");

  vkssm_load_options o;
  vkssm_load_options_default(&o);
  if (opts) o = *opts;
  if (o.backend != 0 && o.backend != 1)
    return fail(VKSSM_INVALID_ARGUMENT, std::string(fn) + ": backend must be 0 (vulkan) or 1 (cpu), got " +
                                            std::to_string(o.backend));
  if (o.weights < 0 || o.weights > 2)
    return fail(VKSSM_INVALID_ARGUMENT, std::string(fn) + ": weights must be 0 (auto), 1 (f32) or 2 (f16), got " +
                                            std::to_string(o.weights));

  return guarded(fn, [&] {
    vkssm::LoadOptions lo;
    lo.backend = o.backend == 1 ? vkssm::BackendKind::Cpu : vkssm::BackendKind::Vulkan;
    lo.device = o.device;
    lo.max_streams = o.max_streams;
    lo.weights = o.weights == 1   ? vkssm::WeightStorage::F32
                 : o.weights == 2 ? vkssm::WeightStorage::F16
                                  : vkssm::WeightStorage::Auto;
    lo.validation = o.validation != 0;
    if (o.cache_dir) lo.cache_dir = o.cache_dir;
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

int64_t vkssm_model_vocab_size(const vkssm_model* model) {
  if (!model) {
    null_argument("vkssm_model_vocab_size", "model");
    return 0;
  }
  return model->model->info().vocab_size;
}

int vkssm_model_capacity(const vkssm_model* model) {
  if (!model) {
    null_argument("vkssm_model_capacity", "model");
    return 0;
  }
  return model->model->capacity();
}

uint64_t vkssm_model_state_bytes_per_stream(const vkssm_model* model) {
  if (!model) {
    null_argument("vkssm_model_state_bytes_per_stream", "model");
    return 0;
  }
  return model->model->info().state_bytes_per_stream;
}

uint64_t vkssm_model_weight_bytes(const vkssm_model* model) {
  if (!model) {
    null_argument("vkssm_model_weight_bytes", "model");
    return 0;
  }
  return model->model->info().weight_bytes;
}

vkssm_status vkssm_model_reset(vkssm_model* model, int slot) {
  const char* fn = "vkssm_model_reset";
  if (!model) return null_argument(fn, "model");
  return guarded(fn, [&] {
    std::lock_guard<std::mutex> hold(model->lock);
    model->model->reset(slot);
  });
}

vkssm_status vkssm_model_step(vkssm_model* model, const int32_t* tokens, const int32_t* slots,
                              int batch, float* logits) {
  const char* fn = "vkssm_model_step";
  if (!model) return null_argument(fn, "model");
  // With batch < 1 the engine rejects the call before reading the arrays, with its own message.
  if (batch > 0 && !tokens) return null_argument(fn, "tokens");
  if (batch > 0 && !slots) return null_argument(fn, "slots");
  return guarded(fn, [&] {
    std::lock_guard<std::mutex> hold(model->lock);
    model->model->step(tokens, slots, batch, logits);
  });
}

const char* vkssm_last_error(void) { return t_last_error.c_str(); }

}  // extern "C"

/* vkssm C API: a small, stable C99 surface over the C++ API (engine/vkssm.hpp) for embedding
 * vkssm in applications and in other languages (Python ctypes, Rust, Go, ...).
 *
 *   vkssm_model* model = NULL;
 *   if (vkssm_model_load("path/to/mamba-130m-hf", NULL, &model) != VKSSM_OK) {
 *     fprintf(stderr, "vkssm: %s\n", vkssm_last_error());
 *     return 1;
 *   }
 *   float* logits = malloc(sizeof(float) * (size_t)vkssm_model_vocab_size(model));
 *   int32_t slot = 0;                                   // a state slot = one stream
 *   for (int i = 0; i < n_prompt; ++i)
 *     if (vkssm_model_step(model, &prompt[i], &slot, 1, logits) != VKSSM_OK) break;
 *   free(logits);
 *   vkssm_model_free(model);
 *
 * Errors: every function returns a vkssm_status (or, for getters, 0 on a NULL model) and never lets
 * a C++ exception escape. The message of the last failing call on the calling thread is
 * vkssm_last_error(); like errno, it is not cleared by calls that succeed.
 *
 * Threads: vkssm_model_step and vkssm_model_reset on one model are serialized by a lock inside the
 * model, so feeding one model from several host threads is safe (each thread should own its
 * slots: two threads stepping the same slot interleave that stream's tokens). Different models are
 * independent. vkssm_model_free must not race with any other call on the same model.
 */
#ifndef VKSSM_H
#define VKSSM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A loaded model: read-only weights plus a pool of recurrent states ("slots"), one per stream. */
typedef struct vkssm_model vkssm_model;

typedef enum {
  VKSSM_OK = 0,
  VKSSM_ERROR = 1,            /* the engine failed: bad file, bad token, device error, ... */
  VKSSM_INVALID_ARGUMENT = 2  /* a NULL pointer or an out-of-range option from the caller */
} vkssm_status;

typedef struct {
  int backend;            /* 0: Vulkan, 1: CPU */
  int device;             /* Vulkan device index; -1: $VKSSM_DEVICE, else the best device */
  int max_streams;        /* state slots; 0 = as many as fit in half the device memory */
  int weights;            /* 0: auto (fp16 when the checkpoint is 16-bit and the device can), 1: f32, 2: f16 */
  int validation;         /* non-zero: Khronos validation layer (also on when $VKSSM_VALIDATION=1) */
  const char* cache_dir;  /* pipeline cache folder; NULL or "": $VKSSM_CACHE_DIR or ~/.cache/vkssm */
} vkssm_load_options;

/* Fills `opts` with the defaults (Vulkan, default device, 4 streams, auto weights). NULL-safe. */
void vkssm_load_options_default(vkssm_load_options* opts);

/* Loads a checkpoint folder (config.json + safetensors). `opts` NULL means the defaults. On
 * success *out receives a model to release with vkssm_model_free; on failure *out is set to NULL. */
vkssm_status vkssm_model_load(const char* path, const vkssm_load_options* opts, vkssm_model** out);

/* Releases the model and its device memory. NULL is ignored. */
void vkssm_model_free(vkssm_model* model);

/* Properties of a loaded model. A NULL model gives 0 (and sets vkssm_last_error). */
int64_t vkssm_model_vocab_size(const vkssm_model* model);           /* logits per stream */
int vkssm_model_capacity(const vkssm_model* model);                 /* number of slots */
uint64_t vkssm_model_state_bytes_per_stream(const vkssm_model* model);
uint64_t vkssm_model_weight_bytes(const vkssm_model* model);        /* weights read by one step */

/* Zeroes the state of `slot` (0 <= slot < capacity). */
vkssm_status vkssm_model_reset(vkssm_model* model, int slot);

/* Advances stream slots[i] by token tokens[i] for i < batch (slots distinct, 1 <= batch <=
 * capacity). When `logits` is non-NULL it receives batch * vocab_size floats, row i for stream i.
 * A bad token id or slot fails before any state changes. */
vkssm_status vkssm_model_step(vkssm_model* model, const int32_t* tokens, const int32_t* slots,
                              int batch, float* logits);

/* The message of the last failing call on this thread, "" if none has failed. The pointer stays
 * valid until the next failing call on this thread. */
const char* vkssm_last_error(void);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif /* VKSSM_H */

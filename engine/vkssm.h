/* vkssm C API: a small, stable C99 surface over the C++ API (engine/vkssm.hpp) for embedding
 * vkssm in applications and in other languages (Python ctypes, Rust, Go, ...).
 *
 *   vkssm_model* model = NULL;
 *   if (vkssm_model_load("path/to/mamba-130m-hf", NULL, &model) != VKSSM_OK) {
 *     fprintf(stderr, "vkssm: %s\n", vkssm_last_error());
 *     return 1;
 *   }
 *   float* logits = malloc(sizeof(float) * (size_t)vkssm_model_d_output(model));
 *   int32_t slot = 0;                                   // a state slot = one stream
 *   for (int i = 0; i < n_prompt; ++i)
 *     if (vkssm_model_step(model, &prompt[i], &slot, 1, logits) != VKSSM_OK) break;
 *   free(logits);
 *
 *   // Generation: the prompt in few submits, then tokens sampled on the device.
 *   vkssm_sampling sp = {0.8f, 40, 1};                  // temperature, top_k, seed
 *   int32_t tok = prompt[n_prompt - 1], next;
 *   vkssm_model_reset(model, slot);
 *   if (n_prompt > 1) vkssm_model_prefill(model, slot, prompt, n_prompt - 1, NULL);
 *   for (int i = 0; i < 100; ++i, tok = next) {
 *     if (vkssm_model_step_sample(model, &tok, &slot, 1, &sp, &next, NULL) != VKSSM_OK) break;
 *     emit(next);
 *   }
 *   vkssm_model_free(model);
 *
 * Streams: a vkssm_pool hands out stream handles over a model's slots, queues input per stream
 * from any thread and advances every stream with input in one batched step:
 *
 *   vkssm_pool* pool;  vkssm_stream s;  vkssm_step_result r[CAPACITY];  int n;
 *   vkssm_pool_create(model, &pool);
 *   vkssm_pool_open(pool, &s);
 *   vkssm_pool_feed(pool, s, prompt, n_prompt);
 *   vkssm_pool_prefill(pool, s, NULL);                  // all but the last prompt token
 *   while (vkssm_pool_step_sample(pool, 1, r, NULL, &n) == VKSSM_OK && n > 0 && !done(r, n)) {}
 *   vkssm_pool_close(pool, s);
 *   vkssm_pool_free(pool);                              // before vkssm_model_free(model)
 *
 * Errors: every function returns a vkssm_status (getters: 0 or NULL on a NULL model) and never lets
 * a C++ exception escape. VKSSM_INVALID_ARGUMENT means a NULL pointer (or an out-of-range option)
 * from the caller; VKSSM_ERROR that the engine refused or failed (bad token, slot, state blob,
 * rollback, device error, ...), and then nothing was changed unless the function says otherwise.
 * The message of the last failing call on the calling thread is vkssm_last_error(); like errno, it
 * is not cleared by calls that succeed. Array arguments are read (or written) during the call only.
 *
 * Threads: every call on a model holds a lock inside the model, so feeding one model from several
 * host threads is safe (each thread should own its slots: two threads stepping the same slot
 * interleave that stream's tokens). Different models are independent. Steps submitted with
 * vkssm_model_submit must be collected before any other call that steps or touches state (those
 * fail with a message saying so), so submit/collect belong to one thread at a time. A pool's calls
 * take the same model lock for the time they use the model, plus the pool's own lock: pool calls
 * may come from any thread; its slots belong to the pool, so do not step or reset them directly.
 * vkssm_model_free / vkssm_pool_free must not race with any other call on the same object.
 */
#ifndef VKSSM_H
#define VKSSM_H

#include <stddef.h>
#include <stdint.h>

#include "host/vkssm_export.h" /* VKSSM_API; relative to this header when installed */

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

/* Load options. Fill them with vkssm_load_options_default() before setting fields, so fields added
 * later get their defaults. The struct carries no size or version field: new fields go at its end
 * and the library reads the whole struct as its own header declares it, so a program built
 * against an older header (a shorter struct) must be rebuilt against the library it links. */
typedef struct {
  int backend;            /* 0: Vulkan, 1: the plain CPU reference, 2: CPU (threads + SIMD), 3: auto (the
                             default): Vulkan on a GPU, CPU (2) where the only Vulkan devices are CPU
                             implementations (lavapipe, SwiftShader) or there is no Vulkan; a device
                             named by `device` or $VKSSM_DEVICE runs Vulkan whatever its type */
  int device;             /* Vulkan device index; -1: $VKSSM_DEVICE, else the best device */
  int max_streams;        /* state slots; 0 = as many as fit in half the device memory */
  int weights;            /* 0: auto (a GGUF file's Q8_0/Q4_0/Q4_K/Q5_K/Q6_K matrices keep their blocks, the
                             others fp16 when the checkpoint is 16-bit and the device can), 1: f32, 2: f16,
                             3: q8_0, 4: q4_0, 5: q4_k, 6: q5_k, 7: q6_k (ggml blocks quantized at load;
                             K-quant rows that are not a multiple of 256 values take q8_0, rows that
                             are not a multiple of 32 values stay f32) */
  int validation;         /* non-zero: Khronos validation layer (also on when $VKSSM_VALIDATION=1) */
  const char* cache_dir;  /* pipeline cache folder; NULL or "": $VKSSM_CACHE_DIR or ~/.cache/vkssm */
  int rollback_depth;     /* K: each slot keeps its last K states so vkssm_model_rollback can undo K steps */
  int cpu_threads;        /* CPU backend (2): threads in all, 1..1024; 0 = $VKSSM_THREADS, else one per core */
  int frames_per_step;    /* frame models, 1..64 (default 1): the most frames per stream one step takes; a
                             listener steps each stream by this many hops at once */
} vkssm_load_options;

/* How a stream picks its next token: temperature 0 = greedy (argmax); top_k 0 = all tokens. The
 * n-th token a slot samples since its reset is a pure function of the logits, the seed and n. */
typedef struct {
  float temperature;
  int top_k;
  uint64_t seed;
} vkssm_sampling;

/* Fills `opts` with the defaults (auto backend, default device, 4 streams, auto weights, no
 * rollback, cpu_threads 0). NULL-safe. */
VKSSM_API void vkssm_load_options_default(vkssm_load_options* opts);

/* Loads a checkpoint folder (config.json + safetensors). `opts` NULL means the defaults. On
 * success *out receives a model to release with vkssm_model_free; on failure *out is set to NULL. */
VKSSM_API vkssm_status vkssm_model_load(const char* path, const vkssm_load_options* opts, vkssm_model** out);

/* Releases the model and its device memory. NULL is ignored. */
VKSSM_API void vkssm_model_free(vkssm_model* model);

/* Properties of a loaded model. A NULL model gives 0 / NULL (and sets vkssm_last_error). */
VKSSM_API int64_t vkssm_model_vocab_size(const vkssm_model* model);           /* logits per stream; 0: frame model */
VKSSM_API int64_t vkssm_model_d_input(const vkssm_model* model);              /* floats per input frame; 0: token model */
VKSSM_API int64_t vkssm_model_d_output(const vkssm_model* model);             /* floats a step writes per stream */
VKSSM_API const char* vkssm_model_architecture(const vkssm_model* model);     /* "mamba", ...; valid for the model's life */
VKSSM_API const char* vkssm_model_backend(const vkssm_model* model);          /* "vulkan", "reference" or "cpu" */
/* Where it runs: the Vulkan device's name, or e.g. "host CPU (cpu: 2 threads, AVX2)". */
VKSSM_API const char* vkssm_model_device_name(const vkssm_model* model);
/* Why that backend: "requested", or what auto chose and why ("cpu: the only Vulkan device, llvmpipe
 * (...), is a CPU implementation"); valid for the model's life. */
VKSSM_API const char* vkssm_model_backend_reason(const vkssm_model* model);
VKSSM_API int vkssm_model_capacity(const vkssm_model* model);                 /* number of slots */
VKSSM_API uint64_t vkssm_model_state_bytes_per_stream(const vkssm_model* model);
VKSSM_API uint64_t vkssm_model_weight_bytes(const vkssm_model* model);        /* weights read by one step */

/* Zeroes the state of `slot` (0 <= slot < capacity). */
VKSSM_API vkssm_status vkssm_model_reset(vkssm_model* model, int slot);

/* Token models: advances stream slots[i] by token tokens[i] for i < batch (slots distinct, 1 <=
 * batch <= capacity). When `logits` is non-NULL it receives batch * vocab_size floats, row i for
 * stream i. A bad token id or slot fails before any state changes. */
VKSSM_API vkssm_status vkssm_model_step(vkssm_model* model, const int32_t* tokens, const int32_t* slots,
                              int batch, float* logits);

/* Frame models (d_input > 0): advances slots[i] by the frame frames[i * d_input ...]. When
 * `outputs` is non-NULL it receives batch * d_output floats. Token models fail. */
VKSSM_API vkssm_status vkssm_model_step_frames(vkssm_model* model, const float* frames, const int32_t* slots,
                                     int batch, float* outputs);

/* Token models: a step that also picks each stream's next token on the device: next_tokens[i]
 * for slots[i], drawn with params[i]. `logits` (optional, batch * vocab_size floats) receives the
 * logits the tokens were drawn from. */
VKSSM_API vkssm_status vkssm_model_step_sample(vkssm_model* model, const int32_t* tokens, const int32_t* slots,
                                     int batch, const vkssm_sampling* params, int32_t* next_tokens,
                                     float* logits);

/* Feeds n >= 1 prompt tokens to one slot in few submits; `last_logits` (optional, vocab_size
 * floats) receives the logits after the last token. The state it leaves equals n steps. */
VKSSM_API vkssm_status vkssm_model_prefill(vkssm_model* model, int slot, const int32_t* tokens, int n,
                                 float* last_logits);

/* Undoes the last `steps` steps of `slot`: needs rollback_depth >= steps at load and that many
 * steps since the slot's last reset, restore or fork. *available receives how many steps
 * vkssm_model_rollback can undo on `slot` now. */
VKSSM_API vkssm_status vkssm_model_rollback(vkssm_model* model, int slot, int steps);
VKSSM_API vkssm_status vkssm_model_rollback_available(vkssm_model* model, int slot, int* available);

/* `to_slot` gets an exact (device-side) copy of `from_slot`'s state. */
VKSSM_API vkssm_status vkssm_model_fork(vkssm_model* model, int from_slot, int to_slot);

/* The slot's whole state as a self-describing blob (versioned, fingerprinted, checksummed), in
 * two calls: with buffer NULL, *size receives the blob's size (the same for every slot of the
 * model); then with a buffer of `capacity` >= that many bytes, the blob is written and *size set to
 * its size. A smaller buffer fails with VKSSM_INVALID_ARGUMENT, writes nothing and sets *size to
 * the size needed. */
VKSSM_API vkssm_status vkssm_model_snapshot(vkssm_model* model, int slot, void* buffer, size_t capacity,
                                  size_t* size);
/* Replaces the slot's state with a blob from vkssm_model_snapshot (of this checkpoint, either
 * backend). A blob that is damaged or from another model fails and changes nothing. */
VKSSM_API vkssm_status vkssm_model_restore(vkssm_model* model, int slot, const void* data, size_t size);
/* The same through a file: snapshot of `slot` written to `path` / a blob read from `path` restored
 * into `slot`. Errors name the file. */
VKSSM_API vkssm_status vkssm_model_snapshot_to_file(vkssm_model* model, int slot, const char* path);
VKSSM_API vkssm_status vkssm_model_restore_from_file(vkssm_model* model, int slot, const char* path);

/* Asynchronous steps: submit queues a step (tokens for token models, frames for frame models; the
 * other NULL) and returns without waiting, so the host can prepare the next one while it runs;
 * `sampling` non-NULL samples next tokens ([batch] params), `want_outputs` non-zero copies the
 * logits / outputs back. Every check happens in submit. At most two steps are in flight.
 * collect waits for the oldest submitted step and writes its results: next_tokens [batch] when it
 * sampled, outputs [batch * d_output] when asked for; either may be NULL to discard them. */
VKSSM_API vkssm_status vkssm_model_submit(vkssm_model* model, const int32_t* tokens, const float* frames,
                                const int32_t* slots, int batch, const vkssm_sampling* sampling,
                                int want_outputs);
/* Frame models: each slot advances by `frames_per_stream` consecutive frames in one step (frames
 * [batch][frames_per_stream][d_input]; at most the load option frames_per_step), as that many steps
 * would; collect then writes outputs [batch * frames_per_stream * d_output]. */
VKSSM_API vkssm_status vkssm_model_submit_frames(vkssm_model* model, const float* frames, const int32_t* slots,
                                       int batch, int frames_per_stream, int want_outputs);
VKSSM_API vkssm_status vkssm_model_collect(vkssm_model* model, int32_t* next_tokens, float* outputs);
VKSSM_API int vkssm_model_in_flight(const vkssm_model* model);                /* submitted, not collected */

/* ---- streams ---------------------------------------------------------------------------------- */

/* Stream handles over one model's slots (engine/stream_pool.h). */
typedef struct vkssm_pool vkssm_pool;

/* A stream: its slot and the slot's generation, so a handle of a closed stream is refused even
 * after its slot was reused. 0 is never a valid handle. */
typedef uint64_t vkssm_stream;

typedef struct {
  vkssm_stream stream;
  int32_t token_fed; /* the token this step consumed; -1 for an input frame */
  int32_t sampled;   /* vkssm_pool_step_sample: the token picked for the stream; else -1 */
} vkssm_step_result;

/* A pool serving all of the model's slots. Free it before the model. */
VKSSM_API vkssm_status vkssm_pool_create(vkssm_model* model, vkssm_pool** out);
VKSSM_API void vkssm_pool_free(vkssm_pool* pool);                             /* NULL is ignored */
VKSSM_API int vkssm_pool_open_count(vkssm_pool* pool);                        /* 0 on NULL */

/* A new stream with a zero state, nothing queued and greedy sampling; fails when all are open. */
VKSSM_API vkssm_status vkssm_pool_open(vkssm_pool* pool, vkssm_stream* out);
/* Ends the stream; its queued input is dropped and its handle becomes stale. */
VKSSM_API vkssm_status vkssm_pool_close(vkssm_pool* pool, vkssm_stream stream);
/* Zeroes the stream's state and drops its queued input. */
VKSSM_API vkssm_status vkssm_pool_reset(vkssm_pool* pool, vkssm_stream stream);
/* A new stream with a copy of the stream's state and sampling parameters (not its queue). */
VKSSM_API vkssm_status vkssm_pool_fork(vkssm_pool* pool, vkssm_stream stream, vkssm_stream* out);
/* Queues n tokens (token models) or n frames of d_input floats (frame models) for the stream.
 * Everything is checked first: on error nothing is queued. */
VKSSM_API vkssm_status vkssm_pool_feed(vkssm_pool* pool, vkssm_stream stream, const int32_t* tokens, size_t n);
VKSSM_API vkssm_status vkssm_pool_feed_frames(vkssm_pool* pool, vkssm_stream stream, const float* frames, size_t n);
/* Tokens or frames queued for the stream and not yet stepped. */
VKSSM_API vkssm_status vkssm_pool_pending(vkssm_pool* pool, vkssm_stream stream, size_t* out);
/* The parameters vkssm_pool_step_sample uses for the stream. */
VKSSM_API vkssm_status vkssm_pool_set_sampling(vkssm_pool* pool, vkssm_stream stream, const vkssm_sampling* params);
/* Advances every stream with queued input by one token or frame in one batched step. `results`
 * must hold capacity entries; *count receives the number of streams advanced (0: none had input),
 * results[0 .. *count) in slot order. `outputs` (optional, capacity * d_output floats) receives row
 * i for results[i]. On error no queue changes. */
VKSSM_API vkssm_status vkssm_pool_step(vkssm_pool* pool, vkssm_step_result* results, float* outputs, int* count);
/* Token models: the same, also sampling each stream's next token (results[i].sampled). With
 * feed_back non-zero a sampled token is queued as its stream's next input when that stream has
 * nothing else queued. */
VKSSM_API vkssm_status vkssm_pool_step_sample(vkssm_pool* pool, int feed_back, vkssm_step_result* results,
                                    float* outputs, int* count);
/* Runs all but the last queued token of the stream through vkssm_model_prefill; the last stays
 * queued for the next batched step. *consumed (optional) receives how many tokens ran. */
VKSSM_API vkssm_status vkssm_pool_prefill(vkssm_pool* pool, vkssm_stream stream, size_t* consumed);
/* Undoes the stream's last `steps` steps (as vkssm_model_rollback); its queue is not touched. */
VKSSM_API vkssm_status vkssm_pool_rollback(vkssm_pool* pool, vkssm_stream stream, int steps);
VKSSM_API vkssm_status vkssm_pool_rollback_available(vkssm_pool* pool, vkssm_stream stream, int* available);
/* The stream's state as a blob, two calls as vkssm_model_snapshot; restore opens a new stream
 * holding a blob's state (on a bad blob nothing is opened). */
VKSSM_API vkssm_status vkssm_pool_snapshot(vkssm_pool* pool, vkssm_stream stream, void* buffer, size_t capacity,
                                 size_t* size);
VKSSM_API vkssm_status vkssm_pool_restore(vkssm_pool* pool, const void* data, size_t size, vkssm_stream* out);

/* ---- speech-command listener ----------------------------------------------------------------
 * Many audio streams, one batched model step per 10 ms hop (engine/listener.h):
 *
 *   vkssm_listener* l;  int s, n;  vkssm_listen_event ev[16];
 *   vkssm_listener_create(NULL, NULL, 0.0f, &l);     // the shipped command model, its threshold
 *   vkssm_listener_open_stream(l, 48000, &s);         // any sample rate
 *   vkssm_listener_push_s16(l, s, pcm, n_samples);    // any thread, any chunk size
 *   vkssm_listener_process(l, NULL);                  // steps every stream with a full hop
 *   vkssm_listener_poll(l, ev, 16, &n);               // ev[i].word, ev[i].time (s), ev[i].score
 *   vkssm_listener_finish_stream(l, s);               // end of audio; the slot frees once processed
 *   vkssm_listener_free(l);
 */
typedef struct vkssm_listener vkssm_listener;

typedef struct {
  int stream;        /* from vkssm_listener_open_stream */
  int command;       /* index: vkssm_listener_command(l, command) */
  const char* word;  /* the command; valid until the listener is freed */
  double time;       /* seconds from the start of the stream's audio to the decision */
  float score;       /* the smoothed posterior that crossed the threshold */
} vkssm_listen_event;

/* model_dir NULL: the shipped model found next to the executable. opts NULL: defaults; its
 * max_streams is how many streams may be open at once. threshold 0: the model's own. */
VKSSM_API vkssm_status vkssm_listener_create(const char* model_dir, const vkssm_load_options* opts, float threshold,
                                   vkssm_listener** out);
VKSSM_API void vkssm_listener_free(vkssm_listener* listener);                 /* NULL is ignored */
VKSSM_API int vkssm_listener_command_count(const vkssm_listener* listener);   /* 0 on NULL */
VKSSM_API const char* vkssm_listener_command(const vkssm_listener* listener, int index);  /* NULL out of range */
VKSSM_API vkssm_status vkssm_listener_open_stream(vkssm_listener* listener, int sample_rate, int* stream);
/* Audio in [-1, 1] (f32) or signed 16-bit; from any thread. */
VKSSM_API vkssm_status vkssm_listener_push_s16(vkssm_listener* listener, int stream, const int16_t* samples, size_t n);
VKSSM_API vkssm_status vkssm_listener_push_f32(vkssm_listener* listener, int stream, const float* samples, size_t n);
/* No more audio for the stream: its last hops run in process(), then it is done. */
VKSSM_API vkssm_status vkssm_listener_finish_stream(vkssm_listener* listener, int stream);
VKSSM_API vkssm_status vkssm_listener_close_stream(vkssm_listener* listener, int stream);  /* drop now */
VKSSM_API vkssm_status vkssm_listener_stream_done(vkssm_listener* listener, int stream, int* done);
/* Runs batched steps while any stream has frames_per_step full hops (or its last ones); *hops (may be
 * NULL) gets how many steps ran (each takes frames_per_step hops of every stream in it). */
VKSSM_API vkssm_status vkssm_listener_process(vkssm_listener* listener, int* hops);
/* Up to `capacity` detections, oldest first; the rest stay queued. */
VKSSM_API vkssm_status vkssm_listener_poll(vkssm_listener* listener, vkssm_listen_event* events, int capacity, int* count);

/* The message of the last failing call on this thread, "" if none has failed. The pointer stays
 * valid until the next failing call on this thread. */
VKSSM_API const char* vkssm_last_error(void);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif /* VKSSM_H */

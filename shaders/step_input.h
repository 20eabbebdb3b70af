// The per-step input buffer: what the host writes for one step (engine/vulkan_step_model.cpp,
// stage()) and every step shader reads (shaders/common.glsl, STEP_* macros). Included by both
// GLSL and C++, so it holds only #defines of unsigned arithmetic that read the same in both.
//
// The buffer is 32-bit words. Word 0 is B, the number of rows (streams, prompt tokens, or a frame
// model's streams x frames) in this step; word 1 is F, a frame model's frames per stream (stream i's
// frames are rows i*F .. i*F+F-1, all naming its slot; 1 otherwise); words 2..3 are unused. Then STEP_IN_ARRAYS per-row arrays of CAP words each (CAP = the
// step's row stride, VulkanStepModel::step_rows()), in this order:
//   STEP_IN_TOKEN        token id of row i (token models)
//   STEP_IN_SLOT         its state slot
//   STEP_IN_FRESH        1 when that slot starts from a zero state (a reset costs nothing on the
//                        device: the step reads zeros instead of the old state)
//   STEP_IN_RING         rollback ring entry that receives the slot's state before this step
//   STEP_IN_TEMPERATURE  sampling temperature (float bits; 0 = greedy)
//   STEP_IN_TOPK         sampling top_k (0 = all)
//   STEP_IN_DRAW         the sampler's uniform draw in [0, 1) (float bits, drawn by the host)
// and last the rows' input frames, DIN floats each (frame models).
#ifndef VKSSM_STEP_INPUT_H
#define VKSSM_STEP_INPUT_H

#define STEP_IN_BATCH_WORD 0u
#define STEP_IN_FRAMES_WORD 1u
#define STEP_IN_HEADER_WORDS 4u

#define STEP_IN_TOKEN 0u
#define STEP_IN_SLOT 1u
#define STEP_IN_FRESH 2u
#define STEP_IN_RING 3u
#define STEP_IN_TEMPERATURE 4u
#define STEP_IN_TOPK 5u
#define STEP_IN_DRAW 6u
#define STEP_IN_ARRAYS 7u

// Word of row i in per-row array `array`.
#define STEP_IN_WORD(array, i, cap) (STEP_IN_HEADER_WORDS + (array) * (cap) + (i))
// Word of float k of row i's input frame.
#define STEP_IN_FRAME_WORD(i, k, cap, din) (STEP_IN_HEADER_WORDS + STEP_IN_ARRAYS * (cap) + (i) * (din) + (k))
// Words in the whole buffer.
#define STEP_IN_TOTAL_WORDS(cap, din) (STEP_IN_HEADER_WORDS + STEP_IN_ARRAYS * (cap) + (cap) * (din))

#endif

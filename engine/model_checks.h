#pragma once
// Argument checks every backend makes before it changes anything, with the same messages, so a
// caller sees one error text whichever backend runs. None of them allocates on success.
#include <cstdint>
#include <string>
#include <vector>

#include "host/sampling.h"

namespace vkssm {

void check_slot_index(int slot, int capacity);
void check_token(int32_t token, int64_t vocab_size);
// batch in [1, capacity], every slot in range and distinct. `marks` has capacity entries, all zero
// on entry and on return.
void check_batch_and_slots(const int32_t* slots, int batch, int capacity, std::vector<uint8_t>& marks);
void check_sampling(const SamplingParams& p);
void check_prefill(int slot, const int32_t* tokens, int n, int capacity, int64_t vocab_size);
// steps in [0, available], where available = min(depth, steps since the last reset).
void check_rollback(int slot, int steps, int depth, int available);

// The most frames per stream one step of a frame model takes (LoadOptions::frames_per_step).
constexpr int kMaxFramesPerStep = 64;
// LoadOptions::frames_per_step in [1, kMaxFramesPerStep].
void check_frames_per_step(int frames_per_step);
// StepRequest::frames_per_stream: 1, or for a frame model (d_input > 0) at most `max_frames`
// without a rollback ring (depth 0).
void check_frames_per_stream(int frames, int max_frames, int64_t d_input, int depth);

}  // namespace vkssm

#version 450
// Picks each stream's next token from its logits on the device, so only token ids go back to the
// host. It follows host/sampling.cpp's rules exactly (the tests compare the two):
//   greedy (temperature 0 or top_k 1): the first index of the largest logit, NaN ranked lowest;
//   otherwise weights exp((logit - max) / T) over the candidates - every token in id order, or
//   the top_k largest in descending order (ties to the lower id) - and the token where the
//   cumulative weight first exceeds draw * total. The draw comes from the host's generator.
// One workgroup per stream. Weights are summed in fp32 here and in fp64 on the host, so a draw
// that falls within rounding of a boundary may pick the neighbour; nothing else differs.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint V = 1;          // logits per stream
layout(constant_id = 2) const uint CAPACITY = 1;
layout(constant_id = 3) const uint MAX_TOPK = 256;

STEP_INPUT(0)
layout(std430, binding = 1) readonly buffer Logits { float logits[]; };  // [CAPACITY][V]
layout(std430, binding = 2) writeonly buffer Ids { uint ids[]; };         // [CAPACITY]

#define LOCAL gl_WorkGroupSize.x
shared float red_v[LOCAL];
shared uint red_i[LOCAL];
shared float cand_v[MAX_TOPK];
shared uint cand_i[MAX_TOPK];
shared float block_sum[LOCAL];

float rank_value(float x) { return isnan(x) ? uintBitsToFloat(0xff800000u) : x; }  // NaN -> -inf
// True when (va, ia) comes before (vb, ib): larger value first, then lower index.
bool before(float va, uint ia, float vb, uint ib) { return va > vb || (va == vb && ia < ib); }

// The first candidate in descending order that comes after (prev_v, prev_i); ~0u when none.
// With prev_i = ~0u (and prev_v = +inf) it is the greedy argmax.
void best_after(uint base, float prev_v, uint prev_i, bool bounded, out float best_v, out uint best_i) {
  const uint tid = gl_LocalInvocationID.x;
  float bv = 0.0;
  uint bi = ~0u;
  for (uint j = tid; j < V; j += LOCAL) {
    const float v = rank_value(logits[base + j]);
    if (bounded && !before(prev_v, prev_i, v, j)) continue;
    if (bi == ~0u || before(v, j, bv, bi)) {
      bv = v;
      bi = j;
    }
  }
  red_v[tid] = bv;
  red_i[tid] = bi;
  barrier();
  for (uint s = LOCAL / 2; s > 0; s >>= 1) {
    if (tid < s) {
      const uint oi = red_i[tid + s];
      if (oi != ~0u && (red_i[tid] == ~0u || before(red_v[tid + s], oi, red_v[tid], red_i[tid]))) {
        red_v[tid] = red_v[tid + s];
        red_i[tid] = oi;
      }
    }
    barrier();
  }
  best_v = red_v[0];
  best_i = red_i[0];
  barrier();
}

void main() {
  const uint b = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  if (b >= STEP_BATCH) return;
  const uint tid = gl_LocalInvocationID.x;
  const uint base = b * V;
  const float temperature = STEP_TEMPERATURE(b, CAPACITY);
  const uint top_k = STEP_TOPK(b, CAPACITY);
  const float draw = STEP_DRAW(b, CAPACITY);

  float max_v;
  uint max_i;
  best_after(base, 0.0, ~0u, false, max_v, max_i);
  // Greedy, or nothing finite to weigh (all -inf/NaN), or an +inf logit that outweighs the rest.
  if (temperature == 0.0 || top_k == 1u || isinf(max_v)) {
    if (tid == 0) ids[b] = max_i;
    return;
  }

  if (top_k > 0u && top_k < V) {
    // Candidates one at a time in descending order (top_k <= MAX_TOPK, checked by the host).
    float pv = max_v;
    uint pi = max_i;
    if (tid == 0) {
      cand_v[0] = pv;
      cand_i[0] = pi;
    }
    for (uint c = 1; c < top_k; ++c) {
      best_after(base, pv, pi, true, pv, pi);
      if (tid == 0) {
        cand_v[c] = pv;
        cand_i[c] = pi;
      }
    }
    if (tid == 0) {
      float total = 0.0;
      for (uint c = 0; c < top_k; ++c) total += exp((cand_v[c] - max_v) / temperature);
      const float target = draw * total;
      float cumulative = 0.0;
      uint pick = ~0u;
      for (uint c = 0; c < top_k && pick == ~0u; ++c) {
        cumulative += exp((cand_v[c] - max_v) / temperature);
        if (target < cumulative) pick = cand_i[c];
      }
      // Rounding can leave the target just past the last sum: the last candidate with weight.
      for (uint c = top_k; c-- > 0 && pick == ~0u;)
        if (exp((cand_v[c] - max_v) / temperature) > 0.0) pick = cand_i[c];
      ids[b] = pick == ~0u ? cand_i[0] : pick;
    }
    return;
  }

  // Every token, in id order: each thread sums one contiguous block, then thread 0 finds the
  // block where the cumulative weight crosses the target and walks it.
  const uint block = (V + LOCAL - 1) / LOCAL;
  const uint j0 = tid * block, j1 = min(V, j0 + block);
  float sum = 0.0;
  for (uint j = j0; j < j1; ++j) sum += exp((rank_value(logits[base + j]) - max_v) / temperature);
  block_sum[tid] = sum;
  barrier();
  if (tid == 0) {
    float total = 0.0;
    for (uint t = 0; t < LOCAL; ++t) total += block_sum[t];
    const float target = draw * total;
    float cumulative = 0.0;
    uint start = V;
    for (uint t = 0; t < LOCAL && start == V; ++t) {
      if (target < cumulative + block_sum[t]) start = t * block;
      else cumulative += block_sum[t];
    }
    uint pick = ~0u;
    for (uint j = start; j < V && pick == ~0u; ++j) {
      cumulative += exp((rank_value(logits[base + j]) - max_v) / temperature);
      if (target < cumulative) pick = j;
    }
    // Rounding can leave the target just past the last sum: the last token with weight.
    for (uint j = V; j-- > 0 && pick == ~0u;)
      if (exp((rank_value(logits[base + j]) - max_v) / temperature) > 0.0) pick = j;
    ids[b] = pick == ~0u ? max_i : pick;
  }
}

#version 450
// S4D step for one layer: the diagonal complex recurrence of every channel, the D skip and GELU.
//   s[h,m] = dA[h,m] * s[h,m] + dB[h,m] * u[h]         (complex; dA, dB from the zero-order hold)
//   y[h]   = gelu(2 * Re(sum_m C[h,m] * s[h,m]) + D[h] * u[h])
// One invocation per (stream, channel): a step gives each stream F consecutive frames (rows
// i*F .. i*F+F-1, shaders/step_input.h; F = 1 unless StepRequest::frames_per_stream says more),
// which the invocation runs in order, reading the state once and writing it once; streams name
// distinct slots, so they run in parallel. A workgroup serves one channel, its lanes along the
// streams: the channel's constants are the same for every lane, and on lavapipe the lanes fill
// the SIMD width instead of one lane per workgroup.
// Built with TEXEL_READS (the variant for CPU drivers; M even), the state and the channel's
// constants are read two modes a texel through texel views (bindings 2-4 and 8), which llvmpipe
// turns into vector gathers (a storage read at an address that is not a compile-time constant is
// a loop over the lanes there); the state is written two modes a vec4 through binding 6, and each
// invocation takes STREAMS consecutive streams, so a fetch of the channel's constants serves them
// all.
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint H = 1;          // channels
layout(constant_id = 2) const uint M = 1;          // complex modes per channel
layout(constant_id = 3) const uint CAPACITY = 1;
layout(constant_id = 4) const uint STRIDE = 8;     // floats between rows of u and y
layout(constant_id = 5) const uint BGROUPS = 1;    // workgroups per channel: ceil(streams / (local size * STREAMS))
layout(constant_id = 6) const uint STREAMS = 1;    // streams per invocation (TEXEL_READS)
layout(constant_id = 7) const uint MAXF = 1;       // the most frames per stream a step takes

STEP_INPUT(0)
layout(std430, binding = 1) readonly buffer U { float u[]; };           // [B][STRIDE]
layout(std430, binding = 5) readonly buffer Dskip { float D_skip[]; };  // [H]
layout(std430, binding = 6) buffer State { vec2 s[]; };                 // this layer's [slot][H][M]
layout(std430, binding = 6) buffer State4 { vec4 s4[]; };               // the same, two modes a vec4
layout(std430, binding = 7) writeonly buffer Y { float y[]; };          // [B][STRIDE]
#ifdef TEXEL_READS
layout(binding = 2) uniform samplerBuffer DA4;      // [H][M / 2] vec4s: two modes a texel
layout(binding = 3) uniform samplerBuffer DB4;
layout(binding = 4) uniform samplerBuffer C4;
layout(binding = 8) uniform samplerBuffer StateIn;  // binding 6's buffer
#define LOAD_DA4(i) texelFetch(DA4, int(i))
#define LOAD_DB4(i) texelFetch(DB4, int(i))
#define LOAD_C4(i) texelFetch(C4, int(i))
#define LOAD_STATE4(i) texelFetch(StateIn, int(i))
#else
layout(std430, binding = 2) readonly buffer DA { vec2 dA[]; };   // [H][M]
layout(std430, binding = 3) readonly buffer DB { vec2 dB[]; };   // [H][M]
layout(std430, binding = 4) readonly buffer Cm { vec2 C[]; };    // [H][M]
#endif

// erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7): GLSL has no erf.
float erf_approx(float x) {
  const float t = 1.0 / (1.0 + 0.3275911 * abs(x));
  const float poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const float r = 1.0 - poly * exp(-x * x);
  return x < 0.0 ? -r : r;
}
float gelu(float x) { return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752)); }

vec2 cmul(vec2 a, vec2 b) { return vec2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x); }

#ifdef TEXEL_READS
void main() {
  const uint wg = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  const uint h = wg / BGROUPS;
  const uint F = STEP_FRAMES;
  const uint streams = STEP_BATCH / F;
  const uint first = ((wg % BGROUPS) * gl_WorkGroupSize.x + gl_LocalInvocationID.x) * STREAMS;
  if (h >= H || first >= streams) return;
  // Streams past the batch redo its last one and skip the stores.
  uint at0[STREAMS], row0[STREAMS];
  bool fresh[STREAMS], live[STREAMS];
  float uh[STREAMS * MAXF], acc[STREAMS * MAXF];
  for (uint j = 0; j < STREAMS; ++j) {
    const uint b = min(first + j, streams - 1);
    live[j] = first + j < streams;
    row0[j] = b * F;
    at0[j] = (STEP_SLOT(row0[j], CAPACITY) * H + h) * (M / 2);
    fresh[j] = STEP_FRESH(row0[j], CAPACITY);
    for (uint t = 0; t < MAXF; ++t) {
      uh[j * MAXF + t] = t < F ? u[(row0[j] + t) * STRIDE + h] : 0.0;
      acc[j * MAXF + t] = 0.0;
    }
  }
  for (uint m2 = 0; m2 < M / 2; ++m2) {
    const uint i = h * (M / 2) + m2;
    const vec4 a = LOAD_DA4(i), db = LOAD_DB4(i), c = LOAD_C4(i);
    for (uint j = 0; j < STREAMS; ++j) {
      // The state is read once and written once per step, whatever the frames.
      vec4 v = fresh[j] ? vec4(0.0) : LOAD_STATE4(at0[j] + m2);
      for (uint t = 0; t < MAXF; ++t) {
        if (t < F) {
          v = vec4(cmul(a.xy, v.xy), cmul(a.zw, v.zw)) + db * uh[j * MAXF + t];
          acc[j * MAXF + t] += c.x * v.x - c.y * v.y;  // Re(C * s), in the order of the loop below
          acc[j * MAXF + t] += c.z * v.z - c.w * v.w;
        }
      }
      if (live[j]) s4[at0[j] + m2] = v;
    }
  }
  for (uint j = 0; j < STREAMS; ++j)
    for (uint t = 0; t < MAXF; ++t)
      if (live[j] && t < F)
        y[(row0[j] + t) * STRIDE + h] = gelu(2.0 * acc[j * MAXF + t] + D_skip[h] * uh[j * MAXF + t]);
}
#else
void main() {
  const uint wg = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
  const uint h = wg / BGROUPS;
  const uint b = (wg % BGROUPS) * gl_WorkGroupSize.x + gl_LocalInvocationID.x;  // the stream
  const uint F = STEP_FRAMES;
  if (b >= STEP_BATCH / F || h >= H) return;
  const uint row0 = b * F;
  const uint s0 = (STEP_SLOT(row0, CAPACITY) * H + h) * M;
  const bool fresh = STEP_FRESH(row0, CAPACITY);
  float uh[MAXF], acc[MAXF];
  for (uint t = 0; t < MAXF; ++t) {
    uh[t] = t < F ? u[(row0 + t) * STRIDE + h] : 0.0;
    acc[t] = 0.0;
  }
  for (uint m = 0; m < M; ++m) {
    vec2 v = fresh ? vec2(0.0) : s[s0 + m];
    const vec2 a = dA[h * M + m], db = dB[h * M + m], c = C[h * M + m];
    for (uint t = 0; t < MAXF; ++t) {
      if (t < F) {
        v = cmul(a, v) + db * uh[t];
        acc[t] += c.x * v.x - c.y * v.y;  // Re(C * s)
      }
    }
    s[s0 + m] = v;
  }
  for (uint t = 0; t < MAXF; ++t)
    if (t < F) y[(row0 + t) * STRIDE + h] = gelu(2.0 * acc[t] + D_skip[h] * uh[t]);
}
#endif

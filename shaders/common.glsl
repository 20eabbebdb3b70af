// Shared by every vkssm shader: how weights are stored and read.
//
// Weights are fp32, or fp16 when the shader is built with -DWEIGHT_F16. fp16 values are packed two
// per uint and unpacked with unpackHalf2x16, which is core GLSL: no 16-bit storage feature is
// needed, so the fp16 path also runs on drivers whose 16-bit storage is broken. Arithmetic is fp32.
//
// WEIGHTS4 declares a matrix read four columns at a time (rows padded to a multiple of 8 columns);
// WEIGHTS1 declares one read an element at a time.
#if defined(WEIGHT_TEXEL)
// Texel-buffer variant (CPU drivers): the format of the buffer view (RGBA32F or RGBA16F) does
// the fp16 conversion, and llvmpipe turns texelFetch into vector gathers.
#define WEIGHTS4(b, NAME) layout(binding = b) uniform samplerBuffer NAME;
#define LOAD4(NAME, i4) texelFetch(NAME, int(i4))
#elif defined(WEIGHT_F16)
#define WEIGHTS4(b, NAME) layout(std430, binding = b) readonly buffer NAME##_buf { uvec2 NAME[]; };
#define LOAD4(NAME, i4) vec4(unpackHalf2x16(NAME[i4].x), unpackHalf2x16(NAME[i4].y))
#else
#define WEIGHTS4(b, NAME) layout(std430, binding = b) readonly buffer NAME##_buf { vec4 NAME[]; };
#define LOAD4(NAME, i4) NAME[i4]
#endif
#ifdef WEIGHT_F16
#define WEIGHTS1(b, NAME) layout(std430, binding = b) readonly buffer NAME##_buf { uint NAME[]; };
#define LOAD1(NAME, i) (unpackHalf2x16(NAME[(i) >> 1])[(i) & 1u])
#else
#define WEIGHTS1(b, NAME) layout(std430, binding = b) readonly buffer NAME##_buf { float NAME[]; };
#define LOAD1(NAME, i) NAME[i]
#endif

// The per-step input every step shader can read (copied from a host staging buffer at the start
// of each step). Its layout is defined once, for GLSL and C++, in step_input.h; `capacity` is the
// row stride the host used (the shaders' CAPACITY constant).
#include "step_input.h"
#define STEP_INPUT(b) layout(std430, binding = b) readonly buffer StepInput { uint step_in[]; };
#define STEP_BATCH step_in[STEP_IN_BATCH_WORD]
#define STEP_FRAMES max(step_in[STEP_IN_FRAMES_WORD], 1u)
#define STEP_TOKEN(i) step_in[STEP_IN_HEADER_WORDS + (i)]
#define STEP_SLOT(i, capacity) step_in[STEP_IN_WORD(STEP_IN_SLOT, i, capacity)]
#define STEP_FRESH(i, capacity) (step_in[STEP_IN_WORD(STEP_IN_FRESH, i, capacity)] != 0u)
#define STEP_RING(i, capacity) step_in[STEP_IN_WORD(STEP_IN_RING, i, capacity)]
#define STEP_TEMPERATURE(i, capacity) uintBitsToFloat(step_in[STEP_IN_WORD(STEP_IN_TEMPERATURE, i, capacity)])
#define STEP_TOPK(i, capacity) step_in[STEP_IN_WORD(STEP_IN_TOPK, i, capacity)]
#define STEP_DRAW(i, capacity) uintBitsToFloat(step_in[STEP_IN_WORD(STEP_IN_DRAW, i, capacity)])
#define STEP_FRAME(i, k, capacity, din) uintBitsToFloat(step_in[STEP_IN_FRAME_WORD(i, k, capacity, din)])

float silu(float x) { return x / (1.0 + exp(-x)); }
// torch.nn.functional.softplus with threshold 20, as upstream Mamba uses.
float softplus(float x) { return x > 20.0 ? x : log(1.0 + exp(x)); }

#pragma once
// ggml's block formats (the tensor types of GGUF files): their sizes, dequantization to fp32 and
// quantization from fp32 with the same rounding as llama.cpp's reference quantizers, so a model
// quantized at load gives the very blocks that llama.cpp's `llama-quantize` writes.
//
// A row of n values is n / block_elems blocks of block_bytes each, little-endian, packed with no
// padding, as in GGUF files. Type ids are ggml's (host/gguf.h, namespace ggml_type).
#include <cstddef>
#include <cstdint>
#include <string>

namespace vkssm {

enum class QuantType : uint32_t {
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  IQ4_NL = 20,
};

struct QuantTraits {
  const char* name;      // "Q8_0", as ggml names it
  uint32_t block_elems;  // values per block (32, or 256 for the K-quants)
  uint32_t block_bytes;  // bytes per block
};

// The traits of `type`; throws vkssm::Error for an id that is not a QuantType.
const QuantTraits& quant_traits(QuantType type);

// Whether the ggml type id `ggml_type` is one of the block formats above.
bool is_quant_type(uint32_t ggml_type);

// Bytes of a row of `n` values; throws vkssm::Error naming the type when n is not a multiple of
// the block size.
size_t quant_row_bytes(QuantType type, size_t n);

// Dequantizes `n` values (a multiple of the block size) from `blocks` into `out`: every type above,
// bit for bit as ggml's dequantize_row_* (tests/test_quant.cpp).
void dequantize_row(QuantType type, const void* blocks, float* out, size_t n);

// Whether quantize_row() supports `type`: every type above but IQ4_NL.
bool can_quantize(QuantType type);

// Quantizes `n` values (a multiple of the block size) into `blocks` (quant_row_bytes(type, n)
// bytes), rounding as llama.cpp's reference quantizer for the type does (quantize_row_*_ref).
void quantize_row(QuantType type, const float* in, void* blocks, size_t n);

// Sub-block j's (0..7) 6-bit scale and min from a Q4_K / Q5_K block's 12 packed bytes `q`.
void scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m);

}  // namespace vkssm

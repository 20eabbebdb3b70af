#pragma once
// Weight matrices kept in ggml's Q8_0 / Q4_0 block formats (host/quant.h), as the Vulkan matvecs
// read them, and the same values as the CPU reference computes with.
//
// A matrix is quantized row by row when its row length is a multiple of 32 (one block per 32
// values); any other row length keeps fp32 (the caller decides that with quantizable_row()).
//
// Device layout. GGUF blocks are 34 (Q8_0) or 18 (Q4_0) bytes, so they do not start on 32-bit
// words; shaders without 8/16-bit storage read whole words. Each row is therefore repacked into
// words, 16-byte aligned so a row can also be read as RGBA32UI texels:
//
//   row r, at word r * row_words:
//     scales: the row's nb = cols / 32 fp16 block scales d, two per word (block 2i in the low
//             half), padded with zeros to a multiple of 8 scales (4 words);
//     quants: nb blocks of the block's bytes exactly as GGUF has them (Q8_0: 32 int8 = 8 words;
//             Q4_0: 16 bytes = 4 words, byte j holding value j in its low nibble and value j + 16
//             in its high nibble), little-endian within each word.
//
// So one word holds 4 (Q8_0) or 8 (Q4_0) weights and a block's scale is one fp16. The bytes are
// the blocks quantize_row() writes, which are llama.cpp's; only their placement changes.
#include <cstdint>
#include <vector>

#include "host/quant.h"

namespace vkssm {

// Whether a row of `cols` values can be stored in blocks (a multiple of 32).
inline bool quantizable_row(int64_t cols) { return cols > 0 && cols % 32 == 0; }

// 32-bit words of one row in the device layout above (a multiple of 4).
uint32_t device_row_words(QuantType type, int64_t cols);

// The device layout of `rows` rows of `cols` values (quantizable_row(cols)), quantized with
// quantize_row(). Throws vkssm::Error for a type other than Q8_0 / Q4_0 or a bad row length.
std::vector<uint32_t> pack_device_matrix(QuantType type, const float* m, int64_t rows, int64_t cols);

// The device layout of rows already in GGUF blocks (`blocks`: rows * quant_row_bytes bytes).
std::vector<uint32_t> repack_blocks(QuantType type, const uint8_t* blocks, int64_t rows, int64_t cols);

// What the GPU computes with: m := dequantize(quantize(m)), row by row. The CPU reference runs on
// these values, so both backends use the same weights. `m` holds rows of `cols` values.
void round_trip_matrix(QuantType type, std::vector<float>& m, int64_t cols);

}  // namespace vkssm

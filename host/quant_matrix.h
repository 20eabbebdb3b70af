#pragma once
// Weight matrices kept in ggml's block formats (host/quant.h) as the Vulkan matvecs read them, and
// the same values as the CPU reference computes with: Q8_0 and Q4_0 (32 values a block) and the
// K-quants Q4_K, Q5_K and Q6_K (256-value super-blocks).
//
// A matrix is quantized row by row when its row length is a multiple of the block size. A K-quant
// row of a multiple of 32 values but not of 256 falls back to Q8_0; any other row keeps fp32 (the
// caller decides that with row_block_type()).
//
// Device layout. Shaders without 8/16-bit storage read whole words, so each row is repacked into
// 32-bit words (little-endian), 16-byte aligned so a row can also be read as RGBA32UI texels. The
// quant bytes are those GGUF has (quantize_row() writes llama.cpp's blocks); only the placement
// of a scale that would break the word alignment changes:
//
//   Q8_0 (34-byte blocks), Q4_0 (18) and Q6_K (210), row r at word r * row_words:
//     scales: the row's nb fp16 block scales d, two per word (block 2i in the low half), padded
//             with zeros to a multiple of 8 scales (4 words);
//     blocks: the nb blocks less their d, as GGUF has them:
//             Q8_0: 32 int8 = 8 words;
//             Q4_0: 16 bytes = 4 words, byte j holding value j in its low nibble, j + 16 in its high;
//             Q6_K: ql[128], qh[64], int8 scales[16] = 52 words (13 texels; d was the last 2 bytes).
//   Q4_K (144-byte blocks) and Q5_K (176): the blocks copied whole, one after the other. They are
//     multiples of 16 bytes with d and dmin in their first word, then the 12 bytes of packed 6-bit
//     sub-block scales and mins, (Q5_K: qh[32]), qs[128]; the shaders unpack the 6-bit values.
//
// Row bands (CPU drivers). Where matvec.comp reads W through texel buffers (llvmpipe), 8 threads
// take 8 consecutive units (32-value Q8_0 / Q4_0 blocks or the 8 sub-blocks of a K-quant block)
// of 16 rows in turn, so row-major rows make 16 interleaved streams that the CPU's prefetchers do
// not follow: every texel read waited for memory (about a third of a q8_0 head matvec). Banded,
// the matrix is kBandRows rows at a time (the last band padded with zero rows), and a band holds
//     the 16 rows' scale sections, rearranged block by block (Q8_0, Q4_0, Q6_K): block b's 16
//       fp16 scales, the band's rows in order, two to a word, in texels 2b and 2b + 1, so the 8
//       threads read the scales of a unit for all 16 rows in two texels (zeros after the last);
//     then step after step, each holding every row's quants for that step (band_step_texels()
//     texels per row; a shorter last step when a row's quants do not fill it): Q8_0 8 blocks
//     (16 texels), Q4_0 8 blocks (8), Q6_K one block (13),
// so the reads of one pass over a band walk memory in order. Q4_K and Q5_K bands go block by
// block (the step is a block: 9 / 11 texels a row), each block's 16 heads first, unpacked so that
// a thread reads what one pair of sub-blocks needs for all 16 rows in 7 texels instead of 16:
//     texels 0-3:  the rows' d and dmin words (row r: word r);
//     texels 4-15: per pair p of sub-blocks (2p, 2p + 1), three texels holding each row's 24-bit
//                  field scale(2p) | scale(2p + 1) << 6 | min(2p) << 12 | min(2p + 1) << 18 (the
//                  6-bit values scale_min_k4() unpacks): bits 0-15 in half r % 2 of word r / 2 of the
//                  first two texels, bits 16-23 in byte r % 4 of word r / 4 of the third;
//     then every row's block less its head (Q5_K: qh, 2 texels, then qs; Q4_K: qs; 8 / 10 a row).
// A band keeps 16 device_row_words() words a row; quant_blocks.glsl's banded_scale_texel(),
// banded_quant_texel() and the k_band_*() functions find them.
//
// A GPU weight is the very float dequantize_row() gives (d * scale, times the quant, less
// dmin * min: each product of an fp16 and small integers is exact in fp32).
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "host/quant.h"

namespace vkssm {

// A matrix's blocks as a GGUF file stores them, kept beside its dequantized values so the Vulkan
// backend can upload those very blocks (WeightStorage::Auto) while the cpu backend computes with
// the values. Keyed by the values' data(), which stays put while the vector is only moved.
struct FileBlocks {
  QuantType type;
  std::vector<uint8_t> bytes;
};
using FileBlockTable = std::map<const float*, FileBlocks>;

// Whether the Vulkan backend has a device layout (and shaders) for `type`.
bool device_block_format(QuantType type);

// Whether a row of `cols` values is a whole number of `type` blocks.
bool quantizable_row(QuantType type, int64_t cols);

// The block type a row of `cols` values is stored in when `type` is asked for: `type` itself,
// Q8_0 for a K-quant row of a multiple of 32 but not 256 values, else nullopt (fp32 / fp16).
std::optional<QuantType> row_block_type(QuantType type, int64_t cols);

// 32-bit words of one row in the device layout above (a multiple of 4).
uint32_t device_row_words(QuantType type, int64_t cols);

// The device layout of `rows` rows of `cols` values (quantizable_row()), quantized with
// quantize_row(). Throws vkssm::Error for a type without a device layout or a bad row length.
std::vector<uint32_t> pack_device_matrix(QuantType type, const float* m, int64_t rows, int64_t cols);

// The device layout of rows already in GGUF blocks (`blocks`: rows * quant_row_bytes bytes).
std::vector<uint32_t> repack_blocks(QuantType type, const uint8_t* blocks, int64_t rows, int64_t cols);

// Rows per band, and texels of one row in one step, of the banded layout above.
constexpr int64_t kBandRows = 16;
uint32_t band_step_texels(QuantType type);
// Rows rounded up to whole bands.
inline int64_t banded_rows(int64_t rows) { return (rows + kBandRows - 1) / kBandRows * kBandRows; }
// `rows` rows of the device layout (device_row_words() each) rearranged into bands.
std::vector<uint32_t> band_rows(QuantType type, const std::vector<uint32_t>& words, int64_t rows, int64_t cols);

// What the GPU computes with: m := dequantize(quantize(m)), row by row. The CPU reference runs on
// these values, so both backends use the same weights. `m` holds rows of `cols` values.
void round_trip_matrix(QuantType type, std::vector<float>& m, int64_t cols);

}  // namespace vkssm

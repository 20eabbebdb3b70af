#include "host/quant_matrix.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "host/error.h"

namespace vkssm {
namespace {

// Where a block's fp16 scale d goes in the device layout: into the row's scale section, cut out
// of the block (`d_offset`: its byte offset in the block), or nowhere (d_offset < 0: the block is
// already a whole number of words and is copied as it is, d and all).
struct DeviceBlock {
  uint32_t block_bytes;
  int d_offset;
};

DeviceBlock device_block(QuantType type) {
  switch (type) {
    case QuantType::Q8_0: return {34, 0};
    case QuantType::Q4_0: return {18, 0};
    case QuantType::Q4_K: return {144, -1};
    case QuantType::Q5_K: return {176, -1};
    case QuantType::Q6_K: return {210, 208};
    default: break;
  }
  throw Error(std::string("weights kept in blocks on the GPU must be Q8_0, Q4_0, Q4_K, Q5_K or Q6_K, not ") +
              quant_traits(type).name);
}

// Bytes a block keeps in the quant section (the block less a scale moved to the scale section).
uint32_t kept_bytes(const DeviceBlock& b) { return b.block_bytes - (b.d_offset >= 0 ? 2u : 0u); }

// Words of the scale section: nb fp16 scales two per word, padded to a multiple of 4 words.
uint32_t scale_words(const DeviceBlock& b, int64_t nb) { return b.d_offset >= 0 ? uint32_t((nb + 7) / 8 * 4) : 0u; }

void check_cols(QuantType type, int64_t cols) {
  if (!quantizable_row(type, cols))
    throw Error(std::string("a ") + quant_traits(type).name + " matrix needs rows of a multiple of " +
                std::to_string(quant_traits(type).block_elems) + " values, got " + std::to_string(cols));
}

}  // namespace

bool device_block_format(QuantType type) {
  return type == QuantType::Q8_0 || type == QuantType::Q4_0 || type == QuantType::Q4_K || type == QuantType::Q5_K ||
         type == QuantType::Q6_K;
}

bool quantizable_row(QuantType type, int64_t cols) {
  return cols > 0 && cols % int64_t(quant_traits(type).block_elems) == 0;
}

std::optional<QuantType> row_block_type(QuantType type, int64_t cols) {
  if (quantizable_row(type, cols)) return type;
  // A K-quant row of a multiple of 32 values but not of 256 keeps 8 bits per weight rather than 32.
  if (quant_traits(type).block_elems > 32 && quantizable_row(QuantType::Q8_0, cols)) return QuantType::Q8_0;
  return std::nullopt;
}

uint32_t device_row_words(QuantType type, int64_t cols) {
  const DeviceBlock b = device_block(type);
  const int64_t nb = cols / quant_traits(type).block_elems;
  return scale_words(b, nb) + uint32_t(nb) * kept_bytes(b) / 4;
}

std::vector<uint32_t> repack_blocks(QuantType type, const uint8_t* blocks, int64_t rows, int64_t cols) {
  check_cols(type, cols);
  const DeviceBlock b = device_block(type);
  const uint32_t words = device_row_words(type, cols), kept = kept_bytes(b);
  const int64_t nb = cols / quant_traits(type).block_elems;
  std::vector<uint32_t> out(size_t(rows) * words, 0u);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* src = blocks + size_t(r * nb) * b.block_bytes;
    uint32_t* row = out.data() + size_t(r) * words;
    // A little-endian host: bytes land in word order.
    auto* quants = reinterpret_cast<uint8_t*>(row + scale_words(b, nb));
    for (int64_t i = 0; i < nb; ++i) {
      const uint8_t* block = src + size_t(i) * b.block_bytes;
      uint8_t* dst = quants + size_t(i) * kept;
      if (b.d_offset < 0) {
        std::memcpy(dst, block, b.block_bytes);
        continue;
      }
      const uint32_t d = uint32_t(block[b.d_offset]) | (uint32_t(block[b.d_offset + 1]) << 8);  // little-endian
      row[i / 2] |= d << (16 * (i & 1));
      std::memcpy(dst, block, size_t(b.d_offset));
      std::memcpy(dst + b.d_offset, block + b.d_offset + 2, b.block_bytes - size_t(b.d_offset) - 2);
    }
  }
  return out;
}

std::vector<uint32_t> pack_device_matrix(QuantType type, const float* m, int64_t rows, int64_t cols) {
  check_cols(type, cols);
  device_block(type);
  const size_t row_bytes = quant_row_bytes(type, size_t(cols));
  std::vector<uint8_t> blocks(size_t(rows) * row_bytes);
  for (int64_t r = 0; r < rows; ++r)
    quantize_row(type, m + size_t(r * cols), blocks.data() + size_t(r) * row_bytes, size_t(cols));
  return repack_blocks(type, blocks.data(), rows, cols);
}

uint32_t band_step_texels(QuantType type) {
  // A step is what 8 threads take at once: 8 blocks of 32 values, or one K-quant block of 256.
  const DeviceBlock b = device_block(type);  // throws: no device layout
  return kept_bytes(b) / 16 * (quant_traits(type).block_elems == 32 ? 8 : 1);
}

namespace {

// band_rows() for Q4_K / Q5_K (the layout in quant_matrix.h): each block's 16 heads unpacked, then
// the rows' blocks less their heads.
void band_k_rows(QuantType type, const std::vector<uint32_t>& words, int64_t rows, int64_t nb,
                 std::vector<uint32_t>& out) {
  const uint32_t step4 = band_step_texels(type), row_words = uint32_t(nb) * step4 * 4;
  for (int64_t row = 0; row < rows; ++row) {
    const size_t band = size_t(row / kBandRows) * size_t(kBandRows) * row_words, r = size_t(row % kBandRows);
    for (int64_t b = 0; b < nb; ++b) {
      const uint32_t* src = words.data() + size_t(row) * row_words + size_t(b) * step4 * 4;
      uint32_t* block = out.data() + band + size_t(b) * kBandRows * step4 * 4;
      block[r] = src[0];  // d and dmin
      uint8_t packed[12];
      std::memcpy(packed, src + 1, sizeof packed);  // a little-endian host: bytes in word order
      for (size_t p = 0; p < 4; ++p) {
        uint8_t sc[2], mn[2];
        for (int h = 0; h < 2; ++h) scale_min_k4(int(2 * p) + h, packed, &sc[h], &mn[h]);
        const uint32_t field = sc[0] | uint32_t(sc[1]) << 6 | uint32_t(mn[0]) << 12 | uint32_t(mn[1]) << 18;
        uint32_t* pair = block + 16 + 12 * p;
        pair[r / 2] |= (field & 0xFFFFu) << (16 * (r % 2));
        pair[8 + r / 4] |= (field >> 16) << (8 * (r % 4));
      }
      std::copy_n(src + 4, (step4 - 1) * 4, block + 64 + r * (step4 - 1) * 4);
    }
  }
}

}  // namespace

std::vector<uint32_t> band_rows(QuantType type, const std::vector<uint32_t>& words, int64_t rows, int64_t cols) {
  const uint32_t row_words = device_row_words(type, cols);
  if (words.size() != size_t(rows) * row_words)
    throw Error("internal: band_rows given " + std::to_string(words.size()) + " words for " + std::to_string(rows) +
                " rows of " + std::to_string(row_words));
  const int64_t nb = cols / quant_traits(type).block_elems;
  if (type == QuantType::Q4_K || type == QuantType::Q5_K) {
    std::vector<uint32_t> out(size_t(banded_rows(rows)) * row_words, 0u);
    band_k_rows(type, words, rows, nb, out);
    return out;
  }
  const uint32_t scale4 = scale_words(device_block(type), nb) / 4;
  const uint32_t step4 = band_step_texels(type), quant4 = row_words / 4 - scale4;
  std::vector<uint32_t> out(size_t(banded_rows(rows)) * row_words, 0u);
  for (int64_t row = 0; row < rows; ++row) {
    const size_t band = size_t(row / kBandRows) * size_t(kBandRows) * row_words, r = size_t(row % kBandRows);
    const uint32_t* src = words.data() + size_t(row) * row_words;
    // The fp16 scales block by block: block b's, for rows 0-15 of the band, in its words 8b.. (two
    // to a word, the even row in the low half). The 16 rows' scale sections hold 16 * scale4
    // texels, at least the 2 * nb these need.
    if (scale4 > 0)
      for (int64_t b = 0; b < nb; ++b) {
        const uint32_t d = (src[b / 2] >> (16 * (b % 2))) & 0xFFFFu;
        out[band + 8 * size_t(b) + r / 2] |= d << (16 * (r % 2));
      }
    // Then the quants texel by texel (4 words), step by step.
    auto put = [&](size_t texel, uint32_t src_texel) { std::copy_n(src + 4 * src_texel, 4, out.data() + band + 4 * texel); };
    for (uint32_t q = 0; q < quant4; ++q) {
      const uint32_t step = q / step4, width = std::min(step4, quant4 - step * step4);
      put(kBandRows * (scale4 + step * step4) + r * width + q % step4, scale4 + q);
    }
  }
  return out;
}

void round_trip_matrix(QuantType type, std::vector<float>& m, int64_t cols) {
  check_cols(type, cols);
  std::vector<uint8_t> blocks(quant_row_bytes(type, size_t(cols)));
  for (size_t r = 0; r + size_t(cols) <= m.size(); r += size_t(cols)) {
    quantize_row(type, m.data() + r, blocks.data(), size_t(cols));
    dequantize_row(type, blocks.data(), m.data() + r, size_t(cols));
  }
}

}  // namespace vkssm

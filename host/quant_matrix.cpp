#include "host/quant_matrix.h"

#include <cstring>
#include <string>

#include "host/error.h"

namespace vkssm {
namespace {

// Bytes of the quants of one block (the block minus its fp16 scale).
uint32_t quant_bytes(QuantType type) {
  if (type == QuantType::Q8_0) return 32;
  if (type == QuantType::Q4_0) return 16;
  throw Error(std::string("weights kept in blocks on the GPU must be Q8_0 or Q4_0, not ") + quant_traits(type).name);
}

uint32_t scale_words(int64_t cols) { return uint32_t((cols / 32 + 7) / 8 * 4); }

void check_cols(QuantType type, int64_t cols) {
  if (!quantizable_row(cols))
    throw Error(std::string("a ") + quant_traits(type).name + " matrix needs rows of a multiple of 32 values, got " +
                std::to_string(cols));
}

}  // namespace

uint32_t device_row_words(QuantType type, int64_t cols) {
  return scale_words(cols) + uint32_t(cols / 32) * quant_bytes(type) / 4;
}

std::vector<uint32_t> repack_blocks(QuantType type, const uint8_t* blocks, int64_t rows, int64_t cols) {
  check_cols(type, cols);
  const uint32_t qb = quant_bytes(type), bb = qb + 2, words = device_row_words(type, cols);
  const int64_t nb = cols / 32;
  std::vector<uint32_t> out(size_t(rows) * words, 0u);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* src = blocks + size_t(r * nb) * bb;
    uint32_t* row = out.data() + size_t(r) * words;
    auto* quants = reinterpret_cast<uint8_t*>(row + scale_words(cols));
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* block = src + size_t(b) * bb;
      const uint32_t d = uint32_t(block[0]) | (uint32_t(block[1]) << 8);  // little-endian fp16
      row[b / 2] |= d << (16 * (b & 1));
      std::memcpy(quants + size_t(b) * qb, block + 2, qb);  // a little-endian host: bytes in word order
    }
  }
  return out;
}

std::vector<uint32_t> pack_device_matrix(QuantType type, const float* m, int64_t rows, int64_t cols) {
  check_cols(type, cols);
  quant_bytes(type);
  const size_t row_bytes = quant_row_bytes(type, size_t(cols));
  std::vector<uint8_t> blocks(size_t(rows) * row_bytes);
  for (int64_t r = 0; r < rows; ++r)
    quantize_row(type, m + size_t(r * cols), blocks.data() + size_t(r) * row_bytes, size_t(cols));
  return repack_blocks(type, blocks.data(), rows, cols);
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

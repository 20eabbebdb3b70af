#pragma once
// NumPy .npy files (version 1.0, little-endian float32, C order).
#include <cstdint>
#include <string>
#include <vector>

namespace vkssm {

void write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape);

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};
// Reads '<f4' (and '<f8', converted) C-order arrays. Throws vkssm::Error naming the file.
NpyArray read_npy_f32(const std::string& path);

}  // namespace vkssm

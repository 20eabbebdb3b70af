#pragma once
// WeightStorage (LoadOptions::weights) by name, as the CLI, the bench, the C API and the Python
// module spell it, and the block format it asks for.
#include <optional>
#include <string>
#include <vector>

#include "engine/vkssm.hpp"
#include "host/quant.h"

namespace vkssm {

// Every name weight_storage_name() gives, for messages: "auto, f32, f16, q8_0, q4_0, ...".
inline constexpr const char* kWeightStorageNames = "auto, f32, f16, q8_0, q4_0, q4_k, q5_k or q6_k";

// "auto", "f32", "f16", "q8_0", "q4_0", "q4_k", "q5_k" or "q6_k".
const char* weight_storage_name(WeightStorage s);

// The inverse of weight_storage_name(). Throws vkssm::Error naming `what` (e.g. "--weights") and
// the accepted values for anything else.
WeightStorage parse_weight_storage(const std::string& name, const std::string& what);

// The block format the storage asks for; nullopt for auto, f32 and f16.
std::optional<QuantType> quant_type_of(WeightStorage s);

// A matrix with rows of `cols` values as the Vulkan backend computes with it under `s`: for a
// block storage, the dequantized blocks of row_block_type() (WeightUploader::matrix keeps those
// very blocks); otherwise unchanged. The cpu backend applies it to the same matrices
// the Vulkan graph puts through WeightUploader::matrix, so both compute with the same weights.
void store_as(WeightStorage s, std::vector<float>& m, int64_t cols);

}  // namespace vkssm

#include "engine/weight_storage.h"

#include "host/error.h"
#include "host/quant_matrix.h"

namespace vkssm {

const char* weight_storage_name(WeightStorage s) {
  switch (s) {
    case WeightStorage::Auto: return "auto";
    case WeightStorage::F32: return "f32";
    case WeightStorage::F16: return "f16";
    case WeightStorage::Q8_0: return "q8_0";
    case WeightStorage::Q4_0: return "q4_0";
    case WeightStorage::Q4_K: return "q4_k";
    case WeightStorage::Q5_K: return "q5_k";
    case WeightStorage::Q6_K: return "q6_k";
  }
  return "?";
}

WeightStorage parse_weight_storage(const std::string& name, const std::string& what) {
  for (WeightStorage s : {WeightStorage::Auto, WeightStorage::F32, WeightStorage::F16, WeightStorage::Q8_0,
                          WeightStorage::Q4_0, WeightStorage::Q4_K, WeightStorage::Q5_K, WeightStorage::Q6_K})
    if (name == weight_storage_name(s)) return s;
  throw Error(what + ": unknown weight storage '" + name + "' (expected " + kWeightStorageNames + ")");
}

std::optional<QuantType> quant_type_of(WeightStorage s) {
  if (s == WeightStorage::Q8_0) return QuantType::Q8_0;
  if (s == WeightStorage::Q4_0) return QuantType::Q4_0;
  if (s == WeightStorage::Q4_K) return QuantType::Q4_K;
  if (s == WeightStorage::Q5_K) return QuantType::Q5_K;
  if (s == WeightStorage::Q6_K) return QuantType::Q6_K;
  return std::nullopt;
}

void store_as(WeightStorage s, std::vector<float>& m, int64_t cols) {
  if (const std::optional<QuantType> q = quant_type_of(s))
    if (const std::optional<QuantType> row = row_block_type(*q, cols)) round_trip_matrix(*row, m, cols);
}

}  // namespace vkssm

#pragma once
// Specialization constants as a pipeline receives them: 32-bit words given constant ids 0..n-1 in
// order (engine/vk/compute_pipeline.cpp maps them). Each shader's C++ side has a typed struct
// (e.g. MatvecSpec in engine/vulkan_matvec.h) whose constants() lists its fields in the shader's
// constant_id order; that function is the one place the order is written down.
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <vector>

namespace vkssm {

// One constant: a uint, a bool (VkBool32) or a float (its bits), as the shader declares it.
class SpecValue {
 public:
  SpecValue(uint32_t u) : bits_(u) {}                         // NOLINT: implicit by design
  SpecValue(int i) : bits_(uint32_t(i)) {}                    // NOLINT
  SpecValue(bool b) : bits_(b ? 1u : 0u) {}                   // NOLINT
  SpecValue(float f) { std::memcpy(&bits_, &f, 4); }          // NOLINT
  uint32_t bits() const { return bits_; }

 private:
  uint32_t bits_ = 0;
};

class SpecConstants {
 public:
  SpecConstants(std::initializer_list<SpecValue> values) {
    words_.reserve(values.size());
    for (const SpecValue& v : values) words_.push_back(v.bits());
  }
  const std::vector<uint32_t>& words() const { return words_; }

 private:
  std::vector<uint32_t> words_;
};

}  // namespace vkssm

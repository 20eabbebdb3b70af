#pragma once
#include <memory>

#include "engine/vkssm.hpp"
#include "models/mamba1/mamba1_model.h"

namespace vkssm {
// The CPU reference as a Model (backend "cpu"). Copies the weights.
std::unique_ptr<Model> create_mamba1_cpu(const Mamba1Weights& weights, int capacity);
}  // namespace vkssm

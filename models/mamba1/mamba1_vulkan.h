#pragma once
// Mamba-1 on Vulkan: uploads the weights once, records the whole decode step (all layers, all
// streams of a step) into one command buffer at load time, and replays it for every token.
#include <memory>

#include "engine/vkssm.hpp"
#include "models/mamba1/mamba1_model.h"

namespace vkssm {

class VulkanContext;

std::unique_ptr<Model> create_mamba1_vulkan(const Mamba1Weights& weights, const LoadOptions& options);

}  // namespace vkssm

#pragma once
// SPIR-V compiled from shaders/*.comp at build time and embedded in the library
// (cmake/EmbedShaders.cmake writes the table). Nothing is read from disk at run time.
//
// Variants are named by `ShaderId`, an enum generated from the list in shaders/shaders.cmake:
// asking for a variant that was not built is a compile error, not a failure at load.
#include <cstddef>
#include <cstdint>

#include "engine/vk/shader_ids.h"  // generated: enum class ShaderId

namespace vkssm {

struct ShaderBlob {
  const char* name;  // variant name, e.g. "matvec_f16" (error messages)
  const uint32_t* code;
  size_t size_bytes;
};

const ShaderBlob& shader_blob(ShaderId id);

}  // namespace vkssm

#pragma once
// SPIR-V compiled from shaders/*.comp at build time and embedded in the library
// (cmake/EmbedShaders.cmake writes the table). Nothing is read from disk at run time.
#include <cstddef>
#include <cstdint>

namespace vkssm {

struct ShaderBlob {
  const char* name;  // variant name, e.g. "matvec_f16"
  const uint32_t* code;
  size_t size_bytes;
};

// nullptr when no variant of that name was built.
const ShaderBlob* find_shader(const char* name);

}  // namespace vkssm

# Compiles GLSL compute shaders to SPIR-V with glslc at build time and embeds the bytes in a
# generated C++ source, so the library never looks for shader files at run time.
#
#   vkssm_shader(NAME <variant> SOURCE <file.comp> [DEFINES A=1 B ...])
#   vkssm_embed_shaders(<target>)   # after all vkssm_shader() calls: builds the lookup table

set(VKSSM_SHADER_DIR ${CMAKE_CURRENT_LIST_DIR}/../shaders)

function(vkssm_shader)
  cmake_parse_arguments(S "" "NAME;SOURCE" "DEFINES" ${ARGN})
  set(out ${CMAKE_BINARY_DIR}/spirv/${S_NAME}.spv)
  set(defs "")
  foreach(d ${S_DEFINES})
    list(APPEND defs "-D${d}")
  endforeach()
  file(GLOB includes ${VKSSM_SHADER_DIR}/*.glsl)
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/spirv
    COMMAND ${GLSLC} --target-env=vulkan1.1 -O -Werror -I ${VKSSM_SHADER_DIR} ${defs}
            -o ${out} ${VKSSM_SHADER_DIR}/${S_SOURCE}
    DEPENDS ${VKSSM_SHADER_DIR}/${S_SOURCE} ${includes}
    COMMENT "glslc ${S_SOURCE} -> ${S_NAME}.spv"
    VERBATIM)
  set_property(GLOBAL APPEND PROPERTY VKSSM_SPIRV_NAMES ${S_NAME})
  set_property(GLOBAL APPEND PROPERTY VKSSM_SPIRV_FILES ${out})
endfunction()

function(vkssm_embed_shaders target)
  get_property(names GLOBAL PROPERTY VKSSM_SPIRV_NAMES)
  get_property(files GLOBAL PROPERTY VKSSM_SPIRV_FILES)
  set(gen ${CMAKE_BINARY_DIR}/generated/embedded_shaders.cpp)
  add_custom_command(
    OUTPUT ${gen}
    COMMAND ${CMAKE_COMMAND} -DOUT=${gen} "-DNAMES=${names}" "-DFILES=${files}"
            -P ${VKSSM_SHADER_DIR}/../cmake/WriteEmbeddedShaders.cmake
    DEPENDS ${files} ${VKSSM_SHADER_DIR}/../cmake/WriteEmbeddedShaders.cmake
    COMMENT "Embedding SPIR-V"
    VERBATIM)
  target_sources(${target} PRIVATE ${gen})
endfunction()

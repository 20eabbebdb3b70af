# Install rules, the CMake package (vkssmConfig.cmake, target vkssm::vkssm) and vkssm.pc.
# Included by the top-level CMakeLists.txt after every target exists.
#
#   cmake --install build --prefix P
#     P/include/vkssm/{vkssm.h,vkssm.hpp,stream_pool.h,listener.h,host/...}   public headers
#     P/lib/libvkssm.a + the internal archives it needs (static, the default), or
#     P/lib/libvkssm.so (-DBUILD_SHARED_LIBS=ON: one library, only VKSSM_API symbols exported)
#     P/lib/cmake/vkssm/, P/lib/pkgconfig/vkssm.pc, P/bin/vkssm
#     P/share/vkssm/models/{speech-commands,tiny-shakespeare}   the shipped models
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(VKSSM_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/vkssm)
set(VKSSM_INTERNAL_LIBRARIES vkssm_gpu vkssm_audio vkssm_host volk_impl)

# Usage requirements that only make sense in this tree (the source root on the include path,
# volk's headers and VK_NO_PROTOTYPES) stay out of the exported targets: the public headers need
# none of them.
foreach(target vkssm ${VKSSM_INTERNAL_LIBRARIES})
  foreach(property INTERFACE_INCLUDE_DIRECTORIES INTERFACE_COMPILE_DEFINITIONS)
    get_target_property(values ${target} ${property})
    if(values)
      set_property(TARGET ${target} PROPERTY ${property} "$<BUILD_INTERFACE:${values}>")
    endif()
  endforeach()
endforeach()
target_include_directories(vkssm INTERFACE $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_compile_features(vkssm INTERFACE cxx_std_20)  # the C++ headers use C++20 (the C header is C99)

if(BUILD_SHARED_LIBS)
  # One shared library holding the whole engine. Everything is compiled with hidden visibility,
  # so it exports the VKSSM_API declarations only. (The tool, the tests and the Python module keep
  # linking the static libraries, which also reach internals.)
  add_library(vkssm_shared SHARED ${CMAKE_CURRENT_LIST_DIR}/shared_library.cpp)
  target_link_libraries(vkssm_shared PRIVATE "$<LINK_LIBRARY:WHOLE_ARCHIVE,vkssm>")
  target_link_options(vkssm_shared PRIVATE -Wl,--no-undefined
                      -Wl,--version-script=${CMAKE_CURRENT_LIST_DIR}/vkssm.map)
  set_property(TARGET vkssm_shared APPEND PROPERTY LINK_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/vkssm.map)
  target_include_directories(vkssm_shared INTERFACE $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}>
                             $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_compile_features(vkssm_shared INTERFACE cxx_std_20)
  set_target_properties(vkssm_shared PROPERTIES OUTPUT_NAME vkssm EXPORT_NAME vkssm
                        VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
  install(TARGETS vkssm_shared EXPORT vkssmTargets
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  set(VKSSM_PC_LIBS "-L\${libdir} -lvkssm")
  set(VKSSM_PC_REQUIRES "")
else()
  # The static library and the internal archives it depends on, all exported (vkssm::vkssm links
  # the rest); FFTW3, libsamplerate and utf8proc come through pkg-config on the consumer's side too.
  install(TARGETS vkssm ${VKSSM_INTERNAL_LIBRARIES} EXPORT vkssmTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
  list(TRANSFORM VKSSM_INTERNAL_LIBRARIES PREPEND -l OUTPUT_VARIABLE pc_internal)
  list(JOIN pc_internal " " pc_internal)
  set(VKSSM_PC_LIBS "-L\${libdir} -lvkssm ${pc_internal} -lstdc++ -lm -lpthread -ldl")
  set(VKSSM_PC_REQUIRES "fftw3 samplerate libutf8proc")
  if(VKSSM_CPU_FAST)
    string(APPEND VKSSM_PC_REQUIRES " libhwy")  # the cpu-fast kernels (engine/cpu/)
  endif()
endif()

install(FILES ${CMAKE_SOURCE_DIR}/engine/vkssm.h ${CMAKE_SOURCE_DIR}/engine/vkssm.hpp
              ${CMAKE_SOURCE_DIR}/engine/stream_pool.h ${CMAKE_SOURCE_DIR}/engine/listener.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/vkssm)
install(FILES ${CMAKE_SOURCE_DIR}/host/vkssm_export.h ${CMAKE_SOURCE_DIR}/host/error.h
              ${CMAKE_SOURCE_DIR}/host/sampling.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/vkssm/host)
install(FILES ${CMAKE_SOURCE_DIR}/host/audio/command_decoder.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/vkssm/host/audio)

install(TARGETS vkssm_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# engine/listener.cpp looks for <exe dir>/../share/vkssm/models/speech-commands.
install(DIRECTORY ${CMAKE_SOURCE_DIR}/models/s4d/speech-commands
                  ${CMAKE_SOURCE_DIR}/models/mamba1/tiny-shakespeare
        DESTINATION ${CMAKE_INSTALL_DATADIR}/vkssm/models)

install(EXPORT vkssmTargets NAMESPACE vkssm:: DESTINATION ${VKSSM_INSTALL_CMAKEDIR})
set(VKSSM_SHARED ${BUILD_SHARED_LIBS})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/vkssmConfig.cmake.in
                              ${CMAKE_BINARY_DIR}/vkssmConfig.cmake
                              INSTALL_DESTINATION ${VKSSM_INSTALL_CMAKEDIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/vkssmConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/vkssmConfig.cmake ${CMAKE_BINARY_DIR}/vkssmConfigVersion.cmake
        DESTINATION ${VKSSM_INSTALL_CMAKEDIR})
# vkssm.pc finds its prefix from its own location, so the installed tree can move.
file(RELATIVE_PATH VKSSM_PC_TO_PREFIX /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
configure_file(${CMAKE_CURRENT_LIST_DIR}/vkssm.pc.in ${CMAKE_BINARY_DIR}/vkssm.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/vkssm.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

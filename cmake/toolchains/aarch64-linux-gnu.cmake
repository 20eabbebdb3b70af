# Cross-compiling for 64-bit Arm Linux (Jetson, Arm boards and servers) on a Debian or Ubuntu host
# with the distribution's cross compiler and arm64 multiarch packages:
#
#   dpkg --add-architecture arm64 && apt-get update
#   apt-get install g++-aarch64-linux-gnu libvulkan-dev:arm64 libfftw3-dev:arm64 \
#       libsamplerate0-dev:arm64 libutf8proc-dev:arm64 libgtest-dev:arm64
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#       -DVKSSM_BUILD_PYTHON=OFF
#
# The arm64 libraries then live beside the host's in /usr/lib/aarch64-linux-gnu, so there is no
# sysroot: CMake's library architecture points every find_library/find_package at that folder,
# and the target's pkg-config wrapper reads only the arm64 .pc files. Header-only dependencies
# (volk, nlohmann-json, GLM) and glslc come from the host's packages unchanged, since shaders are
# compiled to SPIR-V, which is the same for every CPU. scripts/ci_aarch64.sh uses this file.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# Programs (glslc) run on the host; libraries and packages must be the target's.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)

# Debian's pkgconf installs <triplet>-pkg-config with each architecture's pkg-config package
# (pulled in by the arm64 -dev packages); it searches that architecture's .pc folders only.
find_program(PKG_CONFIG_EXECUTABLE NAMES aarch64-linux-gnu-pkg-config)

# Test discovery (gtest_discover_tests) and ctest run the arm64 binaries through qemu-user when
# it is installed; binfmt registration is then not needed.
find_program(VKSSM_AARCH64_EMULATOR NAMES qemu-aarch64 qemu-aarch64-static)
if(VKSSM_AARCH64_EMULATOR)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${VKSSM_AARCH64_EMULATOR})
endif()

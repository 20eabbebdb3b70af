#!/usr/bin/env bash
# One entry point for a fresh checkout (Debian/Ubuntu):
#
#   scripts/setup.sh demo   install what is missing, build, generate text with the tiny model and
#                           recognise spoken commands in four demo recordings at once
#   scripts/setup.sh test   install what is missing, build, run the test suite (C++ tests, the
#                           Python module's tests, and a consumer project built against the
#                           installed package)
#
# Re-running is cheap: the package step is skipped when everything is installed, and the build
# is incremental (into build/).
set -euo pipefail

usage() {
  echo "Usage: scripts/setup.sh demo|test" >&2
  exit 2
}
[[ $# -eq 1 ]] || usage
mode=$1
[[ $mode == demo || $mode == test ]] || usage

# Work from the repository root whatever the caller's directory.
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# ---- system packages ----------------------------------------------------------------------
packages=(cmake ninja-build g++ pkg-config libvulkan-dev libvulkan-volk-dev glslc libglm-dev
          libgtest-dev mesa-vulkan-drivers vulkan-validationlayers spirv-tools vulkan-tools
          nlohmann-json3-dev libfftw3-dev libsamplerate0-dev libutf8proc-dev python3-numpy
          python3-dev pybind11-dev python3-pybind11 python3-pytest)
missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$p")
done

if (( ${#missing[@]} > 0 )); then
  install_cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
  echo "setup: missing packages: ${missing[*]}"
  if [[ $(id -u) -eq 0 ]]; then
    bash -c "$install_cmd"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo bash -c "$install_cmd"
  else
    echo "setup: packages are missing and this user cannot install them; as root, run:" >&2
    echo "  $install_cmd" >&2
    echo "then run this script again." >&2
    exit 1
  fi
fi

# ---- build ----------------------------------------------------------------------------------
# A build folder keeps the generator it was first configured with; only choose one for a new one.
configure=(cmake -S . -B build -DCMAKE_BUILD_TYPE=Release)
if [[ ! -f build/CMakeCache.txt ]] && command -v ninja >/dev/null; then
  configure+=(-G Ninja)
fi
"${configure[@]}"

jobs=$(nproc)
if [[ $mode == demo ]]; then
  cmake --build build --parallel "$jobs" --target vkssm_cli
else
  cmake --build build --parallel "$jobs"
fi

# ---- run --------------------------------------------------------------------------------------
if [[ $mode == demo ]]; then
  model=models/mamba1/tiny-shakespeare
  if [[ ! -d $model ]]; then
    echo "setup: demo model folder $model is missing" >&2
    exit 1
  fi
  build/bin/vkssm generate --model "$model" --prompt "ROMEO:" -n 200 --temperature 0.8 --seed 1
  echo
  demo=models/s4d/speech-commands/demo
  echo "setup: speech commands: four recordings (voices never trained on) as four concurrent streams"
  for f in "$demo"/command-*.txt; do echo "  $(basename "${f%.txt}").wav: $(cat "$f")"; done
  echo "STREAM	SECONDS	WORD	SCORE"
  exec build/bin/vkssm listen "$demo"/command-*.wav
else
  ctest --test-dir build --output-on-failure -j2
  # The GPU tests of every architecture (the contract suite, the GPU-vs-CPU checks) again under
  # each device profile (engine/vk/device_profiles.cpp): lavapipe behaving as a class of real
  # devices (128 MiB bindings, fences instead of timeline semaphores, no subgroup arithmetic, no
  # 16-bit storage, 1 MiB bindings that split every large tensor), with the validation layer on.
  for profile in android-baseline-2022 vulkan-1.1-minimal tiny-bindings; do
    echo "setup: GPU tests under VKSSM_DEVICE_PROFILE=$profile"
    VKSSM_DEVICE_PROFILE=$profile build/bin/vkssm_tests --gtest_brief=1 --gtest_filter='*Contract*:*Gpu*'
  done
  # The Python module (build/python/) under the validation layer, with Debian's python3 (the one
  # it was built for; a pyenv shim may come first on PATH).
  echo "setup: Python module tests"
  VKSSM_BUILD_DIR="$PWD/build" /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/python
  # The installed package from outside: CMake find_package and pkg-config, static and shared.
  echo "setup: consumer project against the installed package"
  bash tests/consumer/run.sh build
  # Leak check (the tests that spawn other programs stay out: they would inherit the preload): the resource-cycle tests (10,000 open/close/fork cycles, state and model cycles)
  # and the stream/state/C API tests again, built with AddressSanitizer + LeakSanitizer.
  # VKSSM_SANITIZE_TESTS=0 skips it.
  if [[ ${VKSSM_SANITIZE_TESTS:-1} != 0 ]]; then
    asan_configure=(cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DVKSSM_SANITIZE=ON)
    if [[ ! -f build-asan/CMakeCache.txt ]] && command -v ninja >/dev/null; then
      asan_configure+=(-G Ninja)
    fi
    "${asan_configure[@]}" >/dev/null
    cmake --build build-asan --parallel "$jobs" --target vkssm_tests
    # The Vulkan loader unloads the lavapipe driver when an instance goes; preloading it keeps its
    # JIT's allocations attributable (scripts/lsan.supp), and libasan must come first.
    preload="$(gcc -print-file-name=libasan.so)"
    lvp=$(ls /usr/lib/*/libvulkan_lvp.so 2>/dev/null | head -n1 || true)
    [[ -n $lvp ]] && preload="$preload $lvp"
    echo "setup: leak check (AddressSanitizer + LeakSanitizer)"
    (cd build-asan && LD_PRELOAD="$preload" ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
       LSAN_OPTIONS="suppressions=$PWD/../scripts/lsan.supp" \
       ./bin/vkssm_tests --gtest_brief=1 \
       --gtest_filter='*Leaks*:*StreamPool*:*Contract*:*CApiTest*:*Features*:Listener*:WavReader*:Resampler*:CommandDecoder*')
  fi
fi

#!/usr/bin/env bash
# One entry point for a fresh checkout (Debian/Ubuntu):
#
#   scripts/setup.sh demo   install what is missing, build, generate text with the tiny model and
#                           recognise spoken commands in four demo recordings at once, on the
#                           default backend (auto: a GPU, else the cpu backend; the tool says which)
#   scripts/setup.sh test   install what is missing, build, run the test suite (C++ tests, the
#                           Python module's tests, a consumer project built against the
#                           installed package, and an aarch64 cross build run under qemu-user:
#                           VKSSM_AARCH64=0 skips that one)
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
          nlohmann-json3-dev libfftw3-dev libsamplerate0-dev libutf8proc-dev libhwy-dev python3-numpy
          python3-dev pybind11-dev python3-pybind11 python3-pytest
          libcpp-httplib-dev libhiredis-dev libboost-dev redis-server haproxy curl)
source scripts/install_packages.sh
install_missing setup "" "${packages[@]}" || true

# Each step says how long the script has run (bash's SECONDS), so a slow leg shows in CI's log.
say() { echo "setup: $* [$SECONDS s]"; }

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
say "built"

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
  source scripts/gtest_shards.sh  # sharded: a GoogleTest run split over the cores
  ctest --test-dir build --output-on-failure -j"$jobs"
  say "ctest done"
  # The GPU tests again under each device profile (docs/DEVICE_PROFILES.md): lavapipe behaving
  # as a class of real devices, with the validation layer on. The names come from the tool
  # itself, so a new profile gets its leg. Every leg runs the contract suite (every architecture
  # on both backends: steps, batches, sampling, prefill, rollback, snapshots) and every weight
  # and matvec variant (EveryWorkSplit: f32/f16, texel or not; QuantizedWeights: q8_0/q4_0). The
  # profiles whose paths differ most from the default run (128 MiB bindings; Vulkan 1.1 with
  # fences, shared-memory reductions and staged uploads; 1 MiB bindings that split every large
  # tensor) also run the GPU-vs-CPU shape checks. The Vulkan 1.3 classes (mali-valhall,
  # adreno-7xx, jetson-orin) keep every feature lavapipe has and differ from the plain run only in
  # limits, so they run the contract suite alone. The leak cycles run once, in ctest and ASan.
  for profile in $(build/bin/vkssm devices --list-profiles); do
    filter='*Contract*:*EveryWorkSplit*:Architectures/QuantizedWeights*'
    case $profile in
      android-baseline-2022|vulkan-1.1-minimal|tiny-bindings) filter="$filter:*Gpu*:DeviceLimits*" ;;
      mali-valhall|adreno-7xx|jetson-orin) filter='*Contract*' ;;
    esac
    filter="$filter-*ContractLeaks*"
    say "GPU tests under VKSSM_DEVICE_PROFILE=$profile"
    sharded "$jobs" env VKSSM_DEVICE_PROFILE=$profile build/bin/vkssm_tests --gtest_brief=1 --gtest_filter="$filter"
  done
  # The same with lavapipe's subgroups of 4 and 16 lanes instead of 8 (LP_NATIVE_VECTOR_WIDTH in
  # bits): the matvec's subgroup reduction at other widths (every weight format's matvec is in
  # QuantizedWeightsGpu.EveryWorkSplit*).
  for width in 128 512; do
    say "GPU tests with LP_NATIVE_VECTOR_WIDTH=$width (subgroups of $((width / 32)))"
    sharded "$jobs" env LP_NATIVE_VECTOR_WIDTH=$width build/bin/vkssm_tests --gtest_brief=1 \
      --gtest_filter='*Contract*:*EveryWorkSplit*:DeviceLimits*-*ContractLeaks*'
  done
  # The Python module (build/python/) under the validation layer, with Debian's python3 (the one
  # it was built for; a pyenv shim may come first on PATH).
  say "Python module tests"
  VKSSM_BUILD_DIR="$PWD/build" /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/python
  # `vkssm serve` as a cluster: Redis, two replicas behind HAProxy, 64 sessions from 1/16/64
  # concurrent clients checked against one process, then one replica killed mid-session (~20 s).
  say "cluster check (redis-server, two vkssm serve replicas, haproxy)"
  bash scripts/cluster_check.sh build
  # The installed package from outside: CMake find_package and pkg-config, static and shared.
  say "consumer project against the installed package"
  bash tests/consumer/run.sh build
  # Leak check, built with AddressSanitizer + LeakSanitizer: the resource-cycle tests (10,000
  # open/close/fork cycles, state and model cycles), the stream pool, contract, C API and engine
  # feature tests, and the listener's lifecycle (threads pushing, streams leaving, misuse, the C
  # API). The tests that spawn other programs stay out (they would inherit the preload), and so do
  # the listener's whole-recording comparisons: the same calls as the lifecycle tests on more
  # audio, two minutes in this Debug build. VKSSM_SANITIZE_TESTS=0 skips it.
  if [[ ${VKSSM_SANITIZE_TESTS:-1} != 0 ]]; then
    # Only the test files whose suites run here are compiled (the rest would cost minutes).
    asan_tests='test_leaks.cpp;test_stream_pool.cpp;test_contract.cpp;test_c_api.cpp'
    asan_tests+=';test_engine_features.cpp;test_listener.cpp;test_audio.cpp;test_device_limits.cpp'
    asan_configure=(cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DVKSSM_SANITIZE=ON
                    "-DVKSSM_TEST_FILES=$asan_tests")
    if [[ ! -f build-asan/CMakeCache.txt ]] && command -v ninja >/dev/null; then
      asan_configure+=(-G Ninja)
    fi
    "${asan_configure[@]}" >/dev/null
    cmake --build build-asan --parallel "$jobs" --target vkssm_tests
    # The Vulkan loader unloads a driver when the last instance goes (the engine keeps one instance
    # for the process once a first one was made, engine/vk/driver_keepalive.h); preloading
    # lavapipe keeps its JIT's allocations attributable (scripts/lsan.supp). libasan comes first.
    preload="$(gcc -print-file-name=libasan.so)"
    lvp=/usr/lib/$(gcc -print-multiarch)/libvulkan_lvp.so  # this machine's, not an arm64 one beside it
    [[ -f $lvp ]] || lvp=
    [[ -n $lvp ]] && preload="$preload $lvp"
    say "leak check (AddressSanitizer + LeakSanitizer)"
    asan_filter='*Leaks*:*StreamPool*:*Contract*:*CApiTest*:*Features*:WavReader*:Resampler*'
    asan_filter+=':CommandDecoder*:ListenerCApi.*:Listener.PushesFromManyThreads'
    asan_filter+=':Listener.StreamsOfDifferentLengths*:Listener.Misuse*:Listener.Refuses*'
    (cd build-asan && sharded "$jobs" env LD_PRELOAD="$preload" \
       ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 LSAN_OPTIONS="suppressions=$PWD/../scripts/lsan.supp" \
       ./bin/vkssm_tests --gtest_brief=1 --gtest_filter="$asan_filter")
  fi
  # The aarch64 leg: a cross build run under qemu-user on Debian's arm64 lavapipe (scripts/ci_aarch64.sh,
  # which installs its own packages). VKSSM_AARCH64=0 skips it.
  [[ ${VKSSM_AARCH64:-1} == 0 ]] || bash scripts/ci_aarch64.sh
fi

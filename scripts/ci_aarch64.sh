#!/usr/bin/env bash
# The aarch64 leg of CI (part of `scripts/setup.sh test`; VKSSM_AARCH64=0 there skips it):
#
#   1. installs what it needs from Debian: the cross compiler, qemu-user, and the arm64 builds of
#      the libraries (multiarch, beside the host's: `dpkg --add-architecture arm64`), including
#      Mesa's arm64 lavapipe and the arm64 validation layer;
#   2. cross-compiles the test binary and the `vkssm` tool into build-aarch64/ with
#      cmake/toolchains/aarch64-linux-gnu.cmake (no Python module, no bench);
#   3. runs them under qemu-user: the CPU reference of every architecture, the checkpoint loaders,
#      tokenizers, state files and audio front-end, then GPU-vs-CPU tests of every architecture on
#      the arm64 lavapipe with the Khronos validation layer on, and the tool on the tiny model.
#
# Everything must pass: this is how CI knows the engine builds and computes the same on a 64-bit
# Arm CPU (Jetson, phones' CPUs, Arm servers) without one. qemu emulates every arm64 instruction,
# lavapipe's shader compiler included, so the GPU part is a subset that covers each
# architecture's shaders.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build=build-aarch64
start=$SECONDS
say() { echo "ci_aarch64: $* [$((SECONDS - start)) s]"; }

# ---- packages (scripts/install_packages.sh: as root, with sudo, or print the command) ----------
# Multi-Arch "same" packages must be at the same version for both architectures, so installing
# the arm64 ones may upgrade a few amd64 libraries to the matching point release; nothing is
# removed. GoogleTest is co-installable too (libgtest-dev:arm64 ships the compiled libraries).
packages=(g++-aarch64-linux-gnu qemu-user libvulkan-dev:arm64 libfftw3-dev:arm64
          libsamplerate0-dev:arm64 libutf8proc-dev:arm64 libhwy-dev:arm64 libgtest-dev:arm64
          mesa-vulkan-drivers:arm64 vulkan-validationlayers:arm64)
source scripts/install_packages.sh
if install_missing ci_aarch64 "dpkg --add-architecture arm64" "${packages[@]}"; then
  say "packages installed"
fi

# ---- cross build ------------------------------------------------------------------------------
# Only the test files whose suites run below are compiled (VKSSM_TEST_FILES): the others would
# cost minutes of compiling for nothing. Tests are discovered when ctest runs (PRE_TEST), so
# building never has to start the emulator.
test_files='test_main.cpp;test_architecture.cpp;test_mamba1_cpu.cpp;test_mamba1_loading.cpp'
test_files+=';test_mamba1_gpu.cpp;test_falcon_mamba.cpp;test_mamba2.cpp;test_mamba2_loading.cpp'
test_files+=';test_mamba2_gpu.cpp;test_s4d.cpp;test_s4d_gpu.cpp;test_tiny_model.cpp;test_contract.cpp'
test_files+=';test_safetensors.cpp;test_gguf.cpp;test_checkpoint.cpp;test_tokenizer.cpp'
test_files+=';test_sampling.cpp;test_npy.cpp;test_state.cpp;test_audio.cpp;test_cpu_fast.cpp'
configure=(cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release
           "-DCMAKE_TOOLCHAIN_FILE=$PWD/cmake/toolchains/aarch64-linux-gnu.cmake"
           -DVKSSM_BUILD_PYTHON=OFF "-DVKSSM_TEST_FILES=$test_files"
           -DCMAKE_GTEST_DISCOVER_TESTS_DISCOVERY_MODE=PRE_TEST)
if [[ ! -f $build/CMakeCache.txt ]] && command -v ninja >/dev/null; then
  configure+=(-G Ninja)
fi
"${configure[@]}" >/dev/null
# vkssm_tests depends on vkssm_cli (bin/vkssm): both are built.
cmake --build "$build" --parallel "$(nproc)" --target vkssm_tests
say "built $build/bin/vkssm_tests and $build/bin/vkssm"

# ---- run under qemu-user ----------------------------------------------------------------------
# No binfmt registration is needed: qemu is called directly, and the arm64 dynamic loader and
# libraries are where multiarch puts them (/lib/ld-linux-aarch64.so.1, /usr/lib/aarch64-linux-gnu).
qemu=$(command -v qemu-aarch64 || command -v qemu-aarch64-static)
# Only the arm64 lavapipe: the loader would otherwise also try the host's ICDs, which an arm64
# process cannot load.
icd=/usr/share/vulkan/icd.d/lvp_icd.aarch64.json
[[ -f $icd ]] || { echo "ci_aarch64: $icd is missing (mesa-vulkan-drivers:arm64)" >&2; exit 1; }
run() { VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd "$qemu" "$@"; }
# The test runs are split over the cores (scripts/gtest_shards.sh): qemu runs each emulated
# thread on one host thread, and most of a test's time is one thread (lavapipe's shader compiler).
source scripts/gtest_shards.sh
jobs=$(nproc)

# The CPU side: every architecture's double-precision reference (Mamba-1, Falcon-Mamba, Mamba-2,
# S4D, against the PyTorch references and closed forms), the CPU backends' contract (cpu:
# Highway's NEON kernels against the reference), the
# safetensors/GGUF/config loaders, the tokenizers (byte, GPT-NeoX BPE, Unicode normalization),
# sampling, .npy and state files, and the audio front-end (WAV, resampler, log-mel, decoder).
cpu_tests='Mamba1Cpu.*:Mamba2Cpu.*:Mamba2CpuBackend.*:S4DModel.*:TinyShakespeare.CpuMatchesUpstreamReference'
cpu_tests+=':Backends/FalconMambaTest.*/reference:Architectures/Contract.*/*_reference'
cpu_tests+=':Architectures/Contract.*/*_cpu:CpuFast.*:Mamba1/CpuFastShapes.*'
cpu_tests+=':Mamba1LoadingTest.*:Mamba2ConfigParse.*:Mamba2Config.*:Mamba2Files.*:Mamba2Checkpoint.*'
cpu_tests+=':FalconMambaConfig.*:S4DConfig.*:S4DFiles.*:SafetensorsTest.*:GgufTest.*'
cpu_tests+=':CheckpointTest.*:ArchitectureRegistry.*:ByteTokenizer.*:BpeTokenizer.*:NeoxTokenizer.*'
cpu_tests+=':Gpt2Split.*:UnicodeNormalization.*:TokenizerForModel.*:Sampling.*:Npy.*:StateFile.*'
cpu_tests+=':WavReader.*:Resampler.*:LogMel.*:CommandDecoder.*'
# Left out here because they also run the Vulkan backend: the contract's snapshot test (it runs
# with the GPU set below) and the GGUF files' end-to-end logits (GGUF parsing, its errors and
# dequantisation are in; their fp16 cases could not run on the arm64 lavapipe, see below).
cpu_tests+='-Architectures/Contract.SnapshotRestoresIntoAnotherSlotAndTheOtherBackend/*'
cpu_tests+=':GgufTest.*GivesTheSameModelAsSafetensors:GgufTest.*DequantisedWeights'
say "CPU tests under qemu-aarch64"
sharded "$jobs" run "$build/bin/vkssm_tests" --gtest_brief=1 --gtest_filter="$cpu_tests"

# The GPU side on the arm64 lavapipe, validation layer on (tests/test_main.cpp): a GPU-vs-CPU
# test of each architecture (Mamba-1, Falcon-Mamba, Mamba-2, S4D pre- and post-norm), the
# trained tiny model against its upstream logits, snapshots moving between the backends for
# every architecture, and Mamba-1's whole Vulkan contract suite (fork, rollback, prefill,
# submit/collect, streams joining and leaving, device sampling, bad input). All fp32 weights:
# Debian 12's arm64 lavapipe (LLVM 15) aborts compiling the fp16-weight shaders ("LLVM ERROR:
# Cannot select: v4f32 = truncate" in instruction selection), a fault of that JIT on aarch64,
# which x86 lavapipe does not have; fp16 runs in the x86 legs.
gpu_tests='Shapes/GpuVsCpu.LogitsMatchReferenceEveryToken/d37_n16_k4_tied_f32_b1'
gpu_tests+=':Backends/FalconMambaTest.SafetensorsMatchTheReference/vulkan'
gpu_tests+=':Shapes/Mamba2GpuVsCpu.LogitsMatchReferenceEveryToken/d24_n16_p12_g2_b3'
gpu_tests+=':Norm/S4DGpuVsCpu.*:TinyShakespeare.VulkanMatchesUpstreamReference'
gpu_tests+=':Architectures/Contract.SnapshotRestoresIntoAnotherSlotAndTheOtherBackend/*'
gpu_tests+=':Architectures/Contract.*/mamba1_vulkan'
say "GPU tests under qemu-aarch64 on $(basename "$icd")"
sharded "$jobs" run "$build/bin/vkssm_tests" --gtest_brief=1 --gtest_filter="$gpu_tests"

# The tool itself: the shipped tiny model generates the same text on both backends.
say "vkssm generate under qemu-aarch64, cpu and vulkan backends"
model=models/mamba1/tiny-shakespeare
export VKSSM_CACHE_DIR=$PWD/$build/cli-pipeline-cache  # not the user's cache: another driver
cpu_text=$(run "$build/bin/vkssm" generate --model "$model" --prompt "ROMEO:" -n 40 --backend reference)
gpu_text=$(VKSSM_VALIDATION=1 run "$build/bin/vkssm" generate --model "$model" --prompt "ROMEO:" -n 40 \
             --backend vulkan)
if [[ $cpu_text != "$gpu_text" || -z $cpu_text ]]; then
  echo "ci_aarch64: vkssm generate differs between backends on aarch64:" >&2
  echo "  cpu:    $cpu_text" >&2
  echo "  vulkan: $gpu_text" >&2
  exit 1
fi
printf '%s\n' "$cpu_text"
say "done"

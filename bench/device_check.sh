#!/usr/bin/env bash
# Device check: on a machine with a real GPU, run the GPU tests and the bench sweeps, and write
# the results as JSON. Meant to take under 5 minutes on a desktop or data-centre GPU.
#
#   bench/device_check.sh [BUILD_DIR] [OUT_DIR]
#
# BUILD_DIR (default build) must hold a Release build of this checkout (bin/vkssm_tests,
# bin/vkssm_bench, bin/vkssm). OUT_DIR (default device-check) receives:
#   devices.txt         `vkssm devices`: what the engine sees on this machine
#   tests.json          GoogleTest's report of the GPU tests (validation layer on; every GPU result
#                       checked against the CPU reference)
#   tests.log           their output
#   bench-<arch>-<w>.json  decode throughput for B = 1 ... 256 streams and the time to first token
#                       after a 512-token document (prefill vs restoring a saved state), for the
#                       mamba-130m-shaped random model (mamba) with f32, f16, q8_0 and q4_0
#                       weights, and its Mamba-2 counterpart (mamba2) with f32 and f16
#   summary.json        pass/fail counts and the file names above
#
# Environment: VKSSM_DEVICE picks a device (default: the best one); CHECK_TESTS=0 skips the tests;
# CHECK_FILTER overrides the test filter (default: every test that runs on the GPU); CHECK_BENCH
# lists the bench runs as ARCH:WEIGHTS words (default: the six above).
set -uo pipefail

build=${1:-build}
out=${2:-device-check}
mkdir -p "$out"
for b in vkssm vkssm_tests vkssm_bench; do
  if [[ ! -x $build/bin/$b ]]; then
    echo "device_check: $build/bin/$b is missing; build first (cmake --build $build)" >&2
    exit 2
  fi
done

start=$(date +%s)
"$build/bin/vkssm" devices >"$out/devices.txt" 2>&1
cat "$out/devices.txt"

tests_rc=skipped
if [[ ${CHECK_TESTS:-1} != 0 ]]; then
  # Every GPU-vs-CPU check, the contract suite of every architecture on both backends, the device
  # limit checks and the engine features (streams, states, sampling, prefill) with validation on.
  filter=${CHECK_FILTER:-'*Gpu*:*Contract*:*DeviceLimits*:*Features*:*StreamPool*:TinyShakespeare*:*Falcon*:Listener*:*Vulkan*:CApiTest*:StateCli*:CliTest*:*Quantized*:GpuBuffer*:WeightsPlan*'}
  echo "device_check: GPU tests ($filter)"
  "$build/bin/vkssm_tests" --gtest_brief=1 --gtest_filter="$filter" \
      --gtest_output="json:$out/tests.json" >"$out/tests.log" 2>&1
  tests_rc=$?
  tail -n 5 "$out/tests.log"
fi

bench_files=()
for run in ${CHECK_BENCH:-mamba:f32 mamba:f16 mamba:q8_0 mamba:q4_0 mamba2:f32 mamba2:f16}; do
  arch=${run%%:*} weights=${run#*:}
  {
    f="$out/bench-$arch-$weights.json"
    echo "device_check: bench $arch $weights"
    if "$build/bin/vkssm_bench" --arch "$arch" --weights "$weights" --tokens 64 \
        --batch 1,2,4,8,16,32,64,128,256 --ttft 512 --json >"$f" 2>"$f.err"; then
      rm -f "$f.err"
    else
      echo "device_check: bench $arch $weights failed:" >&2
      cat "$f.err" >&2
    fi
    bench_files+=("$(basename "$f")")
  }
done

elapsed=$(( $(date +%s) - start ))
passed=null; failed=null
if [[ -f $out/tests.json ]]; then
  passed=$(grep -o '"tests": [0-9]*' "$out/tests.json" | head -n1 | grep -o '[0-9]*')
  failed=$(grep -o '"failures": [0-9]*' "$out/tests.json" | head -n1 | grep -o '[0-9]*')
fi
{
  printf '{\n  "seconds": %s,\n  "tests_exit_code": "%s",\n  "tests_run": %s,\n  "tests_failed": %s,\n' \
    "$elapsed" "$tests_rc" "$passed" "$failed"
  printf '  "bench": ['
  sep=""
  for f in "${bench_files[@]}"; do printf '%s"%s"' "$sep" "$f"; sep=", "; done
  printf ']\n}\n'
} >"$out/summary.json"
cat "$out/summary.json"
[[ $tests_rc == 0 || $tests_rc == skipped ]]

#!/usr/bin/env bash
# Installs a vkssm build folder (default: build) into BUILD/install-static and, with
# -DBUILD_SHARED_LIBS=ON, BUILD/install-shared, then builds this consumer project against each
# installed tree, with CMake (find_package) and with pkg-config alone, and runs it on the cpu and
# vulkan backends. scripts/setup.sh test runs it. Switching BUILD_SHARED_LIBS only changes what is
# installed (the shared library is linked from the static ones), so nothing recompiles; the
# folder's own setting is restored at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
build=$(cd "${1:-build}" && pwd)
model=$PWD/models/mamba1/tiny-shakespeare
export VKSSM_CACHE_DIR=$build/consumer-pipeline-cache

shared_before=$(sed -n 's/^BUILD_SHARED_LIBS:BOOL=//p' "$build/CMakeCache.txt")
trap 'cmake -S . -B "$build" -DBUILD_SHARED_LIBS="${shared_before:-OFF}" >/dev/null' EXIT

for kind in static shared; do
  echo "consumer: $kind library"
  prefix=$build/install-$kind
  out=$build/consumer-$kind
  targets=(vkssm_cli)
  if [[ $kind == shared ]]; then
    cmake -S . -B "$build" -DBUILD_SHARED_LIBS=ON >/dev/null
    targets+=(vkssm_shared)
  else
    cmake -S . -B "$build" -DBUILD_SHARED_LIBS=OFF >/dev/null
  fi
  cmake --build "$build" --target "${targets[@]}" >/dev/null
  rm -rf "$prefix" "$out"
  cmake --install "$build" --prefix "$prefix" >/dev/null

  # CMake: find_package(vkssm) from the installed tree.
  cmake -S tests/consumer -B "$out" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
  cmake --build "$out" >/dev/null
  "$out/consumer_cpp" "$model"
  "$out/consumer_c" "$model"

  # pkg-config: the same sources with nothing but the compiler and vkssm.pc.
  flags=$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs vkssm)
  rpath=()
  [[ $kind == shared ]] && rpath=(-Wl,-rpath,"$prefix/lib")
  mkdir -p "$out/pkg-config"
  g++ -std=c++20 -Wall -Wextra -Werror tests/consumer/consumer.cpp $flags "${rpath[@]}" -o "$out/pkg-config/consumer_cpp"
  gcc -std=c99 -Wall -Wextra -Werror tests/consumer/consumer.c $flags "${rpath[@]}" -o "$out/pkg-config/consumer_c"
  "$out/pkg-config/consumer_cpp" "$model" | tail -n 1
  "$out/pkg-config/consumer_c" "$model" | tail -n 1

  # The installed tool finds the installed speech model (<prefix>/share/vkssm/models/).
  # The output is captured before it is matched: `vkssm listen` flushes each event as it is
  # decided, so a `grep -q` reading the pipe could exit first and (under pipefail) fail the pipe.
  events=$("$prefix/bin/vkssm" listen --backend vulkan --json "$PWD/models/s4d/speech-commands/demo/command-1.wav" 2>/dev/null) || true
  [[ $events == *'"word":"yes"'* ]] || { echo "consumer: the installed vkssm listen found no command" >&2; exit 1; }
  echo "consumer: $kind: CMake and pkg-config builds ran; installed vkssm listen works"
done

# Sourced by scripts/setup.sh and scripts/ci_aarch64.sh.
#
#   sharded N COMMAND...   runs COMMAND (a GoogleTest binary and its arguments) N times at once,
#                          each run taking one of N shards of the selected tests (GoogleTest's
#                          GTEST_TOTAL_SHARDS / GTEST_SHARD_INDEX). Each shard's output is printed
#                          whole once all have ended; the call fails if any shard failed.
#
# The GPU legs spend most of their time in one thread (lavapipe compiling shaders, the host side
# of each test), so one shard per core keeps a 2-core machine busy, as ctest -j does for the
# main suite. Tests already run concurrently under ctest -j, so shards share nothing they mind.
# Put environment settings in COMMAND (env VAR=value binary ...) so they reach the binary only.
sharded() {
  local count=$1 dir status=0 i
  shift
  local pids=()
  dir=$(mktemp -d)
  for ((i = 0; i < count; i++)); do
    GTEST_TOTAL_SHARDS=$count GTEST_SHARD_INDEX=$i "$@" >"$dir/$i.log" 2>&1 &
    pids+=($!)
  done
  for ((i = 0; i < count; i++)); do
    wait "${pids[$i]}" || status=1
    cat "$dir/$i.log"
  done
  rm -rf "$dir"
  return $status
}

#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (missing packages only), builds cvnode and runs every test,
# in two stages:
#   1. the optimised build in build/ (what is installed: no -march=native unless build/ was
#      configured with it) and the whole suite;
#   2. the sanitizer stage: the library, the cvnode program and the C++ tests labelled
#      `sanitize` (the data, checkpoint and run-folder I/O, the command-line checks and the core
#      units: a second build of every test would not fit CI's 15 minutes on 2 cores) built with
#      AddressSanitizer and UndefinedBehaviorSanitizer at -Og in build-sanitize/, and run there.
#      No Python module (an instrumented extension needs an instrumented interpreter). A finding
#      fails its test. CVNODE_SANITIZE_TESTS=all builds and runs every C++ test instead.
# Environment: CVNODE_WERROR=ON makes warnings errors;
#              CVNODE_SANITIZER_STAGE=1 runs stage 2. Off by default, and so in .ci/run: measured
#              cold, it adds 569 CPU s of build and 90-170 s of test run, which would take a
#              cold .ci/run to ~740-880 s against a target of 780 s under the 900 s limit
#              (docs/testing.md, "Cost of the sanitizer stage").
# The time of each step is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="$(nproc)"
werror="${CVNODE_WERROR:-OFF}"
times=()
step() {  # step NAME COMMAND...: runs and times one step
  local name="$1" start end
  shift
  start=$(date +%s)
  "$@"
  end=$(date +%s)
  times+=("$(printf '%-28s %5d s' "$name" $((end - start)))")
}

step "setup" bash scripts/setup.sh
step "configure" cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCVNODE_WERROR="$werror" >/dev/null
step "build" cmake --build build -j"$jobs"
step "tests" ctest --test-dir build --output-on-failure -j"$jobs"

if [ "${CVNODE_SANITIZER_STAGE:-0}" = "1" ]; then
  # -Og -g1: findings with function names and lines; the sanitized library compiles at 1.33x the
  # optimised one's CPU time (1.86x at -O1; docs/testing.md).
  step "sanitizer configure" cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-Og -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-Og -g1 -DNDEBUG" \
    -DCVNODE_SANITIZE=ON -DCVNODE_SANITIZE_TESTS="${CVNODE_SANITIZE_TESTS:-labelled}" -DCVNODE_BUILD_PYTHON=OFF \
    -DCVNODE_TEST_TIMEOUT_SCALE=8 -DCVNODE_WERROR="$werror" >/dev/null
  step "sanitizer build" cmake --build build-sanitize -j"$jobs"
  step "sanitizer tests" ctest --test-dir build-sanitize --output-on-failure -j"$jobs"
fi

echo
echo "scripts/test.sh: all tests passed"
printf '  %s\n' "${times[@]}"

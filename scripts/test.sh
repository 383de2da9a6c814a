#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (missing packages only), builds cvnode and runs every test,
# in two stages:
#   1. the optimised build in build/ (what is installed: no -march=native unless build/ was
#      configured with it) and the whole suite;
#   2. the sanitizer stage: the library and the C++ tests labelled `sanitize` that do not run
#      the cvnode program (the data, checkpoint and CSV I/O, the fuzzed files, the errors, the
#      problem, the network and the core units) built with AddressSanitizer and
#      UndefinedBehaviorSanitizer at -Og in build-sanitize/, and run there. A finding fails its
#      test. A second build of every test, or of the program with the tests that drive it,
#      would not fit CI's 15 minutes on 2 cores (docs/testing.md, "Cost of the sanitizer
#      stage"). No Python module (an instrumented extension needs an instrumented interpreter).
#      CVNODE_SANITIZE_TESTS=all builds the program and runs every C++ test instead;
#      CVNODE_SANITIZE_TESTS=program the program and every test labelled `sanitize`.
# Environment: CVNODE_WERROR=ON makes warnings errors;
#              CVNODE_SANITIZER_STAGE=0 skips stage 2 (on by default, and so in .ci/run).
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

if [ "${CVNODE_SANITIZER_STAGE:-1}" = "1" ]; then
  sanitize_tests="${CVNODE_SANITIZE_TESTS:-labelled}"
  programs=OFF
  case "$sanitize_tests" in
    all) programs=ON ;;
    program) programs=ON; sanitize_tests=labelled ;;
  esac
  # -Og -g1: findings with function names and lines; the sanitized library compiles at 1.33x the
  # optimised one's CPU time (1.86x at -O1; docs/testing.md).
  step "sanitizer configure" cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-Og -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-Og -g1 -DNDEBUG" \
    -DCVNODE_SANITIZE=ON -DCVNODE_SANITIZE_TESTS="$sanitize_tests" -DCVNODE_BUILD_PROGRAMS="$programs" -DCVNODE_BUILD_PYTHON=OFF \
    -DCVNODE_TEST_TIMEOUT_SCALE=8 -DCVNODE_WERROR="$werror" >/dev/null
  step "sanitizer build" cmake --build build-sanitize -j"$jobs"
  step "sanitizer tests" ctest --test-dir build-sanitize --output-on-failure -j"$jobs"
fi

echo
echo "scripts/test.sh: all tests passed"
printf '  %s\n' "${times[@]}"

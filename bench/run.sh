#!/usr/bin/env bash
# The benchmark suite: every problem of ../shared/bench at the tolerances of issue 6, Adams and
# BDF where they apply, per-series and stacked; one JSON line per configuration into
# bench/results/results.jsonl, and a work-precision plot (gradient error against milliseconds
# per gradient) as bench/results/work_precision.png.
#   bench/run.sh [BUILD_DIR] [REPEATS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../build}"
repeats="${2:-5}"
shared="$here/../../shared/bench"
out="$here/results"
mkdir -p "$out"
: > "$out/results.jsonl"
run() { "$build/apps/cvnode" bench "$@" --repeats "$repeats" --json | tee -a "$out/results.jsonl"; }
for r in 1e-3 1e-5 1e-7 1e-9; do
  for p in B1 B1L; do
    for mode in per-series stacked; do run "$shared/$p.h5" --method adams --rtol $r --atol $r --mode $mode; done
  done
done
for r in 1e-4 1e-6 1e-8; do run "$shared/B2.h5" --method adams --rtol $r --atol $r --mode stacked --stack-size 128; done
for r in 1e-4 1e-6 1e-8; do
  run "$shared/B3.h5" --method bdf --rtol $r --atol $r
  run "$shared/B3.h5" --method adams --rtol $r --atol $r
done
python3 "$here/plot.py" "$out/results.jsonl" "$out/work_precision.png"
echo "bench: results in $out/results.jsonl, plot in $out/work_precision.png"

#!/usr/bin/env bash
# cvnode and the peer measured in the same run, on the same machine, for docs/performance.md's
# comparison table: the peer is bench/peer/torch_dopri5.py (PyTorch float64, one thread,
# backpropagation through dopri5 as torchdiffeq does it, atol = rtol / 100) on serial OpenBLAS, as
# a PyTorch user on Debian has it; cvnode is `cvnode bench` over a grid of its configurations.
# Rows alternate between the two sides, problem by problem, for ROUNDS rounds, so a slow minute
# of this shared VM hits both; every configuration runs in its own process, so `ms_first` (the
# first gradient of the process: workspaces allocated, pages touched) is cold on both sides.
# Then bench/peer/compare.py applies the equal-error rule: for each peer row, cvnode's fastest
# configuration whose gradient error is at or below the peer's.
#   bench/peer/side_by_side.sh [BUILD_DIR] [ROUNDS]   (4 minutes with 2 rounds on an idle 2-core
#                                                     machine, of which B3's one peer gradient is
#                                                     51 s; it needs ~3.7 GB: bench/peer/run.sh)
# Output: bench/results/side_by_side.jsonl (every row, with "side" and "round"),
# bench/results/side_by_side_table.jsonl (one line per peer row) and the table on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../../build}"
rounds="${2:-2}"
shared="$here/../../../shared/bench"
out="$here/../results/side_by_side.jsonl"
mkdir -p "$(dirname "$out")"

if ! grep -q '^CVNODE_NATIVE:BOOL=ON$' "$build/CMakeCache.txt" 2>/dev/null; then
  echo "side_by_side.sh: $build is not a native build; configure it with -DCVNODE_NATIVE=ON" >&2
  exit 2
fi
# The peer's BLAS: Debian's python3-torch uses whatever libblas.so.3 points at; serial OpenBLAS
# is what its users get once they install it (the reference BLAS is several times slower).
source "$here/common.sh"
peer_setup libopenblas0-serial
blas="$("$py" -c 'import sys; sys.path.insert(0, "'"$here"'"); import torch_dopri5 as t; print(t.blas_library())')"
case "$blas" in
  *openblas*) ;;
  *) echo "side_by_side.sh: torch's BLAS is $blas, not OpenBLAS (update-alternatives --config libblas.so.3-x86_64-linux-gnu)" >&2; exit 2 ;;
esac

tag() {  # tag SIDE ROUND: adds the two fields to each JSON line of stdin
  "$py" -c 'import json, sys
for line in sys.stdin:
    r = json.loads(line); r["side"] = sys.argv[1]; r["round"] = int(sys.argv[2]); print(json.dumps(r), flush=True)' "$1" "$2"
}
peer() { local r="$1"; shift; "$py" "$here/torch_dopri5.py" "$@" | tag peer "$r" >> "$out"; }
cv() { local r="$1"; shift; "$build/apps/cvnode" bench "$@" --json | tag cvnode "$r" >> "$out"; }

: > "$out"
for round in $(seq 1 "$rounds"); do
  echo "round $round of $rounds: B1" >&2
  for r in 1e-5 1e-7; do peer "$round" --problem "$shared/B1.h5" --rtol $r --atol "$(hundredth $r)" --repeats 50; done
  for r in 1e-3 1e-5 1e-7 1e-9; do
    for mode in stacked per_series; do
      cv "$round" "$shared/B1.h5" --method dopri5 --rtol $r --atol "$(hundredth $r)" --mode $mode --repeats 200
    done
    cv "$round" "$shared/B1.h5" --method adams --rtol $r --atol $r --mode stacked --repeats 200
  done

  echo "round $round of $rounds: B1L" >&2
  for r in 1e-5 1e-7; do peer "$round" --problem "$shared/B1L.h5" --rtol $r --atol "$(hundredth $r)" --repeats 5; done
  for r in 1e-3 1e-5 1e-7 1e-9; do
    cv "$round" "$shared/B1L.h5" --method dopri5 --rtol $r --atol "$(hundredth $r)" --repeats 100
    cv "$round" "$shared/B1L.h5" --method adams --rtol $r --atol $r --repeats 100
  done

  echo "round $round of $rounds: B2" >&2
  for r in 1e-5 1e-6 1e-7; do peer "$round" --problem "$shared/B2.h5" --rtol $r --atol "$(hundredth $r)" --repeats 5; done
  for r in 1e-2 1e-3 1e-4 1e-5 1e-6; do
    cv "$round" "$shared/B2.h5" --method dopri5 --rtol $r --atol "$(hundredth $r)" --mode stacked --stack-size 128 --repeats 5
  done
  for r in 1e-5 1e-6 1e-7 1e-8; do
    cv "$round" "$shared/B2.h5" --method adams --rtol $r --atol $r --mode stacked --stack-size 128 --repeats 5
  done

  echo "round $round of $rounds: B3" >&2
  # The peer's explicit dopri5 needs ~30,000 stability-bound steps whatever rtol (error ~1e-11):
  # one gradient, round 1 only. cvnode's rows reach down to that error with BDF and dopri5.
  [ "$round" = 1 ] && peer "$round" --problem "$shared/B3.h5" --rtol 1e-6 --atol 1e-8 --repeats 1
  for r in 1e-6 1e-8 1e-10 1e-12; do
    cv "$round" "$shared/B3.h5" --method bdf --rtol $r --atol "$(hundredth $r)" --repeats 3
  done
  cv "$round" "$shared/B3.h5" --method dopri5 --rtol 1e-6 --atol 1e-8 --repeats 3
done
"$py" "$here/compare.py" "$out" "${out%.jsonl}_table.jsonl"

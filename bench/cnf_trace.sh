#!/usr/bin/env bash
# Exact trace against Hutchinson's estimator by dimension (issue 16): per batched evaluation of
# the flow's right-hand side plus VJP, and per minibatch gradient (dopri5 backpropagation, and
# the CVODES adjoint with Adams), for a 64-64-64 time-conditioned tanh MLP on 128 samples of a
# Gaussian mixture; one JSON line per (engine, D, trace) into bench/results/cnf_trace.jsonl.
#   bench/cnf_trace.sh [BUILD_DIR] [ROUNDS]     (~5 minutes on a quiet 2-core machine)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../build}"
rounds="${2:-5}"
out="$here/results/cnf_trace.jsonl"
mkdir -p "$here/results"
: > "$out"
for method in dopri5 adams; do
  "$build/apps/cvnode" bench-flow --dims 1,2,4,8,16,32,64 --method "$method" --repeats "$rounds" | tee -a "$out"
done

#!/usr/bin/env bash
# Exact trace against Hutchinson's estimator by dimension (issue 16): per batched evaluation of
# the flow's right-hand side plus VJP, and per minibatch gradient (dopri5 backpropagation, and/or
# the CVODES adjoint with Adams), for a 64-64-64 time-conditioned tanh MLP on 128 samples of a
# Gaussian mixture; one JSON line per (engine, D, trace) into bench/results/cnf_trace.jsonl
# (minimum and median over rounds: the machine is shared), then the CPU seconds of the whole
# run (/usr/bin/time) on stderr. Runs at nice -n 10.
#   bench/cnf_trace.sh [BUILD_DIR] [ROUNDS] [METHODS] [DIMS]
#   (defaults: build 5 "dopri5 adams" 2,4,8,16,32,64; ~5 minutes on a quiet 2-core machine)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../build}"
rounds="${2:-5}"
methods="${3:-dopri5 adams}"
dims="${4:-2,4,8,16,32,64}"
out="$here/results/cnf_trace.jsonl"
mkdir -p "$here/results"
for method in $methods; do
  /usr/bin/time -f "cnf_trace $method: %e s wall, %U s user, %S s sys" nice -n 10 \
    "$build/apps/cvnode" bench-flow --dims "$dims" --method "$method" --repeats "$rounds" | tee -a "$out"
done

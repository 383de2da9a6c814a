#!/usr/bin/env bash
# The peer's gradient error: runs torch_dopri5.py (an independent PyTorch reimplementation of
# torchdiffeq's dopri5 with its default options, backpropagating through the solver, float64,
# one thread) on B1, B1L, B2 and B3 and appends one JSON line per configuration to
# bench/results/peer.jsonl. First the check against the problems' own references (rtol 1e-12,
# atol 1e-14: the gradient must match ref_grad to ~1e-13), then the tolerances of the peer's
# published figures with the absolute tolerances it may have used: atol = rtol, rtol / 100 and
# 1e-9 (torchdiffeq's default).
#   bench/peer/run.sh [REPEATS]        (~4.5 minutes with the default 3, B3 ~3 of them; one core;
#                                      B3 needs ~3.7 GB of memory)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repeats="${1:-3}"
shared="$here/../../../shared/bench"
out="$here/../results"
mkdir -p "$out"

# Debian's torch, h5py and numpy for the system python (not a pyenv shim), one thread: common.sh.
source "$here/common.sh"
peer_setup

# Debian's torch does its float64 matmuls in whatever libblas.so.3 the alternatives system points
# at (each JSON line records it as "blas"): B2 takes ~50 ms a gradient on OpenBLAS and ~500 ms on
# the netlib reference BLAS. PEER_BLAS=netlib runs on the reference BLAS without touching the
# system setting.
if [ "${PEER_BLAS:-}" = netlib ]; then
  netlib=/usr/lib/x86_64-linux-gnu/blas:/usr/lib/x86_64-linux-gnu/lapack
  export LD_LIBRARY_PATH="$netlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
peer() { "$py" "$here/torch_dopri5.py" "$@" | tee -a "$out/peer.jsonl"; }

# ---- validation against ref_grad / ref_loss (computed by torchdiffeq at these tolerances) ----
for p in B1 B1L B2; do
  peer --problem "$shared/$p.h5" --rtol 1e-12 --atol 1e-14 --repeats 1
done

# ---- the published figures' tolerances, atol = rtol, rtol/100, 1e-9 (an atol of 0 is rtol) ----
small=$((repeats * 10))   # B1 takes ~7 ms a gradient
peer --problem "$shared/B1.h5" --rtol 1e-5 --atol 0 1e-7 1e-9 --repeats "$small"
for r in 1e-5 1e-7; do
  peer --problem "$shared/B1L.h5" --rtol $r --atol 0 "$(hundredth $r)" 1e-9 --repeats "$repeats"
done
for r in 1e-5 1e-6 1e-7; do
  peer --problem "$shared/B2.h5" --rtol $r --atol 0 "$(hundredth $r)" 1e-9 --repeats "$repeats"
done

# ---- B3 (stiff, k_diag up to 1e4 on [0, 10]): stability, not accuracy, limits dopri5 to ~30,000
# steps (~226,000 evaluations) whatever rtol, so the gradient error is ~1e-11 already at rtol 1e-4.
# One repeat each: ~70-90 s and ~3.7 GB peak RSS a gradient (the graph of every step is kept).
peer --problem "$shared/B3.h5" --rtol 1e-4 1e-6 --atol 1e-8 --repeats 1

# ---- for comparison: step sizes kept in the autograd graph (torchdiffeq's older releases) ----
peer --problem "$shared/B1.h5" --rtol 1e-5 --atol 0 1e-7 1e-9 --repeats "$small" --dt-grad
peer --problem "$shared/B2.h5" --rtol 1e-6 --atol 0 1e-8 1e-9 --repeats "$repeats" --dt-grad

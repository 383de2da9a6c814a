#!/usr/bin/env bash
# Peak memory of one training step of the Fashion-MNIST classifiers as the ODE block's
# integration length (ODE-Net, RK-Net) or the ResNet's depth grows: Table 1's memory column and
# the paper's O(1)-memory claim for the adjoint. Each size runs in its own process (peak RSS is
# per process); `step_memory_mb` is the peak minus the resident size before the first step.
# One JSON line per run into bench/results/odenet_memory.jsonl.
#   bench/odenet_memory.sh [BUILD_DIR]      (env: BATCH (64), THREADS (2), SIZES ("1 2 4 8 16"))
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../build}"
out="$here/results/odenet_memory.jsonl"
mkdir -p "$here/results"
: > "$out"
arch=(--channels 32 --groups 16 --pool-grid 3 --activation softplus --batch "${BATCH:-64}" --threads "${THREADS:-2}" --steps 2)
run() { nice "$build/apps/cvnode" classify memory "${arch[@]}" "$@" | tee -a "$out"; }
for s in ${SIZES:-1 2 4 8 16}; do
  run --model odenet --method adams --tol 1e-3 --horizon "$s"   # CVODES adjoint, checkpoints every 20 steps
  run --model odenet --method dopri5 --tol 1e-3 --horizon "$s"  # backprop through the adaptive steps
  run --model rknet --rk-steps $((2 * s)) --horizon "$s"         # backprop through fixed steps of 1/2
  run --model resnet --blocks "$((6 * s))"                        # 6, 12, ... residual layers
done

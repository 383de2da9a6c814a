#!/usr/bin/env bash
# The paper's Table 1 on Fashion-MNIST: trains the ODE-Net (CVODES adjoint), the ResNet and the
# RK-Net with the same stem, block and head (docs/odenet.md), and prints one JSON line per model:
# test error, parameters, peak memory, training time, NFE. Each model's run folder keeps its
# checkpoint (model.h5), per-epoch and per-step metrics (epochs.csv, steps.csv) and log.
#   bash scripts/odenet_fashion.sh [OUT_DIR]         (default runs/odenet_fashion)
# Environment: EPOCHS (4), THREADS (2), MODELS ("odenet resnet rknet"; also odenet_dopri5),
# TRAIN_IMAGES / TEST_IMAGES (0 = all 60,000 / 10,000; the first N otherwise, for a short run),
# CVNODE (a built cvnode binary to use instead of building build/apps/cvnode),
# FIGURES=1 to draw Figure 3 afterwards (scripts/odenet_figures.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/odenet_fashion}"
cvnode="${CVNODE:-}"
if [ -z "$cvnode" ]; then
  bash scripts/setup.sh
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  nice cmake --build build -j2 --target cvnode_cli >/dev/null
  cvnode=./build/apps/cvnode
fi
mkdir -p "$out"
# The shared architecture and schedule: 32 channels, group norm with 16 groups, the softplus block
# (smooth: the adjoint's Adams steps do not stall at ReLU kinks), 3 x 3 average pooling in the head,
# Adam at 3e-3 with a tenfold decay for the last epoch, minibatches of 128, no augmentation.
common=(--channels 32 --groups 16 --pool-grid 3 --activation softplus --epochs "${EPOCHS:-4}" --lr 3e-3
        --schedule step --batch 128 --threads "${THREADS:-2}" --seed 1 --json
        --train-images "${TRAIN_IMAGES:-0}" --test-images "${TEST_IMAGES:-0}")
for model in ${MODELS:-odenet resnet rknet}; do
  case "$model" in
    odenet) args=(--model odenet --method adams --tol 1e-3) ;;
    odenet_dopri5) args=(--model odenet --method dopri5 --tol 1e-3) ;;
    resnet) args=(--model resnet --blocks 6) ;;
    rknet) args=(--model rknet --rk-steps 2) ;;
    *) echo "odenet_fashion: unknown model '$model' (odenet, odenet_dopri5, resnet, rknet)" >&2; exit 2 ;;
  esac
  nice "$cvnode" classify train "${args[@]}" "${common[@]}" --out "$out/$model" \
    2> "$out/$model.log" | tee "$out/$model.json"
done
if [ "${FIGURES:-0}" = 1 ]; then bash scripts/odenet_figures.sh "$out"; fi

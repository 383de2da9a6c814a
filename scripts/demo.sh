#!/usr/bin/env bash
# The cvnode demo on a fresh Debian 12 machine: install what is missing, build (Release, build/,
# for this machine's instruction set: -DCVNODE_NATIVE=ON, the fast AVX-512/AVX2 kernels),
# fit a neural ODE to the shipped Lotka-Volterra data (data/demo.toml), draw the figures, and say
# where everything is. Usage: bash scripts/demo.sh [OUT_DIR]   (default: demo-run)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-demo-run}"
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCVNODE_NATIVE=ON >/dev/null
cmake --build build -j"$(nproc)" --target cvnode_cli cvnode_python  # the Python module too (docs/python.md)
if [ ! -f data/lotka_volterra.h5 ]; then
  echo "demo: data/lotka_volterra.h5 is missing (scripts/make_data.sh regenerates the shipped data)" >&2
  exit 2
fi
start=$(date +%s)
# --overwrite: a second demo replaces the first run's files in OUT_DIR.
./build/apps/cvnode fit --config data/demo.toml --out "$OUT" --overwrite
./build/apps/cvnode eval "$OUT/best.h5" --split test --tolerances 1e-3,1e-5,1e-7
end=$(date +%s)
echo
echo "demo: fit, figures and evaluation took $((end - start)) s"
echo "demo: checkpoints  $OUT/best.h5  $OUT/latest.h5"
echo "demo: metrics      $OUT/metrics.csv"
echo "demo: figures      $OUT/trajectories.png  $OUT/loss.png  $OUT/nfe.png"

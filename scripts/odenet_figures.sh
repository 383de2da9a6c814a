#!/usr/bin/env bash
# The paper's Figure 3 (a-d) for a trained ODE-Net, as PNGs with gnuplot:
#   a  forward NFE against the solver tolerance      c  forward against backward NFE per step
#   b  numerical error of z(T) against forward NFE   d  forward NFE over the training epochs
# (a, b from `cvnode classify tolerance` on 1,000 test images, the error against rtol = 1e-9;
# c, d from the training run's steps.csv).
#   bash scripts/odenet_figures.sh RUNS_DIR          (the folder of scripts/odenet_fashion.sh)
# Environment: IMAGES (1000 test images for a and b), CVNODE (the binary; build/apps/cvnode),
# REUSE=1 to redraw from an existing tolerance.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:?usage: odenet_figures.sh RUNS_DIR}"
run="$runs/odenet"
[ -f "$run/model.h5" ] || { echo "odenet_figures: $run/model.h5 is missing (run scripts/odenet_fashion.sh)" >&2; exit 2; }
if [ "${REUSE:-0}" != 1 ] || [ ! -f "$run/tolerance.csv" ]; then
  nice "${CVNODE:-./build/apps/cvnode}" classify tolerance "$run" --images "${IMAGES:-1000}" --csv > "$run/tolerance.csv.tmp"
  mv "$run/tolerance.csv.tmp" "$run/tolerance.csv"
fi
if gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1; then term="pngcairo size 640,480"; else term="png size 640,480"; fi
steps_per_epoch=$(awk -F, 'NR > 1 && $2 == 1 { n++ } END { print n }' "$run/steps.csv")
gnuplot <<GP
set terminal $term
set datafile separator ","
set key off
set grid
set output "$runs/fig3a_nfe_vs_tolerance.png"
set title "ODE-Net on Fashion-MNIST: forward NFE against tolerance"
set logscale x
set format x "%.0e"
set xlabel "tolerance (rtol = atol)"
set ylabel "NFE forward (per minibatch)"
plot "$run/tolerance.csv" using 1:3 skip 1 with linespoints pt 7
set output "$runs/fig3b_error_vs_nfe.png"
set title "numerical error of z(T) against forward NFE"
unset logscale x
set format x "%g"
set logscale y
set format y "%.0e"
set xlabel "NFE forward"
set ylabel "relative error of z(T) (reference: rtol 1e-9)"
plot "$run/tolerance.csv" using 3:4 skip 1 with linespoints pt 7
set output "$runs/fig3c_forward_vs_backward.png"
set title "NFE forward against NFE backward, every training step"
unset logscale y
set format y "%g"
set xlabel "NFE forward"
set ylabel "NFE backward"
set key top left
plot "$run/steps.csv" using 4:5 skip 1 with points pt 7 ps 0.4 title "steps", x title "backward = forward" with lines dt 2
set output "$runs/fig3d_nfe_over_training.png"
set title "forward NFE over training"
set xlabel "epoch"
set ylabel "NFE forward (per minibatch)"
set key top left
plot "$run/steps.csv" using (\$1 / $steps_per_epoch):4 skip 1 with points pt 7 ps 0.3 title "steps", \
     "$run/epochs.csv" using (\$1 - 0.5):7 skip 1 with linespoints pt 7 lw 2 title "epoch mean"
GP
echo "odenet_figures: $runs/fig3a_nfe_vs_tolerance.png $runs/fig3b_error_vs_nfe.png $runs/fig3c_forward_vs_backward.png $runs/fig3d_nfe_over_training.png"

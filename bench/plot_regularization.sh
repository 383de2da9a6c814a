#!/usr/bin/env bash
# The figures of docs/regularization.md from the studies' per-run files (gnuplot, PNG):
#   docs/regularization/demo_nfe.png        forward NFE per series per epoch on the demo data
#                                           (bench/results/regularization_study/*.metrics.csv)
#   docs/regularization/classifier_nfe.png  forward NFE per training step of the ODE-Net classifier,
#                                           ReLU and softplus blocks (bench/results/
#                                           classifier_regularization{,_softplus}/*/steps.csv)
#   bench/plot_regularization.sh [OUT_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../docs/regularization}"
mkdir -p "$out"
demo="$here/results/regularization_study"
cls="$here/results/classifier_regularization"
plot_demo() {
  local cmd="" sep="" v
  for v in "$@"; do
    [ -f "$demo/$v.metrics.csv" ] || continue
    cmd+="$sep'$demo/$v.metrics.csv' using (column('epoch')):(column('nfe_forward')) with lines lw 2 title '${v//_/ }'"
    sep=", "
  done
  echo "$cmd"
}
demo_ps=$(plot_demo dopri5ps_plain dopri5ps_kinetic_0.0001 dopri5ps_jacobian_0.0001 dopri5ps_kinetic_0.001 dopri5ps_jacobian_0.001)
demo_st=$(plot_demo dopri5_plain dopri5_error_0.0003 dopri5_error_0.001 dopri5_steer)
if [ -n "$demo_ps$demo_st" ]; then
  gnuplot <<GP
set datafile separator ','
set terminal pngcairo noenhanced size 1100,450 font ',10'
set output '$out/demo_nfe.png'
set multiplot layout 1,2 title 'demo data (Lotka-Volterra): forward NFE per series per epoch (dopri5; curriculum switches at epochs 90 and 125)'
set xlabel 'epoch'
set ylabel 'NFE per series'
set key top left
set title 'per-series solves: running costs'
plot $demo_ps
set title 'stacked windows: solver-error penalty, STEER'
plot $demo_st
unset multiplot
GP
fi
plot_cls() {
  local cmd="" sep="" d v
  for d in "$1"/*/; do
    [ -f "$d/steps.csv" ] || continue
    v=$(basename "$d")
    cmd+="$sep'$d/steps.csv' using (column('step')):(column('nfe_forward')) smooth bezier with lines lw 2 title '${v//_/ }'"
    sep=", "
  done
  echo "$cmd"
}
cls_relu=$(plot_cls "$cls")
cls_soft=$(plot_cls "${cls}_softplus")
if [ -n "$cls_relu" ] && [ -n "$cls_soft" ]; then
  gnuplot <<GP
set datafile separator ','
set terminal pngcairo noenhanced size 1100,450 font ',10'
set output '$out/classifier_nfe.png'
set multiplot layout 1,2 title 'ODE-Net on 4,000 Fashion-MNIST images, 2 epochs (dopri5, tol 1e-3): forward NFE per minibatch of 128 (smoothed)'
set xlabel 'training step'
set ylabel 'NFE per step'
set key top right
set yrange [0:45]
set title 'ReLU block (the paper)'
plot $cls_relu
set title 'softplus block'
plot $cls_soft
unset multiplot
GP
fi
ls -l "$out"

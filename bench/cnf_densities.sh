#!/usr/bin/env bash
# Held-out NLL of a flow on each target density against the density's true entropy (issue 16's
# acceptance: within 0.05 nats per dimension), with the paper's Figure 6 analogue. For every
# kind: its configuration data/cnf_KIND.toml (data/cnf_moons.toml where a kind has none), the
# points that configuration's comment names (`--series N` of `cvnode data generate --system KIND
# --seed 0`; 4000 without one; mixture: 8-D, 5 components), one fit (one thread, nice -n 10), one
# JSON line into bench/results/cnf_densities.jsonl (test NLL with its standard error over the test
# points, entropy, gap per dimension, NFE, wall and CPU seconds from /usr/bin/time, figures
# included) and its figures as docs/cnf/KIND_density.png (target, data, learned density, samples;
# the first two coordinates for the mixture) and KIND_flow.png.
#   bench/cnf_densities.sh [BUILD_DIR] [EPOCHS] [KIND ...] [-- --set key=value ...]
# EPOCHS 0 (the default) keeps each configuration's own run.epochs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/.."
build="${1:-$root/build}"
epochs="${2:-0}"
shift $(( $# > 2 ? 2 : $# ))
kinds=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do kinds+=("$1"); shift; done
[ $# -gt 0 ] && shift
extra=("$@")
[ ${#kinds[@]} -gt 0 ] || kinds=(moons circles eight_gaussians checkerboard mixture)
[ "$epochs" = 0 ] || extra=(--set run.epochs="$epochs" "${extra[@]}")
out="$here/results/cnf_densities.jsonl"
figs="$root/docs/cnf"
mkdir -p "$here/results" "$figs"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for k in "${kinds[@]}"; do
  config="$root/data/cnf_$k.toml"
  [ -f "$config" ] || config="$root/data/cnf_moons.toml"
  series=4000
  if [ "$config" != "$root/data/cnf_moons.toml" ]; then
    n="$(grep -o -- '--series [0-9]*' "$config" | head -1 | awk '{print $2}')"
    [ -z "$n" ] || series="$n"
  fi
  "$build/apps/cvnode" data generate --system "$k" --series "$series" --seed 0 --out "$work/$k.h5" > /dev/null
  /usr/bin/time -f "%e %U %S" -o "$work/$k.time" nice -n 10 "$build/apps/cvnode" fit \
    --config "$config" --out "$work/$k" --quiet \
    --set data.file="\"$work/$k.h5\"" --set run.threads=1 "${extra[@]}" > "$work/$k.log"
  # Each test point's log-density (exact trace) for the standard error of the test NLL.
  nice -n 10 "$build/apps/cvnode" cnf density --checkpoint "$work/$k/best.h5" --set run.threads=1 \
    --out "$work/$k.points.csv" > /dev/null
  cp "$work/$k/density.png" "$figs/${k}_density.png"
  cp "$work/$k/flow.png" "$figs/${k}_flow.png"
  python3 "$here/cnf_fit_summary.py" "$work/$k.log" "$work/$k/metrics.csv" "$work/$k.time" "$work/$k.points.csv" \
    bench=cnf_densities density="$k" config="$(basename "$config")" points="$series" overrides="${extra[*]:-}" >> "$out"
  tail -1 "$out"
done

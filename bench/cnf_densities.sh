#!/usr/bin/env bash
# Held-out NLL of a flow on each target density against the density's true entropy (issue 16's
# acceptance: within 0.05 nats per dimension), with the paper's Figure 6 analogue. For every
# kind: 4000 points from `cvnode data generate --system KIND --seed 0` (mixture: 8-D, 5
# components), a fit of data/cnf_moons.toml (EPOCHS epochs, one thread, nice -n 10), one JSON
# line into bench/results/cnf_densities.jsonl (test NLL, entropy, gap per dimension, NFE, wall
# and CPU seconds from /usr/bin/time) and its figures as docs/cnf/KIND_density.png (target,
# data, learned density, samples; the first two coordinates for the mixture) and KIND_flow.png.
#   bench/cnf_densities.sh [BUILD_DIR] [EPOCHS] [KIND ...] [-- --set key=value ...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/.."
build="${1:-$root/build}"
epochs="${2:-60}"
shift $(( $# > 2 ? 2 : $# ))
kinds=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do kinds+=("$1"); shift; done
[ $# -gt 0 ] && shift
extra=("$@")
[ ${#kinds[@]} -gt 0 ] || kinds=(moons circles eight_gaussians checkerboard mixture)
out="$here/results/cnf_densities.jsonl"
figs="$root/docs/cnf"
mkdir -p "$here/results" "$figs"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for k in "${kinds[@]}"; do
  "$build/apps/cvnode" data generate --system "$k" --series 4000 --seed 0 --out "$work/$k.h5" > /dev/null
  /usr/bin/time -f "%e %U %S" -o "$work/$k.time" nice -n 10 "$build/apps/cvnode" fit \
    --config "$root/data/cnf_moons.toml" --out "$work/$k" --quiet \
    --set data.file="\"$work/$k.h5\"" --set run.epochs="$epochs" --set run.threads=1 "${extra[@]}" > "$work/$k.log"
  cp "$work/$k/density.png" "$figs/${k}_density.png"
  cp "$work/$k/flow.png" "$figs/${k}_flow.png"
  python3 - "$k" "$work/$k.log" "$work/$k/metrics.csv" "$work/$k.time" "$epochs" "${extra[*]:-}" >> "$out" <<'PY'
import csv, json, re, sys
k, log, metrics, timing, epochs, extra = sys.argv[1:]
text = open(log).read()
m = re.search(r"test NLL ([-\d.e+]+) nats \(([-\d.e+]+) per dimension.*true entropy ([-\d.e+]+) \+- ([-\d.e+]+), gap ([-\d.e+]+)", text)
rows = list(csv.DictReader(open(metrics)))
wall, user, sys_ = (float(x) for x in open(timing).read().split()[-3:])
def mean(key, rs): return sum(float(r[key]) for r in rs) / len(rs)
print(json.dumps({"bench": "cnf_densities", "density": k, "epochs": int(epochs), "overrides": extra,
                  "test_nll": float(m.group(1)), "test_nll_per_dim": float(m.group(2)),
                  "entropy": float(m.group(3)), "entropy_se": float(m.group(4)), "gap_per_dim": float(m.group(5)),
                  "best_val_nll": min(float(r["val_nll"]) for r in rows if r["val_nll"] not in ("", "nan")),
                  "nfe_forward_last10": mean("nfe_forward", rows[-10:]), "nfe_backward_last10": mean("nfe_backward", rows[-10:]),
                  "wall_seconds": wall, "cpu_seconds": user + sys_, "threads": 1}))
PY
  tail -1 "$out"
done

#!/usr/bin/env bash
# Exact trace against Hutchinson's estimator in TRAINING (issue 16: "reach the same likelihood
# within noise"): on the D-dimensional Gaussian mixture (`cvnode data generate --system mixture
# --dim D --series 4000 --seed 0`, 5 components), one fit per (D, seed, trace) with the same
# configuration and budget (data/cnf_mixture.toml, or data/cnf_moons.toml without it; EPOCHS
# epochs; run.seed = cnf.seed = SEED fix the initial network, minibatches and probes), one
# thread at nice -n 10. Both are scored the same way: the test NLL with the EXACT trace (the
# fit's own report) and its standard error over the test points; the CPU seconds of the fit
# (/usr/bin/time). One JSON line per fit into bench/results/cnf_trace_likelihood.jsonl, then one
# per (D, seed) pairing the two fits on the same test points: the NLL difference Hutchinson -
# exact with the standard error of the per-point differences (the test points' own spread, common
# to both, cancels).
#   bench/cnf_trace_likelihood.sh [BUILD_DIR] [EPOCHS] [DIMS] [SEEDS] [-- --set key=value ...]
#   (defaults: build 60 "8 16" "0 1 2")
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/.."
build="${1:-$root/build}"
epochs="${2:-60}"
dims="${3:-8 16}"
seeds="${4:-0 1 2}"
shift $(( $# > 4 ? 4 : $# ))
[ $# -gt 0 ] && [ "$1" = "--" ] && shift
extra=("$@")
config="$root/data/cnf_mixture.toml"
[ -f "$config" ] || config="$root/data/cnf_moons.toml"
out="$here/results/cnf_trace_likelihood.jsonl"
mkdir -p "$here/results"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for D in $dims; do
  "$build/apps/cvnode" data generate --system mixture --dim "$D" --series 4000 --seed 0 --out "$work/m$D.h5" > /dev/null
  for seed in $seeds; do
    for trace in exact hutchinson; do
      run="$work/m$D-$seed-$trace"
      /usr/bin/time -f "%e %U %S" -o "$run.time" nice -n 10 "$build/apps/cvnode" fit \
        --config "$config" --out "$run" --quiet --no-plots \
        --set data.file="\"$work/m$D.h5\"" --set run.threads=1 --set run.epochs="$epochs" \
        --set run.seed="$seed" --set cnf.seed="$seed" --set cnf.trace="\"$trace\"" "${extra[@]}" > "$run.log"
      nice -n 10 "$build/apps/cvnode" cnf density --checkpoint "$run/best.h5" --set run.threads=1 \
        --out "$run.points.csv" > /dev/null
      python3 "$here/cnf_fit_summary.py" "$run.log" "$run/metrics.csv" "$run.time" "$run.points.csv" \
        bench=cnf_trace_likelihood dim="$D" seed="$seed" trace="$trace" config="$(basename "$config")" \
        overrides="${extra[*]:-}" >> "$out"
      tail -1 "$out"
    done
    python3 - "$D" "$seed" "$work/m$D-$seed-exact" "$work/m$D-$seed-hutchinson" >> "$out" <<'PY'
import csv, json, math, sys
D, seed, exact, hutch = sys.argv[1:]
def logp(run): return [float(r["log_density"]) for r in csv.DictReader(open(run + ".points.csv"))]
def cpu(run): return sum(float(x) for x in open(run + ".time").read().split()[-2:])
d = [a - b for a, b in zip(logp(exact), logp(hutch))]  # log p_exact - log p_hutchinson per point
n = len(d)
m = sum(d) / n
se = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1) / n)
print(json.dumps({"bench": "cnf_trace_likelihood_pair", "dim": int(D), "seed": int(seed), "test_points": n,
                  "nll_hutchinson_minus_exact": round(m, 5), "se": round(se, 5),
                  "per_dim": round(m / int(D), 5), "se_per_dim": round(se / int(D), 5),
                  "cpu_seconds_exact": round(cpu(exact), 2), "cpu_seconds_hutchinson": round(cpu(hutch), 2)}))
PY
    tail -1 "$out"
  done
done

#!/usr/bin/env bash
# The flow's regularisation and trace study (issue 16; docs/cnf.md, "Measurements"): trains
# data/cnf_moons.toml once per variant (plain, kinetic + Jacobian norm, STEER, Hutchinson's trace,
# Hutchinson + regularisers, the solver-error penalty at weights 0.01, 0.1 and 1: error_weak, error, error_strong)
# at nice -n 10 and writes one JSON line per variant into bench/results/cnf_study.jsonl: test NLL
# (exact trace) against the true entropy, the gap per dimension, NFE per stacked solve (mean over
# the run and over its last 10 epochs, forward and backward), Σ E_s h_s per solve, wall time
# (noisy on a shared machine) and CPU seconds (/usr/bin/time).
#   bench/cnf_study.sh [BUILD_DIR] [EPOCHS] [VARIANT ...]     (~1.5-3 min per variant on one core)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/.."
build="${1:-$root/build}"
epochs="${2:-60}"
shift $(( $# > 2 ? 2 : $# ))
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(plain rnode steer hutchinson hutchinson_rnode)
out="$here/results/cnf_study.jsonl"
mkdir -p "$here/results"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for v in "${variants[@]}"; do
  case "$v" in
    plain) set_args=() ;;
    rnode) set_args=(--set regularization.kinetic_weight=0.01 --set regularization.jacobian_weight=0.01) ;;
    steer) set_args=(--set regularization.steer=0.5) ;;
    hutchinson) set_args=(--set cnf.trace=hutchinson) ;;
    error_weak) set_args=(--set regularization.error_weight=0.01) ;;
    error) set_args=(--set regularization.error_weight=0.1) ;;
    error_strong) set_args=(--set regularization.error_weight=1) ;;
    hutchinson_rnode) set_args=(--set cnf.trace=hutchinson --set regularization.kinetic_weight=0.01
                                --set regularization.jacobian_weight=0.01) ;;
    *) echo "unknown variant $v" >&2; exit 2 ;;
  esac
  start=$(date +%s.%N)
  /usr/bin/time -f "%e %U %S" -o "$work/$v.time" nice -n 10 "$build/apps/cvnode" fit --config "$root/data/cnf_moons.toml" --out "$work/$v" --no-plots --quiet \
    --set run.epochs="$epochs" --set run.threads=1 "${set_args[@]}" > "$work/$v.log"
  end=$(date +%s.%N)
  python3 - "$v" "$work/$v.log" "$work/$v/metrics.csv" "$start" "$end" "$epochs" "$work/$v.time" >> "$out" <<'EOF'
import csv, json, re, sys
v, log, metrics, start, end, epochs, timing = sys.argv[1:]
wall, user, sys_ = (float(x) for x in open(timing).read().split()[-3:])
text = open(log).read()
m = re.search(r"test NLL ([-\d.e+]+) nats \(([-\d.e+]+) per dimension.*true entropy ([-\d.e+]+) \+- ([-\d.e+]+), gap ([-\d.e+]+)", text)
rows = list(csv.DictReader(open(metrics)))
def mean(key, rs): return sum(float(r[key]) for r in rs) / len(rs)
print(json.dumps({"bench": "cnf_study", "variant": v, "data": "moons", "epochs": int(epochs),
                  "test_nll": float(m.group(1)), "entropy": float(m.group(3)), "entropy_se": float(m.group(4)),
                  "gap_per_dim": float(m.group(5)),
                  "best_val_nll": min(float(r["val_nll"]) for r in rows),
                  "nfe_forward_mean": mean("nfe_forward", rows), "nfe_backward_mean": mean("nfe_backward", rows),
                  "nfe_forward_last10": mean("nfe_forward", rows[-10:]),
                  "nfe_backward_last10": mean("nfe_backward", rows[-10:]),
                  "solver_error_last10": mean("solver_error", rows[-10:]),
                  "seconds": float(end) - float(start), "cpu_seconds": user + sys_, "threads": 1}))
EOF
  tail -1 "$out"
done

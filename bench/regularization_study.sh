#!/usr/bin/env bash
# The regularisation study on the demo data set (docs/regularization.md): data/demo.toml fitted
# once per variant, one JSON line per variant into bench/results/regularization_study.jsonl:
# NFE per solve over training (mean over the run and over its last 20 epochs, the whole-series
# phase), best validation loss and RMSE, the test split's RMSE and NFE per series when the best
# model is solved with dopri5 at rtol = atol = 1e-6 (the same solve for every variant: the cost
# of integrating what was learned), wall and CPU seconds (/usr/bin/time). nice -n 10, 1 thread.
# Running costs (kinetic, Jacobian) need the CVODES adjoint and per-series solves; the
# solver-error penalty needs dopri5: each variant is compared with the plain run of its engine.
#   bench/regularization_study.sh [BUILD_DIR] [VARIANT ...]
#   variants: dopri5_plain dopri5_error dopri5_error_strong dopri5_steer
#             adams_plain adams_kinetic adams_jacobian      (~1-5 CPU minutes each)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/.."
build="${1:-$root/build}"
shift $(( $# > 1 ? 1 : $# ))
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(dopri5_plain dopri5_error dopri5_error_strong dopri5_steer adams_plain adams_kinetic adams_jacobian)
out="$here/results/regularization_study.jsonl"
mkdir -p "$here/results"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dopri5=(--set solver.method='"dopri5"')
adams=(--set run.batch_mode='"per_series"')
for v in "${variants[@]}"; do
  case "$v" in
    dopri5_plain) args=("${dopri5[@]}") ;;
    dopri5_error) args=("${dopri5[@]}" --set regularization.error_weight=0.01) ;;
    dopri5_error_strong) args=("${dopri5[@]}" --set regularization.error_weight=0.1) ;;
    dopri5_steer) args=("${dopri5[@]}" --set regularization.steer=0.1) ;;
    adams_plain) args=("${adams[@]}") ;;
    adams_kinetic) args=("${adams[@]}" --set regularization.kinetic_weight=0.01) ;;
    adams_jacobian) args=("${adams[@]}" --set regularization.jacobian_weight=0.01) ;;
    *) echo "unknown variant $v" >&2; exit 2 ;;
  esac
  /usr/bin/time -f "%e %U %S" -o "$work/$v.time" nice -n 10 "$build/apps/cvnode" fit --config "$root/data/demo.toml" \
    --out "$work/$v" --no-plots --quiet --set run.threads=1 "${args[@]}" > "$work/$v.log" 2>&1
  nice -n 10 "$build/apps/cvnode" eval "$work/$v/best.h5" --split test --tolerances 1e-6 --threads 1 \
    --set solver.method='"dopri5"' --set solver.atol=1e-6 --json "$work/$v.eval.jsonl" > /dev/null
  python3 - "$v" "$work/$v/metrics.csv" "$work/$v.time" "$work/$v.eval.jsonl" "${args[*]}" >> "$out" <<'PY'
import csv, json, sys
v, metrics, timing, ev, args = sys.argv[1:]
rows = list(csv.DictReader(open(metrics)))
wall, user, sys_ = (float(x) for x in open(timing).read().split()[-3:])
e = json.loads(open(ev).read().splitlines()[-1])
val = [r for r in rows if r["val_loss"] not in ("", "nan", "inf")]
best = min(val, key=lambda r: float(r["val_loss"]))
def mean(key, rs): return sum(float(r[key]) for r in rs) / len(rs)
print(json.dumps({"bench": "regularization_study", "variant": v, "data": "demo", "overrides": args,
                  "epochs": len(rows), "best_epoch": int(best["epoch"]), "best_val_loss": float(best["val_loss"]),
                  "best_val_rmse": float(best["val_rmse"]),
                  "nfe_forward_mean": mean("nfe_forward", rows), "nfe_backward_mean": mean("nfe_backward", rows),
                  "nfe_forward_last20": mean("nfe_forward", rows[-20:]), "nfe_backward_last20": mean("nfe_backward", rows[-20:]),
                  "test_rmse": e.get("rmse_vs_data"), "test_nfe_per_series_dopri5_1e-6": e["nfe_per_series"],
                  "wall_seconds": wall, "cpu_seconds": user + sys_, "threads": 1}))
PY
  tail -1 "$out"
done

#!/usr/bin/env bash
# The regularisation study on the demo data set (docs/regularization.md): data/demo.toml fitted
# once per variant, one JSON line per variant into bench/results/regularization_study.jsonl:
# NFE per solve over training (mean over the run and over its last 20 epochs, the whole-series
# phase), best validation loss and RMSE, the test split's RMSE and NFE per series when the best
# model is solved with dopri5 at rtol = atol = 1e-6 (the same solve for every variant: the cost
# of integrating what was learned), wall and CPU seconds (/usr/bin/time). nice -n 10, 1 thread.
# Running costs (kinetic, Jacobian) need per-series solves (adams or dopri5ps); the solver-error
# penalty needs dopri5: each variant is compared with the plain run of its engine and mode.
#   bench/regularization_study.sh [BUILD_DIR] [VARIANT ...]
# A variant is ENGINE_REGULARISER[:WEIGHT]: ENGINE dopri5 (stacked windows, demo.toml's mode),
# dopri5ps or adams (per-series solves: running costs are refused by stacked solves);
# REGULARISER plain, kinetic, jacobian (default weight 0.01), error (0.01) or steer (b, 0.1).
#   default: dopri5_plain dopri5_error dopri5_error:0.1 dopri5_steer adams_plain adams_kinetic
#            adams_jacobian                                       (~5-40 CPU seconds each)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/.."
build="${1:-$root/build}"
shift $(( $# > 1 ? 1 : $# ))
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(dopri5_plain dopri5_error dopri5_error:0.1 dopri5_steer adams_plain adams_kinetic adams_jacobian)
out="$here/results/regularization_study.jsonl"
mkdir -p "$here/results"
work="$(mktemp -d)"
# EXTRA="--set run.epochs=2" bench/regularization_study.sh build dopri5_plain: a quick check of the script.
read -r -a extra <<< "${EXTRA:-}"
trap 'rm -rf "$work"' EXIT
# demo.toml turns the adjoint's quadrature error control off, which dopri5 refuses: back to the default.
dopri5=(--set solver.method='"dopri5"' --set solver.quadrature_error_control=true)
per_series=(--set run.batch_mode='"per_series"')
for v in "${variants[@]}"; do
  engine="${v%%_*}"
  rest="${v#*_}"
  reg="${rest%%:*}"
  weight=""
  [[ "$rest" == *:* ]] && weight="${rest#*:}"
  case "$engine" in
    dopri5) args=("${dopri5[@]}") ;;
    dopri5ps) args=("${dopri5[@]}" "${per_series[@]}") ;;
    adams) args=("${per_series[@]}") ;;
    *) echo "unknown engine in $v" >&2; exit 2 ;;
  esac
  case "$reg" in
    plain) ;;
    kinetic) args+=(--set regularization.kinetic_weight="${weight:-0.01}") ;;
    jacobian) args+=(--set regularization.jacobian_weight="${weight:-0.01}") ;;
    error) args+=(--set regularization.error_weight="${weight:-0.01}") ;;
    steer) args+=(--set regularization.steer="${weight:-0.1}") ;;
    *) echo "unknown regulariser in $v" >&2; exit 2 ;;
  esac
  /usr/bin/time -f "%e %U %S" -o "$work/${v/:/_}.time" nice -n 10 "$build/apps/cvnode" fit --config "$root/data/demo.toml" \
    --out "$work/${v/:/_}" --no-plots --quiet --set run.threads=1 "${args[@]}" "${extra[@]}" > "$work/${v/:/_}.log" 2>&1 || { cat "$work/${v/:/_}.log" >&2; exit 1; }
  nice -n 10 "$build/apps/cvnode" eval "$work/${v/:/_}/best.h5" --split test --tolerances 1e-6 --threads 1 \
    "${dopri5[@]}" --set solver.atol=1e-6 --json "$work/${v/:/_}.eval.jsonl" > "$work/${v/:/_}.eval.log" 2>&1 \
    || { cat "$work/${v/:/_}.eval.log" >&2; exit 1; }
  python3 - "$v" "$work/${v/:/_}/metrics.csv" "$work/${v/:/_}.time" "$work/${v/:/_}.eval.jsonl" "${args[*]}" >> "$out" <<'PY'
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
  # NFE per epoch of the variant (the figure's data): results/regularization_study/VARIANT.metrics.csv
  mkdir -p "$here/results/regularization_study"
  cp "$work/${v/:/_}/metrics.csv" "$here/results/regularization_study/${v/:/_}.metrics.csv"
  tail -1 "$out"
done

#!/usr/bin/env bash
# The stiff experiment of docs/stiff.md, end to end, with the built `cvnode` program:
#   (a) Robertson's three rate constants from noisy data (data/robertson_rates.toml), timed;
#   BDF against Adams (fixed point and Newton) on the Robertson series over 1e-5 .. 1e5: the same
#       model (the true rates) solved by each, NFE, wall time, error against a BDF reference at
#       rtol 1e-10, and where Adams under a step budget gives up (CVODES flag, time reached);
#   B3 of ../shared/bench as a hybrid (linear decay + network): BDF against Adams gradients;
#   (b) Robertson with reaction 1 replaced by a network (data/robertson_network.toml), timed.
# Machine-readable results in OUT/*.jsonl, the logs next to them, and a summary table
# OUT/summary.md (also printed).
#   scripts/stiff_experiment.sh [BUILD_DIR] [OUT_DIR]      (defaults: build, out/stiff)
#   SKIP_FITS=1 scripts/stiff_experiment.sh ...             the comparisons only (~1 minute)
# Timings depend on the machine and its load; NFE and errors are deterministic.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
out="${2:-out/stiff}"
cvnode="$build/apps/cvnode"
if [ ! -x "$cvnode" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCVNODE_NATIVE=ON >/dev/null  # timed: this machine's kernels
  cmake --build "$build" -j"$(nproc)" --target cvnode_cli
fi
bench="../shared/bench"
mkdir -p "$out"
rm -f "$out"/robertson_methods.jsonl "$out"/b3.jsonl "$out"/fits.jsonl

# Wall time of a fit and the physical rates it prints, as one JSON line in fits.jsonl.
fit() {
  local name="$1"; shift
  local start end
  start=$(date +%s.%N)
  "$cvnode" fit --out "$out/$name" --overwrite --quiet "$@" > "$out/$name.log" 2>&1
  end=$(date +%s.%N)
  python3 - "$name" "$start" "$end" "$out/$name.log" "$out/$name/metrics.csv" "$*" >> "$out/fits.jsonl" <<'EOF'
import csv, json, re, sys
name, start, end, log, metrics, args = sys.argv[1:]
text = open(log).read()
rates = re.search(r"physical parameters of the best model \((\w+)\): (.*)", text)
rmse = re.search(r"RMSE per channel \((?:normalised|data) units\) (.*), overall", text)
rows = list(csv.DictReader(open(metrics)))
print(json.dumps({
    "fit": name, "args": args, "wall_s": round(float(end) - float(start), 2),
    "physics": rates.group(1), "rates": [float(x) for x in rates.group(2).split()],
    "val_rmse_per_species": [float(x) for x in rmse.group(1).split()],
    "epochs": len(rows), "best_val_loss": min(float(r["val_loss"]) for r in rows if r["val_loss"] != "nan"),
    "nfe_forward_per_series_last_epoch": float(rows[-1]["nfe_forward"]),
    "nfe_backward_per_series_last_epoch": float(rows[-1]["nfe_backward"]),
    # metrics.csv: NFE per series per gradient, averaged over the epoch; summed over the epochs
    # (times the training series per epoch for the fit's total).
    "nfe_per_series_summed_over_epochs": sum(float(r["nfe_forward"]) + float(r["nfe_backward"]) for r in rows),
}))
EOF
  tail -1 "$out/fits.jsonl"
}

if [ "${SKIP_FITS:-0}" != 1 ]; then
  echo "== (a) rate recovery: data/robertson_rates.toml, 2 threads"
  fit rates --config data/robertson_rates.toml
fi

# The model for the method comparison: the true rates (0.04, 1e4, 3e7) in a checkpoint of the
# rates config (one epoch with a learning rate too small to move them).
"$cvnode" fit --config data/robertson_rates.toml --out "$out/truth" --quiet --no-plots \
  --set 'physics.initial=[0.04, 1e4, 3e7]' --set optimizer.lr=1e-300 --set schedule.kind=constant \
  --set schedule.min_lr=0 --set run.epochs=1 --set run.threads=1 > "$out/truth.log" 2>&1
ck="$out/truth/best.h5"
ev() { "$cvnode" eval "$ck" --split all --threads 1 --json "$out/robertson_methods.jsonl" "$@"; }
echo "== BDF vs Adams on the 8 Robertson series (true rates, 1 thread)"
{
  echo "## BDF (Newton, dense), the config's max_steps 20000"
  ev --tolerances 1e-4,1e-6,1e-8
  echo "## Adams, Newton iteration (dense), max_steps 1e5 per observation interval"
  ev --tolerances 1e-4,1e-6,1e-8 --set solver.method=adams --set solver.nonlinear_solver=newton --set solver.max_steps=100000
  echo "## Adams, Newton iteration, step budget 2e4 per interval"
  ev --tolerances 1e-6 --set solver.method=adams --set solver.nonlinear_solver=newton --set solver.max_steps=20000
  for budget in 1000 10000 100000; do
    echo "## Adams, fixed-point iteration (the non-stiff default), step budget $budget per interval"
    ev --tolerances 1e-6 --set solver.method=adams --set solver.max_steps=$budget
  done
} > "$out/robertson_methods.log" 2>&1
grep -E "^##|gave up|^ +1\.0e" "$out/robertson_methods.log"

echo "== B3 as Hybrid(LinearDecay(k_diag), Mlp): one gradient against the reference"
b3() { "$cvnode" bench "$bench/B3.h5" --hybrid --threads 1 --json "$@" | tee -a "$out/b3.jsonl"; }
for atol in 1e-6 1e-8 1e-10; do b3 --method bdf --rtol 1e-6 --atol $atol --repeats 5; done
b3 --method adams --rtol 1e-6 --atol 1e-8 --repeats 1
b3 --method adams --rtol 1e-8 --atol 1e-8 --repeats 1

if [ "${SKIP_FITS:-0}" != 1 ]; then
  echo "== (b) reaction 1 as a network: data/robertson_network.toml, 1 thread"
  fit network --config data/robertson_network.toml
  "$cvnode" eval "$out/network/best.h5" --split all --threads 1 --tolerances 1e-6 > "$out/network_eval.log" 2>&1
  sed -n '1,6p' "$out/network_eval.log"
fi

python3 - "$out" <<'EOF' | tee "$out/summary.md"
import json, os, sys
out = sys.argv[1]
def lines(f):
    p = os.path.join(out, f)
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []
print("# Stiff experiment summary\n")
for f in lines("fits.jsonl"):
    print(f"- fit {f['fit']}: {f['physics']} rates {', '.join('%.6g' % r for r in f['rates'])}; validation RMSE per "
          f"species {', '.join('%.3g' % r for r in f['val_rmse_per_species'])}; {f['epochs']} epochs in {f['wall_s']} s; "
          f"NFE per series in the last epoch {f['nfe_forward_per_series_last_epoch']:.0f} forward + "
          f"{f['nfe_backward_per_series_last_epoch']:.0f} backward")
print("\n## Robertson, 8 series, t = 1e-5 .. 1e5, true rates (forward solves, 1 thread)\n")
print("| method | iteration | rtol | step budget / interval | NFE / series | ms (8 series) | max rel. error vs BDF 1e-10 | gave up |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for j in lines("robertson_methods.jsonl"):
    solved = j["series"] - j["failures"]
    gave = "-"
    if j["failures"]:
        ts = sorted(f["t_reached"] for f in j["failed"])
        gave = f"{j['failures']}/{j['series']} series, {j['failed'][0]['flag_name']} at t = {ts[0]:.3g} .. {ts[-1]:.3g}"
    nfe = f"{j['nfe_per_series']:.0f}" if solved else "-"
    err = f"{j['max_rel_err_vs_ref']:.2e}" if solved else "-"
    print(f"| {j['method']} | {j['nonlinear_solver']} | {j['rtol']:g} | {j['max_steps']} | {nfe} | {j['ms']:.0f} | {err} | {gave} |")
print("\n## B3 as a hybrid (linear decay + network), one gradient\n")
print("| method | rtol | atol | grad_rel_err | NFE forward + backward | ms (median) |")
print("| --- | --- | --- | --- | --- | --- |")
for j in lines("b3.jsonl"):
    print(f"| {j['method']} | {j['rtol']:g} | {j['atol']:g} | {j['grad_rel_err']:.2e} | {j['nfe_fwd']} + {j['nfe_bwd']} = "
          f"{j['nfe_fwd'] + j['nfe_bwd']} | {j['ms_median']:.0f} |")
EOF
echo "stiff experiment: results in $out (robertson_methods.jsonl, b3.jsonl, fits.jsonl, summary.md, logs)"

#!/usr/bin/env bash
# Issue 12's pharmacokinetic acceptance run: generated subjects dosed twice, the hybrid model of
# data/pk_hybrid.toml (known elimination, network absorption, doses as events into an unobserved
# depot) and the pure network of data/pk_two_doses.toml (an unobserved depot, no PK knowledge),
# both scored on held-out subjects next to the generator's true model on the same entries
# (`cvnode eval` prints it), and the population ka, ke, V each model implies, by a
# non-compartmental analysis of its prediction for a typical 70 kg subject after one 50 mg dose
# (the same analysis on the true curve gives ka 1.000, ke 0.1000, V 30.00).
#
# Two populations: "pure" (no between-subject variability: every difference from the truth is the
# 10% measurement noise, so the true model's RMSE is the noise floor) and "default" (the
# generator's log-normal random effects on ka, ke, V and the weight's allometry: the true model at
# a subject's weight then knows what no population model can).
# Then the same default population with per-subject random effects (data/pk_hybrid_re.toml,
# data/pk_network_re.toml). Takes ~4 min of CPU (ONLY_RE=1: the random-effects runs alone).
# Usage: [ONLY_RE=1] scripts/pk_acceptance.sh [BUILD_DIR] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
out="${2:-$(mktemp -d /tmp/cvnode_pk_XXXXXX)}"
cvnode="$(pwd)/$build/apps/cvnode"
mkdir -p "$out"
gen() { "$cvnode" data generate pk "$@" > /dev/null; }
gen --subjects 80 --doses 2 --observations 12 --seed 11 --omega-ka 0 --omega-ke 0 --omega-V 0 --weight-cv 0 \
    --out "$out/pure.h5"
gen --subjects 80 --doses 2 --observations 12 --seed 11 --out "$out/default.h5"
# The typical subject: 70 kg, one 50 mg dose at t = 0, its noise-free curve on 300 times up to 24 h.
gen --subjects 1 --doses 1 --observations 300 --t-end 24 --noise 0 --omega-ka 0 --omega-ke 0 --omega-V 0 \
    --weight-cv 0 --seed 1 --out "$out/typical.h5"

# Non-compartmental analysis of "t,C" lines after one dose D at t = 0: ke from the log-linear
# terminal phase (t >= 12 h), AUC by trapezoids plus C_last / ke, V = D / (ke AUC), ka from the time
# of the peak (parabola through the highest sample and its neighbours), tmax = ln(ka/ke)/(ka - ke).
nca() {
  awk -F, -v D=50 -v tz=12 '
  { t[n] = $1; c[n] = $2; n++ }
  END {
    for (i = 0; i < n; i++) if (t[i] >= tz && c[i] > 0) { x = t[i]; y = log(c[i]); sx += x; sy += y; sxx += x*x; sxy += x*y; m++ }
    ke = -(m * sxy - sx * sy) / (m * sxx - sx * sx)
    for (i = 1; i < n; i++) auc += (t[i] - t[i-1]) * (c[i] + c[i-1]) / 2
    auc += c[n-1] / ke
    k = 0; for (i = 1; i < n; i++) if (c[i] > c[k]) k = i
    x0 = t[k-1]; x1 = t[k]; x2 = t[k+1]; y0 = c[k-1]; y1 = c[k]; y2 = c[k+1]
    d = (x0 - x1) * (x0 - x2) * (x1 - x2)
    A = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / d
    B = (x2*x2 * (y0 - y1) + x1*x1 * (y2 - y0) + x0*x0 * (y1 - y2)) / d
    tmax = -B / (2 * A); lo = ke * 1.000001; hi = 1000
    for (it = 0; it < 200; it++) { mid = (lo + hi) / 2; if (log(mid / ke) / (mid - ke) > tmax) lo = mid; else hi = mid }
    printf "ka %.4f ke %.4f V %.3f", (lo + hi) / 2, ke, D / (ke * auc)
  }'
}
echo "truth (70 kg):        $("$cvnode" data export-csv "$out/typical.h5" --out "$out/typical.csv" > /dev/null;
                             awk -F, 'NR > 1 && $5 == 0 { print $2 "," $3 }' "$out/typical.csv" | nca)"

run() {  # run NAME CONFIG DATA [--set ...]
  local name=$1 cfg=$2 data=$3; shift 3
  local start=$SECONDS
  "$cvnode" fit --config "$cfg" --out "$out/$name" --set "data.file=$out/$data.h5" "$@" --quiet > "$out/$name.log" 2>&1
  local secs=$((SECONDS - start))
  local ev; ev=$("$cvnode" eval "$out/$name/best.h5" --split test --tolerances 1e-6 --threads 1)
  "$cvnode" predict "$out/$name/best.h5" --set "data.file=$out/typical.h5" --split all --threads 1 \
      --out "$out/$name.typical.csv" > /dev/null 2>&1
  printf "%-30s held-out RMSE %s mg/L; %s; implied %s; fit %d s\n" "$name ($data):" \
      "$(echo "$ev" | awk '$1 == "conc" { print $2 }')" \
      "$(echo "$ev" | sed -n 's/.*each subject.s own ka, ke, V \([0-9.]*\).*at the subject.s weight \([0-9.]*\);.*/truth: own \1, typical at weight \2/p')" \
      "$(awk -F, 'NR > 1 { print $2 "," $3 }' "$out/$name.typical.csv" | nca)" "$secs"
}
# The mixed-effects models ([random_effects], docs/measurement-data.md section 4b) on the default
# population: each held-out subject gets its empirical-Bayes eta from its own observations
# (`cvnode eval` prints that "individual" RMSE, the typical subject's (eta = 0), and the true
# model evaluated the same way: empirical-Bayes etas under the true population). The population
# ka, ke, V: the same analysis of the TYPICAL subject's prediction (`predict --typical`).
run_re() {  # run_re NAME CONFIG DATA [--set ...]
  local name=$1 cfg=$2 data=$3; shift 3
  local start=$SECONDS
  "$cvnode" fit --config "$cfg" --out "$out/$name" --set "data.file=$out/$data.h5" "$@" --quiet > "$out/$name.log" 2>&1
  local secs=$((SECONDS - start))
  "$cvnode" eval "$out/$name/best.h5" --split test --tolerances 1e-6 --threads 1 > "$out/$name.eval"
  "$cvnode" predict "$out/$name/best.h5" --set "data.file=$out/typical.h5" --split all --threads 1 --typical \
      --out "$out/$name.typical.csv" > /dev/null 2>&1
  printf "%-30s held-out RMSE individual (EB) %s, typical %s mg/L; true model EB at weight %s, own %s; %s; implied %s; fit %d s\n" \
      "$name ($data):" \
      "$(awk '$1 == "conc" { print $2; exit }' "$out/$name.eval")" \
      "$(sed -n 's/.*the typical subject (eta = 0): RMSE conc \([0-9.]*\).*/\1/p' "$out/$name.eval")" \
      "$(sed -n 's/.*mixed-effects model.*with the weight \([0-9.]*\),.*/\1/p' "$out/$name.eval")" \
      "$(sed -n 's/.*each subject.s own ka, ke, V \([0-9.]*\).*/\1/p' "$out/$name.eval")" \
      "$(sed -n 's/.*ratios: \(.*\)/\1/p' "$out/$name.eval")" \
      "$(awk -F, 'NR > 1 { print $2 "," $3 }' "$out/$name.typical.csv" | nca)" "$secs"
  "$cvnode" plot "$out/$name" > /dev/null 2>&1 || true  # trajectories.png: validation subjects, individual fits
}
if [ "${ONLY_RE:-0}" != 1 ]; then
  for data in pure default; do
    run "hybrid_$data" data/pk_hybrid.toml "$data"
    run "network_$data" data/pk_two_doses.toml "$data" --set 'data.ignore=["WT"]'
    if [ "$data" = default ]; then run "network_wt_$data" data/pk_two_doses.toml "$data"; fi
  done
fi
run_re hybrid_re_default data/pk_hybrid_re.toml default
run_re network_re_default data/pk_network_re.toml default
echo "runs in $out"

#!/usr/bin/env bash
# The latent ODE experiment of Chen et al. (2018), section 5.1 and Table 2: bidirectional spirals
# (1000 spirals, 100 equally spaced window points, Gaussian noise 0.3) observed at 30, 50 and 100
# irregular points of the window; a latent ODE and the RNN baseline trained on each; the
# predictive (extrapolation) RMSE on the test spirals over the TARGETS points after the window
# (the clean curve), the 90% band's coverage of noisy targets of 200 spirals never seen (for the
# latent ODE with the encoder's q and with the importance posterior), and for
# the latent ODE the figures of four test spirals. Prints one JSON line per (model, observed
# points) and keeps every run under $OUT. Training is timed by /usr/bin/time: wall and CPU
# (user + system) seconds, with the load average before and after (on a shared machine the wall
# time says little; the CPU time is the cost of the row).
#
#   nice -n 10 scripts/latent_spiral.sh                  # the full budget (EPOCHS=300 per row)
#   EPOCHS=60 OBSERVED="30" scripts/latent_spiral.sh     # a short check
#
# Environment: BUILD (build folder, default build), OUT (default latent_spiral_runs), EPOCHS,
# OBSERVED (default "30 50 100"), MODELS (default "latent_ode rnn_baseline"), TARGETS (points
# after the window, default 50), THREADS (default 2), SEED (data seed, default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
OUT=${OUT:-latent_spiral_runs}
EPOCHS=${EPOCHS:-300}
OBSERVED=${OBSERVED:-"30 50 100"}
MODELS=${MODELS:-"latent_ode rnn_baseline"}
TARGETS=${TARGETS:-50}
THREADS=${THREADS:-2}
SEED=${SEED:-1}
CVNODE="$BUILD/apps/cvnode"
[ -x "$CVNODE" ] || { echo "latent_spiral.sh: $CVNODE not found (build first: cmake --build $BUILD)" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

for n in $OBSERVED; do
  data="$OUT/spirals_$n.h5"
  # The same seed: the same spirals, noise and targets for every n; only the observed subset differs.
  "$CVNODE" data spirals --spirals 1000 --observed "$n" --extrapolate "$TARGETS" --seed "$SEED" -o "$data" >&2
  # 200 spirals never seen (another seed): clean targets for the RMSE, noisy ones (the same
  # spirals and window noise) for the coverage of new measurements.
  heldout="$OUT/heldout_$n.h5"
  "$CVNODE" data spirals --spirals 200 --observed "$n" --extrapolate "$TARGETS" --seed $((SEED + 1000)) \
    --noisy-targets -o "$heldout" >&2
  heldout_clean="$OUT/heldout_clean_$n.h5"
  "$CVNODE" data spirals --spirals 200 --observed "$n" --extrapolate "$TARGETS" --seed $((SEED + 1000)) \
    -o "$heldout_clean" >&2
  for kind in $MODELS; do
    run="$OUT/${kind}_$n"
    load0=$(cut -d' ' -f1 /proc/loadavg)
    mkdir -p "$run"
    /usr/bin/time -f "%e %U %S" -o "$run/train_time.txt" \
      "$CVNODE" latent train -c data/latent_spiral.toml --set "data.file=\"$data\"" \
      --set "model.kind=\"$kind\"" --set "run.epochs=$EPOCHS" --set "run.threads=$THREADS" -q -o "$run" >&2
    load1=$(cut -d' ' -f1 /proc/loadavg)
    scores=$("$CVNODE" latent eval "$run/best.h5" --split test --samples 100 --threads "$THREADS")
    # Calibration on spirals the model never saw, with NOISY targets (new measurements): the
    # share of them inside the 90% predictive band.
    held=$("$CVNODE" latent eval "$run/best.h5" --data "$heldout" --samples 100 --threads "$THREADS")
    held_clean=$("$CVNODE" latent eval "$run/best.h5" --data "$heldout_clean" --samples 100 --threads "$THREADS")
    held_imp=null
    if [ "$kind" = latent_ode ]; then
      # The same with the model's own posterior (importance resampling) instead of the encoder's q.
      held_imp=$("$CVNODE" latent eval "$run/best.h5" --data "$heldout" --samples 100 --posterior importance \
        --threads "$THREADS")
    fi
    if [ "$kind" = latent_ode ]; then
      # The Figure 7 analogue: test spirals, posterior samples, bands and latent trajectories.
      "$CVNODE" latent predict "$run/best.h5" --split test --max-series 4 --grid 200 --samples 50 \
        --out "$run/predict.csv" --plot "$run/figures" 2>/dev/null
    fi
    python3 - "$kind" "$n" "$EPOCHS" "$(cat "$run/train_time.txt")" "$load0 $load1" "$TARGETS" "$scores" "$held" \
      "$held_clean" "$held_imp" <<'EOF'
import json, sys
kind, n, epochs, times, loads, targets, scores, held, held_clean, held_imp = sys.argv[1:]
s, h, hc, hi = json.loads(scores), json.loads(held), json.loads(held_clean), json.loads(held_imp)
wall, user, system = (float(x) for x in times.split())
print(json.dumps({"model": kind, "observed": int(n), "targets": int(targets), "epochs": int(epochs),
                  "train_seconds": round(wall), "train_cpu_seconds": round(user + system),
                  "load_average": [float(x) for x in loads.split()],
                  "extrapolation_rmse": s["extrapolation"]["rmse"],
                  "interpolation_rmse": s["interpolation"]["rmse"],
                  "extrapolation_coverage_90_clean": s["extrapolation"]["coverage"],
                  "interpolation_coverage_90": s["interpolation"]["coverage"], "test_series": s["series"],
                  "heldout_noisy_extrapolation_coverage_90": h["extrapolation"]["coverage"],
                  "heldout_noisy_extrapolation_coverage_90_importance": hi["extrapolation"]["coverage"] if hi else None,
                  "heldout_extrapolation_rmse": hc["extrapolation"]["rmse"], "heldout_series": h["series"]}))
EOF
  done
done

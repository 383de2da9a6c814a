#!/usr/bin/env bash
# The regularisation study on the ODE-Net classifier (docs/regularization.md): one
# `cvnode classify train` per variant on a Fashion-MNIST subset (the Debian package's images),
# the block through dopri5 (the engine that takes every regulariser), one thread, nice -n 10.
# Per variant: one JSON line (held-out accuracy, NFE per step in the last epoch, CPU seconds) into
# bench/results/classifier_regularization.jsonl and its epochs.csv / steps.csv (NFE of every
# step: the figure) under OUT (default bench/results/classifier_regularization/).
#   bench/classifier_regularization.sh [BUILD_DIR] [VARIANT ...]
# A variant is plain, kinetic[:W], jacobian[:W] (default 0.01), steer[:B] (0.25), error[:W] (0.01).
# TRAIN (4000) training and TEST (1000) held-out images, EPOCHS (2), TOL (1e-3) set the size;
# ACT (relu, the paper's) the block's activation: softplus for a smooth block (the differenced
# Jacobian norm's gradient is dominated by ReLU kinks, docs/regularization.md).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../build}"
shift $(( $# > 1 ? 1 : $# ))
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(plain kinetic jacobian steer error)
act="${ACT:-relu}"
suffix=""
[ "$act" = relu ] || suffix="_$act"
out="${OUT:-$here/results/classifier_regularization$suffix}"
mkdir -p "$out"
for v in "${variants[@]}"; do
  reg="${v%%:*}"
  weight=""
  [[ "$v" == *:* ]] && weight="${v#*:}"
  case "$reg" in
    plain) args=() ;;
    kinetic) args=(--kinetic-weight "${weight:-0.01}") ;;
    jacobian) args=(--jacobian-weight "${weight:-0.01}") ;;
    steer) args=(--steer "${weight:-0.25}") ;;
    error) args=(--error-weight "${weight:-0.01}") ;;
    *) echo "unknown variant $v" >&2; exit 2 ;;
  esac
  dir="$out/${v/:/_}"
  /usr/bin/time -f "%e %U %S" -o "$dir.time" nice -n 10 "$build/apps/cvnode" classify train --model odenet \
    --method dopri5 --activation "$act" --tol "${TOL:-1e-3}" --threads 1 --epochs "${EPOCHS:-2}" --schedule constant \
    --train-images "${TRAIN:-4000}" --test-images "${TEST:-1000}" --batch 128 --seed 1 --json --out "$dir" \
    "${args[@]}" > "$dir.json" 2> "$dir.log" || { cat "$dir.log" >&2; exit 1; }
  python3 - "$v" "$dir.json" "$dir.time" "${args[*]:-}" "$act" >> "$here/results/classifier_regularization$suffix.jsonl" <<'PY'
import json, sys
v, res, timing, args, act = sys.argv[1:]
j = json.loads(open(res).read().splitlines()[-1])
wall, user, sys_ = (float(x) for x in open(timing).read().split()[-3:])
j.update({"bench": "classifier_regularization", "variant": v, "activation": act, "flags": args, "wall_seconds": wall,
          "cpu_seconds": user + sys_})
print(json.dumps(j))
PY
  tail -1 "$here/results/classifier_regularization$suffix.jsonl"
done

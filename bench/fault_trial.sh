#!/usr/bin/env bash
# Issue 19's fault trial: every command that writes files (data generate, import-csv, export-csv,
# split, spirals; predict to CSV and HDF5; eval --json; fit, fit --resume; plot; latent train,
# cnf train, classify train) on a 16 MB tmpfs with a filler file leaving FILLS levels of free
# space, from nothing to a little more than a clean run writes, for each given cvnode program.
# Before each run the command's previous outputs are put in place; each run is classified (clean
# error, success, crash, silent result, data lost, other error) by the a_real_full_disk_on_a_
# small_tmpfs case of test_fault_injection (BUILD_DIR's), which here counts instead of asserting.
# Needs root (it mounts a tmpfs, and unmounts it). One JSON line per program and command in
# bench/results/fault_trial.jsonl, and the before/after table (markdown) on stdout.
#   bench/fault_trial.sh BUILD_DIR [LABEL=CVNODE_PROGRAM ...]   (FILLS=60 by default;
#   CVNODE_FAULT_WRITERS="fit,plot" for some commands only, OUT=FILE for the JSON lines)
# e.g. nice -n 10 bench/fault_trial.sh build before=/path/to/old/build/apps/cvnode after=build/apps/cvnode
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$(cd "${1:?usage: bench/fault_trial.sh BUILD_DIR [LABEL=CVNODE_PROGRAM ...]}" && pwd)"
shift
[ $# -gt 0 ] || set -- "after=$build/apps/cvnode"
fills="${FILLS:-60}"
out="${OUT:-$here/results/fault_trial.jsonl}"  # OUT=FILE: elsewhere (each run starts it afresh)
mkdir -p "$here/results"
: > "$out"
for spec in "$@"; do
  label="${spec%%=*}"
  program="$(cd "$(dirname "${spec#*=}")" && pwd)/$(basename "${spec#*=}")"
  raw="$(mktemp)"
  echo "fault_trial: $label ($program), $fills fill levels per command" >&2
  CVNODE_CLI="$program" CVNODE_FAULT_TRIAL="$raw" CVNODE_FAULT_FILLS="$fills" \
    "$build/test/test_fault_injection" --run_test=a_real_full_disk_on_a_small_tmpfs --log_level=nothing \
    >/dev/null 2>&1 || true
  sed "s/^{/{\"label\": \"$label\", /" "$raw" >> "$out"
  rm -f "$raw"
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
labels = list(dict.fromkeys(r["label"] for r in rows))
keys = ["fill_levels", "clean_errors", "successes", "crashes", "silent", "data_lost", "other_errors"]
heads = ["cases tried", "clean errors", "successes", "crashes", "silent results", "data lost", "other errors"]
print("| program | command | " + " | ".join(heads) + " |")
print("|---|---|" + "---|" * len(keys))
for label in labels:
    total = {k: 0 for k in keys}
    for r in rows:
        if r["label"] != label:
            continue
        print(f"| {label} | {r['command']} | " + " | ".join(str(r[k]) for k in keys) + " |")
        for k in keys:
            total[k] += r[k]
    print(f"| {label} | **all** | " + " | ".join(f"**{total[k]}**" for k in keys) + " |")
PY

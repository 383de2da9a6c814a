#!/usr/bin/env bash
# What the exact reduction (ExactSum) costs on the wide benchmark B2 (16-256-256-16 tanh,
# P = 74,256 parameters, 128 series): `cvnode bench B2.h5` with dopri5 (backprop) and adams
# (adjoint), per-series (128 units: 128 exact adds of P terms per gradient) and stacked (1 unit of
# 128 series, or 2 of 64 with 2 threads), threads 1 and 2, for several builds given as NAME=BUILD:
#   bench/cluster/exact_sum.sh [ROUNDS] exact=build plain=build-plain [old=build-old]
# plain = bench/cluster/plain_sums.py's variant (plain double sums), old = the scalar ExactSum
# before vectorisation. Variants are interleaved within every configuration and round (the
# machine's speed drifts over minutes); each line of bench/results/exact_sum.jsonl is one run
# (cvnode bench's JSON + variant, round, the process's CPU seconds and the load average); the
# summary takes the minimum over rounds of ms_min.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rounds="${1:-3}"
shift || true
[ $# -gt 0 ] || { echo "usage: $0 [ROUNDS] NAME=BUILD ..." >&2; exit 2; }
b2="$here/../../../shared/bench/B2.h5"
out="$here/../results/exact_sum.jsonl"
configs=(
  "--method dopri5 --rtol 1e-4 --atol 1e-6 --mode per-series --threads 1 --repeats 5"
  "--method dopri5 --rtol 1e-4 --atol 1e-6 --mode per-series --threads 2 --repeats 5"
  "--method dopri5 --rtol 1e-4 --atol 1e-6 --mode stacked --stack-size 128 --threads 1 --repeats 5"
  "--method dopri5 --rtol 1e-4 --atol 1e-6 --mode stacked --stack-size 64 --threads 2 --repeats 5"
  "--method adams --rtol 1e-6 --mode per-series --threads 1 --repeats 2"
  "--method adams --rtol 1e-6 --mode per-series --threads 2 --repeats 2"
  "--method adams --rtol 1e-6 --mode stacked --stack-size 128 --threads 1 --repeats 3"
  "--method adams --rtol 1e-6 --mode stacked --stack-size 64 --threads 2 --repeats 3"
)
for round in $(seq 1 "$rounds"); do
  for cfg in "${configs[@]}"; do
    # Alternate the variants' order between rounds.
    variants=("$@")
    if [ $((round % 2)) -eq 0 ]; then
      for ((i = 0, j = ${#variants[@]} - 1; i < j; i++, j--)); do
        t="${variants[i]}"; variants[i]="${variants[j]}"; variants[j]="$t"
      done
    fi
    for v in "${variants[@]}"; do
      name="${v%%=*}"; build="${v#*=}"
      load="$(cut -d' ' -f1 /proc/loadavg)"
      cpu_file="$(mktemp)"
      line="$(/usr/bin/time -f "%U %S" -o "$cpu_file" "$build/apps/cvnode" bench "$b2" $cfg --json 2>/dev/null)"
      cpu="$(awk '{print $1 + $2}' "$cpu_file")"
      rm -f "$cpu_file"
      python3 -S -c 'import json, sys
d = json.loads(sys.argv[1])
d.update(variant=sys.argv[2], round=int(sys.argv[3]), config=sys.argv[4], cpu_s=float(sys.argv[5]), load=float(sys.argv[6]))
print(json.dumps(d, sort_keys=True))' "$line" "$name" "$round" "$cfg" "$cpu" "$load" | tee -a "$out" |
        python3 -S -c 'import json, sys
d = json.loads(sys.stdin.read())
print("%-6s r%d %-80s ms_min %9.2f cpu %6.2f s load %s" % (d["variant"], d["round"], d["config"], d["ms_min"], d["cpu_s"], d["load"]), file=sys.stderr)'
    done
  done
done
python3 -S - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
best = {}
for r in rows:
    k = (r["config"], r["variant"])
    best[k] = min(best.get(k, float("inf")), r["ms_min"])
configs = sorted({c for c, _ in best})
variants = sorted({v for _, v in best})
print("min over rounds of ms_min per gradient; overhead relative to plain")
for c in configs:
    base = best.get((c, "plain"))
    cells = []
    for v in variants:
        if (c, v) in best:
            ms = best[(c, v)]
            rel = f" ({100 * (ms / base - 1):+.1f}%)" if base and v != "plain" else ""
            cells.append(f"{v} {ms:.1f}{rel}")
    print(f"{c}: " + ", ".join(cells))
PY

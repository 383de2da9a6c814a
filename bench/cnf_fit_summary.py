#!/usr/bin/env python3
"""One JSON line summarising a flow's fit, for the bench/cnf_*.sh scripts.

  cnf_fit_summary.py LOG METRICS_CSV TIME_FILE POINTS_CSV [key=value ...]

LOG is the output of `cvnode fit` (its "test NLL ... true entropy ... gap" line), METRICS_CSV the
run's metrics.csv, TIME_FILE the "%e %U %S" of /usr/bin/time, POINTS_CSV the per-point log p of
`cvnode cnf density --out` on the test split (for the test NLL's standard error). The leading
key=value pairs (values read as JSON where they parse, else as strings) come first in the line.
"""
import csv
import json
import math
import re
import sys

log, metrics, timing, points = sys.argv[1:5]
line = {}
for kv in sys.argv[5:]:
    key, _, value = kv.partition("=")
    try:
        line[key] = json.loads(value)
    except ValueError:
        line[key] = value
m = re.search(r"test NLL ([-\d.e+]+) nats \(([-\d.e+]+) per dimension.*true entropy ([-\d.e+]+) \+- ([-\d.e+]+), "
              r"gap ([-\d.e+]+)", open(log).read())
rows = list(csv.DictReader(open(metrics)))
wall, user, sys_ = (float(x) for x in open(timing).read().split()[-3:])
logp = [float(r["log_density"]) for r in csv.DictReader(open(points))]
n = len(logp)
mean = sum(logp) / n
se = math.sqrt(sum((x - mean) ** 2 for x in logp) / (n - 1) / n)
dim = round(float(m.group(1)) / float(m.group(2)))


def mean_of(key, rs):
    return sum(float(r[key]) for r in rs) / len(rs)


line.update({"epochs": len(rows), "test_nll": float(m.group(1)), "test_nll_per_dim": float(m.group(2)),
             "test_points": n, "test_nll_se": round(se, 5), "test_nll_se_per_dim": round(se / dim, 5),
             "entropy": float(m.group(3)), "entropy_se": float(m.group(4)), "gap_per_dim": float(m.group(5)),
             "best_val_nll": min(float(r["val_nll"]) for r in rows if r["val_nll"] not in ("", "nan")),
             "nfe_forward_last10": mean_of("nfe_forward", rows[-10:]),
             "nfe_backward_last10": mean_of("nfe_backward", rows[-10:]),
             "wall_seconds": wall, "cpu_seconds": round(user + sys_, 2), "threads": 1})
print(json.dumps(line))

"""Work-precision plot of bench/run.sh's JSON lines with gnuplot: one panel per problem, one
curve per method and batch mode, gradient error against milliseconds per gradient."""
import json
import subprocess
import sys
import tempfile
from collections import defaultdict

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
# The adjoint form goes into the label only where a problem was run in both forms.
forms = defaultdict(set)
backprop_rtol100 = defaultdict(lambda: True)  # every dopri5 row of the problem at atol = rtol/100
for r in rows:
    if r.get("gradient") == "backprop":
        backprop_rtol100[r["problem"]] &= abs(r["atol"] - r["rtol"] / 100) < 1e-3 * r["atol"]
    else:
        forms[r["problem"]].add(r.get("adjoint_form", ""))
curves = defaultdict(list)
for r in rows:
    if r.get("grad_rel_err") is None:
        continue
    if r["atol"] == r["rtol"]:
        atol = "atol=rtol"
    elif r.get("gradient") == "backprop" and backprop_rtol100[r["problem"]]:
        atol = "atol=rtol/100"
    else:
        atol = f'atol={r["atol"]:g}'
    form = r.get("adjoint_form", "") if len(forms[r["problem"]]) > 1 else ""
    adj = r.get("adjoint_atol", "scaled")
    if adj == "atol":  # the adjoint's tolerance taken as atol, not scaled (the default)
        adj = "adjoint-atol=atol"
    elif adj == "scaled" or r.get("adjoint_form") == "transition":
        adj = ""
    else:  # given relative to rtol in bench/run.sh: label by the ratio, one curve per ratio
        adj = f'adjoint-atol=rtol*{adj / r["rtol"]:.0e}'
    if r.get("gradient") == "backprop":  # method dopri5: no adjoint, no form
        form, adj = "backprop", ""
    label = f'{r["method"]} {r.get("linear_solver", "dense") if r["method"] == "bdf" else ""} {r.get("mode", "per-series")} {atol} {form} {adj}'
    # bench/run.sh runs every row twice (rounds): the faster one counts, errors are the same.
    pts = curves[(r["problem"], " ".join(label.split()))]
    same = [i for i, p in enumerate(pts) if p[0] == -r["rtol"]]
    if same:
        i = same[0]
        pts[i] = (pts[i][0], min(pts[i][1], r["ms_min"]), pts[i][2])
    else:
        pts.append((-r["rtol"], r["ms_min"], r["grad_rel_err"]))
# The peer (torchdiffeq, float64, one thread, dopri5): times from ../shared/bench/README.md and
# issue 6; backprop errors where they are not stated from bench/peer's reimplementation at
# atol = rtol / 100 (which reproduces the published B1 backprop error, 1.3e-5).
PEER = {"B1": [(60.0, 3e-7, "torchdiffeq adjoint"), (11.0, 1.3e-5, "torchdiffeq backprop")],
        "B1L": [(1200.0, 1.6e-5, "torchdiffeq adjoint"), (250.0, 2.0e-5, "torchdiffeq backprop rtol 1e-5"),
                (540.0, 1.9e-7, "torchdiffeq backprop rtol 1e-7")],
        "B2": [(9400.0, 4e-8, "torchdiffeq adjoint"), (480.0, 9.0e-7, "torchdiffeq backprop rtol 1e-6")]}
# bench/peer's reimplementation timed on this machine (its BLAS recorded per line): the same
# errors, a lower per-step overhead than torchdiffeq, and on OpenBLAS ~10x the published B2 speed.
REIMPL = defaultdict(list)
try:
    for line in open(sys.argv[1].replace("results.jsonl", "peer.jsonl")):
        r = json.loads(line)
        if (r["method"] == "torch-dopri5-backprop" and abs(r["atol"] - r["rtol"] / 100) < 1e-3 * r["atol"]
                and r["rtol"] > 1e-10):
            REIMPL[r["problem"]].append((r["ms_min"], r["grad_rel_err"], r.get("blas", "")))
except FileNotFoundError:
    pass
problems = sorted({p for p, _ in curves})
tmp = tempfile.mkdtemp()
script = [
    "set terminal pngcairo size 1400,1000 font ',11'",
    f"set output '{sys.argv[2]}'",
    f"set multiplot layout 2,{(len(problems) + 1) // 2} title 'cvnode work-precision (../shared/bench)'",
    "set logscale xy", "set format y '10^{%T}'", "set xlabel 'ms per gradient (min)'",
    "set ylabel 'gradient relative error'", "set grid",
]
# Where each panel's legend covers no data point, with room made on B1's right.
KEY = {"B1": "top right", "B2": "top right", "B1L": "top right", "B3": "center right"}
XRANGE = {"B1": "[0.05:5000]", "B1L": "[0.05:20000]"}
YRANGE = {"B1L": "[1e-10:1]"}
for p in problems:
    script.append(f"set key {KEY.get(p, 'bottom right')} font ',9'")
    script.append(f"set xrange {XRANGE.get(p, '[*:*]')}")
    script.append(f"set yrange {YRANGE.get(p, '[*:*]')}")
    plots = []
    for (prob, label), pts in sorted(curves.items()):
        if prob != p:
            continue
        path = f"{tmp}/{p}_{label.replace(' ', '_').replace('/', '_')}.dat"
        with open(path, "w") as f:
            for _, x, y in sorted(pts):  # along the curve: loosest rtol first
                f.write(f"{x} {max(y, 1e-16)}\n")
        plots.append(f"'{path}' using 1:2 with linespoints title '{label}'")
    for i, (ms, err, label) in enumerate(PEER.get(p, [])):
        path = f"{tmp}/{p}_peer{i}.dat"
        with open(path, "w") as f:
            f.write(f"{ms} {err}\n")
        plots.append(f"'{path}' using 1:2 with points pt 7 ps 2 title '{label}'")
    pts = REIMPL.get(p, [])
    if pts:
        path = f"{tmp}/{p}_reimpl.dat"
        with open(path, "w") as f:
            for ms, err, _ in pts:
                f.write(f"{ms} {err}\n")
        blas = "OpenBLAS" if "openblas" in pts[0][2] else "reference BLAS"
        plots.append(f"'{path}' using 1:2 with points pt 6 ps 1.5 title 'bench/peer dopri5 backprop ({blas})'")
    script += [f"set title '{p}'", "plot " + ", ".join(plots)]
script.append("unset multiplot")
subprocess.run(["gnuplot"], input="\n".join(script), text=True, check=True)

#!/usr/bin/env python3
"""The cost of calling cvnode from Python: a B1 gradient (../shared/bench/B1.h5) as a training loop
would call it from Python (theta as a NumPy array, loss and dLoss/dtheta read back as NumPy),
against the same BatchSolver call timed inside C++ in the same process, and against
`cvnode bench` (the C++ program) on the same problem and options. One JSON line per
configuration on stdout (and appended to --out).

    python3 bench/python_overhead.py [--build build] [--rounds 5] [--calls 400] [--out FILE]

Timing on a shared 2-core machine is noisy: each figure is the minimum over rounds of the median
per-call time within a round (and the overall per-call minimum is reported too); the three
measurements are interleaved round by round so that a slow phase of the machine hits them alike.
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

here = pathlib.Path(__file__).resolve().parent
parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--build", default=str(here.parent / "build"))
parser.add_argument("--shared", default=str(here.parent.parent / "shared"))
parser.add_argument("--rounds", type=int, default=5)
parser.add_argument("--calls", type=int, default=400, help="gradients per round and measurement")
parser.add_argument("--out", default=None, help="also append the JSON lines to this file")
args = parser.parse_args()

sys.path.insert(0, str(pathlib.Path(args.build) / "python"))
import numpy as np  # noqa: E402

import cvnode  # noqa: E402

problem_path = pathlib.Path(args.shared) / "bench" / "B1.h5"
problem = cvnode.BenchProblem.read(problem_path)
cli = pathlib.Path(args.build) / "apps" / "cvnode"

# The options of `cvnode bench --rtol R` (atol = rtol), per series, one thread.
configs = [
    {"method": "adams", "rtol": 1e-5},
    {"method": "adams", "rtol": 1e-7},
    {"method": "dopri5", "rtol": 1e-5},
]


def python_call_seconds(solver, theta, batch, calls):
    out = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter()
        g = solver.gradient(theta, batch)
        value, grad = g.loss, g.theta  # what an optimizer step reads
        out[i] = time.perf_counter() - start
    assert np.isfinite(value) and grad.shape == theta.shape
    return out


def cli_ms(cfg, calls):
    cmd = [str(cli), "bench", str(problem_path), "--json", "--repeats", str(calls), "--method", cfg["method"],
           "--rtol", repr(cfg["rtol"]), "--atol", repr(cfg["rtol"])]
    line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    j = json.loads(line)
    return j["ms_min"], j["ms_median"], j["grad_rel_err"]


for cfg in configs:
    solver = cvnode.BatchSolver(problem.dynamics(), threads=1, mode="per_series", method=cfg["method"],
                                rtol=cfg["rtol"], atol=cfg["rtol"])
    theta, batch = problem.theta, problem.problem()  # built once, as a training loop would
    g = solver.gradient(theta, batch)
    err = float(np.linalg.norm(g.theta - problem.ref_grad) / np.linalg.norm(problem.ref_grad))
    py_med, cpp_med, py_min, cpp_min, cli_min, cli_med = [], [], [], [], [], []
    for _ in range(args.rounds):
        t_py = python_call_seconds(solver, theta, batch, args.calls)
        t_cpp = solver._time_gradient(theta, batch, args.calls)
        py_med.append(statistics.median(t_py) * 1e3)
        cpp_med.append(statistics.median(t_cpp) * 1e3)
        py_min.append(t_py.min() * 1e3)
        cpp_min.append(t_cpp.min() * 1e3)
        if cli.exists():
            a, b, cli_err = cli_ms(cfg, args.calls)
            cli_min.append(a)
            cli_med.append(b)
    row = {
        "benchmark": "python_overhead", "problem": problem.name, "method": cfg["method"], "rtol": cfg["rtol"],
        "atol": cfg["rtol"], "mode": "per_series", "threads": 1, "rounds": args.rounds, "calls": args.calls,
        "grad_rel_err": err,
        "python_ms": min(py_med), "cpp_ms": min(cpp_med),
        "python_ms_min": min(py_min), "cpp_ms_min": min(cpp_min),
        "overhead_us": (min(py_med) - min(cpp_med)) * 1e3,
        "ratio": min(py_med) / min(cpp_med),
        "ratio_min": min(py_min) / min(cpp_min),
    }
    if cli_min:
        row.update({"cli_ms_median": min(cli_med), "cli_ms_min": min(cli_min), "ratio_vs_cli_min": min(py_min) / min(cli_min),
                    "cli_grad_rel_err": cli_err})
    line = json.dumps(row)
    print(line, flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")

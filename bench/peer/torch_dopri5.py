#!/usr/bin/env python3
"""Peer gradient error: an independent PyTorch reimplementation of torchdiffeq's dopri5.

What this file is for
    The peer figures for cvnode's benchmarks (torchdiffeq `odeint(method='dopri5')`,
    backpropagating through the solver, float64, one torch thread) give its time per gradient
    but not always its gradient error. This script measures that error: it re-implements the
    algorithm torchdiffeq's dopri5 uses with its default options and backpropagates through it,
    then compares the gradient against the problem file's `ref_grad`.

It is an independent reimplementation (written from the algorithm's description, no
torchdiffeq code), used only to measure the peer's gradient error where the peer's own figures
leave it out. It does not import or need torchdiffeq. The right-hand side is the problem file's
tanh MLP, f(z) = MLP(z), minus k_diag * z (elementwise) when the file has a `k_diag` (B3); the
losses are l1_mean, mse_mean and half_sse. The algorithm it reproduces:
  - Dormand-Prince 5(4) with FSAL, the whole batched state (B, n) stepped as one tensor;
    the embedded error weights are torchdiffeq's (b - b_hat with
    b_hat = [1951/21600, 0, 22642/50085, 451/720, -12231/42400, 649/6300, 1/60]).
  - error ratio = RMS over every element of err / (atol + rtol * max(|y0|, |y1|)); a step is
    accepted when the ratio is <= 1.
  - next step = dt * min(10, max(0.9 / ratio^(1/5), 0.2)), the 0.2 floor replaced by 1 after an
    accepted step, dt * 10 when the ratio is exactly 0.
  - first step from Hairer-Norsett-Wanner's starting-step heuristic (one extra function
    evaluation) with order 4, i.e. exponent 1/5, norms RMS over the whole state.
  - outputs at the observation times from the quartic dense output through y0, y1, the
    Shampine midpoint value and the two end slopes of the step that covers the time; the
    solver never steps to an observation time.
  - autograd: the stages, states and interpolants carry the graph; the step sizes do not (the
    first step, error ratio and step-size update are computed without gradient, as in
    current torchdiffeq). `--dt-grad` keeps them in the graph, as some older torchdiffeq
    releases did, for comparison.

Output: one JSON line per configuration (problem, method, rtol, atol, threads, runs, ms_median,
ms_min, nfe, loss, grad_rel_err, ...). Usage:
    /usr/bin/python3 torch_dopri5.py --problem B1.h5 --rtol 1e-5 --atol 1e-5 1e-7 --repeats 20
(--rtol and --atol take lists; every pair is run; an atol of 0 or less means atol = rtol.)
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
DT = torch.float64

# ---- Dormand-Prince 5(4) coefficients ----
C = [0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0]
A = [
    [],
    [1 / 5],
    [3 / 40, 9 / 40],
    [44 / 45, -56 / 15, 32 / 9],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
    [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
]
B_SOL = [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0]
B_HAT = [1951 / 21600, 0.0, 22642 / 50085, 451 / 720, -12231 / 42400, 649 / 6300, 1 / 60]
B_ERR = [b - bh for b, bh in zip(B_SOL, B_HAT)]
# y(t0 + dt/2) = y0 + dt * sum_i B_MID[i] k_i (Shampine's continuous extension at theta = 1/2)
B_MID = [x / 2 for x in (6025192743 / 30085553152, 0.0, 51252292925 / 65400821598,
                         -2691868925 / 45128329728, 187940372067 / 1594534317056,
                         -1776094331 / 19743644256, 11237099 / 235043384)]
SAFETY, IFACTOR, DFACTOR, ORDER = 0.9, 10.0, 0.2, 5


def rms(x):
    return x.pow(2).mean().sqrt()


def comb(y0, dt, coeffs, ks):
    """y0 + dt * sum_i coeffs[i] * ks[i] (zero coefficients skipped)."""
    acc = None
    for c, k in zip(coeffs, ks):
        if c != 0.0:
            acc = c * k if acc is None else acc + c * k
    return y0 + dt * acc


class Counted:
    def __init__(self, f):
        self.f, self.n = f, 0

    def __call__(self, y):
        self.n += 1
        return self.f(y)


def initial_step(f, y0, f0, rtol, atol):
    scale = atol + y0.abs() * rtol
    d0, d1 = rms(y0 / scale), rms(f0 / scale)
    if d0 < 1e-5 or d1 < 1e-5:
        h0 = torch.tensor(1e-6, dtype=DT)
    else:
        h0 = 0.01 * d0 / d1
    f1 = f(y0 + h0 * f0)
    d2 = rms((f1 - f0) / scale) / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = torch.maximum(torch.tensor(1e-6, dtype=DT), h0 * 1e-3)
    else:
        h1 = (0.01 / torch.maximum(d1, d2)) ** (1.0 / ORDER)
    return torch.minimum(100 * h0, h1)


def next_step(dt, ratio):
    if ratio == 0:
        return dt * IFACTOR
    floor = 1.0 if ratio < 1 else DFACTOR
    factor = torch.clamp(SAFETY / ratio ** (1.0 / ORDER), min=floor, max=IFACTOR)
    return dt * factor


def quartic(y0, y1, ks, dt):
    """Coefficients (constant first) of the quartic in x = (t - t0)/dt on one step."""
    f0, f1 = ks[0], ks[6]
    ymid = comb(y0, dt, B_MID, ks)
    c4 = 2 * dt * (f1 - f0) - 8 * (y1 + y0) + 16 * ymid
    c3 = dt * (5 * f0 - 3 * f1) + 18 * y0 + 14 * y1 - 32 * ymid
    c2 = dt * (f1 - 4 * f0) - 11 * y0 - 5 * y1 + 16 * ymid
    return [y0, dt * f0, c2, c3, c4]


def eval_quartic(coef, t0, t1, t):
    x = (t - t0) / (t1 - t0)
    out, xp = coef[0] + x * coef[1], x
    for c in coef[2:]:
        xp = xp * x
        out = out + xp * c
    return out


def dopri5(f, y0, ts, rtol, atol, dt_grad=False):
    """Solution at every time in ts (a float64 tensor, increasing), shape (T, *y0.shape)."""
    stats = {"steps": 0, "rejected": 0}
    out = [y0]
    f0 = f(y0)
    if dt_grad:
        dt = initial_step(f, y0, f0, rtol, atol)
    else:
        with torch.no_grad():
            dt = initial_step(f, y0, f0, rtol, atol)
    y, fy = y0, f0
    t0 = t1 = ts[0]
    coef = None
    for tn in ts[1:]:
        while tn > t1:
            ta = t1  # start of this attempt (state y at time ta)
            tb = ta + dt
            ks = [fy]
            for i in range(1, 7):
                ks.append(f(comb(y, dt, A[i], ks)))
            ynew = comb(y, dt, A[6], ks)  # = y + dt * sum B_SOL k (FSAL): stage 7 input
            err = dt * sum(c * k for c, k in zip(B_ERR, ks) if c != 0.0)
            if dt_grad:
                ratio = rms(err / (atol + rtol * torch.maximum(y.abs(), ynew.abs())))
            else:
                with torch.no_grad():
                    ratio = rms(err / (atol + rtol * torch.maximum(y.abs(), ynew.abs())))
            if ratio <= 1:
                coef = quartic(y, ynew, ks, dt)
                t0, t1 = ta, tb
                y, fy = ynew, ks[6]
                stats["steps"] += 1
            else:
                stats["rejected"] += 1
            if dt_grad:
                dt = next_step(dt, ratio)
            else:
                with torch.no_grad():
                    dt = next_step(dt, ratio)
        out.append(eval_quartic(coef, t0, t1, tn))
    return torch.stack(out), stats


def load(path):
    with h5py.File(path, "r") as h:
        a = dict(h.attrs)
        nl = len(a["layers"]) - 1
        params = []
        for i in range(1, nl + 1):
            params.append(torch.tensor(h[f"W{i}"][()], dtype=DT))
            params.append(torch.tensor(h[f"b{i}"][()], dtype=DT))
        k_diag = torch.tensor(h["k_diag"][()], dtype=DT) if "k_diag" in h else None
        if str(a["activation"]) != "tanh":
            raise SystemExit("only tanh MLPs are supported")
        return {
            "problem": str(a["problem"]), "loss": str(a["loss"]), "params": params,
            "k_diag": k_diag,
            "z0": torch.tensor(h["z0"][()], dtype=DT), "t": torch.tensor(h["t"][()], dtype=DT),
            "target": torch.tensor(h["target"][()], dtype=DT),
            "ref_loss": float(h["ref_loss"][()]), "ref_grad": np.asarray(h["ref_grad"][()]),
        }


def mlp(params, k_diag=None):
    """f(z) = MLP(z), or MLP(z) - k_diag * z (elementwise) when the problem has a k_diag (B3)."""
    nl = len(params) // 2

    def f(z):
        h = z
        for i in range(nl):
            h = torch.nn.functional.linear(h, params[2 * i], params[2 * i + 1])
            if i < nl - 1:
                h = torch.tanh(h)
        return h if k_diag is None else h - k_diag * z
    return f


def loss_fn(kind, pred, target):
    if kind == "l1_mean":
        return (pred - target).abs().mean()
    if kind == "mse_mean":
        return (pred - target).pow(2).mean()
    if kind == "half_sse":
        return 0.5 * (pred - target).pow(2).sum()
    raise SystemExit(f"unknown loss {kind}")


def gradient(prob, rtol, atol, dt_grad):
    params = [p.clone().requires_grad_(True) for p in prob["params"]]
    f = Counted(mlp(params, prob["k_diag"]))
    pred, stats = dopri5(f, prob["z0"], prob["t"], rtol, atol, dt_grad)
    loss = loss_fn(prob["loss"], pred, prob["target"])
    grads = torch.autograd.grad(loss, params)
    g = torch.cat([x.reshape(-1) for x in grads]).numpy()
    return float(loss), g, f.n, stats


def blas_library():
    """The BLAS shared library this process actually loaded (Debian's libblas.so.3 alternative
    decides it, and it sets torch's float64 matmul speed: netlib vs OpenBLAS is ~10x on B2)."""
    torch.ones(2, 2, dtype=DT) @ torch.ones(2, 2, dtype=DT)
    try:
        with open("/proc/self/maps") as fh:
            libs = {line.split()[-1] for line in fh
                    if "blas" in os.path.basename(line.split()[-1]).lower()}
    except OSError:
        return "unknown"
    return ",".join(sorted(os.path.realpath(x) for x in libs)) or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problem", required=True)
    ap.add_argument("--rtol", type=float, nargs="+", default=[1e-7])
    ap.add_argument("--atol", type=float, nargs="+", default=[1e-9],
                    help="absolute tolerances (torchdiffeq's default is 1e-9); <= 0 means = rtol")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dt-grad", action="store_true",
                    help="keep step sizes in the autograd graph (some older torchdiffeq releases)")
    args = ap.parse_args()
    prob = load(args.problem)
    ref = prob["ref_grad"]
    blas = blas_library()
    for rtol in args.rtol:
        atols = []
        for a in args.atol:
            a = rtol if a <= 0 else a
            if a not in atols:
                atols.append(a)
        for atol in atols:
            times = []
            for _ in range(max(1, args.repeats)):
                t_start = time.perf_counter()
                loss, g, nfe, stats = gradient(prob, rtol, atol, args.dt_grad)
                times.append(1e3 * (time.perf_counter() - t_start))
            rec = {
                "problem": prob["problem"],
                "method": "torch-dopri5-backprop" + ("-dtgrad" if args.dt_grad else ""),
                "rtol": rtol, "atol": atol, "threads": torch.get_num_threads(),
                "runs": len(times), "ms_median": float(np.median(times)),
                "ms_min": float(np.min(times)), "nfe": nfe,
                # the first gradient of this configuration (of the process only for the first
                # configuration run: bench/peer/side_by_side.sh runs one per process)
                "ms_first": float(times[0]),
                "steps": stats["steps"], "rejected": stats["rejected"],
                "loss": loss, "ref_loss": prob["ref_loss"],
                "loss_rel_err": abs(loss - prob["ref_loss"]) / abs(prob["ref_loss"]),
                "grad_rel_err": float(np.linalg.norm(g - ref) / np.linalg.norm(ref)),
                "torch": torch.__version__, "blas": blas,
            }
            print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    sys.exit(main())

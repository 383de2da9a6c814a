#!/usr/bin/env python3
"""Strong and weak scaling of cvnode's MPI data parallelism to 64 and 1024 ranks, modelled from
the compute per work unit measured by bench/cluster/run.sh (1 rank, 1 thread) and the size of the
per-step reduction, with the latency and bandwidth of a typical InfiniBand fabric.

    python3 bench/cluster/model.py [bench/results/cluster.jsonl]

Model of one optimizer step on P ranks (docs/cluster.md explains each term):
  compute  = ceil(U / P) * c          U work units of c seconds each, handed out dynamically
                                      (with unequal costs the last unit bounds the step: see imbalance)
  handout  = U * a_atomic             one remote fetch-and-add per unit, serialized at rank 0
  reduce   = 2 log2(P) * alpha + 2 (P-1)/P * bytes / bw + cells * gamma
             (reduce-scatter + allgather; bytes = 32 per cell for the exact sum, 8 for "fast";
              cells = parameters + readout + 29 counters/flags + P message sizes)
  stop/agree: inside the same reduction (no extra collective)
Strong scaling keeps the minibatch (U units) fixed; weak scaling gives every rank u units.
"""
import json
import math
import sys

ALPHA = 1.5e-6        # s, MPI small-message latency on InfiniBand HDR/EDR (one hop)
BW = 12e9             # B/s, HDR100 / EDR link bandwidth
ATOMIC = 1.0e-6       # s, one MPI_Fetch_and_op on rank 0's counter (network atomic, serialized)
GAMMA = 2e-9          # s, merging one 32-byte ExactSum cell


def step_time(P, U, c, params, exact=True):
    units_per_rank = math.ceil(U / P)
    compute = units_per_rank * c
    handout = U * ATOMIC if P > 1 else 0.0
    cells = params + 29 + P
    nbytes = cells * (32 if exact else 8)
    if P == 1:
        reduce = 0.0
    else:
        lg = math.log2(P)
        reduce = 2 * lg * ALPHA + 2 * (P - 1) / P * nbytes / BW + (cells * GAMMA if exact else 0.0)
    return compute, handout + reduce


def table(name, U, c, params, note):
    print(f"\n{name}: {note}")
    print(f"  measured: {c * 1e3:.2f} ms per work unit, {params} parameters "
          f"(exact reduction {32 * (params + 29) / 1e6:.3f} MB per step + 32 B per rank)")
    print("  P      strong (U=%d units/step): step ms  speedup  eff  | weak (1 unit/rank): step ms  eff  comm share" % U)
    u = 1
    for P in (1, 2, 4, 8, 16, 64, 256, 1024):
        comp, comm = step_time(P, U, c, params)
        t1 = sum(step_time(1, U, c, params))
        strong = comp + comm
        wcomp, wcomm = step_time(P, u * P, c, params)
        weak = wcomp + wcomm
        print("  %-5d  %23.3f  %7.2fx  %4.0f%% | %25.3f  %4.0f%%  %5.1f%%" % (
            P, strong * 1e3, t1 / strong, 100 * t1 / strong / P, weak * 1e3, 100 * (u * c) / weak, 100 * wcomm / weak))


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "bench/results/cluster.jsonl"
    rows = [json.loads(l) for l in open(path) if '"bench": "cluster"' in l]
    best = {}
    for r in rows:
        if r["ranks"] == 1 and r["threads"] == 1:
            k = r["case"]
            if k not in best or r["epoch1_s"] < best[k]["epoch1_s"]:
                best[k] = r
    cases = {
        # case: (units per step of the bench's minibatch, parameters)
        "stiff_many": (16, 3, "Robertson rates, BDF, 1 series per unit, minibatch 16"),
        "wide": (32, 74256, "B2-like 16-256-256-16 tanh, per-series units, minibatch 32"),
    }
    print("InfiniBand model: alpha %.1f us, bandwidth %.0f GB/s, remote atomic %.1f us, merge %.0f ns per cell"
          % (ALPHA * 1e6, BW / 1e9, ATOMIC * 1e6, GAMMA * 1e9))
    for case, (U, params, note) in cases.items():
        if case not in best:
            continue
        r = best[case]
        c = r["s_per_step"] / U
        table(case, U, c, params, note)
        # Where it stops: strong scaling ends at P = U (no unit left to share); with more units the
        # reduction equals the compute per rank at U c / P = reduce(P).
        for P in (64, 1024):
            _, comm = step_time(P, P, c, params)
            print(f"  at P={P}: reduction {comm * 1e6:.0f} us per step = {comm / c * 100:.1f}% of one unit's compute")


if __name__ == "__main__":
    main()

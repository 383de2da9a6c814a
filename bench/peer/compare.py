#!/usr/bin/env python3
"""The equal-error comparison of bench/peer/side_by_side.sh's rows (docs/performance.md).

For every peer row (problem, rtol, atol) it picks cvnode's fastest configuration whose gradient
error is at or below the peer's (any engine; then the CVODES adjoint alone) and prints the
speed-up on the steady gradient (minimum over repeats and rounds) and on the cold first gradient
of a process (minimum over rounds). A peer row that no cvnode configuration matches in error is
printed as such, not compared.
    compare.py bench/results/side_by_side.jsonl [TABLE.jsonl]
The markdown table goes to stdout; with TABLE.jsonl, one JSON line per peer row goes there too.
"""
import json
import sys


def key(r):
    """One cvnode configuration (rounds merge into it)."""
    return (r["problem"], r["method"], r.get("mode"), r.get("stack_size"), r["rtol"], r["atol"],
            r.get("adjoint_form"))


def label(r):
    s = r["method"]
    if r.get("mode") == "stacked":
        s += ", stacked %d" % r["stack_size"] if r["problem"] == "B2" else ", stacked"
    if r.get("adjoint_form"):
        s += ", " + r["adjoint_form"]
    return s + ", rtol %g, atol %g" % (r["rtol"], r["atol"])


def merge(rows, k):
    """Rows of one configuration over rounds: fastest steady and cold times, the (fixed) error."""
    out = {}
    for r in rows:
        kk = k(r)
        m = out.setdefault(kk, dict(r, rounds=0))
        m["ms_min"] = min(m["ms_min"], r["ms_min"])
        m["ms_first"] = min(m["ms_first"], r["ms_first"])
        m["grad_rel_err"] = max(m["grad_rel_err"], r["grad_rel_err"])
        m["rounds"] += 1
    return list(out.values())


def main():
    rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
    peer = merge([r for r in rows if r["side"] == "peer"], lambda r: (r["problem"], r["rtol"], r["atol"]))
    cv = merge([r for r in rows if r["side"] == "cvnode"], key)
    table = open(sys.argv[2], "w") if len(sys.argv) > 2 else None
    print("| problem | peer: rtol, ms (cold first), grad error | cvnode at equal or smaller error "
          "| cvnode ms (cold first), error | speed-up steady | speed-up cold | adjoint only: configuration, ms, error, speed-up |")
    print("|---|---|---|---|---|---|---|")
    for p in sorted(peer, key=lambda r: (r["problem"], -r["rtol"])):
        ok = [c for c in cv if c["problem"] == p["problem"] and c["grad_rel_err"] <= p["grad_rel_err"]]
        adj = [c for c in ok if c.get("gradient") == "adjoint"]
        head = "| %s | %g: %.3g (%.3g), %.2g |" % (p["problem"], p["rtol"], p["ms_min"], p["ms_first"], p["grad_rel_err"])
        if not ok:
            print(head + " none reaches the peer's error | | | | |")
            continue
        b = min(ok, key=lambda c: c["ms_min"])
        line = head + " %s | %.3g (%.3g), %.2g | %.1fx | %.1fx |" % (
            label(b), b["ms_min"], b["ms_first"], b["grad_rel_err"], p["ms_min"] / b["ms_min"], p["ms_first"] / b["ms_first"])
        if adj:
            a = min(adj, key=lambda c: c["ms_min"])
            line += " %s, %.3g, %.2g, %.1fx |" % (label(a), a["ms_min"], a["grad_rel_err"], p["ms_min"] / a["ms_min"])
        else:
            line += " none reaches the peer's error |"
        print(line)
        rec = {"problem": p["problem"], "peer_rtol": p["rtol"], "peer_atol": p["atol"], "peer_ms": p["ms_min"],
               "peer_ms_first": p["ms_first"], "peer_err": p["grad_rel_err"], "cvnode": label(b),
               "cvnode_ms": b["ms_min"], "cvnode_ms_first": b["ms_first"], "cvnode_err": b["grad_rel_err"],
               "speedup": p["ms_min"] / b["ms_min"], "speedup_cold": p["ms_first"] / b["ms_first"],
               "blas": p.get("blas"), "torch": p.get("torch")}
        if table:
            print(json.dumps(rec), file=table)


if __name__ == "__main__":
    sys.exit(main())

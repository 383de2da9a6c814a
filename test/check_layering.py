#!/usr/bin/env python3
"""The layering of docs/architecture.md, checked on the sources (the CTest test `layering`).

Every library source belongs to the layer of its folder under src/ (src/models/<kind>/ is its
own layer); every public header in include/cvnode/ is assigned a layer in HEADERS below. A file
may include headers of its own layer and of lower layers only (the top layer's folders, the
program's workflows, may also use each other). Also checked:
  - a public header includes only public headers (src/ is not installed);
  - a public header's implementation (a .cpp of the same name whose first include is it) sits in the
    header's layer, so a header cannot drift away from its code (physics.h was implemented in
    src/data/ once);
  - every public header and every src/ folder has a layer, so a new one must be placed here.
apps/, python/ and test/ sit above everything and are not checked.

Run: python3 test/check_layering.py [SOURCE_DIR]; exit 0 = layering holds, 1 = lists violations.
"""
import os
import re
import sys

# Lowest first. Layers of the same rank are independent of each other, except in the top rank.
LAYERS = {
    "core": 0,               # errors, RNG, the Dynamics interface, series, losses, problem, running costs
    "parallel": 1,           # ExactSum, the rank communicator
    "nn": 1,                 # networks
    "data": 1,               # datasets, checkpoints, CSV/NONMEM I/O, the closed-form PK generator
    "physics": 2,            # known dynamics and hybrid models (use nn's networks)
    "regularization": 3,     # Jacobian/kinetic regularisers of a model (know nn's and physics' models)
    "ode": 3,                # the engines: SUNDIALS CVODES and dopri5, Solver, BatchSolver
    "generate": 4,           # synthetic datasets integrated by the solver
    "train": 4,              # Model, Trainer, optimizers, schedules, the ranks' gradient backend
    "models/latent": 5,      # latent ODEs with their fit loop
    "models/cnf": 5,         # continuous normalizing flows with their fit loop
    "models/classifier": 5,  # ODE-Net classifier with its training loop
    "app": 5,                # the program's workflow: configuration files, fit/eval runs, sweeps, bench problems
}
TOP_RANK = max(LAYERS.values())

HEADERS = {
    "core": ["errors", "dynamics", "observations", "observation_map", "loss", "problem",
             "running_cost", "trace_estimator"],
    "parallel": ["exact_sum", "ranks"],
    "nn": ["activation", "conv_dynamics", "mlp", "probed_field", "probed_mlp", "stacked",
           "time_reversed"],
    "data": ["checkpoint", "csv", "dataset", "nonmem", "pk"],
    "physics": ["physics", "hybrid", "hybrid_model", "linear_decay", "mass_action",
                "parameter_transform", "autodiff_dynamics"],
    "regularization": ["regularization"],
    "ode": ["batch", "cvodes_options", "dopri5_options", "engine", "solver", "solver_options",
            "solver_stats"],
    "generate": ["generators"],
    "train": ["model", "optimizer", "preemption", "schedule", "trainer", "rank_backend", "random_effects"],
    "models/latent": ["latent"],
    "models/cnf": ["cnf", "cnf_model", "densities", "flow", "planar_flow"],
    "models/classifier": ["classifier/classifier", "classifier/idx"],
}
UMBRELLA = "cvnode/cvnode.h"  # includes every layer's public headers: above all of them
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def main(root):
    header_layer = {f"cvnode/{h}.h": layer for layer, hs in HEADERS.items() for h in hs}
    problems = []

    def layer_of_src(rel):  # rel: path below src/
        parts = rel.split("/")
        layer = "/".join(parts[:2]) if parts[0] == "models" else parts[0]
        return layer if layer in LAYERS else None

    def layer_of_include(name):
        if name.startswith("cvnode/"):
            return header_layer.get(name)
        return layer_of_src(name) if os.path.exists(os.path.join(root, "src", name)) else None

    files = []
    for base in ("include", "src"):
        for d, _, names in os.walk(os.path.join(root, base)):
            files += [os.path.join(d, n) for n in names if n.endswith((".h", ".cpp"))]
    for path in sorted(files):
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        public = rel.startswith("include/")
        if public:
            name = rel[len("include/"):]
            if name == UMBRELLA:
                continue
            layer = header_layer.get(name)
            if layer is None:
                problems.append(f"{rel}: public header without a layer (add it to HEADERS in test/check_layering.py)")
                continue
        else:
            layer = layer_of_src(rel[len("src/"):])
            if layer is None:
                problems.append(f"{rel}: folder without a layer (add it to LAYERS in test/check_layering.py)")
                continue
        first = True
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                inc = m.group(1)
                own = os.path.splitext(os.path.basename(inc))[0] == os.path.splitext(os.path.basename(rel))[0]
                if first and own and rel.endswith(".cpp") and inc in header_layer and header_layer[inc] != layer:
                    problems.append(f"{rel}: implements {inc} of layer '{header_layer[inc]}' from layer '{layer}' "
                                    f"(move it to src/{header_layer[inc]}/)")
                first = False
                if public and not inc.startswith("cvnode/"):
                    problems.append(f"{rel}:{lineno}: public header includes the private \"{inc}\" (not installed)")
                    continue
                target = layer_of_include(inc)
                if target is None:
                    if "/" in inc:  # a project header of no known layer
                        problems.append(f"{rel}:{lineno}: \"{inc}\" is of no known layer")
                    continue  # same-folder include
                lo, hi = LAYERS[layer], LAYERS[target]
                ok = target == layer or hi < lo or (hi == lo == TOP_RANK)
                if not ok:
                    problems.append(f"{rel}:{lineno}: layer '{layer}' (rank {lo}) includes \"{inc}\" of layer "
                                    f"'{target}' (rank {hi})")
    for p in problems:
        print(p)
    print(f"layering: {len(files)} files checked, {len(problems)} violation(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")))

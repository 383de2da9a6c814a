#!/usr/bin/env bash
# The restructuring check of issue 18: a fixed set of gradient rows over every engine, adjoint
# form, quadrature, batch mode and linear solver, printed as compact JSON lines of the numbers
# that must not change (loss, grad_rel_err, NFE, steps). Run it before and after a change to the
# solver's structure and diff the outputs: a pure restructuring gives identical lines.
#   bench/same_numbers.sh [BUILD_DIR] > rows.jsonl
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../build}"
shared="$here/../../shared/bench"
row() {
  "$build/apps/cvnode" bench "$@" --json --repeats 1 |
    python3 -c 'import json,sys
j=json.loads(sys.stdin.read())
keep=["problem","method","mode","linear_solver","adjoint_form","quadrature","rtol","loss","grad_rel_err","nfe_fwd","nfe_bwd","steps_fwd","steps_bwd","restarts_bwd"]
print(json.dumps({k:j.get(k) for k in keep}))'
}
row "$shared/B1.h5" --method adams --rtol 1e-6
row "$shared/B1.h5" --method adams --rtol 1e-6 --adjoint-form restart
row "$shared/B1.h5" --method adams --rtol 1e-6 --quadrature cvodes
row "$shared/B1.h5" --method adams --rtol 1e-8 --mode stacked
row "$shared/B1.h5" --method bdf --rtol 1e-6
row "$shared/B1.h5" --method dopri5 --rtol 1e-7 --atol 1e-9
row "$shared/B1.h5" --method dopri5 --rtol 1e-7 --atol 1e-9 --mode stacked
row "$shared/B1L.h5" --method adams --rtol 1e-7
row "$shared/B1L.h5" --method adams --rtol 1e-7 --adjoint-form restart
row "$shared/B1L.h5" --method dopri5 --rtol 1e-7 --atol 1e-9
row "$shared/B2.h5" --method adams --rtol 1e-6 --mode stacked --stack-size 128
row "$shared/B2.h5" --method dopri5 --rtol 1e-6 --atol 1e-8 --mode stacked --stack-size 128
row "$shared/B3.h5" --method bdf --rtol 1e-8
row "$shared/B3.h5" --method bdf --rtol 1e-8 --linear-solver gmres
row "$shared/B3.h5" --method bdf --rtol 1e-8 --hybrid

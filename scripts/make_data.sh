#!/usr/bin/env bash
# Regenerates the shipped datasets in data/ with cvnode's own generators. Deterministic: the
# same cvnode gives the same bytes (fixed seeds, no timestamps in the HDF5 files).
# Usage: scripts/make_data.sh [BUILD_DIR]   (default: build; the cvnode program is built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
cvnode="$build/apps/cvnode"
if [ ! -x "$cvnode" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j"$(nproc)" --target cvnode_cli
fi
mkdir -p data
gen() { "$cvnode" data generate "$@"; }
# The training demo's set: irregular, noisy, some entries missing.
gen --system lotka_volterra --series 64 --observations 30 --t-end 10 --noise 0.015 --missing 0.05 --seed 1 \
    --out data/lotka_volterra.h5
# torchdiffeq's ode_demo spiral (B1 dynamics); series 0 starts at (2, 0).
gen --system spiral --series 64 --observations 30 --t-end 25 --noise 0.01 --missing 0.05 --seed 2 \
    --out data/spiral.h5
gen --system damped_oscillator --series 32 --observations 25 --t-end 20 --noise 0.02 --missing 0.05 --seed 3 \
    --out data/damped_oscillator.h5
# Stiff: generated with BDF at rtol 1e-10 on a logarithmic grid up to t = 1e4.
gen --system robertson --series 16 --observations 30 --noise 0.01 --missing 0.02 --seed 4 \
    --out data/robertson.h5
# The stiff experiment's set (data/robertson_rates.toml, data/robertson_network.toml,
# docs/stiff.md): 40 irregular times per series on a logarithmic grid from 1e-5 to 1e5, 1%
# multiplicative noise, nothing missing.
gen --system robertson --series 8 --observations 40 --grid 400 --t-start 1e-5 --t-end 1e5 \
    --noise 0.01 --relative-noise --missing 0 --seed 7 --out data/robertson_stiff.h5
# The pharmacokinetics demo (data/pk_demo.toml, docs/measurement-data.md): 40 subjects, one oral
# dose each, and the same data in the NONMEM event layout.
gen pk --subjects 40 --doses 1 --observations 10 --seed 11 --out data/pk_demo.h5
"$cvnode" data export-csv data/pk_demo.h5 --out data/pk_demo.csv
# Two doses 12 h apart and the weight as a network input (data/pk_two_doses.toml).
gen pk --subjects 80 --doses 2 --observations 12 --seed 11 --out data/pk_two_doses.h5
# A small CSV in the rows format, to try `cvnode data import-csv` on:
#   cvnode data import-csv data/oscillator_small.csv --id id --time time --values position,velocity \
#          --units m,m/s --out /tmp/oscillator.h5
gen --system damped_oscillator --series 4 --observations 12 --noise 0.02 --missing 0.1 --seed 5 \
    --out data/.oscillator_small.h5
"$cvnode" data export-csv data/.oscillator_small.h5 --out data/oscillator_small.csv
rm -f data/.oscillator_small.h5

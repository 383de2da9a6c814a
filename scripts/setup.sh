#!/usr/bin/env bash
# Installs the Debian 12 packages cvnode builds, tests and plots with, plus any given as
# arguments (bench/peer/run.sh adds Debian's PyTorch). Idempotent: installs only what is
# missing, so a second run costs a dpkg query and nothing else.
#   scripts/setup.sh [EXTRA_PACKAGE...]
# The list: one package a line, grouped by what needs it. A new dependency is one line in its
# group (or a new group with a comment saying what needs it).
set -euo pipefail
pkgs=(
  # build
  build-essential
  cmake
  # the library
  libsundials-dev
  libeigen3-dev
  libhdf5-dev
  # the cvnode program
  libcli11-dev
  libtomlplusplus-dev
  nlohmann-json3-dev
  gnuplot-nox
  # tests (the sanitizer stage uses GCC's own libasan/libubsan)
  libboost-test-dev
  # ranks (MPI)
  libopenmpi-dev
  openmpi-bin
  # a single-node Slurm for the sweep test (scripts/slurm_local.sh)
  slurm-wlm
  munge
  hdf5-tools  # h5dump: slurm_local.sh compares the runs' parameters
  # the Python module and its tests
  python3-dev
  pybind11-dev
  python3-numpy
  python3-pytest
  python3-pandas
  # the classifier: gzip-compressed IDX files and the Fashion-MNIST images (cvnode classify)
  zlib1g-dev
  dataset-fashion-mnist
  "$@"
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

#!/usr/bin/env bash
# Installs the Debian 12 packages cvnode builds, tests and plots with, plus any given as
# arguments (bench/peer/run.sh adds Debian's PyTorch). Idempotent: installs only what is
# missing, so a second run costs a dpkg query and nothing else.
#   scripts/setup.sh [EXTRA_PACKAGE...]
set -euo pipefail
pkgs=(
  build-essential cmake pkg-config
  libsundials-dev libeigen3-dev libhdf5-dev hdf5-tools
  libboost-test-dev libopenmpi-dev openmpi-bin slurm-wlm munge
  libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libfmt-dev
  gnuplot-nox
  python3-dev pybind11-dev python3-numpy python3-pytest python3-pandas
  zlib1g-dev dataset-fashion-mnist
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

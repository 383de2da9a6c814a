# Sourced by bench/peer/run.sh and side_by_side.sh: what both need before the peer runs.
# Installs Debian's torch, h5py and numpy for the system python (plus any extra packages named,
# e.g. the serial OpenBLAS) through scripts/setup.sh, pins every BLAS/OpenMP pool to one thread
# (the comparison is one core against one core) and defines $py and `hundredth R` (R / 100, the
# absolute tolerance the comparison pairs with a relative one).
peer_setup() {
  bash "$here/../../scripts/setup.sh" python3-torch python3-h5py python3-numpy "$@"
  export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
}
py=/usr/bin/python3
hundredth() { "$py" -c "print('%g' % ($1 / 100))"; }

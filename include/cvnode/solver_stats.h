// Counters of one or more CVODES integrations, summed over segments and trajectories.
#pragma once

#include <string>

namespace cvnode {

struct SolverStats {
  long steps = 0;
  long rhs_evals = 0;          // calls of the right-hand side (forward) or of the VJP (backward)
  long quad_evals = 0;         // quadrature right-hand-side calls
  long jac_evals = 0;          // dense Jacobian evaluations
  long lin_setups = 0;         // linear solver setups (factorisations)
  long lin_iters = 0;          // Krylov iterations
  long jtimes_evals = 0;       // Jacobian-vector products for the Krylov solver
  long nonlin_iters = 0;
  long err_test_fails = 0;
  long nonlin_conv_fails = 0;
  long checkpoints = 0;        // forward checkpoints kept for the adjoint pass
  // Backward restarts at order 1: one per observation in the adjoint's restart form, one per
  // re-anchoring in its transition form (SolverOptions::adjoint_form).
  long restarts = 0;

  SolverStats& operator+=(const SolverStats& o);
  std::string brief() const;   // one line
  std::string report() const;  // one counter a line
};

}  // namespace cvnode

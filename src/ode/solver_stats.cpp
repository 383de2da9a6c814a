#include "cvnode/solver_stats.h"

#include <sstream>

namespace cvnode {

SolverStats& SolverStats::operator+=(const SolverStats& o) {
  steps += o.steps;
  rhs_evals += o.rhs_evals;
  quad_evals += o.quad_evals;
  jac_evals += o.jac_evals;
  lin_setups += o.lin_setups;
  lin_iters += o.lin_iters;
  jtimes_evals += o.jtimes_evals;
  nonlin_iters += o.nonlin_iters;
  err_test_fails += o.err_test_fails;
  nonlin_conv_fails += o.nonlin_conv_fails;
  checkpoints += o.checkpoints;
  restarts += o.restarts;
  return *this;
}

std::string SolverStats::brief() const {
  std::ostringstream o;
  o << steps << " steps, " << rhs_evals << " rhs, " << jac_evals << " jac, " << lin_iters
    << " lin iters, " << err_test_fails << " err fails, " << nonlin_conv_fails << " conv fails";
  return o.str();
}

std::string SolverStats::report() const {
  std::ostringstream o;
  o << "steps              " << steps << "\n"
    << "rhs evaluations    " << rhs_evals << "\n"
    << "quad evaluations   " << quad_evals << "\n"
    << "jacobian evals     " << jac_evals << "\n"
    << "linear setups      " << lin_setups << "\n"
    << "linear iterations  " << lin_iters << "\n"
    << "jac-times evals    " << jtimes_evals << "\n"
    << "nonlinear iters    " << nonlin_iters << "\n"
    << "error-test fails   " << err_test_fails << "\n"
    << "convergence fails  " << nonlin_conv_fails << "\n"
    << "checkpoints        " << checkpoints << "\n"
    << "restarts           " << restarts << "\n";
  return o.str();
}

}  // namespace cvnode

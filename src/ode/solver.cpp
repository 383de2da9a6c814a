// The Solver facade: one engine from the registry, the problem's series and loss handed to it.
#include "cvnode/solver.h"

#include "cvnode/errors.h"
#include "ode/series_gradient.h"

namespace cvnode {

Solver::Solver(const Dynamics& dynamics, const SolverOptions& options)
    : dynamics_(dynamics), options_(options), engine_(make_engine(dynamics, options)) {}

Solver::~Solver() = default;

Solution Solver::solve(ConstVectorRef theta, double t0, ConstVectorRef z0, ConstVectorRef times) {
  return engine_->solve(theta, t0, z0, times);
}

Solution Solver::solve(ConstVectorRef theta, const Trajectory& series) { return engine_->solve(theta, series); }

Gradient Solver::gradient(ConstVectorRef theta, const Problem& problem, int series) {
  problem.check(dynamics_.state_size(), series);
  return detail::series_gradient(*engine_, theta, problem, series);
}

}  // namespace cvnode

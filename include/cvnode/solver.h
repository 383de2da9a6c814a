// Forward solves and gradients of one series at a time. A Solver is a thin facade over the
// gradient engine that SolverOptions::method names (cvnode/engine.h): the CVODES adjoint for
// adams and bdf, backpropagation through Dormand-Prince steps for dopri5.
//
// A Solver owns its engine's workspaces (a CVODES instance, or the Dormand-Prince step store)
// sized for its Dynamics and reuses them from call to call; it is not thread-safe, so give each
// thread its own (BatchSolver does). The Dynamics is shared and must outlive the Solver.
#pragma once

#include <memory>

#include "cvnode/dynamics.h"
#include "cvnode/engine.h"
#include "cvnode/problem.h"
#include "cvnode/solver_options.h"
#include "cvnode/solver_stats.h"

namespace cvnode {

class Solver {
 public:
  // Throws OptionsError if the options do not fit the dynamics.
  Solver(const Dynamics& dynamics, const SolverOptions& options);
  ~Solver();
  Solver(const Solver&) = delete;
  Solver& operator=(const Solver&) = delete;

  const SolverOptions& options() const { return options_; }

  // States at `times` (non-decreasing, each >= t0; a time equal to t0 returns z0).
  Solution solve(ConstVectorRef theta, double t0, ConstVectorRef z0, ConstVectorRef times);
  // A series' states at its observation times (then at its horizon() when later), its events
  // (doses, infusions, removals, resets) and inputs u(t) applied.
  Solution solve(ConstVectorRef theta, const Trajectory& series);

  // The loss of series `series` of the problem and its gradient (dLoss/dtheta, dLoss/dz0 and
  // dLoss/dphi for the loss's parameters), with the problem's normalisation: the loss's terms at
  // the series' observation times plus its running costs. Throws OptionsError when the series
  // or the loss do not fit the dynamics, SolverError on solver failure.
  Gradient gradient(ConstVectorRef theta, const Problem& problem, int series = 0);

 private:
  const Dynamics& dynamics_;
  SolverOptions options_;
  std::unique_ptr<GradientEngine> engine_;
};

}  // namespace cvnode

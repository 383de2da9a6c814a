// Forward solves and gradients of one trajectory at a time: on CVODES with the adjoint method
// (methods adams and bdf), or by backpropagation through Dormand-Prince steps (method dopri5).
//
// A Solver owns one integrator (a CVODES instance: solver memory, vectors, linear solver,
// checkpoint store; or the Dormand-Prince one with its step store) sized for its Dynamics and
// reuses it from call to call; it is not thread-safe, so give each thread its own (BatchSolver
// does). The Dynamics is shared and must outlive the Solver.
#pragma once

#include <memory>

#include "cvnode/dynamics.h"
#include "cvnode/loss.h"
#include "cvnode/observations.h"
#include "cvnode/running_cost.h"
#include "cvnode/solver_options.h"
#include "cvnode/solver_stats.h"

namespace cvnode {

namespace detail {
class Dopri5;
}

struct Solution {
  Vector times;
  Matrix states;  // states.row(k) = z(times[k])
  SolverStats stats;
  long nfe = 0;   // right-hand-side calls
};

struct Gradient {
  double loss = 0;        // sum of the observation terms plus the running-cost integral
  Vector theta;           // dLoss/dtheta
  Vector z0;              // dLoss/dz0
  Matrix states;          // z at the trajectory's observation times (rows), as predicted
  Matrix readout;         // dLoss/dC (channels x state) when a readout C was given, else empty
  SolverStats forward, backward;
  long nfe_forward = 0;   // right-hand-side calls, including recomputation between checkpoints
  long nfe_backward = 0;  // vector-Jacobian products of the backward pass
};

// The adjoint form a Solver with these options uses for these dynamics: Restart or Transition
// (SolverOptions::adjoint_form; Auto resolved). Throws OptionsError when Transition is asked
// for dynamics whose blocks are too large.
AdjointForm resolved_adjoint_form(const SolverOptions& options, const Dynamics& dynamics);

class Solver {
 public:
  // Throws OptionsError if the options do not fit the dynamics.
  Solver(const Dynamics& dynamics, const SolverOptions& options);
  ~Solver();
  Solver(const Solver&) = delete;
  Solver& operator=(const Solver&) = delete;

  const SolverOptions& options() const;

  // States at `times` (non-decreasing, each >= t0; a time equal to t0 returns z0).
  Solution solve(ConstVectorRef theta, double t0, ConstVectorRef z0, ConstVectorRef times);

  // Loss and its gradient by the CVODES adjoint method: forward with checkpoints to the last
  // time, then backward, adding dl_k/dz(t_k) to the adjoint at every observation time; the
  // theta-gradient is a backward quadrature. With method dopri5: the exact derivative of the
  // discrete solution, by a reverse sweep through the accepted steps (no running cost).
  // `scale` multiplies every observation term (the mean losses pass 1 / observed entries of the
  // whole batch). Throws SolverError on solver failure.
  // With a readout C (channels x state) the loss compares y = C z(t_k) with the measurements
  // (a learned linear observation map): the adjoint jumps by C^T dl_k/dy and the gradient also
  // holds dLoss/dC = sum_k dl_k/dy z(t_k)^T.
  Gradient gradient(ConstVectorRef theta, const Trajectory& trajectory, const Loss& loss,
                    double scale = 1.0, const RunningCost* running_cost = nullptr,
                    const Matrix* readout = nullptr);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;             // adams, bdf
  std::unique_ptr<detail::Dopri5> rk_;     // dopri5
};

}  // namespace cvnode

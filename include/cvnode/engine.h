// The gradient-engine interface: what the Solver facade (cvnode/solver.h) drives. An engine
// integrates one initial-value problem forward and returns the loss's gradient; which engine a
// Solver uses is SolverOptions::method, looked up in a registry:
//   adams, bdf   CvodesAdjoint   the CVODES adjoint (src/ode/cvodes_adjoint.cpp)
//   dopri5       Dopri5Backprop  backpropagation through Dormand-Prince steps (src/ode/dopri5.cpp)
// A new engine is one file defining a GradientEngine, a factory and a validator, plus one line
// in src/ode/engine_list.h (see there).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cvnode/dynamics.h"
#include "cvnode/observations.h"
#include "cvnode/problem.h"
#include "cvnode/running_cost.h"
#include "cvnode/solver_options.h"
#include "cvnode/solver_stats.h"

namespace cvnode {

struct Solution {
  Vector times;
  Matrix states;  // states.row(k) = z(times[k])
  SolverStats stats;
  long nfe = 0;   // right-hand-side calls
};

struct Gradient {
  double loss = 0;        // the observation terms plus the running-cost integrals
  Vector theta;           // dLoss/dtheta
  Vector z0;              // dLoss/dz0
  Vector phi;             // dLoss/dphi, the loss's own parameters (Loss::param_size)
  Matrix states;          // z at the series' observation times (rows), as predicted
  SolverStats forward, backward;
  long nfe_forward = 0;   // right-hand-side calls, including recomputation between checkpoints
  long nfe_backward = 0;  // vector-Jacobian products of the backward pass
  // sum_s E_s h_s over the accepted steps, E_s the error norm the step passed (unweighted; in
  // loss times Dopri5Options::error_weight): dopri5's gradient on adaptive steps, or on fixed
  // steps under the penalty; 0 for engines without it (the CVODES adjoint).
  double solver_error = 0;
};

// The observation terms of one solve from its states at the output times (times x state):
// called once per gradient, after the forward pass.
using Observer = std::function<ObservationTerms(const Matrix& states)>;
using RunningCosts = std::vector<std::shared_ptr<const RunningCost>>;

// Contract: an engine is built for one Dynamics and one SolverOptions (validated by its
// registry entry first), reuses its workspaces from call to call, and is not thread-safe.
class GradientEngine {
 public:
  virtual ~GradientEngine() = default;
  // States at `times` (non-decreasing, each >= t0; a time equal to t0 returns z0).
  virtual Solution solve(ConstVectorRef theta, double t0, ConstVectorRef z0, ConstVectorRef times) = 0;
  // The states of a series at its observation times, then at its horizon() as one more row when
  // that lies after them, with its events and inputs applied. The default (engines that apply
  // none) refuses a series that has any.
  virtual Solution solve(ConstVectorRef theta, const Trajectory& ivp);
  // The loss of the initial-value problem `ivp` (t0, z0, the strictly increasing observation
  // times, the horizon; its values and mask are not read) and its gradient: forward to the
  // horizon, `observe` turns the states at the observation times into the loss and its jumps
  // dl_k/dz, which the backward pass adds at each t_k; the running costs are integrated over
  // [t0, horizon]. Throws SolverError on solver failure, OptionsError on what it cannot do.
  virtual Gradient gradient(ConstVectorRef theta, const Trajectory& ivp, const Observer& observe,
                            const RunningCosts& running_costs) = 0;
};

// Registered methods, in registration order.
std::vector<std::string> engine_methods();
// Empty when `options.method` is registered and its engine accepts the options for a state of
// `state_size` (0: unknown), else the reason naming the option.
std::string validate_engine_options(const SolverOptions& options, int state_size);
// The engine of options.method, wrapped so that series with events, controls or covariates are
// solved segment by segment (src/ode/segments.h); throws OptionsError when
// validate_engine_options says why not.
std::unique_ptr<GradientEngine> make_engine(const Dynamics& dynamics, const SolverOptions& options);

}  // namespace cvnode

// The regularisers of a fit (issue 16), for every model kind: what the [regularization] section
// of a configuration says and the pieces a model kind builds from it each optimizer step. They
// keep learned dynamics cheap to integrate (fewer function evaluations) and smooth:
//   kinetic energy    lambda int ||f||^2 dt            (Finlay et al. 2020)
//   Jacobian norm     lambda int ||df/dz||_F^2 dt      (Finlay et al. 2020; exact or Hutchinson)
//   STEER             the end time (flows) or every observation time (series) jittered by
//                     U(-b, b) each step                (Ghosh et al. 2020)
//   solver error      lambda sum_s E_s h_s over dopri5's accepted steps: its local error
//                     estimates (Pal et al. 2021's R_E; Kelly et al. 2020 penalise a Taylor-mode
//                     surrogate of them), step sizes held fixed; dopri5 only
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cvnode/trace_estimator.h"
#include "cvnode/observations.h"
#include "cvnode/running_cost.h"

namespace cvnode {

struct RegularizationOptions {
  double kinetic_weight = 0;
  double jacobian_weight = 0;
  TraceEstimator jacobian_estimator = TraceEstimator::Exact;
  int jacobian_probes = 1;  // Hutchinson: probe vectors (Rademacher), fresh each step
  double steer = 0;         // STEER's half-width b (0 = off)
  double error_weight = 0;  // lambda of the solver-error penalty (dopri5 only)

  std::string validate() const;  // empty when valid; names the key
  bool any() const {
    return kinetic_weight > 0 || jacobian_weight > 0 || steer > 0 || error_weight > 0;
  }
};

// The running costs of one optimizer step (kinetic energy, Jacobian norm with this step's
// probes from `step_seed`) for dynamics that take them; empty when both weights are 0. Throws
// OptionsError when the Jacobian norm does not apply to the dynamics (it needs an MLP).
std::vector<std::shared_ptr<const RunningCost>> regularizer_costs(const Dynamics& dynamics,
                                                                   const RegularizationOptions& options,
                                                                   std::uint64_t step_seed);

// Hutchinson's estimate of the Jacobian norm with each Jacobian-vector product taken by a central
// difference of f: lambda / K sum_k |(f(z + d eps_k) - f(z - d eps_k)) / (2 d)|^2, for dynamics
// without the second derivatives JacobianFrobenius needs (the classifier's convolutional block:
// an exact norm there would take one JVP per state entry). It approximates lambda |J eps_k|^2 with
// a relative bias O(d^2) (f smooth), and its gradient is this cost's exact one: two VJPs per
// probe. Rademacher probes over the whole state, drawn from `seed` when the cost is built and
// fixed for its life (one per optimizer step, like JacobianFrobenius).
class JacobianDifference final : public RunningCost {
 public:
  struct Options {
    double weight = 0;
    int probes = 1;
    double step = 1e-3;  // d, in the state's units
    std::uint64_t seed = 0;
  };
  // Throws OptionsError for a negative weight, probes < 1 or step <= 0.
  JacobianDifference(const Dynamics& dynamics, Options options);
  int workspace_size() const override;
  double value(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef work) const override;
  void gradient(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef dg_dz, VectorRef dg_dtheta,
                VectorRef work) const override;

 private:
  const Dynamics& f_;
  Options o_;
  Matrix E_;  // n x probes
};

// STEER for an observed series: every observation time after the first moved by U(-b, b), with b
// capped at 0.45 of the series' smallest gap so the times stay increasing and in their order
// (the first observation, often the initial state, stays). The values are unchanged: the model
// is asked for them a little early or late. Deterministic in `seed`.
Trajectory steer_times(const Trajectory& series, double b, std::uint64_t seed);

}  // namespace cvnode

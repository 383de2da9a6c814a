// Events and inputs for every engine: a series with events (doses, infusions, removals, resets),
// controls or covariates is solved as a chain of plain initial-value problems, one per segment
// between its discontinuities, each by the registered engine (CVODES adjoint or dopri5) on the
// model's right-hand side plus the segment's infusion rates and inputs (AMICI's scheme: stop at
// every event, apply the jump, re-initialise; carry the adjoint back across each jump with the
// transposed Jacobian of the jump).
//
// Segment boundaries: event times, infusion ends and control knots inside (t0, horizon). Inside a
// segment the right-hand side is smooth: the infusion rates are constant and u(t) is the
// segment's own piece of the interpolant (a constant, a line or one cubic), also where an engine
// evaluates f a little past the segment's end. An observation at a boundary sees the state
// before the events there.
//
// Jumps (applied in the order given at one instant) and their adjoints:
//   Bolus     z_c += amount                      a unchanged
//   Infusion  starts rate amount / duration on   a unchanged
//             component c until time + duration
//   Remove    z_c *= 1 - amount                  a_c *= 1 - amount
//   Reset     z = 0, running infusions stop      a = 0
//
// Cost: the gradient of such a series runs each segment forward twice (once to find the states
// that start the segments and score the observations, once inside the engine's gradient for the
// backward pass of that segment). Series without events and inputs go straight to the engine.
#pragma once

#include <memory>
#include <vector>

#include "cvnode/engine.h"

namespace cvnode::detail {

// The model's right-hand side on one segment: f(t, z, u(t); theta) + rate, with u(t) from the
// segment's piece of the controls and the series' covariates. Set per segment by its owner
// (not thread-safe, like the engine that uses it).
class DrivenDynamics final : public Dynamics {
 public:
  explicit DrivenDynamics(const Dynamics& model);
  // The series (its controls and covariates; kept by pointer) and the segment [a, b) whose
  // control piece and infusion rates apply.
  void set_segment(const Trajectory* series, double a, const Vector& rate);

  int state_size() const override { return model_.state_size(); }
  int param_size() const override { return model_.param_size(); }
  bool smooth() const override { return model_.smooth(); }
  int workspace_size() const override { return model_.workspace_size() + model_.input_size(); }
  void rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const override;
  void vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
           VectorRef a_dfdtheta, VectorRef work) const override;
  void vjp_again(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                 VectorRef a_dfdtheta, VectorRef work) const override;
  void jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const override;
  void jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
           VectorRef work) const override;

 private:
  // u(t) into the tail of work (input_size() doubles); returns it.
  ConstVectorRef input(double t, VectorRef work) const;
  VectorRef model_work(VectorRef work) const { return work.head(model_.workspace_size()); }

  const Dynamics& model_;
  const Trajectory* series_ = nullptr;
  Eigen::Index piece_ = -1;  // control knot interval of the segment (-1: before the first knot)
  Vector rate_;
  bool has_rate_ = false;
};

// u(t) of a series on the control piece `piece` (the knot interval [times[piece],
// times[piece + 1]], -1 before the first knot, last knot index after it) extended past its ends,
// followed by the covariates: input_size entries into u.
void series_input(const Trajectory& series, Eigen::Index piece, double t, VectorRef u);
// The control piece that holds [a, a + something): the last knot <= a (-1 if none).
Eigen::Index control_piece(const Controls& controls, double a);

// The engine that options.method names, built over `dynamics` as it is (src/ode/engines.cpp).
std::unique_ptr<GradientEngine> make_registered_engine(const Dynamics& dynamics, const SolverOptions& options);

// A series with events or inputs goes through its segments; others straight to the engine.
bool needs_segments(const Trajectory& ivp);

// Wraps a registered engine: plain series go to `plain` (built over the model), segmented ones to
// an engine of the same options built over a DrivenDynamics on first need.
class SegmentedEngine final : public GradientEngine {
 public:
  SegmentedEngine(const Dynamics& model, const SolverOptions& options, std::unique_ptr<GradientEngine> plain);
  Solution solve(ConstVectorRef theta, double t0, ConstVectorRef z0, ConstVectorRef times) override;
  Solution solve(ConstVectorRef theta, const Trajectory& ivp) override;
  Gradient gradient(ConstVectorRef theta, const Trajectory& ivp, const Observer& observe,
                    const RunningCosts& running_costs) override;

 private:
  GradientEngine& driven_engine();
  void check_inputs(const Trajectory& ivp) const;

  const Dynamics& model_;
  SolverOptions options_;
  std::unique_ptr<GradientEngine> plain_;
  DrivenDynamics driven_;
  std::unique_ptr<GradientEngine> engine_;  // over driven_
};

}  // namespace cvnode::detail

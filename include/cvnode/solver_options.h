// How a Solver integrates: the method (which gradient engine, cvnode/engine.h), the tolerances
// and step limits every engine shares, and one options struct per engine family. An engine
// refuses, by name, an option of another family that is set (a configuration says what it does:
// nothing is silently ignored). Every field has a documented default; validate() says in words
// what is wrong before any solve starts.
#pragma once

#include <string>

#include "cvnode/cvodes_options.h"
#include "cvnode/dopri5_options.h"
#include "cvnode/dynamics.h"

namespace cvnode {

struct SolverOptions {
  // The gradient engine (engine_methods()):
  //   adams   CVODES, variable-order Adams-Moulton (orders 1-12): non-stiff problems, cheapest
  //           per step; gradients by the adjoint method
  //   bdf     CVODES, backward differentiation formulas (orders 1-5): stiff problems, needs a
  //           linear solver; gradients by the adjoint method
  //   dopri5  explicit Dormand-Prince 5(4) outside CVODES, gradients by backpropagation through
  //           the accepted steps (discretize, then optimize): for smooth non-stiff models
  //           observed at many times, where the adjoint restarts at every observation. Memory
  //           grows with the steps (no checkpointing); no running costs.
  std::string method = "adams";

  double rtol = 1e-6;
  double atol = 1e-8;   // scalar absolute tolerance, used when atol_vector is empty
  Vector atol_vector;   // per-component absolute tolerance (state_size), optional
  long max_steps = 100000;  // per output interval (between two observation times)
  double initial_step = 0;  // first forward step; 0 = the engine estimates it
  double max_step = 0;      // 0 = unbounded
  double min_step = 0;

  CvodesOptions cvodes;  // methods adams and bdf
  Dopri5Options dopri5;  // method dopri5

  bool is_bdf() const { return method == "bdf"; }
  // Empty when valid, else one sentence naming the option and its value. state_size > 0 also
  // checks the per-component options' lengths.
  std::string validate(int state_size = 0) const;
  // validate(), throwing cvnode::OptionsError with the reason.
  void check(int state_size = 0) const;
};

// The adjoint form a CVODES engine with these options uses for these dynamics: Restart or
// Transition (CvodesOptions::adjoint_form, Auto resolved); Restart for other methods. Throws
// OptionsError when Transition is asked for dynamics whose blocks are too large.
AdjointForm resolved_adjoint_form(const SolverOptions& options, const Dynamics& dynamics);
// Whether the implicit steps solve dense Newton systems (cost cubic in the state size).
bool dense_newton(const SolverOptions& options);

// The solver options of a training step under a solver-error penalty of `error_weight`
// ([regularization] error_weight, Dopri5Options::error_weight). Throws OptionsError naming
// regularization.error_weight when the method cannot give it: the CVODES adjoint (adams, bdf)
// neither differentiates its error test nor keeps its steps for a discrete gradient.
SolverOptions with_error_penalty(SolverOptions solver, double error_weight);
// The reason with_error_penalty would throw (empty: none).
std::string error_penalty_refusal(const SolverOptions& solver, double error_weight);

}  // namespace cvnode

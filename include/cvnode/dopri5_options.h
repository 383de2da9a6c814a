// Options of the dopri5 engine (backpropagation through Dormand-Prince 5(4) steps). Its
// tolerances and step limits are SolverOptions' shared ones.
#pragma once

#include <string>

namespace cvnode {

struct Dopri5Options {
  // Memory for the stages' network passes kept during one gradient call, in MiB, so that the
  // reverse sweep's vector-Jacobian products skip their forward half; steps beyond it recompute
  // (the same bits). One buffer per thread, shared by the dopri5 engines on it, so an idle engine
  // holds none (memory: keep_mib per thread at most). Keeping saved B2 16% and a 2-50-2 network
  // ~5% (docs/performance.md).
  double keep_mib = 64;
  // > 0: every step has this size and is accepted, no error control (rtol and atol unused, but
  // by error_weight's estimate), the last step cut at the horizon: ceil(span / fixed_step) steps,
  // a fixed-step Runge-Kutta network (RK-Net); initial_step, min_step and max_step must stay 0.
  // 0 (default): adaptive steps.
  double fixed_step = 0;
  // > 0: gradient() adds the solver-error penalty  error_weight * sum_s E_s h_s  over the accepted
  // steps s to the loss (E_s the controller's error norm of step s, h_s its size; Pal et al. 2021's
  // R_E, the penalty on the solver's local error estimates that Kelly et al. 2020 approximate by
  // higher derivatives), differentiated through the embedded error estimate and the error scale
  // with the step sizes held fixed, as the rest of this engine's gradient does. With fixed_step
  // the estimate is computed for the penalty alone (no step is rejected). Set by a fit from
  // regularization.error_weight; solve() ignores it.
  double error_weight = 0;

  std::string validate() const;  // empty when valid, else the option and its value
  // "name = value" of the first field that differs from its default (empty: none).
  std::string changed() const;
};

}  // namespace cvnode

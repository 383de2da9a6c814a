// The dopri5 engine: the explicit Dormand-Prince 5(4) method with gradients by backpropagation
// through its accepted steps (discretize, then optimize).
//
// Why beside the CVODES adjoint: on a smooth, non-stiff model observed at many times, the
// continuous adjoint restarts its multistep method at every observation (or carries n_b columns
// of the transition matrix), while the explicit method crosses several observations per step and
// answers them from its continuous extension, so its reverse pass costs six vector-Jacobian
// products per forward step whatever the number of observations. The gradient is the exact
// derivative of the discrete solution (step sizes held fixed), so it is consistent with the
// loss the forward pass computed, at the price of memory: every accepted step keeps its state
// and seven stages (no checkpointing), and up to Dopri5Options::keep_mib of the stages' network passes, so
// that the reverse sweep's VJPs skip their forward half. Stiff problems need BDF and the adjoint.
//
// Running costs (regularisers): their integral over [t0, horizon] is one more quadrature of the
// same Runge-Kutta steps, q += h sum_i b_i g(t + c_i h, Y_i) at the stage states Y_i, outside the
// error control (as CVODES' quadratures without errconQ), and its gradient goes back through the
// stages like the observations'. A KineticEnergy of this engine's own dynamics is read off the
// stages (g = w |K_i|^2: no extra evaluation; its gradient adds 2 w h b_i K_i to the stages'
// cotangents); other costs are evaluated at the stage states (value forward, gradient backward).
#pragma once

#include <vector>

#include "cvnode/engine.h"

namespace cvnode::detail {

class Dopri5Backprop final : public GradientEngine {
 public:
  Dopri5Backprop(const Dynamics& dynamics, const SolverOptions& options);
  Solution solve(ConstVectorRef theta, double t0, ConstVectorRef z0, ConstVectorRef times) override;
  Gradient gradient(ConstVectorRef theta, const Trajectory& ivp, const Observer& observe,
                    const RunningCosts& running_costs) override;

 private:
  // Integrates from t0 to t_end, filling states.row(k) = z(times[k]) from the continuous
  // extension. With `record`, keeps every accepted step and where each observation fell.
  void forward(double t0, ConstVectorRef z0, ConstVectorRef times, double t_end, bool record,
               Matrix& states, SolverStats& stats);
  double initial_step(double t0, double span);
  void rhs(double t, ConstVectorRef y, double* k, VectorRef work);
  // The workspace that keeps the forward pass of stage i of accepted step s for the reverse
  // sweep (Dynamics::vjp_again), or the scratch workspace when s is past the memory budget.
  VectorRef stage_work(long s, int i);
  [[noreturn]] void fail(int flag, double t, const std::string& detail) const;
  double error_norm(ConstVectorRef y, ConstVectorRef y_new);
  void error_estimate(double h, const Eigen::Ref<const Matrix>& K);
  // The running costs' quadrature over one accepted step (start y, stages K, size h at t).
  double cost_step(double t, double h, ConstVectorRef y, const Eigen::Ref<const Matrix>& K);
  // Its pullback: dtheta into g_theta, and onto the stages (Kbar) and the step's start (y_bar).
  void cost_pullback(double t, double h, ConstVectorRef y, const Eigen::Ref<const Matrix>& K, Matrix& Kbar,
                     VectorRef y_bar, VectorRef g_theta);
  void error_pullback(ConstVectorRef y, const Eigen::Ref<const Matrix>& K, double h, Matrix& Kbar, VectorRef y_bar,
                      VectorRef y_end_bar);

  const Dynamics& dyn_;
  SolverOptions opt_;
  int n_, P_;
  const double* theta_ = nullptr;
  long n_rhs_ = 0, n_vjp_ = 0;
  double solver_error_ = 0;  // sum_s E_s h_s of the last recorded forward pass (error_weight > 0)
  // The running costs of the gradient being taken (null outside gradient()): those read off the
  // stages (kinetic energy of dyn_, summed weight) and the others; their integral so far.
  double stage_kinetic_ = 0;
  std::vector<const RunningCost*> other_costs_;
  double running_cost_ = 0;
  Vector cost_work_, cost_dz_, cost_dtheta_;
  double t_reached_ = 0;  // the last accepted step's end (forward) or the step being reversed
  Vector work_, stage_in_, stage_out_, y_, y_new_, err_, scale_, out_n_, out_p_;
  Matrix K_;  // n x 7: the stages of the step being taken (K_.col(0) = f at its start)

  // The accepted steps of the last forward pass with `record`: start time, size, start state and
  // seven stages each (8 n doubles per step), and each observation's step (-1: at t0) and
  // position in it.
  std::vector<double> step_t_, step_h_, store_;
  // Stage workspaces of the first kept_steps_ accepted steps (7 per step, each ws_stride_
  // doubles: a multiple of 64 bytes from Eigen's aligned base, so their bits do not depend on
  // the heap); kept_steps_ is 0 outside gradient(). The buffer is the thread's (src/ode/dopri5.cpp),
  // so an idle engine holds none.
  Vector* kept_ = nullptr;
  Eigen::Index ws_stride_ = 0;
  long kept_steps_ = 0;
  std::vector<long> obs_step_;
  std::vector<double> obs_theta_;
};

}  // namespace cvnode::detail

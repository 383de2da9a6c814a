#include "ode/dopri5.h"

#include <algorithm>
#include <cmath>
#include <string>

#include <cvodes/cvodes.h>  // CV_* flags: failures here carry the same vocabulary as CVODES'

#include "cvnode/errors.h"
#include "ode/engine_util.h"
#include "ode/sundials_raii.h"

namespace cvnode::detail {

namespace {
// Dormand & Prince (1980) as in Hairer, Norsett & Wanner's DOPRI5. Row 6 holds the fifth-order
// weights b: the seventh stage is f at the step's end, the next step's first stage (FSAL).
constexpr double kC[7] = {0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1};
constexpr double kA[7][6] = {
    {0, 0, 0, 0, 0, 0},
    {1.0 / 5, 0, 0, 0, 0, 0},
    {3.0 / 40, 9.0 / 40, 0, 0, 0, 0},
    {44.0 / 45, -56.0 / 15, 32.0 / 9, 0, 0, 0},
    {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729, 0, 0},
    {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656, 0},
    {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84}};
// b - b_hat with b_hat the embedded fourth-order weights: the local error estimate.
constexpr double kE[7] = {71.0 / 57600,       0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200,
                          22.0 / 525, -1.0 / 40};
// The fourth-order continuous extension (Shampine's; the one of scipy's RK45):
// z(t + s h) = y + h sum_i w_i(s) K_i with w_i(s) = sum_j kP[i][j] s^(j+1). In exact arithmetic
// w_i(1) = b_i and w_i'(1) selects the last stage, so outputs are continuous across steps.
constexpr double kP[7][4] = {
    {1, -8048581381.0 / 2820520608, 8663915743.0 / 2820520608, -12715105075.0 / 11282082432},
    {0, 0, 0, 0},
    {0, 131558114200.0 / 32700410799, -68118460800.0 / 10900136933, 87487479700.0 / 32700410799},
    {0, -1754552775.0 / 470086768, 14199869525.0 / 1410260304, -10690763975.0 / 1880347072},
    {0, 127303824393.0 / 49829197408, -318862633887.0 / 49829197408, 701980252875.0 / 199316789632},
    {0, -282668133.0 / 205662961, 2019193451.0 / 616988883, -1453857185.0 / 822651844},
    {0, 40617522.0 / 29380423, -110615467.0 / 29380423, 69997945.0 / 29380423}};
// Step-size controller: h *= clamp(kSafety err^(-1/5), kMinShrink, kMaxGrow), no growth right
// after a rejection (Hairer, Norsett & Wanner II.4; the rule torchdiffeq's dopri5 uses too).
constexpr double kSafety = 0.9, kMinShrink = 0.2, kMaxGrow = 10;


// Stage i's state y + h sum_{j<i} a_ij K_j into out: one function for the forward pass and the
// reverse sweep, so the sweep's VJPs are taken at the same bits the stages were evaluated at.
void stage_state(ConstVectorRef y, const Eigen::Ref<const Matrix>& K, double h, int i, Vector& out) {
  out = y;
  for (int j = 0; j < i; ++j)
    if (kA[i][j] != 0) out.noalias() += (h * kA[i][j]) * K.col(j);
}

void extension_weights(double s, double w[7]) {
  for (int i = 0; i < 7; ++i) w[i] = s * (kP[i][0] + s * (kP[i][1] + s * (kP[i][2] + s * kP[i][3])));
}
}  // namespace

Dopri5Backprop::Dopri5Backprop(const Dynamics& dynamics, const SolverOptions& options)
    : dyn_(dynamics), opt_(options), n_(dynamics.state_size()), P_(dynamics.param_size()) {
  work_.setZero(dyn_.workspace_size());
  stage_in_.setZero(n_);
  stage_out_.setZero(n_);
  y_.setZero(n_);
  y_new_.setZero(n_);
  err_.setZero(n_);
  scale_.setZero(n_);
  out_n_.setZero(n_);
  out_p_.setZero(P_);
  K_.setZero(n_, 7);
  ws_stride_ = (dyn_.workspace_size() + 7) / 8 * 8;
}

namespace {
// The kept network passes of the gradient running on this thread: one buffer per thread, not per
// engine. A BatchSolver has an engine per thread and per stacked unit, and each of them kept up
// to keep_mib for good; engines on one thread never run at the same time, so they share it.
// Freeing it after every call instead made large gradients slower than keeping nothing (36 MB:
// page faults on every call). `busy` covers a gradient started inside another one's observer.
struct PassBuffer {
  Vector data;
  bool busy = false;
};
thread_local PassBuffer t_passes;
}  // namespace

VectorRef Dopri5Backprop::stage_work(long s, int i) {
  if (s >= kept_steps_) return work_;
  Vector& kept = *kept_;
  const Eigen::Index need = (static_cast<Eigen::Index>(s) + 1) * 7 * ws_stride_;
  if (kept.size() < need) kept.conservativeResize(std::max(need, 2 * kept.size()));
  return kept.segment((static_cast<Eigen::Index>(s) * 7 + i) * ws_stride_, dyn_.workspace_size());
}

void Dopri5Backprop::fail(int flag, double t, const std::string& detail) const {
  throw SolverError("dopri5", flag, flag_name(flag), t, detail);
}

// f at (t, y) into k (n doubles), through fixed-alignment staging buffers: Eigen's kernels take
// different paths by an operand's alignment, and the bits must not depend on where a caller's
// vector happens to live (solver.cpp has the same rule).
void Dopri5Backprop::rhs(double t, ConstVectorRef y, double* k, VectorRef work) {
  stage_in_ = y;
  dyn_.rhs(t, stage_in_, Eigen::Map<const Vector>(theta_, P_), stage_out_, work);
  ++n_rhs_;
  if (!stage_out_.allFinite())
    fail(CV_RHSFUNC_FAIL, t_reached_, "the right-hand side was not finite at t = " + std::to_string(t));
  Eigen::Map<Vector>(k, n_) = stage_out_;
}

// The embedded error estimate of a step of size h with stages K into err_: h sum_j (b_j - b^_j) K_j.
void Dopri5Backprop::error_estimate(double h, const Eigen::Ref<const Matrix>& K) {
  err_ = (h * kE[0]) * K.col(0);
  for (int j = 2; j < 7; ++j) err_.noalias() += (h * kE[j]) * K.col(j);
}

// The penalty weight E h of an accepted step (start y, stages K, size h) pulled back onto its
// stages (Kbar), its start (y_bar) and its end (y_end_bar), h held fixed. With r = err / sc,
// E = sqrt(mean r^2), sc = rtol max(|y|, |y_new|) + atol: dE/derr = r / (n E sc) and
// dE/dsc = -r^2 / (n E sc); sc follows whichever of |y_i|, |y_new_i| is larger (a.e.).
void Dopri5Backprop::error_pullback(ConstVectorRef y, const Eigen::Ref<const Matrix>& K, double h, Matrix& Kbar,
                                    VectorRef y_bar, VectorRef y_end_bar) {
  stage_state(y, K, h, 6, y_new_);  // the step's end as the forward pass formed it
  error_estimate(h, K);
  const double E = error_norm(y, y_new_);  // also fills scale_
  if (!(E > 0) || !std::isfinite(E)) return;
  const double c = opt_.dopri5.error_weight * h / (static_cast<double>(n_) * E);
  stage_out_.array() = c * err_.array() / scale_.array().square();  // d(weight E h)/d err
  Kbar.col(0).noalias() += (h * kE[0]) * stage_out_;
  for (int j = 2; j < 7; ++j) Kbar.col(j).noalias() += (h * kE[j]) * stage_out_;
  for (int i = 0; i < n_; ++i) {
    const double sbar = -c * (err_[i] / scale_[i]) * (err_[i] / scale_[i]) / scale_[i] * opt_.rtol;
    const double a = std::abs(y[i]), b = std::abs(y_new_[i]);
    if (a >= b) y_bar[i] += y[i] > 0 ? sbar : y[i] < 0 ? -sbar : 0.0;
    else y_end_bar[i] += y_new_[i] > 0 ? sbar : -sbar;
  }
}

// Hairer's norm: the root mean square of err_i / (atol_i + rtol max(|y_i|, |y_new_i|)).
double Dopri5Backprop::error_norm(ConstVectorRef y, ConstVectorRef y_new) {
  scale_.array() = opt_.rtol * y.array().abs().max(y_new.array().abs());
  if (opt_.atol_vector.size() > 0) scale_ += opt_.atol_vector;
  else scale_.array() += opt_.atol;
  return std::sqrt((err_.array() / scale_.array()).square().mean());
}

// The running costs over an accepted step: h sum_i b_i g(t + c_i h, Y_i), Y_i the stage states
// (b_1 = b_6 = 0: stages 0, 2, 3, 4, 5), the quadrature an explicit Runge-Kutta method gives a
// component q' = g appended to the state and kept out of its error norm.
double Dopri5Backprop::cost_step(double t, double h, ConstVectorRef y, const Eigen::Ref<const Matrix>& K) {
  double q = 0;
  for (int i = 0; i < 6; ++i) {
    const double b = kA[6][i];
    if (b == 0) continue;
    double g = stage_kinetic_ > 0 ? stage_kinetic_ * K.col(i).squaredNorm() : 0.0;
    if (!other_costs_.empty()) {
      stage_state(y, K, h, i, stage_in_);
      for (const RunningCost* c : other_costs_)
        g += c->value(t + kC[i] * h, stage_in_, Eigen::Map<const Vector>(theta_, P_), cost_work_);
    }
    q += h * b * g;
  }
  if (!std::isfinite(q)) fail(CV_QRHSFUNC_FAIL, t, "a running cost was not finite in the step from t = " + std::to_string(t));
  return q;
}

// The pullback of cost_step. The kinetic part: d(w |K_i|^2) = 2 w K_i . dK_i joins stage i's
// cotangent, whose VJP in the sweep carries it to the stage state and theta. The others: their
// dg/dY_i goes to the step's start and, through Y_i = y + h sum_{j<i} a_ij K_j, to the earlier
// stages' cotangents, before the sweep takes any stage's VJP.
void Dopri5Backprop::cost_pullback(double t, double h, ConstVectorRef y, const Eigen::Ref<const Matrix>& K,
                                   Matrix& Kbar, VectorRef y_bar, VectorRef g_theta) {
  const auto theta = Eigen::Map<const Vector>(theta_, P_);
  for (int i = 0; i < 6; ++i) {
    const double b = kA[6][i];
    if (b == 0) continue;
    if (stage_kinetic_ > 0) Kbar.col(i).noalias() += (2 * stage_kinetic_ * h * b) * K.col(i);
    for (const RunningCost* c : other_costs_) {
      stage_state(y, K, h, i, stage_in_);
      c->gradient(t + kC[i] * h, stage_in_, theta, cost_dz_, cost_dtheta_, cost_work_);
      if (!cost_dz_.allFinite() || !cost_dtheta_.allFinite())
        fail(CV_QRHSFUNC_FAIL, t + h, "a running cost's gradient was not finite in the step from t = " + std::to_string(t));
      cost_dz_ *= h * b;
      g_theta.noalias() += (h * b) * cost_dtheta_;
      y_bar += cost_dz_;
      for (int j = 0; j < i; ++j)
        if (kA[i][j] != 0) Kbar.col(j).noalias() += (h * kA[i][j]) * cost_dz_;
    }
  }
}

// Hairer, Norsett & Wanner's starting step (II.4): a step whose explicit Euler change is 1% of
// the state, refined by one more evaluation of f; K_.col(0) holds f(t0, y0).
double Dopri5Backprop::initial_step(double t0, double span) {
  scale_.array() = opt_.rtol * y_.array().abs();
  if (opt_.atol_vector.size() > 0) scale_ += opt_.atol_vector;
  else scale_.array() += opt_.atol;
  auto rms = [&](const auto& v) { return std::sqrt((v.array() / scale_.array()).square().mean()); };
  const double d0 = rms(y_), d1 = rms(K_.col(0));
  double h0 = (d0 < 1e-5 || d1 < 1e-5) ? 1e-6 : 0.01 * d0 / d1;
  h0 = std::min(h0, span);
  y_new_ = y_ + h0 * K_.col(0);
  rhs(t0 + h0, y_new_, K_.col(1).data(), work_);
  const double d2 = rms(K_.col(1) - K_.col(0)) / h0;
  const double dmax = std::max(d1, d2);
  const double h1 = dmax <= 1e-15 ? std::max(1e-6, h0 * 1e-3) : std::pow(0.01 / dmax, 1.0 / 5);
  return std::min({100 * h0, h1, span});
}

void Dopri5Backprop::forward(double t0, ConstVectorRef z0, ConstVectorRef times, double t_end, bool record,
                     Matrix& states, SolverStats& stats) {
  const Eigen::Index T = times.size();
  states.resize(T, n_);
  // The solver-error penalty is a gradient's (record) and needs the error estimate of every step.
  const bool penalise = record && opt_.dopri5.error_weight > 0;
  solver_error_ = 0;
  running_cost_ = 0;
  if (record) {
    step_t_.clear();
    step_h_.clear();
    store_.clear();
    obs_step_.assign(T, -1);
    obs_theta_.assign(T, 0.0);
  }
  y_ = z0;
  Eigen::Index k = 0;
  for (; k < T && times[k] <= t0; ++k) states.row(k) = y_.transpose();
  if (!(t_end > t0) || same_instant(t0, t_end)) {
    for (; k < T; ++k) states.row(k) = y_.transpose();
    return;
  }
  double t = t0;
  t_reached_ = t0;
  rhs(t, y_, K_.col(0).data(), stage_work(0, 0));
  const bool fixed = opt_.dopri5.fixed_step > 0;  // RK-Net: no error control
  double h = fixed ? opt_.dopri5.fixed_step : opt_.initial_step > 0 ? opt_.initial_step : initial_step(t0, t_end - t0);
  if (opt_.max_step > 0 && !fixed) h = std::min(h, opt_.max_step);
  bool rejected_last = false;
  long tries = 0;  // steps since the last output time, accepted or not (solver.max_steps)
  double w[7];
  while (!same_instant(t, t_end) && t < t_end) {
    if (tries >= opt_.max_steps)
      fail(CV_TOO_MUCH_WORK, t, std::to_string(tries) + " steps without reaching the next output time (solver.max_steps)");
    ++tries;
    // Fixed steps: a remainder below 1e-9 of a step is round-off of the step count, not a step.
    const bool last = t + h >= t_end || same_instant(t + h, t_end) || (fixed && t_end - (t + h) <= 1e-9 * h);
    if (last) h = t_end - t;
    // Stages 1..6; the sixth is at y_new = y + h sum_j b_j K_j, the step's fifth-order result.
    for (int i = 1; i < 7; ++i) {
      stage_state(y_, K_, h, i, y_new_);
      rhs(t + kC[i] * h, y_new_, K_.col(i).data(), stage_work(stats.steps, i));
    }
    double e = 0;
    if (!fixed || penalise) {  // fixed steps estimate their error for the penalty alone
      error_estimate(h, K_);
      e = error_norm(y_, y_new_);
    }
    if (fixed || e <= 1) {
      const double t_new = last ? t_end : t + h;
      const long step = static_cast<long>(step_t_.size());
      if (record) {
        solver_error_ += e * h;  // 0 on fixed steps without the penalty (no estimate)
        if (stage_kinetic_ > 0 || !other_costs_.empty()) running_cost_ += cost_step(t, h, y_, K_);
        step_t_.push_back(t);
        step_h_.push_back(h);
        store_.insert(store_.end(), y_.data(), y_.data() + n_);
        store_.insert(store_.end(), K_.data(), K_.data() + 7 * static_cast<std::size_t>(n_));
      }
      for (; k < T && (times[k] <= t_new || same_instant(times[k], t_new)); ++k) {
        const double s = std::clamp((times[k] - t) / h, 0.0, 1.0);
        extension_weights(s, w);
        stage_out_ = y_;
        for (int i = 0; i < 7; ++i)
          if (w[i] != 0) stage_out_.noalias() += (h * w[i]) * K_.col(i);
        states.row(k) = stage_out_.transpose();
        if (record) {
          obs_step_[k] = step;
          obs_theta_[k] = s;
        }
        tries = 0;
      }
      t = t_reached_ = t_new;
      y_ = y_new_;
      K_.col(0) = K_.col(6);
      ++stats.steps;
      double factor = fixed ? 1.0 : e == 0 ? kMaxGrow : std::clamp(kSafety * std::pow(e, -0.2), kMinShrink, kMaxGrow);
      if (rejected_last) factor = std::min(factor, 1.0);
      if (!(fixed && last)) h *= factor;  // a cut last step leaves fixed_step for a later call
      rejected_last = false;
    } else {
      ++stats.err_test_fails;
      h *= std::isfinite(e) ? std::max(kMinShrink, kSafety * std::pow(e, -0.2)) : kMinShrink;
      rejected_last = true;
      if (h <= 16 * std::numeric_limits<double>::epsilon() * std::abs(t) || (opt_.min_step > 0 && h < opt_.min_step))
        fail(CV_ERR_FAILURE, t, "the step size fell to " + std::to_string(h) + " after repeated error test failures");
    }
    if (fixed) continue;
    if (opt_.max_step > 0) h = std::min(h, opt_.max_step);
    if (opt_.min_step > 0) h = std::max(h, opt_.min_step);
  }
  // None are left unless round-off kept a time a hair past the end: answer it with the last
  // step's end, consistently for the reverse sweep.
  for (; k < T; ++k) {
    states.row(k) = y_.transpose();
    if (record && !step_t_.empty()) {
      obs_step_[k] = static_cast<long>(step_t_.size()) - 1;
      obs_theta_[k] = 1.0;
    }
  }
}

Solution Dopri5Backprop::solve(ConstVectorRef theta, double t0, ConstVectorRef z0, ConstVectorRef times) {
  check_theta(theta, P_);
  check_solve_inputs(t0, z0, times, n_);
  theta_ = theta.data();
  n_rhs_ = 0;
  Solution out;
  out.times = times;
  const double t_end = times.size() > 0 ? std::max(t0, times[times.size() - 1]) : t0;
  forward(t0, z0, times, t_end, false, out.states, out.stats);
  out.stats.rhs_evals = n_rhs_;
  out.nfe = n_rhs_;
  return out;
}

Gradient Dopri5Backprop::gradient(ConstVectorRef theta, const Trajectory& tr, const Observer& observe,
                                 const RunningCosts& running_costs) {
  check_ivp(tr, n_);
  check_theta(theta, P_);
  theta_ = theta.data();
  n_rhs_ = n_vjp_ = 0;
  Gradient g;
  g.theta.setZero(P_);
  g.z0.setZero(n_);
  kept_steps_ = ws_stride_ > 0 ? static_cast<long>(opt_.dopri5.keep_mib * 1024 * 1024 / (7.0 * 8.0 * static_cast<double>(ws_stride_))) : 0;
  // The thread's buffer, or (nested in another gradient on this thread) one of this call's own.
  Vector own;
  const bool shared = !t_passes.busy;
  kept_ = shared ? &t_passes.data : &own;
  t_passes.busy = true;
  struct KeepNone {  // after the call, also one that threw: solve() keeps nothing, the buffer is free
    Dopri5Backprop& e;
    bool shared;
    ~KeepNone() {
      e.kept_steps_ = 0;
      e.kept_ = nullptr;
      if (shared) t_passes.busy = false;
    }
  } keep_none{*this, shared};
  // The running costs: a kinetic energy of these dynamics from the stages, the others evaluated.
  stage_kinetic_ = 0;
  other_costs_.clear();
  Eigen::Index cost_work = 0;
  for (const auto& c : running_costs) {
    const auto* kinetic = dynamic_cast<const KineticEnergy*>(c.get());
    if (kinetic && &kinetic->dynamics() == &dyn_) {
      stage_kinetic_ += kinetic->weight();
      continue;
    }
    other_costs_.push_back(c.get());
    cost_work = std::max<Eigen::Index>(cost_work, c->workspace_size());
  }
  if (!other_costs_.empty()) {
    if (cost_work_.size() < cost_work) cost_work_.setZero(cost_work);
    cost_dz_.setZero(n_);
    cost_dtheta_.setZero(P_);
  }
  struct NoCosts {  // the costs are this call's: solve() and the next gradient start without them
    Dopri5Backprop& e;
    ~NoCosts() {
      e.stage_kinetic_ = 0;
      e.other_costs_.clear();
    }
  } no_costs{*this};
  forward(tr.t0, tr.z0, tr.times, tr.horizon(), true, g.states, g.forward);
  g.forward.rhs_evals = n_rhs_;
  ObservationTerms terms = observe(g.states);
  check_terms(terms, tr.times.size(), n_);
  g.loss = terms.loss + opt_.dopri5.error_weight * solver_error_ + running_cost_;
  g.solver_error = solver_error_;
  g.phi = std::move(terms.phi);
  const Matrix& jumps = terms.jumps;
  const bool penalise = opt_.dopri5.error_weight > 0;
  const bool costs = stage_kinetic_ > 0 || !other_costs_.empty();

  // ---- reverse sweep through the accepted steps ----
  // ybar = dLoss/dy at the end of step s; carry = dLoss/dK_0 of step s + 1, which is K_6 of step
  // s (FSAL), so its product goes with step s's last stage at the same point.
  const auto theta_map = Eigen::Map<const Vector>(theta_, P_);
  // Stage i of step s: with its forward pass kept, the VJP runs only the network's backward half.
  auto vjp = [&](long s, int i, double t, ConstVectorRef y, ConstVectorRef a) {
    stage_in_ = y;
    stage_out_ = a;
    if (s < kept_steps_)
      dyn_.vjp_again(t, stage_in_, theta_map, stage_out_, out_n_, out_p_, stage_work(s, i));
    else
      dyn_.vjp(t, stage_in_, theta_map, stage_out_, out_n_, out_p_, work_);
    ++n_vjp_;
    // The state part is checked at once (it feeds every earlier stage); the parameter part, which
    // only accumulates, once after the sweep: a P-long scan per VJP cost B1L 16% of its time.
    if (!out_n_.allFinite())
      fail(CV_RHSFUNC_FAIL, t_reached_, "a vector-Jacobian product was not finite at t = " + std::to_string(t));
    g.theta += out_p_;
  };
  Eigen::Index k = tr.times.size() - 1;
  Vector ybar = Vector::Zero(n_), ys_bar(n_), carry = Vector::Zero(n_), y_stage(n_);
  Matrix Kbar(n_, 7);
  double w[7];
  const long S = static_cast<long>(step_t_.size());
  for (long s = S - 1; s >= 0; --s) {
    const double t = step_t_[s], h = step_h_[s];
    t_reached_ = t + h;  // the reverse sweep has come back to this step's end
    const double* base = store_.data() + static_cast<std::size_t>(s) * 8 * n_;
    const Eigen::Map<const Vector> y(base, n_);
    const Eigen::Map<const Matrix> K(base + n_, n_, 7);
    Kbar.setZero();
    Kbar.col(6) = carry;
    ys_bar.setZero();
    if (penalise) error_pullback(y, K, h, Kbar, ys_bar, ybar);
    if (costs) cost_pullback(t, h, y, K, Kbar, ys_bar, g.theta);
    // y_{s+1} = y_s + h sum_j b_j K_j
    ys_bar += ybar;
    for (int j = 0; j < 6; ++j)
      if (kA[6][j] != 0) Kbar.col(j).noalias() += (h * kA[6][j]) * ybar;
    // the observations this step answered from its continuous extension
    for (; k >= 0 && obs_step_[k] == s; --k) {
      extension_weights(obs_theta_[k], w);
      ys_bar += jumps.row(k).transpose();
      for (int i = 0; i < 7; ++i)
        if (w[i] != 0) Kbar.col(i).noalias() += (h * w[i]) * jumps.row(k).transpose();
    }
    // stages 6..1: K_i = f(t + c_i h, y + h sum_{j<i} a_ij K_j), built as in the forward pass
    for (int i = 6; i >= 1; --i) {
      if (Kbar.col(i).isZero(0)) continue;
      stage_state(y, K, h, i, y_stage);
      vjp(s, i, t + kC[i] * h, y_stage, Kbar.col(i));
      ys_bar += out_n_;
      for (int j = 0; j < i; ++j)
        if (kA[i][j] != 0) Kbar.col(j).noalias() += (h * kA[i][j]) * out_n_;
    }
    if (s > 0) {
      carry = Kbar.col(0);
    } else if (!Kbar.col(0).isZero(0)) {
      vjp(0, 0, t, y, Kbar.col(0));
      ys_bar += out_n_;
    }
    ybar = ys_bar;
  }
  for (; k >= 0; --k) ybar += jumps.row(k).transpose();  // observations at t0
  if (!g.theta.allFinite())
    fail(CV_RHSFUNC_FAIL, tr.t0, "the parameter part of a vector-Jacobian product was not finite");
  g.z0 = ybar;
  g.backward.steps = S;
  g.backward.rhs_evals = n_vjp_;
  g.nfe_forward = n_rhs_;
  g.nfe_backward = n_vjp_;
  return g;
}

}  // namespace cvnode::detail

namespace cvnode {

std::unique_ptr<GradientEngine> make_dopri5_backprop_engine(const Dynamics& dynamics, const SolverOptions& options) {
  return std::make_unique<detail::Dopri5Backprop>(dynamics, options);
}

std::string validate_dopri5_backprop_options(const SolverOptions& options, int) {
  if (std::string c = options.cvodes.changed(); !c.empty())
    return "solver option " + c + " applies to the adjoint methods (adams, bdf), not to dopri5";
  if (options.dopri5.fixed_step > 0 && (options.initial_step > 0 || options.min_step > 0 || options.max_step > 0))
    return "solver option " + options.dopri5.changed() + " sets every step: initial_step, min_step and max_step must stay 0";
  return options.dopri5.validate();
}

}  // namespace cvnode

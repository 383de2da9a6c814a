#include "ode/segments.h"

#include <algorithm>
#include <string>

#include "cvnode/errors.h"
#include "ode/engine_util.h"

namespace cvnode::detail {

// ---------------------------------------------------------------------------------------------
// Inputs

Eigen::Index control_piece(const Controls& controls, double a) {
  Eigen::Index p = -1;
  for (Eigen::Index i = 0; i < controls.times.size(); ++i)
    if (controls.times[i] <= a || same_instant(controls.times[i], a)) p = i;
  return p;
}

namespace {
// Slope of the monotone cubic at knot i of column c: PCHIP's weighted harmonic mean of the
// neighbouring secants (Fritsch & Butland's form of the Fritsch-Carlson condition: zero at a local
// extremum, so the interpolant never overshoots the data), one-sided secants at the ends.
double pchip_slope(const Controls& u, Eigen::Index i, Eigen::Index c) {
  const Eigen::Index K = u.times.size();
  auto secant = [&](Eigen::Index j) {
    return (u.values(j + 1, c) - u.values(j, c)) / (u.times[j + 1] - u.times[j]);
  };
  if (i == 0) return secant(0);
  if (i == K - 1) return secant(K - 2);
  const double d0 = secant(i - 1), d1 = secant(i);
  if (d0 * d1 <= 0) return 0.0;
  const double h0 = u.times[i] - u.times[i - 1], h1 = u.times[i + 1] - u.times[i];
  const double w0 = 2 * h1 + h0, w1 = h1 + 2 * h0;
  return (w0 + w1) / (w0 / d0 + w1 / d1);
}
}  // namespace

void series_input(const Trajectory& series, Eigen::Index piece, double t, VectorRef u) {
  const Controls& ctl = series.controls;
  const Eigen::Index m = ctl.inputs(), K = ctl.times.size();
  if (m > 0) {
    if (piece < 0) {
      u.head(m) = ctl.values.row(0).transpose();
    } else if (piece >= K - 1 || ctl.interpolation == ControlInterpolation::PiecewiseConstant) {
      u.head(m) = ctl.values.row(std::min(piece, K - 1)).transpose();
    } else {
      const double h = ctl.times[piece + 1] - ctl.times[piece], s = (t - ctl.times[piece]) / h;
      if (ctl.interpolation == ControlInterpolation::Linear) {
        u.head(m) = ((1 - s) * ctl.values.row(piece) + s * ctl.values.row(piece + 1)).transpose();
      } else {  // cubic Hermite on the piece with the monotone slopes
        const double s2 = s * s, s3 = s2 * s;
        const double h00 = 2 * s3 - 3 * s2 + 1, h10 = s3 - 2 * s2 + s, h01 = -2 * s3 + 3 * s2, h11 = s3 - s2;
        for (Eigen::Index c = 0; c < m; ++c)
          u[c] = h00 * ctl.values(piece, c) + h10 * h * pchip_slope(ctl, piece, c) + h01 * ctl.values(piece + 1, c) +
                 h11 * h * pchip_slope(ctl, piece + 1, c);
      }
    }
  }
  if (series.covariates.size() > 0) u.segment(m, series.covariates.size()) = series.covariates;
}

DrivenDynamics::DrivenDynamics(const Dynamics& model) : model_(model), rate_(Vector::Zero(model.state_size())) {}

void DrivenDynamics::set_segment(const Trajectory* series, double a, const Vector& rate) {
  series_ = series;
  piece_ = series ? control_piece(series->controls, a) : -1;
  rate_ = rate;
  has_rate_ = !rate.isZero(0);
}

ConstVectorRef DrivenDynamics::input(double t, VectorRef work) const {
  const int m = model_.input_size();
  series_input(*series_, piece_, t, work.tail(m));
  return work.tail(m);
}

void DrivenDynamics::rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const {
  if (model_.input_size() > 0) model_.rhs_u(t, z, input(t, work), theta, f, model_work(work));
  else model_.rhs(t, z, theta, f, model_work(work));
  if (has_rate_) f += rate_;
}

void DrivenDynamics::vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                         VectorRef a_dfdtheta, VectorRef work) const {
  if (model_.input_size() > 0) model_.vjp_u(t, z, input(t, work), theta, a, a_dfdz, a_dfdtheta, model_work(work));
  else model_.vjp(t, z, theta, a, a_dfdz, a_dfdtheta, model_work(work));
}

void DrivenDynamics::vjp_again(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                               VectorRef a_dfdtheta, VectorRef work) const {
  // The input forms have no "again" variant: a model with inputs recomputes its forward half.
  if (model_.input_size() > 0) vjp(t, z, theta, a, a_dfdz, a_dfdtheta, work);
  else model_.vjp_again(t, z, theta, a, a_dfdz, a_dfdtheta, model_work(work));
}

void DrivenDynamics::jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const {
  if (model_.input_size() > 0) model_.jacobian_u(t, z, input(t, work), theta, J, model_work(work));
  else model_.jacobian(t, z, theta, J, model_work(work));
}

void DrivenDynamics::jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
                         VectorRef work) const {
  if (model_.input_size() > 0) model_.jvp_u(t, z, input(t, work), theta, v, Jv, model_work(work));
  else model_.jvp(t, z, theta, v, Jv, model_work(work));
}

// ---------------------------------------------------------------------------------------------
// Segments

bool needs_segments(const Trajectory& ivp) {
  return !ivp.events.empty() || !ivp.controls.empty() || ivp.covariates.size() > 0;
}

namespace {

struct Segment {
  double a = 0, b = 0;
  Eigen::Index first = 0, end = 0;  // its observations: rows [first, end), times in (a, b]
  std::vector<int> events;          // applied at a, before the segment is integrated
  Vector rate;                      // infusion rates on the segment
  bool degenerate() const { return same_instant(a, b) || b <= a; }
};

struct Plan {
  Eigen::Index at_t0 = 0;  // observations at t0 (rows [0, at_t0)): they see z0 before any event
  std::vector<Segment> segments;
};

Plan plan_segments(const Trajectory& tr, int n) {
  const double t0 = tr.t0, end = tr.horizon();
  std::vector<double> cuts;
  for (const Event& ev : tr.events) {
    cuts.push_back(ev.time);
    if (ev.kind == EventKind::Infusion) cuts.push_back(ev.time + ev.duration);
  }
  for (Eigen::Index i = 0; i < tr.controls.times.size(); ++i) cuts.push_back(tr.controls.times[i]);
  std::sort(cuts.begin(), cuts.end());
  std::vector<double> bounds{t0};
  for (double c : cuts)
    if (c > t0 && c < end && !same_instant(c, bounds.back()) && !same_instant(c, end)) bounds.push_back(c);
  bounds.push_back(end);

  Plan p;
  const Eigen::Index T = tr.times.size();
  Eigen::Index k = 0;
  while (k < T && (tr.times[k] <= t0 || same_instant(tr.times[k], t0))) ++k;
  p.at_t0 = k;
  struct Running {
    double until;
    int compartment;
    double rate;
  };
  std::vector<Running> running;
  std::size_t e = 0;
  for (std::size_t j = 0; j + 1 < bounds.size(); ++j) {
    Segment s;
    s.a = bounds[j];
    s.b = bounds[j + 1];
    for (; e < tr.events.size() && (tr.events[e].time <= s.a || same_instant(tr.events[e].time, s.a)); ++e) {
      const Event& ev = tr.events[e];
      s.events.push_back(static_cast<int>(e));
      if (ev.kind == EventKind::Reset) running.clear();
      if (ev.kind == EventKind::Infusion) running.push_back({ev.time + ev.duration, ev.compartment, ev.amount / ev.duration});
    }
    running.erase(std::remove_if(running.begin(), running.end(),
                                 [&](const Running& r) { return r.until <= s.a || same_instant(r.until, s.a); }),
                  running.end());
    s.rate = Vector::Zero(n);
    for (const Running& r : running) s.rate[r.compartment] += r.rate;
    s.first = k;
    while (k < T && (tr.times[k] <= s.b || same_instant(tr.times[k], s.b))) ++k;
    s.end = k;
    p.segments.push_back(std::move(s));
  }
  // Events at the horizon act after every observation and cost: nothing to apply.
  return p;
}

void apply_events(const Trajectory& tr, const std::vector<int>& events, Vector& z) {
  for (int e : events) {
    const Event& ev = tr.events[static_cast<std::size_t>(e)];
    switch (ev.kind) {
      case EventKind::Bolus: z[ev.compartment] += ev.amount; break;
      case EventKind::Infusion: break;  // a rate on the following segments
      case EventKind::Remove: z[ev.compartment] *= 1 - ev.amount; break;
      case EventKind::Reset: z.setZero(); break;
    }
  }
}

// a(t-) from a(t+) across the events at one instant: the transposed Jacobians in reverse order.
void pull_back_events(const Trajectory& tr, const std::vector<int>& events, Vector& a) {
  for (auto it = events.rbegin(); it != events.rend(); ++it) {
    const Event& ev = tr.events[static_cast<std::size_t>(*it)];
    if (ev.kind == EventKind::Remove) a[ev.compartment] *= 1 - ev.amount;
    if (ev.kind == EventKind::Reset) a.setZero();
  }
}

// The observation times of segment s, clamped into (a, b] (a time within round-off past b is b's
// instant), with b appended when `with_end` and the last one is not already at b.
Vector segment_times(const Trajectory& tr, const Segment& s, bool with_end) {
  const Eigen::Index m = s.end - s.first;
  const bool ends_at_b = m > 0 && same_instant(tr.times[s.end - 1], s.b);
  Vector t(m + (with_end && !ends_at_b ? 1 : 0));
  for (Eigen::Index i = 0; i < m; ++i) t[i] = std::min(tr.times[s.first + i], s.b);
  if (t.size() > m) t[m] = s.b;
  return t;
}

// Forward through the plan's segments from tr.z0 with `engine` over `driven`: the state at each
// observation time into the rows of `states` (which may hold more rows), the state each segment
// starts from (after its events) into `start` when given, the statistics added to `stats` and
// `nfe`. Returns the state at the end of the last segment. Shared by solve and gradient.
Vector forward_segments(GradientEngine& engine, DrivenDynamics& driven, ConstVectorRef theta, const Trajectory& tr,
                        const Plan& plan, Matrix& states, std::vector<Vector>* start, SolverStats& stats, long& nfe) {
  Vector z = tr.z0;
  for (Eigen::Index k = 0; k < plan.at_t0; ++k) states.row(k) = z.transpose();
  for (std::size_t j = 0; j < plan.segments.size(); ++j) {
    const Segment& s = plan.segments[j];
    apply_events(tr, s.events, z);
    if (start) (*start)[j] = z;
    if (s.degenerate()) {
      for (Eigen::Index k = s.first; k < s.end; ++k) states.row(k) = z.transpose();
      continue;
    }
    driven.set_segment(&tr, s.a, s.rate);
    const Solution part = engine.solve(theta, s.a, z, segment_times(tr, s, true));
    states.middleRows(s.first, s.end - s.first) = part.states.topRows(s.end - s.first);
    z = part.states.bottomRows(1).transpose();
    stats += part.stats;
    nfe += part.nfe;
  }
  return z;
}

}  // namespace

SegmentedEngine::SegmentedEngine(const Dynamics& model, const SolverOptions& options,
                                 std::unique_ptr<GradientEngine> plain)
    : model_(model), options_(options), plain_(std::move(plain)), driven_(model) {}

GradientEngine& SegmentedEngine::driven_engine() {
  if (!engine_) engine_ = make_registered_engine(driven_, options_);
  return *engine_;
}

void SegmentedEngine::check_inputs(const Trajectory& ivp) const {
  const Eigen::Index given = ivp.controls.inputs() + ivp.covariates.size();
  if (given != model_.input_size())
    throw OptionsError("the series has " + std::to_string(given) + " inputs (" + std::to_string(ivp.controls.inputs()) +
                       " controls + " + std::to_string(ivp.covariates.size()) + " covariates) but the dynamics take " +
                       std::to_string(model_.input_size()) + " (Dynamics::input_size)");
}

Solution SegmentedEngine::solve(ConstVectorRef theta, double t0, ConstVectorRef z0, ConstVectorRef times) {
  if (model_.input_size() > 0)
    throw OptionsError("the dynamics take " + std::to_string(model_.input_size()) +
                       " inputs: solve a Trajectory that carries its controls and covariates");
  return plain_->solve(theta, t0, z0, times);
}

Solution SegmentedEngine::solve(ConstVectorRef theta, const Trajectory& tr) {
  check_inputs(tr);
  if (!needs_segments(tr)) return plain_->solve(theta, tr);
  const int n = model_.state_size();
  check_theta(theta, model_.param_size());
  if (std::string why = tr.validate(n); !why.empty()) throw OptionsError(why);
  const Plan plan = plan_segments(tr, n);
  GradientEngine& engine = driven_engine();
  const Eigen::Index T = tr.times.size();
  const double last = T > 0 ? tr.times[T - 1] : tr.t0;
  Solution out;
  out.times = tr.times;
  const bool horizon_row = tr.horizon() > last;
  if (horizon_row) {
    out.times.conservativeResize(T + 1);
    out.times[T] = tr.horizon();
  }
  out.states.resize(out.times.size(), n);
  const Vector z = forward_segments(engine, driven_, theta, tr, plan, out.states, nullptr, out.stats, out.nfe);
  if (horizon_row) out.states.row(T) = z.transpose();
  return out;
}

Gradient SegmentedEngine::gradient(ConstVectorRef theta, const Trajectory& tr, const Observer& observe,
                                   const RunningCosts& running_costs) {
  check_inputs(tr);
  if (!needs_segments(tr)) return plain_->gradient(theta, tr, observe, running_costs);
  const int n = model_.state_size();
  check_theta(theta, model_.param_size());
  if (std::string why = tr.validate(n); !why.empty()) throw OptionsError(why);
  const Plan plan = plan_segments(tr, n);
  GradientEngine& engine = driven_engine();
  // The engine sees plain initial-value problems: no events, the inputs come from driven_.
  Trajectory plain;
  plain.t0 = tr.t0;
  plain.z0 = tr.z0;
  plain.times = tr.times;
  plain.values = Matrix(tr.times.size(), 0);
  plain.t_end = tr.horizon();

  // One segment without events (inputs only): the engine's own gradient, one forward pass.
  if (plan.segments.size() == 1 && plan.segments[0].events.empty()) {
    driven_.set_segment(&tr, tr.t0, plan.segments[0].rate);
    return engine.gradient(theta, plain, observe, running_costs);
  }

  // ---- forward through the segments: the states that start them and the observed states ----
  const Eigen::Index T = tr.times.size();
  Gradient g;
  g.states.resize(T, n);
  std::vector<Vector> start(plan.segments.size());
  forward_segments(engine, driven_, theta, tr, plan, g.states, &start, g.forward, g.nfe_forward);
  ObservationTerms terms = observe(g.states);
  check_terms(terms, T, n);
  g.loss = terms.loss;
  g.phi = std::move(terms.phi);

  // ---- backward: each segment's gradient with the adjoint of the later ones at its end ----
  g.theta.setZero(model_.param_size());
  Vector a = Vector::Zero(n);  // dLoss/dz at the end of the segment being reversed
  for (std::size_t j = plan.segments.size(); j-- > 0;) {
    const Segment& s = plan.segments[j];
    const Eigen::Index m = s.end - s.first;
    if (s.degenerate()) {
      for (Eigen::Index k = s.first; k < s.end; ++k) a += terms.jumps.row(k).transpose();
    } else {
      plain.t0 = s.a;
      plain.z0 = start[j];
      plain.times = segment_times(tr, s, true);
      plain.values.resize(plain.times.size(), 0);
      plain.t_end = s.b;
      Matrix jumps(plain.times.size(), n);
      jumps.topRows(m) = terms.jumps.middleRows(s.first, m);
      if (plain.times.size() > m) jumps.row(m).setZero();
      jumps.bottomRows(1) += a.transpose();
      driven_.set_segment(&tr, s.a, s.rate);
      const Gradient part = engine.gradient(
          theta, plain, [&](const Matrix&) { return ObservationTerms{0.0, jumps, Vector()}; }, running_costs);
      g.loss += part.loss;  // the running costs' integrals (and solver-error penalty) over the segment
      g.solver_error += part.solver_error;
      g.theta += part.theta;
      a = part.z0;
      g.forward += part.forward;
      g.backward += part.backward;
      g.nfe_forward += part.nfe_forward;
      g.nfe_backward += part.nfe_backward;
    }
    pull_back_events(tr, s.events, a);
  }
  for (Eigen::Index k = 0; k < plan.at_t0; ++k) a += terms.jumps.row(k).transpose();
  g.z0 = a;
  return g;
}

}  // namespace cvnode::detail

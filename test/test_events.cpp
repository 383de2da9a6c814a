// Events and inputs in the engines (issue 12, src/ode/segments.h): doses into an unobserved depot
// against the closed-form Bateman function, an infusion against its closed form, gradients
// through bolus / infusion / remove / reset and through controls and covariates against central
// differences in all three methods, covariates reaching the network's first layer exactly, the
// interpolants, and the refusals.
// ctest: labels=unit timeout=300
#define BOOST_TEST_MODULE events
#include <boost/test/unit_test.hpp>

#include <cmath>

#include "cvnode/cvnode.h"
#include "cvnode/pk.h"
#include "ode/segments.h"
#include "test_util.h"

using namespace cvnode;
using cvnode::test::fd_gradient;
using cvnode::test::random_vector;
using cvnode::test::rel_err;

namespace {

// The oral one-compartment model in amounts, with the depot unobserved:
// z = [central, depot], d central/dt = ka depot - ke central, d depot/dt = -ka depot,
// theta = [ka, ke].
class OralPk final : public Dynamics {
 public:
  int state_size() const override { return 2; }
  int param_size() const override { return 2; }
  int workspace_size() const override { return 0; }
  bool smooth() const override { return true; }
  void rhs(double, ConstVectorRef z, ConstVectorRef th, VectorRef f, VectorRef) const override {
    f[0] = th[0] * z[1] - th[1] * z[0];
    f[1] = -th[0] * z[1];
  }
  void vjp(double, ConstVectorRef z, ConstVectorRef th, ConstVectorRef a, VectorRef dz, VectorRef dth,
           VectorRef) const override {
    dz[0] = -th[1] * a[0];
    dz[1] = th[0] * (a[0] - a[1]);
    if (dth.size() > 0) {
      dth[0] = z[1] * (a[0] - a[1]);
      dth[1] = -z[0] * a[0];
    }
  }
  void jacobian(double, ConstVectorRef, ConstVectorRef th, MatrixRef J, VectorRef) const override {
    J << -th[1], th[0], 0, -th[0];
  }
  void jvp(double, ConstVectorRef, ConstVectorRef th, ConstVectorRef v, VectorRef Jv, VectorRef) const override {
    Jv[0] = -th[1] * v[0] + th[0] * v[1];
    Jv[1] = -th[0] * v[1];
  }
};

SolverOptions options(const std::string& method, double rtol) {
  SolverOptions o;
  o.method = method;
  o.rtol = rtol;
  o.atol = rtol * 1e-2;
  return o;
}

Event event(double time, int compartment, EventKind kind, double amount, double duration = 0) {
  Event e;
  e.time = time;
  e.compartment = compartment;
  e.kind = kind;
  e.amount = amount;
  e.duration = duration;
  return e;
}

// A 2-state network series with every kind of event, an event at t0 and observations at event
// times (which see the state before the event).
Trajectory eventful_series() {
  Trajectory tr;
  tr.t0 = 0;
  tr.z0 = Vector(2);
  tr.z0 << 0.3, -0.2;
  tr.times = Vector(7);
  tr.times << 0.25, 0.4, 0.7, 0.9, 1.2, 1.3, 1.75;
  tr.values = random_vector(14, 7).reshaped(7, 2);
  tr.events = {event(0.0, 1, EventKind::Bolus, 0.5),      event(0.4, 1, EventKind::Bolus, 0.8),
               event(0.5, 0, EventKind::Infusion, 0.6, 0.6), event(0.9, 0, EventKind::Remove, 0.3),
               event(1.3, 0, EventKind::Reset, 0.0),         event(1.3, 1, EventKind::Bolus, 0.4),
               event(1.5, 1, EventKind::Infusion, 0.2, 0.4)};
  return tr;
}

Mlp network(int inputs) {
  MlpSpec s;
  s.layers = {2, 8, 2};
  s.inputs = inputs;
  return Mlp(s);
}

}  // namespace

// Two oral doses into the unobserved depot (the second at an observation time) against the
// superposed Bateman function of pk.h: CVODES BDF at rtol 1e-10 and dopri5 at rtol 1e-10 both
// within 1e-7 relative of the closed form (the local error control keeps the global error
// within ~100 rtol over this horizon).
BOOST_AUTO_TEST_CASE(two_oral_doses_match_the_bateman_function) {
  const OralPk pk;
  const double ka = 1.3, ke = 0.2, V = 25;
  const Vector theta = (Vector(2) << ka, ke).finished();
  Trajectory tr;
  tr.z0 = Vector::Zero(2);
  tr.times = Vector::LinSpaced(24, 1, 24);  // hourly, 12.0 the second dose's time
  tr.values = Matrix::Zero(24, 1);            // channel 0 = the central amount; the depot is unobserved
  tr.events = {event(0, 1, EventKind::Bolus, 100), event(12, 1, EventKind::Bolus, 50)};
  std::vector<EventRecord> doses(2);
  doses[0].time = 0;
  doses[0].amount = 100;
  doses[1].time = 12;
  doses[1].amount = 50;
  for (std::string m : {"bdf", "adams", "dopri5"}) {
    BOOST_TEST_CONTEXT(m) {
      Solver solver(pk, options(m, 1e-10));
      const Solution sol = solver.solve(theta, tr);
      BOOST_TEST(sol.states.rows() == 24);
      double worst = 0;
      for (Eigen::Index k = 0; k < 24; ++k) {
        const double c = bateman_concentration(tr.times[k], doses, ka, ke, V);
        worst = std::max(worst, std::abs(sol.states(k, 0) / V - c) / c);
        // The depot: what the doses left, as pk.h's bateman_depot says (absolute: it decays to 1e-5;
        // at 12 bateman_depot counts the dose given then, the observation precedes it).
        if (k != 11) BOOST_TEST(std::abs(sol.states(k, 1) - bateman_depot(tr.times[k], doses, ka)) < 1e-7);
      }
      BOOST_TEST_MESSAGE(m << ": max relative error against Bateman " << worst);
      BOOST_TEST(worst < 1e-7);
      // The observation at 12 sees the state before the second dose: the depot's first dose only.
      BOOST_TEST(std::abs(sol.states(11, 1) - 100 * std::exp(-ka * 12)) < 1e-9);
    }
  }
}

// A zero-order infusion R over [1, 3] into the central compartment, eliminated at ke:
// c = R/ke (1 - exp(-ke (t - 1))) during it, then first-order decay from c(3).
BOOST_AUTO_TEST_CASE(an_infusion_matches_its_closed_form) {
  const OralPk pk;
  const double ke = 0.4, R = 5;
  const Vector theta = (Vector(2) << 1.0, ke).finished();
  Trajectory tr;
  tr.z0 = Vector::Zero(2);
  tr.times = Vector::LinSpaced(11, 0.5, 5.5);
  tr.values = Matrix::Zero(11, 1);
  tr.events = {event(1, 0, EventKind::Infusion, 2 * R, 2)};
  auto exact = [&](double t) {
    if (t <= 1) return 0.0;
    if (t <= 3) return R / ke * (1 - std::exp(-ke * (t - 1)));
    return R / ke * (1 - std::exp(-ke * 2)) * std::exp(-ke * (t - 3));
  };
  for (std::string m : {"bdf", "dopri5"}) {
    BOOST_TEST_CONTEXT(m) {
      Solver solver(pk, options(m, 1e-10));
      const Solution sol = solver.solve(theta, tr);
      for (Eigen::Index k = 0; k < 11; ++k)
        BOOST_TEST(sol.states(k, 0) == exact(tr.times[k]), boost::test_tools::tolerance(1e-7));
    }
  }
}

// Gradients with respect to theta and z0 through bolus, infusion, remove and reset events (and an
// event at t0) against central differences of a reference at rtol 1e-13; bound 1e-6 at rtol
// 1e-10, as in test_gradient.
BOOST_AUTO_TEST_CASE(gradients_through_events_match_central_differences) {
  const Mlp mlp = network(0);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 3) + random_vector(mlp.param_size(), 5, 0.1);
  const Trajectory tr = eventful_series();
  const auto loss = make_loss("half_sse");
  Solver ref(mlp, options("bdf", 1e-13));
  auto at = [&](const Vector& th, const Vector& z0) {
    Trajectory t = tr;
    t.z0 = z0;
    return ref.gradient(th, Problem({t}, loss)).loss;
  };
  const Vector fd = fd_gradient([&](const Vector& th) { return at(th, tr.z0); }, theta, 1e-4);
  const Vector fd_z0 = fd_gradient([&](const Vector& z0) { return at(theta, z0); }, tr.z0, 1e-4);
  for (std::string m : {"adams", "bdf", "dopri5"}) {
    BOOST_TEST_CONTEXT(m) {
      Solver solver(mlp, options(m, 1e-10));
      const Gradient g = solver.gradient(theta, Problem({tr}, loss));
      BOOST_TEST_MESSAGE(m << ": events, relative error theta " << rel_err(g.theta, fd) << ", z0 "
                           << rel_err(g.z0, fd_z0));
      BOOST_TEST(rel_err(g.theta, fd) < 1e-6);
      BOOST_TEST(rel_err(g.z0, fd_z0) < 1e-6);
      // The loss is the loss of the states it reports.
      BOOST_TEST(g.loss == 0.5 * (g.states - tr.values).squaredNorm(), boost::test_tools::tolerance(1e-12));
      // Through the batch solver too (per series), with a plain series beside it.
      Trajectory plain = tr;
      plain.events.clear();
      const BatchGradient b = BatchSolver(mlp, options(m, 1e-10), BatchOptions{2}).gradient(theta, Problem({plain, tr}, loss));
      const Gradient p = solver.gradient(theta, Problem({plain}, loss));
      BOOST_TEST(rel_err(b.theta, g.theta + p.theta) < 1e-12);
    }
  }
  // The reset makes z0 irrelevant to the observations after it, the remove scales the adjoint:
  // the events changed the gradient (this test would pass trivially if they were ignored).
  Trajectory plain = tr;
  plain.events.clear();
  BOOST_TEST(rel_err(Solver(mlp, options("bdf", 1e-10)).gradient(theta, Problem({plain}, loss)).theta, fd) > 0.05);
}

// Inputs u(t) = [a control; a covariate] read by the network's first layer: gradients against
// central differences for each interpolation, in all three methods, with events as well.
BOOST_AUTO_TEST_CASE(gradients_with_controls_and_covariates_match_central_differences) {
  const Mlp mlp = network(2);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 8) + random_vector(mlp.param_size(), 9, 0.1);
  const auto loss = make_loss("half_sse");
  for (auto how : {ControlInterpolation::PiecewiseConstant, ControlInterpolation::Linear,
                   ControlInterpolation::MonotoneCubic}) {
    Trajectory tr = eventful_series();
    tr.controls.times = (Vector(5) << -0.5, 0.35, 0.8, 1.1, 1.6).finished();
    tr.controls.values = (Matrix(5, 1) << 0.2, 1.0, -0.5, -0.4, 0.7).finished();
    tr.controls.interpolation = how;
    tr.covariates = Vector::Constant(1, 0.8);
    Solver ref(mlp, options("bdf", 1e-13));
    const Vector fd = fd_gradient([&](const Vector& th) { return ref.gradient(th, Problem({tr}, loss)).loss; }, theta, 1e-4);
    for (std::string m : {"adams", "bdf", "dopri5"}) {
      BOOST_TEST_CONTEXT(control_interpolation_name(how) << " " << m) {
        const Gradient g = Solver(mlp, options(m, 1e-10)).gradient(theta, Problem({tr}, loss));
        BOOST_TEST_MESSAGE(control_interpolation_name(how) << " " << m << ": inputs, relative error theta "
                                                           << rel_err(g.theta, fd));
        BOOST_TEST(rel_err(g.theta, fd) < 1e-6);
      }
    }
  }
}

// A covariate is a constant input: the network with covariate c is the network without inputs
// whose first bias is shifted by W_1's input column times c. Both engines, to solver accuracy;
// the covariate-only series takes the one-pass path (no events).
BOOST_AUTO_TEST_CASE(a_covariate_reaches_the_first_layer) {
  const Mlp with = network(1), without = network(0);
  const Vector theta = with.initial_parameters(Init::Glorot, 11);
  const int h = 8, n = 2;
  // with: W_1 is 8 x 3 row-major, then b_1; without: W_1 8 x 2, then b_1, then the same rest.
  Vector th0(without.param_size());
  const double c = 1.7;
  for (int r = 0; r < h; ++r) {
    th0.segment(r * n, n) = theta.segment(r * (n + 1), n);
    th0[h * n + r] = theta[h * (n + 1) + r] + theta[r * (n + 1) + n] * c;
  }
  th0.tail(without.param_size() - h * (n + 1)) = theta.tail(with.param_size() - h * (n + 2));
  Trajectory tr;
  tr.z0 = (Vector(2) << 0.5, -0.3).finished();
  tr.times = Vector::LinSpaced(5, 0.3, 1.5);
  tr.values = random_vector(10, 12).reshaped(5, 2);
  Trajectory cov = tr;
  cov.covariates = Vector::Constant(1, c);
  const auto loss = make_loss("half_sse");
  for (std::string m : {"bdf", "dopri5"}) {
    BOOST_TEST_CONTEXT(m) {
      const Gradient a = Solver(with, options(m, 1e-10)).gradient(theta, Problem({cov}, loss));
      const Gradient b = Solver(without, options(m, 1e-10)).gradient(th0, Problem({tr}, loss));
      BOOST_TEST((a.states - b.states).cwiseAbs().maxCoeff() < 1e-8);
      BOOST_TEST(a.loss == b.loss, boost::test_tools::tolerance(1e-7));
      BOOST_TEST(std::abs(a.loss - Solver(with, options(m, 1e-10)).gradient(theta, Problem({[&] {
                            Trajectory t = cov;
                            t.covariates[0] = 0;
                            return t;
                          }()},
                                                                                           loss)).loss) > 1e-3);
    }
  }
}

// The interpolants: knots reproduced, linear midpoints, the monotone cubic without overshoot, and
// constant extension outside the knots; covariates follow the controls.
BOOST_AUTO_TEST_CASE(inputs_interpolate_the_knots) {
  Trajectory tr;
  tr.controls.times = (Vector(4) << 0, 1, 2, 4).finished();
  tr.controls.values = (Matrix(4, 1) << 0, 1, 1, 3).finished();
  tr.covariates = Vector::Constant(1, 9);
  Vector u(2);
  auto at = [&](double t) {
    detail::series_input(tr, detail::control_piece(tr.controls, t), t, u);
    return u[0];
  };
  tr.controls.interpolation = ControlInterpolation::PiecewiseConstant;
  BOOST_TEST(at(1.5) == 1.0);
  BOOST_TEST(at(-1) == 0.0);
  BOOST_TEST(u[1] == 9.0);
  tr.controls.interpolation = ControlInterpolation::Linear;
  BOOST_TEST(at(3) == 2.0, boost::test_tools::tolerance(1e-15));
  BOOST_TEST(at(5) == 3.0);
  tr.controls.interpolation = ControlInterpolation::MonotoneCubic;
  BOOST_TEST(at(2) == 1.0, boost::test_tools::tolerance(1e-15));
  for (double t = 1; t <= 2; t += 0.125) BOOST_TEST(at(t) == 1.0, boost::test_tools::tolerance(1e-15));  // flat stays flat
  for (double t = 2; t < 4; t += 0.25) BOOST_TEST((at(t) >= 1.0 && at(t) <= 3.0));
}

BOOST_AUTO_TEST_CASE(inputs_that_do_not_fit_the_dynamics_are_refused) {
  const Mlp plain = network(0), with = network(2);
  Trajectory tr;
  tr.z0 = Vector::Zero(2);
  tr.times = Vector::Constant(1, 1.0);
  tr.values = Matrix::Zero(1, 2);
  tr.covariates = Vector::Constant(1, 1.0);
  const auto loss = make_loss("half_sse");
  auto message = [&](const Dynamics& d) {
    try {
      Solver(d, SolverOptions{}).gradient(Vector::Zero(d.param_size()), Problem({tr}, loss));
    } catch (const OptionsError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  BOOST_TEST(message(plain) == "the series has 1 inputs (0 controls + 1 covariates) but the dynamics take 0 (Dynamics::input_size)");
  BOOST_TEST(message(with) == "the series has 1 inputs (0 controls + 1 covariates) but the dynamics take 2 (Dynamics::input_size)");
  Trajectory ev = tr;
  ev.covariates.resize(0);
  ev.events = {event(0.5, 0, EventKind::Bolus, 1)};
  BatchOptions stacked{1, BatchMode::Stacked};
  BOOST_CHECK_THROW(BatchSolver(plain, SolverOptions{}, stacked).gradient(Vector::Zero(plain.param_size()), Problem({ev, ev}, loss)),
                    OptionsError);
}

// A hybrid (known oral PK plus a network reading the state and a covariate) with doses into the
// unobserved depot: gradients with respect to [ka, ke, network] against central differences.
BOOST_AUTO_TEST_CASE(a_hybrid_reads_inputs_through_its_network) {
  const Hybrid hybrid(std::make_shared<OralPk>(), std::make_shared<Mlp>(network(1)));
  BOOST_TEST(hybrid.input_size() == 1);
  Vector theta(hybrid.param_size());
  theta << 1.1, 0.3, 0.1 * network(1).initial_parameters(Init::Glorot, 13);
  Trajectory tr;
  tr.z0 = Vector::Zero(2);
  tr.times = (Vector(5) << 0.5, 1.0, 2.0, 3.0, 4.0).finished();
  tr.values = random_vector(5, 14).reshaped(5, 1);
  tr.events = {event(0, 1, EventKind::Bolus, 1.0), event(2.0, 1, EventKind::Bolus, 0.5)};
  tr.covariates = Vector::Constant(1, -0.6);
  const auto loss = make_loss("half_sse");
  Solver ref(hybrid, options("bdf", 1e-13));
  const Vector fd = fd_gradient([&](const Vector& th) { return ref.gradient(th, Problem({tr}, loss)).loss; }, theta, 1e-5);
  for (std::string m : {"bdf", "dopri5"}) {
    BOOST_TEST_CONTEXT(m) {
      const Gradient g = Solver(hybrid, options(m, 1e-10)).gradient(theta, Problem({tr}, loss));
      BOOST_TEST_MESSAGE(m << ": hybrid with inputs, relative error theta " << rel_err(g.theta, fd));
      BOOST_TEST(rel_err(g.theta, fd) < 1e-6);
    }
  }
}

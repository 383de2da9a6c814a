// The solver-error penalty of issue 16 (regularization.error_weight; Pal et al. 2021's R_E, the
// penalty on the solver's local error estimates): lambda sum_s E_s h_s over dopri5's accepted
// steps, E_s the controller's error norm. Its value against the closed form of Dormand-Prince's
// embedded estimate on a linear ODE; its gradient (through the stages and the error scale, step
// sizes held fixed) against central differences on fixed steps and on adaptive steps pinned at
// max_step (both keep the step sizes constant under a perturbation, so differences see exactly
// the function the gradient differentiates); the flow's minibatch; the trainer; and the refusal
// on the CVODES adjoint, which has no differentiable error estimate.
// ctest: labels=unit timeout=120
#define BOOST_TEST_MODULE solver_error
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <iomanip>

#include "cvnode/batch.h"
#include "cvnode/cnf_model.h"
#include "cvnode/densities.h"
#include "cvnode/errors.h"
#include "cvnode/linear_decay.h"
#include "cvnode/mlp.h"
#include "cvnode/model.h"
#include "cvnode/regularization.h"
#include "cvnode/solver.h"
#include "cvnode/trainer.h"
#include "linear_system.h"
#include "test_util.h"

using namespace cvnode;
using cvnode::test::directional_fd;
using cvnode::test::fd_gradient;
using cvnode::test::random_vector;
using cvnode::test::rel_err;




namespace {

// Differences' step: the error estimate is a cancellation (err ~ 1e-8 out of stages ~ 1), so
// the penalty carries a relative rounding of ~1e-9 and differences at h lose ~1e-9 / h to it;
// their truncation falls as h^4. h = 3e-4 balances the two (measured: 3e-5 gives 8e-7; 1e-3
// gives 1e-3 on the pinned steps, a perturbation that moves a component across a kink of the
// scale's |.| or max).
constexpr double FDH = 3e-4;

// The penalty's share of loss and gradient: a run with the weight minus one without it (the
// same steps: fixed or pinned), so a wrong penalty gradient cannot hide behind the data term.
struct Share {
  double loss;
  Vector theta, z0;
  double solver_error;
};
Share penalty_share(const Dynamics& f, SolverOptions o, double weight, const Vector& theta, const Trajectory& tr) {
  const auto loss = make_loss("half_sse");
  Solver plain(f, o);
  o.dopri5.error_weight = weight;
  Solver pen(f, o);
  const Gradient a = pen.gradient(theta, test::problem(tr, loss));
  const Gradient b = plain.gradient(theta, test::problem(tr, loss));
  BOOST_TEST(a.forward.steps == b.forward.steps);
  return {a.loss - b.loss, a.theta - b.theta, a.z0 - b.z0, a.solver_error};
}

// The penalty alone as a function of theta (or z0): what central differences differentiate.
double penalty_of(const Dynamics& f, SolverOptions o, double weight, const Vector& theta, const Trajectory& tr) {
  o.dopri5.error_weight = weight;
  Solver s(f, o);
  return weight * s.gradient(theta, test::problem(tr, make_loss("half_sse"))).solver_error;
}

void check_against_differences(const Dynamics& f, const SolverOptions& o, const Vector& theta, const Trajectory& tr) {
  const double w = 0.7;
  const Share g = penalty_share(f, o, w, theta, tr);
  BOOST_TEST(g.solver_error > 0);
  // A difference of two losses of O(1): ~1e-16 absolute, ~1e-11 of the O(1e-5) penalty.
  BOOST_TEST(g.loss == w * g.solver_error, boost::test_tools::tolerance(1e-9));
  const Vector fd_theta = fd_gradient([&](const Vector& th) { return penalty_of(f, o, w, th, tr); }, theta, FDH);
  Trajectory moved = tr;
  const Vector fd_z0 = fd_gradient(
      [&](const Vector& z) {
        moved.z0 = z;
        return penalty_of(f, o, w, theta, moved);
      },
      tr.z0, FDH);
  BOOST_TEST_MESSAGE(std::setprecision(6) << "penalty " << g.loss << " |grad| " << g.theta.norm() << " rel err theta "
                                          << rel_err(g.theta, fd_theta) << " z0 " << rel_err(g.z0, fd_z0));
  // The penalty is a smooth function of theta at fixed steps (a.e.: |.| and max in the error
  // scale). Measured agreement 9e-9 (fixed) and 8e-8 (pinned); 1e-6 leaves room, while leaving
  // out the scale's term for y_s alone is off by 1e-2 (fixed) and 8e-2 (pinned).
  BOOST_TEST(rel_err(g.theta, fd_theta) < 1e-6);
  BOOST_TEST(rel_err(g.z0, fd_z0) < 1e-6);
}

}  // namespace

// dz/dt = -k z on fixed steps h: each stage is a polynomial in x = -k h, and the embedded
// estimate of Dormand-Prince 5(4) is err = y (-97/120000 x^5 + 13/40000 x^6 - 1/24000 x^7)
// (from the tableau in exact rational arithmetic), the step y R5(x) with
// R5 = 1 + x + x^2/2 + x^3/6 + x^4/24 + x^5/120 + x^6/600. One component: E = |err| / sc with
// sc = rtol max(|y|, |y_new|) + atol.
BOOST_AUTO_TEST_CASE(penalty_is_the_embedded_error_estimate_of_each_step) {
  const LinearDecay decay(1);
  const Vector k = Vector::Constant(1, 2.3);
  SolverOptions o;
  o.method = "dopri5";
  o.rtol = 1e-3;
  o.atol = 1e-4;
  o.dopri5.fixed_step = 0.2;
  o.dopri5.error_weight = 0.5;
  Solver solver(decay, o);
  Trajectory tr;
  tr.t0 = 0;
  tr.z0 = Vector::Constant(1, 1.7);
  tr.times = Vector::Constant(1, 1.3);  // 6 steps of 0.2 and one of 0.1
  tr.values = Matrix::Zero(1, 1);
  const Gradient g = solver.gradient(k, test::problem(tr, make_loss("half_sse")));
  BOOST_TEST(g.forward.steps == 7);
  auto R5 = [](double x) { return 1 + x + x * x / 2 + std::pow(x, 3) / 6 + std::pow(x, 4) / 24 + std::pow(x, 5) / 120 + std::pow(x, 6) / 600; };
  auto err = [](double x) { return -97.0 / 120000 * std::pow(x, 5) + 13.0 / 40000 * std::pow(x, 6) - std::pow(x, 7) / 24000; };
  double y = 1.7, expected = 0;
  for (int s = 0; s < 7; ++s) {
    const double h = s < 6 ? 0.2 : 0.1, x = -2.3 * h, y_new = y * R5(x);
    expected += h * std::abs(y * err(x)) / (1e-3 * std::max(std::abs(y), std::abs(y_new)) + 1e-4);
    y = y_new;
  }
  BOOST_TEST(g.solver_error == expected, boost::test_tools::tolerance(1e-12));
  // Fixed steps without the weight estimate nothing; the loss differs by the weighted penalty.
  o.dopri5.error_weight = 0;
  const Gradient plain = Solver(decay, o).gradient(k, test::problem(tr, make_loss("half_sse")));
  BOOST_TEST(plain.solver_error == 0.0);
  BOOST_TEST(g.loss - plain.loss == 0.5 * expected, boost::test_tools::tolerance(1e-9));
  BOOST_TEST(plain.forward.steps == 7);
}

BOOST_AUTO_TEST_CASE(penalty_gradient_matches_central_differences_on_fixed_steps) {
  MlpSpec s;
  s.layers = {2, 8, 8, 2};
  s.time_input = true;
  const Mlp mlp(s);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 3) + random_vector(mlp.param_size(), 4, 0.3);
  SolverOptions o;
  o.method = "dopri5";
  o.rtol = 1e-3;
  o.atol = 1e-4;  // the scale's state dependence matters: rtol |y| ~ atol
  o.dopri5.fixed_step = 0.15;  // 8 steps and a cut last one
  check_against_differences(mlp, o, theta, test::short_series(2, 21));
}

// Adaptive steps whose every proposal exceeds max_step: all steps are max_step (initial_step =
// max_step, no rejection), so differences keep the steps the gradient holds fixed.
BOOST_AUTO_TEST_CASE(penalty_gradient_matches_central_differences_on_pinned_adaptive_steps) {
  MlpSpec s;
  s.layers = {3, 10, 3};
  const Mlp mlp(s);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 8) + random_vector(mlp.param_size(), 9, 0.3);
  SolverOptions o;
  o.method = "dopri5";
  o.rtol = 1e-3;
  o.atol = 1e-4;
  o.initial_step = o.max_step = 0.1;
  const Trajectory tr = test::short_series(3, 31);
  Solver solver(mlp, o);
  const Gradient g = solver.gradient(theta, test::problem(tr, make_loss("half_sse")));
  BOOST_TEST(g.forward.steps == 14);  // (1.42 - 0.1) / 0.1 rounded up: every step at max_step
  BOOST_TEST(g.forward.err_test_fails == 0);
  check_against_differences(mlp, o, theta, tr);
}

// The flow's minibatch: one penalty per stacked solve, its gradient through the stacked state
// (z, log p and the constant probe components), with Hutchinson probes and the regularisers.
BOOST_AUTO_TEST_CASE(flow_minibatch_with_the_penalty_matches_differences) {
  DensityOptions d;
  d.kind = "moons";
  const Matrix X = make_density(d)->sample(5, 9);
  const std::vector<std::size_t> rows = {4, 0, 2, 3, 1};
  CnfModelOptions o;
  o.hidden = {8, 8};
  o.trace = TraceEstimator::Hutchinson;
  o.probes = 2;
  o.kinetic_weight = 0.3;
  o.end_time = 0.8;
  o.error_weight = 200.0;
  const CnfModel model(o, 2);
  CnfModelOptions off = o;
  off.error_weight = 0;
  const CnfModel bare(off, 2);
  const Vector theta = model.initial_parameters() + random_vector(model.param_size(), 3, 0.2);
  SolverOptions so;
  so.method = "dopri5";
  so.rtol = 1e-3;
  so.atol = 1e-4;
  so.dopri5.fixed_step = 0.1;
  CnfEngine engine = model.engine(so, 3, 2), bare_engine = bare.engine(so, 3, 2);  // two stacks
  CnfStep step;
  step.step = 5;
  step.seed = 7;
  const CnfMinibatch g = model.gradient(theta, X, rows, step, engine);
  const CnfMinibatch b = bare.gradient(theta, X, rows, step, bare_engine);
  BOOST_TEST(g.solves == 2);
  BOOST_TEST(g.solver_error > 0);
  BOOST_TEST(g.nll == b.nll);  // the penalty changes the loss, not the flow
  // Loss = mean NLL + kinetic + the penalty summed over the two solves (solver_error: their mean).
  BOOST_TEST(g.loss - b.loss == 200.0 * 2 * g.solver_error, boost::test_tools::tolerance(1e-9));
  auto loss = [&](const Vector& th) { return model.gradient(th, X, rows, step, engine).loss; };
  const Vector share = g.gradient - b.gradient;
  BOOST_TEST(share.norm() > 5e-3 * g.gradient.norm());  // a wrong penalty gradient would show
  for (int k = 0; k < 3; ++k) {
    const Vector v = random_vector(model.param_size(), 40 + k, 1.0).normalized();
    const double fd = directional_fd(loss, theta, v, 1e-4);
    BOOST_TEST_MESSAGE(std::setprecision(12) << "directional derivative " << g.gradient.dot(v) << " fd " << fd);
    BOOST_TEST(std::abs(g.gradient.dot(v) - fd) <= 1e-7 * g.gradient.norm());
  }
}

// A fit's training loss carries the weighted penalty of its solves; evaluation does not.
BOOST_AUTO_TEST_CASE(the_trainer_adds_the_penalty_of_its_solves) {
  const auto data = cvnode::test::linear_data(4, 6, 2);
  const std::vector<std::string> ids = {"a", "b", "c", "d"};
  ModelOptions mo;
  mo.hidden = {8};
  mo.seed = 5;
  const Model model(mo, 2);
  auto first = [&](double weight, Vector* theta0) {
    TrainerSettings ts;
    ts.solver.method = "dopri5";
    ts.solver.rtol = 1e-6;
    ts.solver.atol = 1e-8;
    ts.loss.kind = "mse_mean";
    ts.run.epochs = 1;
    ts.run.batch_size = 4;
    ts.regularization.error_weight = weight;
    Trainer t(model, data, ids, {}, {}, ts);
    t.log = [](const std::string&) {};
    if (theta0) *theta0 = t.network(t.state().params);
    t.run();
    return t.state().history.at(0).train_loss;
  };
  Vector theta;
  const double plain = first(0, &theta), penalised = first(1e3, nullptr);
  SolverOptions s;
  s.method = "dopri5";
  s.rtol = 1e-6;
  s.atol = 1e-8;
  s.dopri5.error_weight = 1e3;
  BatchSolver solver(model.dynamics(), s);
  std::vector<Trajectory> lifted;
  for (std::size_t i = 0; i < data.size(); ++i) lifted.push_back(model.lift(data[i], ids[i]));
  const BatchGradient g = solver.gradient(theta, Problem(lifted, make_loss("mse_mean")));
  BOOST_TEST(g.solver_error > 0);
  BOOST_TEST(penalised - plain == 1e3 * g.solver_error, boost::test_tools::tolerance(1e-9));
}

BOOST_AUTO_TEST_CASE(the_cvodes_adjoint_is_refused_by_name) {
  const auto data = cvnode::test::linear_data(2, 4, 1);
  ModelOptions mo;
  mo.hidden = {4};
  const Model model(mo, 2);
  for (const std::string m : {"adams", "bdf"}) {
    TrainerSettings ts;
    ts.solver.method = m;
    ts.regularization.error_weight = 0.1;
    try {
      Trainer t(model, data, {"a", "b"}, {}, {}, ts);
      BOOST_FAIL("the adjoint took a solver-error penalty");
    } catch (const OptionsError& e) {
      const std::string w = e.what();
      BOOST_TEST(w.find("regularization.error_weight = 0.1") != std::string::npos);
      BOOST_TEST(w.find("solver.method = \"" + m + "\"") != std::string::npos);
    }
    CnfModelOptions o;
    o.error_weight = 0.1;
    SolverOptions so;
    so.method = m;
    BOOST_CHECK_THROW(CnfModel(o, 2).engine(so, 4, 1), OptionsError);
    // Asked of the engine directly: its own option named.
    so.dopri5.error_weight = 0.1;
    BOOST_TEST(so.validate(2).find("dopri5_error_weight") != std::string::npos);
  }
  SolverOptions bad;
  bad.method = "dopri5";
  bad.dopri5.error_weight = -1;
  BOOST_TEST(bad.validate(2).find("dopri5_error_weight") != std::string::npos);
  RegularizationOptions r;
  r.error_weight = std::nan("");
  BOOST_TEST(r.validate().find("regularization.error_weight") != std::string::npos);
}

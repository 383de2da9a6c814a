// Regularisers of issue 16 for every model kind: the Jacobian Frobenius norm as a running cost
// (exact and Hutchinson) on an Mlp and on a hybrid's network term, against the Jacobian and
// central differences, and through the adjoint against differences of the regularised loss.
// ctest: labels=unit timeout=180
#define BOOST_TEST_MODULE regularizers
#include <boost/test/unit_test.hpp>

#include <cmath>

#include "cvnode/errors.h"
#include "cvnode/hybrid.h"
#include "cvnode/linear_decay.h"
#include "cvnode/mlp.h"
#include "cvnode/regularization.h"
#include "cvnode/running_cost.h"
#include "cvnode/problem.h"
#include "cvnode/solver.h"
#include "cvnode/trainer.h"
#include "linear_system.h"
#include "test_util.h"

using namespace cvnode;
using cvnode::test::fd_gradient;
using cvnode::test::random_vector;

namespace {

MlpSpec spec(bool decay) {
  MlpSpec s;
  s.layers = {3, 9, 7, 3};
  s.activation = Activation::Tanh;
  s.time_input = true;
  if (decay) s.k_diag = (Vector(3) << 0.5, 2.0, 5.0).finished();
  return s;
}

// Fourth-order differences, h = 1e-3: ~1e-12 truncation; the second-order terms are O(1).
void check_gradient(const RunningCost& g, const Dynamics& f, const Vector& theta, const Vector& z, double t) {
  Vector work(g.workspace_size()), dz(f.state_size()), dth(f.param_size());
  g.gradient(t, z, theta, dz, dth, work);
  const Vector fz = fd_gradient([&](const Vector& x) { return g.value(t, x, theta, work); }, z, 1e-3);
  const Vector ft = fd_gradient([&](const Vector& x) { return g.value(t, z, x, work); }, theta, 1e-3);
  BOOST_TEST((dz - fz).norm() <= 1e-8 * (1 + fz.norm()));
  BOOST_TEST((dth - ft).norm() <= 1e-8 * (1 + ft.norm()));
  BOOST_TEST(fz.norm() > 1e-3);  // not a vacuous comparison
}

}  // namespace

BOOST_AUTO_TEST_CASE(exact_frobenius_is_the_jacobians_norm_and_its_gradient_matches_differences) {
  for (bool decay : {false, true}) {
    BOOST_TEST_CONTEXT("k_diag " << decay) {
      Mlp f(spec(decay));
      const Vector theta = f.initial_parameters(Init::Glorot, 3) + random_vector(f.param_size(), 4, 0.2);
      const Vector z = random_vector(3, 5, 1.0);
      JacobianFrobenius::Options o;
      o.weight = 0.7;
      JacobianFrobenius g(f, o);
      Matrix J(3, 3);
      Vector fw(f.workspace_size()), gw(g.workspace_size());
      f.jacobian(0.3, z, theta, J, fw);
      BOOST_TEST(g.value(0.3, z, theta, gw) == 0.7 * J.squaredNorm(), boost::test_tools::tolerance(1e-13));
      check_gradient(g, f, theta, z, 0.3);
    }
  }
}

BOOST_AUTO_TEST_CASE(hutchinson_frobenius_is_unbiased_and_differentiated_exactly) {
  Mlp f(spec(true));
  const Vector theta = f.initial_parameters(Init::Glorot, 6);
  const Vector z = random_vector(3, 7, 1.0);
  JacobianFrobenius::Options o;
  o.weight = 1;
  JacobianFrobenius exact(f, o);
  Vector w(exact.workspace_size());
  const double ref = exact.value(0.1, z, theta, w);
  o.estimator = TraceEstimator::Hutchinson;
  o.probes = 2;
  for (ProbeNoise noise : {ProbeNoise::Rademacher, ProbeNoise::Gaussian}) {
    BOOST_TEST_CONTEXT("noise " << probe_noise_name(noise)) {
      o.noise = noise;
      // Fixed probes per object: its gradient is that of its own (fixed) estimate.
      o.seed = 1;
      JacobianFrobenius one(f, o);
      check_gradient(one, f, theta, z, 0.1);
      // The mean over many draws: within 4 standard errors of the exact norm.
      const int N = 4000;
      double m = 0, m2 = 0;
      for (int s = 0; s < N; ++s) {
        o.seed = 100 + s;
        JacobianFrobenius h(f, o);
        Vector hw(h.workspace_size());
        const double v = h.value(0.1, z, theta, hw);
        m += v;
        m2 += v * v;
      }
      m /= N;
      const double se = std::sqrt((m2 / N - m * m) / N);
      BOOST_TEST_MESSAGE("mean " << m << " exact " << ref << " standard error " << se);
      BOOST_TEST(std::abs(m - ref) <= 4 * se);
    }
  }
}

BOOST_AUTO_TEST_CASE(hybrid_penalises_its_network_term_in_the_networks_input_space) {
  // Physics on 3 components, a 2-state network reading components 2 and 0 scaled by 3 and 0.5.
  auto physics = std::make_shared<LinearDecay>(3);
  MlpSpec ns;
  ns.layers = {2, 8, 2};
  auto net = std::make_shared<Mlp>(ns);
  HybridCoupling c;
  c.input_indices = {2, 0};
  c.input_scale = (Vector(2) << 3.0, 0.5).finished();
  Hybrid h(physics, net, c);
  Vector theta(h.param_size());
  theta << Vector::Constant(h.physics_param_size(), 0.4), net->initial_parameters(Init::Glorot, 2);
  const Vector z = random_vector(3, 8, 1.0);
  JacobianFrobenius::Options o;
  o.weight = 0.5;
  JacobianFrobenius g(h, o);
  Matrix Jn(2, 2);
  Vector nw(net->workspace_size()), gw(g.workspace_size());
  const Vector x = (Vector(2) << 3.0 * z[2], 0.5 * z[0]).finished();
  net->jacobian(0.0, x, theta.tail(net->param_size()), Jn, nw);
  BOOST_TEST(g.value(0.0, z, theta, gw) == 0.5 * Jn.squaredNorm(), boost::test_tools::tolerance(1e-13));
  check_gradient(g, h, theta, z, 0.0);
  // The physics' parameters do not enter.
  Vector dz(3), dth(h.param_size());
  g.gradient(0.0, z, theta, dz, dth, gw);
  BOOST_TEST(dth.head(h.physics_param_size()).norm() == 0.0);
  BOOST_TEST(dz[1] == 0.0);  // component 1 is not read by the network
}

BOOST_AUTO_TEST_CASE(regularised_adjoint_gradient_matches_differences) {
  // loss = 0.5 |z(t_k) - y_k|^2 + lambda int ||J||_F^2 dt through the CVODES adjoint.
  Mlp f(spec(false));
  const Vector theta = f.initial_parameters(Init::Glorot, 9) * 0.7;
  Trajectory tr;
  tr.z0 = random_vector(3, 10, 1.0);
  tr.times = (Vector(3) << 0.3, 0.7, 1.2).finished();
  tr.values = Matrix::Zero(3, 3);
  for (int k = 0; k < 3; ++k) tr.values.row(k) = random_vector(3, 11 + k, 1.0).transpose();
  JacobianFrobenius::Options o;
  o.weight = 0.3;
  o.estimator = TraceEstimator::Hutchinson;
  o.seed = 4;
  Problem problem({tr}, make_loss("half_sse"));
  problem.add_running_cost(std::make_shared<JacobianFrobenius>(f, o));
  for (const std::string m : {"adams", "bdf"}) {
    BOOST_TEST_CONTEXT("method " << m) {
      SolverOptions s;
      s.method = m;
      s.rtol = 1e-10;
      s.atol = 1e-12;
      Solver solver(f, s);
      const Gradient grad = solver.gradient(theta, problem);
      auto L = [&](const Vector& th) { return solver.gradient(th, problem).loss; };
      for (int d = 0; d < 2; ++d) {
        const Vector v = random_vector(f.param_size(), 20 + d, 1.0).normalized();
        const double fd = cvnode::test::directional_fd(L, theta, v, 1e-3);
        BOOST_TEST(std::abs(grad.theta.dot(v) - fd) <= 1e-6 * grad.theta.norm() + 1e-9);
      }
      // The same engine solving without running costs afterwards (its quadrature switched off).
      const Solution plain = solver.solve(theta, tr.t0, tr.z0, tr.times);
      BOOST_TEST((plain.states - grad.states).norm() < 1e-8);
    }
  }
}

BOOST_AUTO_TEST_CASE(other_dynamics_are_refused_with_a_reason) {
  LinearDecay d(2);
  JacobianFrobenius::Options o;
  o.weight = 1;
  try {
    JacobianFrobenius g(d, o);
    BOOST_FAIL("accepted a dynamics without an MLP");
  } catch (const OptionsError& e) {
    BOOST_TEST(std::string(e.what()).find("MLP") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(steer_moves_observation_times_within_their_gaps) {
  Trajectory tr;
  tr.t0 = 0;
  tr.z0 = Vector::Zero(2);
  tr.times = (Vector(4) << 0.0, 0.5, 0.6, 2.0).finished();
  tr.values = Matrix::Ones(4, 2);
  const Trajectory a = steer_times(tr, 0.3, 1), b = steer_times(tr, 0.3, 1), c = steer_times(tr, 0.3, 2);
  BOOST_TEST((a.times - b.times).norm() == 0.0);  // seeded
  BOOST_TEST((a.times - c.times).norm() > 0.0);
  BOOST_TEST(a.times[0] == 0.0);                  // the first observation stays
  // b is capped at 0.45 of the smallest gap (0.1): every time within 0.045 of its own, in order.
  for (int k = 1; k < 4; ++k) BOOST_TEST(std::abs(a.times[k] - tr.times[k]) <= 0.045 + 1e-15);
  BOOST_TEST(a.times[1] != tr.times[1]);
  for (int k = 1; k < 4; ++k) BOOST_TEST(a.times[k] > a.times[k - 1]);
  BOOST_TEST((a.values - tr.values).norm() == 0.0);
  BOOST_TEST((steer_times(tr, 0.0, 1).times - tr.times).norm() == 0.0);
  RegularizationOptions o;
  o.steer = -1;
  BOOST_TEST(o.validate().find("regularization.steer") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(regularizer_costs_follow_the_weights) {
  Mlp f(spec(false));
  RegularizationOptions o;
  BOOST_TEST(regularizer_costs(f, o, 1).empty());
  o.kinetic_weight = 0.1;
  o.jacobian_weight = 0.2;
  o.jacobian_estimator = TraceEstimator::Hutchinson;
  const auto costs = regularizer_costs(f, o, 3);
  BOOST_TEST(costs.size() == 2u);
  // The step seed fixes the Jacobian cost's probes: the same seed, the same value.
  const Vector theta = f.initial_parameters(Init::Glorot, 1), z = random_vector(3, 2, 1.0);
  Vector w1(costs[1]->workspace_size()), w2(w1.size());
  const auto again = regularizer_costs(f, o, 3);
  const double v = costs[1]->value(0, z, theta, w1);
  BOOST_TEST(v == again[1]->value(0, z, theta, w2));
  // Other seeds, other probes (one Rademacher probe in 3-D: 4 distinct values of |J eps|^2).
  int differ = 0;
  for (std::uint64_t s = 4; s < 12; ++s) differ += regularizer_costs(f, o, s)[1]->value(0, z, theta, w2) != v;
  BOOST_TEST(differ > 0);
}

namespace {

// One epoch of one minibatch holding every series: its train_loss is the loss at the initial
// parameters, regularisers included.
double first_loss(const RegularizationOptions& reg, double kinetic, Vector* theta0 = nullptr,
                  std::vector<Trajectory>* lifted = nullptr, Vector* after = nullptr) {
  static const auto data = cvnode::test::linear_data(6, 8, 2);
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) ids.push_back("s" + std::to_string(i));
  ModelOptions mo;
  mo.hidden = {8};
  mo.activation = Activation::Tanh;
  mo.seed = 5;
  static const Model model(mo, 2);
  TrainerSettings ts;
  ts.solver.rtol = 1e-10;
  ts.solver.atol = 1e-12;
  ts.loss.kind = "mse_mean";
  ts.run.epochs = 1;
  ts.run.batch_size = 6;
  ts.run.seed = 4;
  ts.run.kinetic_weight = kinetic;
  ts.regularization = reg;
  Trainer trainer(model, data, ids, {}, {}, ts);
  trainer.log = [](const std::string&) {};
  if (theta0) *theta0 = trainer.network(trainer.state().params);
  if (lifted) *lifted = trainer.train_series();
  trainer.run();
  if (after) *after = trainer.state().params;
  return trainer.state().history.at(0).train_loss;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_trainer_adds_the_configured_regularisers) {
  Vector theta;
  std::vector<Trajectory> series;
  const double plain = first_loss({}, 0, &theta, &series);
  // Jacobian norm (exact) and kinetic energy: the loss grows by exactly their integrals, as a
  // problem with those running costs solved directly gives them.
  RegularizationOptions r;
  r.jacobian_weight = 0.3;
  const double both = first_loss(r, 0.2);
  ModelOptions mo;
  mo.hidden = {8};
  mo.activation = Activation::Tanh;
  mo.seed = 5;
  const Model model(mo, 2);
  SolverOptions s;
  s.rtol = 1e-10;
  s.atol = 1e-12;
  BatchSolver solver(model.dynamics(), s);
  Problem bare(series, make_loss("mse_mean")), reg(series, make_loss("mse_mean"));
  r.kinetic_weight = 0.2;
  for (const auto& c : regularizer_costs(model.dynamics(), r, 0)) reg.add_running_cost(c);
  BOOST_TEST_CHECKPOINT("regularised problem");
  const double with_costs = solver.gradient(theta, reg).loss;
  BOOST_TEST_CHECKPOINT("bare problem");
  const double expected = with_costs - solver.gradient(theta, bare).loss;
  BOOST_TEST(expected > 1e-3);
  BOOST_TEST(both - plain == expected, boost::test_tools::tolerance(1e-9));
  // Hutchinson's probes and STEER's times are drawn per step from run.seed: another estimate and
  // other times than the plain run, and the same bits when run again.
  RegularizationOptions h;
  h.jacobian_weight = 0.3;
  h.jacobian_estimator = TraceEstimator::Hutchinson;
  h.steer = 0.05;
  Vector p1, p2;
  const double a = first_loss(h, 0, nullptr, nullptr, &p1), b = first_loss(h, 0, nullptr, nullptr, &p2);
  BOOST_TEST(a == b);
  BOOST_TEST((p1 - p2).norm() == 0.0);
  BOOST_TEST(std::abs(a - both) > 1e-6);
  // A Jacobian norm with stacked solves is refused by name.
  const auto data = cvnode::test::linear_data(2, 4, 1);
  TrainerSettings ts;
  ts.run.batch_mode = BatchMode::Stacked;
  ts.regularization.jacobian_weight = 1;
  try {
    Trainer t(model, data, {"a", "b"}, {}, {}, ts);
    BOOST_FAIL("stacked solves took a running cost");
  } catch (const OptionsError& e) {
    BOOST_TEST(std::string(e.what()).find("regularization.jacobian_weight") != std::string::npos);
  }
}

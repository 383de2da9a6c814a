// Running costs (kinetic energy, Jacobian norm) on the dopri5 engine (issue 16): their integral
// is a quadrature of the same Runge-Kutta steps, kept out of the error control, and its gradient
// goes back through the stages. The kinetic energy of dz/dt = -k z against its closed form; the
// kinetic energy read off the stages against the same cost evaluated at the stage states; the
// gradient with every cost against central differences on fixed steps and on adaptive steps
// pinned at max_step (differences then keep the steps the gradient holds fixed); and against the
// CVODES adjoint's continuous gradient at a tight tolerance, an independent reference.
// ctest: labels=unit timeout=120
#define BOOST_TEST_MODULE dopri5_running_cost
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <iomanip>

#include "cvnode/linear_decay.h"
#include "cvnode/mlp.h"
#include "cvnode/regularization.h"
#include "cvnode/solver.h"
#include "test_util.h"

using namespace cvnode;
using cvnode::test::fd_gradient;
using cvnode::test::random_vector;
using cvnode::test::rel_err;

namespace {

using Costs = std::vector<std::shared_ptr<const RunningCost>>;

Problem with_costs(const Trajectory& tr, const Costs& costs) {
  Problem p({tr}, make_loss("half_sse"));
  for (const auto& c : costs) p.add_running_cost(c);
  return p;
}

// The whole gradient (theta and z0) with `costs` against fourth-order central differences of
// the loss the same solver computes. Returns the larger relative error.
double error_against_differences(const Dynamics& f, const SolverOptions& o, const Vector& theta,
                                 const Trajectory& tr, const Costs& costs, double h) {
  Solver solver(f, o);
  const Gradient g = solver.gradient(theta, with_costs(tr, costs));
  const Vector fd_theta =
      fd_gradient([&](const Vector& th) { return solver.gradient(th, with_costs(tr, costs)).loss; }, theta, h);
  Trajectory moved = tr;
  const Vector fd_z0 = fd_gradient(
      [&](const Vector& z) {
        moved.z0 = z;
        return solver.gradient(theta, with_costs(moved, costs)).loss;
      },
      tr.z0, h);
  const double et = rel_err(g.theta, fd_theta), ez = rel_err(g.z0, fd_z0);
  BOOST_TEST_MESSAGE(std::setprecision(4) << "  steps " << g.forward.steps << ", rel err theta " << et << ", z0 " << ez);
  return std::max(et, ez);
}

Mlp small_mlp() {
  MlpSpec s;
  s.layers = {2, 8, 8, 2};
  s.activation = Activation::Tanh;
  s.time_input = true;
  return Mlp(s);
}

}  // namespace

// dz/dt = -k z: w int_t0^T |k z|^2 dt = w sum_i k_i z0_i^2 (1 - e^{-2 k_i T}) / 2 over T = t_end - t0,
// with d/dz0_i = w k_i z0_i (1 - e^{-2 k_i T}) and d/dk_i = w z0_i^2 ((1 - e^{-2 k_i T}) / 2 + k_i T e^{-2 k_i T})
// (the observation terms' share taken out by a run without the cost: the steps are the same,
// since the cost is not in the error control). At rtol 1e-10 the quadrature of the same steps is
// accurate to ~1e-10 of the cost: 1e-8 is the bound. The cost from the stages (a KineticEnergy
// of the engine's own dynamics) and evaluated at the stage states (one of an equal LinearDecay
// object) agree to rounding.
BOOST_AUTO_TEST_CASE(kinetic_energy_of_linear_decay_against_the_closed_form) {
  const LinearDecay decay(2), twin(2);
  const Vector k = (Vector(2) << 1.3, 0.4).finished();
  SolverOptions o;
  o.method = "dopri5";
  o.rtol = 1e-10;
  o.atol = 1e-12;
  Trajectory tr = test::short_series(2, 5);
  const double w = 0.7, T = tr.times[2] - tr.t0;
  double cost = 0;
  Vector dk(2), dz0(2);
  for (int i = 0; i < 2; ++i) {
    const double z = tr.z0[i], e = std::exp(-2 * k[i] * T);
    cost += w * k[i] * z * z * (1 - e) / 2;
    dz0[i] = w * k[i] * z * (1 - e);
    dk[i] = w * z * z * ((1 - e) / 2 + k[i] * T * e);
  }
  Solver solver(decay, o);
  const Gradient plain = solver.gradient(k, with_costs(tr, {}));
  const Gradient staged = solver.gradient(k, with_costs(tr, {std::make_shared<KineticEnergy>(decay, w)}));
  const Gradient evaluated = solver.gradient(k, with_costs(tr, {std::make_shared<KineticEnergy>(twin, w)}));
  BOOST_TEST(staged.forward.steps == plain.forward.steps);
  BOOST_TEST(staged.nfe_forward == plain.nfe_forward);  // read off the stages: no extra evaluation
  BOOST_TEST_MESSAGE(std::setprecision(10) << "cost " << staged.loss - plain.loss << " closed form " << cost << " ("
                                           << plain.forward.steps << " steps)");
  BOOST_TEST(staged.loss - plain.loss == cost, boost::test_tools::tolerance(1e-8));
  BOOST_TEST(rel_err(staged.theta - plain.theta, dk) < 1e-8);
  BOOST_TEST(rel_err(staged.z0 - plain.z0, dz0) < 1e-8);
  BOOST_TEST(evaluated.loss == staged.loss, boost::test_tools::tolerance(1e-13));
  BOOST_TEST(rel_err(evaluated.theta, staged.theta) < 1e-13);
  BOOST_TEST(rel_err(evaluated.z0, staged.z0) < 1e-13);
  // solve() integrates no cost and the next gradient without costs has none left over.
  BOOST_TEST(solver.gradient(k, with_costs(tr, {})).loss == plain.loss);
}

// Every cost on a small MLP (time input, tanh): kinetic energy from the stages, the exact Jacobian
// norm and Hutchinson's estimate with two probes evaluated at the stage states, all at once and
// one at a time. Fixed steps: the gradient is the exact derivative of the discrete loss, so
// differences (h = 1e-4, truncation ~h^4) agree to ~5e-12 (measured); the bound 1e-7 fails when
// the costs' pullback onto the earlier stages (Y_i = y + h sum_j a_ij K_j) and the kinetic
// stages' cotangents are left out (measured: off by 4e-3 to 0.23).
BOOST_AUTO_TEST_CASE(every_cost_matches_central_differences_on_fixed_steps) {
  const Mlp mlp = small_mlp();
  const Vector theta = mlp.initial_parameters(Init::Glorot, 3) + random_vector(mlp.param_size(), 4, 0.3);
  SolverOptions o;
  o.method = "dopri5";
  o.dopri5.fixed_step = 0.15;  // 8 steps and a cut last one
  JacobianFrobenius::Options exact, hutch;
  exact.weight = 0.2;
  hutch.weight = 0.4;
  hutch.estimator = TraceEstimator::Hutchinson;
  hutch.probes = 2;
  hutch.seed = 11;
  const Costs kinetic = {std::make_shared<KineticEnergy>(mlp, 0.3)};
  const Costs jac = {std::make_shared<JacobianFrobenius>(mlp, exact)};
  const Costs hut = {std::make_shared<JacobianFrobenius>(mlp, hutch)};
  const Costs all = {kinetic[0], jac[0], hut[0]};
  const Trajectory tr = test::short_series(2, 21);
  for (const auto& [name, costs] : {std::pair<const char*, Costs>{"kinetic", kinetic}, {"jacobian exact", jac},
                                    {"jacobian hutchinson", hut}, {"all three", all}}) {
    BOOST_TEST_MESSAGE(name);
    BOOST_TEST(error_against_differences(mlp, o, theta, tr, costs, 1e-4) < 1e-7, name);
  }
  // The costs are in the loss: more than the observation terms alone.
  Solver solver(mlp, o);
  BOOST_TEST(solver.gradient(theta, with_costs(tr, all)).loss > solver.gradient(theta, with_costs(tr, {})).loss + 1e-3);
}

// Adaptive steps all pinned at max_step (every proposal exceeds it, none is rejected).
BOOST_AUTO_TEST_CASE(costs_match_central_differences_on_pinned_adaptive_steps) {
  const Mlp mlp = small_mlp();
  const Vector theta = mlp.initial_parameters(Init::Glorot, 8) + random_vector(mlp.param_size(), 9, 0.3);
  SolverOptions o;
  o.method = "dopri5";
  o.rtol = 1e-3;
  o.atol = 1e-4;
  o.initial_step = o.max_step = 0.1;
  JacobianFrobenius::Options j;
  j.weight = 0.2;
  const Costs costs = {std::make_shared<KineticEnergy>(mlp, 0.3), std::make_shared<JacobianFrobenius>(mlp, j)};
  const Trajectory tr = test::short_series(2, 31);
  Solver solver(mlp, o);
  const Gradient g = solver.gradient(theta, with_costs(tr, costs));
  BOOST_TEST(g.forward.steps == 14);
  BOOST_TEST(g.forward.err_test_fails == 0);
  BOOST_TEST(error_against_differences(mlp, o, theta, tr, costs, 1e-4) < 1e-7);
}

// An independent reference: the CVODES adjoint integrates the same costs as quadratures of the
// continuous problem. At rtol 1e-10 both converge to the continuous gradient: measured 8e-10
// apart (theta), 4e-10 (z0); 1e-6 is the adjoint's bound at this tolerance elsewhere.
BOOST_AUTO_TEST_CASE(costs_agree_with_the_cvodes_adjoint) {
  const Mlp mlp = small_mlp();
  const Vector theta = mlp.initial_parameters(Init::Glorot, 5) + random_vector(mlp.param_size(), 6, 0.3);
  JacobianFrobenius::Options j;
  j.weight = 0.2;
  const Costs costs = {std::make_shared<KineticEnergy>(mlp, 0.3), std::make_shared<JacobianFrobenius>(mlp, j)};
  const Trajectory tr = test::short_series(2, 41);
  SolverOptions d;
  d.method = "dopri5";
  d.rtol = 1e-10;
  d.atol = 1e-12;
  SolverOptions a = d;
  a.method = "adams";
  a.max_steps = 100000;
  const Gradient gd = Solver(mlp, d).gradient(theta, with_costs(tr, costs));
  const Gradient ga = Solver(mlp, a).gradient(theta, with_costs(tr, costs));
  const Gradient plain = Solver(mlp, d).gradient(theta, with_costs(tr, {}));
  BOOST_TEST_MESSAGE(std::setprecision(4) << "dopri5 vs adjoint: loss " << gd.loss - ga.loss << ", theta "
                                          << rel_err(gd.theta, ga.theta) << ", z0 " << rel_err(gd.z0, ga.z0)
                                          << "; the costs' share of the loss " << gd.loss - plain.loss);
  BOOST_TEST(gd.loss == ga.loss, boost::test_tools::tolerance(1e-8));
  BOOST_TEST(rel_err(gd.theta, ga.theta) < 1e-6);
  BOOST_TEST(rel_err(gd.z0, ga.z0) < 1e-6);
  BOOST_TEST(rel_err(gd.theta - plain.theta, ga.theta - plain.theta) < 1e-5);  // the costs' own share
}

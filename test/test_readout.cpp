// The learned linear readout y = C z: the adjoint gradients (and dopri5's backpropagated ones) for
// theta, z0 and C against fourth-order central differences, in Solver and in BatchSolver's
// per-series and stacked modes, and the plain map (first components) recovered when C = [I 0].
// ctest: labels=unit timeout=120
#define BOOST_TEST_MODULE readout
#include <boost/test/unit_test.hpp>

#include <cmath>

#include "cvnode/cvnode.h"
#include "test_util.h"

using namespace cvnode;
using cvnode::test::fd_gradient;
using cvnode::test::random_vector;
using cvnode::test::rel_err;

namespace {

// A 3-dimensional latent state seen through 2 channels at irregular times, one entry masked.
Trajectory make_series(std::uint64_t seed, int T = 6) {
  Trajectory tr;
  tr.t0 = 0.0;
  tr.z0 = random_vector(3, seed, 1.0);
  tr.times.resize(T);
  const Vector gaps = random_vector(T, seed + 1).array().abs() + 0.1;
  double t = 0;
  for (int k = 0; k < T; ++k) tr.times[k] = (t += 1.2 * gaps[k] / gaps.sum());
  tr.values = random_vector(2 * T, seed + 2, 0.8).reshaped(T, 2);
  tr.mask = Matrix::Ones(T, 2);
  tr.mask(2, 1) = 0;
  tr.values(2, 1) = NAN;  // masked: must not matter
  return tr;
}

Matrix flat_to_matrix(const Vector& v, int rows, int cols) { return v.reshaped(rows, cols); }

struct Fixture {
  Mlp mlp{[] {
    MlpSpec s;
    s.layers = {3, 12, 3};
    return s;
  }()};
  Vector theta = mlp.initial_parameters(Init::Glorot, 11);
  Matrix C = random_vector(6, 77, 1.0).reshaped(2, 3);
};

}  // namespace

// The problem with the readout C (phi of a LinearReadout, column-major) on `loss`.
Problem readout_problem(std::vector<Trajectory> series, const std::string& loss, const Matrix& C) {
  LossSpec spec;
  spec.kind = loss;
  Problem p(std::move(series), make_loss(spec, std::make_shared<LinearReadout>(static_cast<int>(C.rows()),
                                                                               static_cast<int>(C.cols()))));
  p.set_loss_parameters(C.reshaped());
  return p;
}

// At rtol 1e-10 the adjoint must agree with the finite differences to < 1e-6 (the same bound as
// test_gradient: the reference solves at rtol 1e-13, whose loss noise over h = 1e-4 is ~1e-9).
BOOST_FIXTURE_TEST_CASE(theta_z0_and_readout_gradients_match_finite_differences, Fixture) {
  const Trajectory tr = make_series(5);
  SolverOptions tight;
  tight.method = "bdf";
  tight.rtol = 1e-13;
  tight.atol = 1e-15;
  Solver ref(mlp, tight);
  const double h = 1e-4;
  const Vector fd_theta = fd_gradient(
      [&](const Vector& th) { return ref.gradient(th, readout_problem({tr}, "half_sse", C)).loss; }, theta, h);
  const Vector fd_z0 = fd_gradient(
      [&](const Vector& z0) {
        Trajectory t2 = tr;
        t2.z0 = z0;
        return ref.gradient(theta, readout_problem({t2}, "half_sse", C)).loss;
      },
      tr.z0, h);
  const Vector c_flat = C.reshaped();
  const Vector fd_C = fd_gradient(
      [&](const Vector& c) { return ref.gradient(theta, readout_problem({tr}, "half_sse", flat_to_matrix(c, 2, 3))).loss; },
      c_flat, h);
  for (std::string m : {"adams", "bdf", "dopri5"}) {
    SolverOptions o;
    o.method = m;
    o.rtol = 1e-10;
    o.atol = 1e-12;
    Solver solver(mlp, o);
    const Gradient g = solver.gradient(theta, readout_problem({tr}, "half_sse", C));
    BOOST_TEST_CONTEXT("method " << m) {
      BOOST_TEST_REQUIRE(g.phi.size() == 6);
      BOOST_TEST(rel_err(g.theta, fd_theta) < 1e-6);
      BOOST_TEST(rel_err(g.z0, fd_z0) < 1e-6);
      BOOST_TEST(rel_err(g.phi, fd_C) < 1e-6);
    }
  }
}

// C = [I 0] is the plain observation map of the first two components: same loss and gradients.
BOOST_FIXTURE_TEST_CASE(identity_readout_equals_the_plain_map, Fixture) {
  const Trajectory tr = make_series(9);
  SolverOptions o;
  o.rtol = 1e-8;
  Solver solver(mlp, o);
  Matrix I = Matrix::Zero(2, 3);
  I(0, 0) = I(1, 1) = 1;
  const Gradient plain = solver.gradient(theta, Problem({tr}, make_loss("mse_mean")));
  const Gradient mapped = solver.gradient(theta, readout_problem({tr}, "mse_mean", I));
  BOOST_TEST(mapped.loss == plain.loss, boost::test_tools::tolerance(1e-14));
  BOOST_TEST((mapped.theta - plain.theta).norm() <= 1e-13 * plain.theta.norm());
  BOOST_TEST((mapped.z0 - plain.z0).norm() <= 1e-13 * plain.z0.norm());
  BOOST_TEST(plain.phi.size() == 0);
}

// The batch sums the readout gradients of its series; the stacked mode (one ODE for several
// series, each scored on its own rows) gives the per-series result to the solver's accuracy and
// is bit-identical for 1 and 2 threads.
BOOST_FIXTURE_TEST_CASE(batch_readout_gradients_per_series_and_stacked, Fixture) {
  std::vector<Trajectory> batch;
  for (int b = 0; b < 5; ++b) batch.push_back(make_series(100 + 7 * b, 5 + b % 3));
  const Problem problem = readout_problem(batch, "mse_mean", C);
  SolverOptions o;
  o.rtol = 1e-10;
  o.atol = 1e-12;
  BatchSolver per_series(mlp, o, BatchOptions{2});
  const BatchGradient ps = per_series.gradient(theta, problem);
  // The sum of single-series solves with the batch's mean.
  Solver single(mlp, o);
  Vector dC = Vector::Zero(6);
  double L = 0;
  for (int b = 0; b < problem.size(); ++b) {
    const Gradient g = single.gradient(theta, problem, b);
    dC += g.phi;
    L += g.loss;
  }
  BOOST_TEST(ps.loss == L, boost::test_tools::tolerance(1e-14));
  BOOST_TEST((ps.phi - dC).norm() <= 1e-14 * dC.norm());

  BatchOptions bo;
  bo.mode = BatchMode::Stacked;
  bo.stack_size = 3;  // units of 3 and 2 series
  bo.threads = 1;
  BatchSolver st1(mlp, o, bo);
  bo.threads = 2;
  BatchSolver st2(mlp, o, bo);
  const BatchGradient s1 = st1.gradient(theta, problem);
  const BatchGradient s2 = st2.gradient(theta, problem);
  // Different step sequences (one ODE vs five): agreement to the tolerance's order, 1e-10.
  BOOST_TEST(std::abs(s1.loss - ps.loss) <= 1e-8 * ps.loss);
  BOOST_TEST((s1.phi - ps.phi).norm() <= 1e-7 * ps.phi.norm());
  BOOST_TEST((s1.theta - ps.theta).norm() <= 1e-7 * ps.theta.norm());
  double series_sum = 0;
  for (double l : s1.series_loss) series_sum += l;
  BOOST_TEST(series_sum == s1.loss, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(s1.loss == s2.loss);
  BOOST_TEST((s1.phi - s2.phi).cwiseAbs().maxCoeff() == 0.0);
  BOOST_TEST((s1.theta - s2.theta).cwiseAbs().maxCoeff() == 0.0);
}

BOOST_FIXTURE_TEST_CASE(readout_shape_errors_name_the_sizes, Fixture) {
  Trajectory tr = make_series(3);
  SolverOptions o;
  Solver solver(mlp, o);
  BOOST_CHECK_EXCEPTION(solver.gradient(theta, readout_problem({tr}, "half_sse", Matrix::Ones(2, 4))), OptionsError,
                        [](const OptionsError& e) {
                          return std::string(e.what()).find("4 columns but the state has 3") != std::string::npos;
                        });
  BOOST_CHECK_EXCEPTION(solver.gradient(theta, readout_problem({tr}, "half_sse", Matrix::Ones(3, 3))), OptionsError,
                        [](const OptionsError& e) {
                          return std::string(e.what()).find("2 channels but the readout gives 3") != std::string::npos;
                        });
}

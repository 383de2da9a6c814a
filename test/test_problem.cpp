// The Problem object and losses as types: a mean loss is a mean without anyone passing a scale;
// a loss with its own data per series (given cotangents c_k, the pullback of an outer objective)
// gives gradients that match central differences in both engines; a slice of a problem scores
// its series exactly as the whole problem does; unknown names and wrong sizes are refused; a
// skipped failure is a series' own (a runtime error), never a refused configuration or a bug.
// ctest: labels=unit,sanitize timeout=120
#define BOOST_TEST_MODULE problem
#include <boost/test/unit_test.hpp>

#include <stdexcept>

#include "cvnode/cvnode.h"
#include "test_util.h"

using namespace cvnode;
using cvnode::test::fd_gradient;
using cvnode::test::random_vector;
using cvnode::test::rel_err;

namespace {

Trajectory series(int n, int T, std::uint64_t seed) {
  Trajectory tr;
  tr.z0 = random_vector(n, seed);
  tr.times.resize(T);
  for (int k = 0; k < T; ++k) tr.times[k] = 0.2 + 0.3 * k + 0.05 * ((seed + k) % 3);
  tr.values = random_vector(T * n, seed + 1).reshaped(T, n);
  return tr;
}

Mlp network() {
  MlpSpec s;
  s.layers = {2, 8, 2};
  return Mlp(s);
}

// The network, except that rhs throws E for a state whose first entry exceeds 10: only the
// series started there fail, the others are solved as by the network itself.
template <class E>
class FailsAboveTen final : public Dynamics {
 public:
  explicit FailsAboveTen(const Mlp& inner) : inner_(inner) {}
  int state_size() const override { return inner_.state_size(); }
  int param_size() const override { return inner_.param_size(); }
  int workspace_size() const override { return inner_.workspace_size(); }
  void rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const override {
    if (z[0] > 10) throw E("thrown by the test's dynamics");
    inner_.rhs(t, z, theta, f, work);
  }
  void vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz, VectorRef a_dfdtheta,
           VectorRef work) const override {
    inner_.vjp(t, z, theta, a, a_dfdz, a_dfdtheta, work);
  }
  void jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const override {
    inner_.jacobian(t, z, theta, J, work);
  }
  void jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
           VectorRef work) const override {
    inner_.jvp(t, z, theta, v, Jv, work);
  }

 private:
  const Mlp& inner_;
};

}  // namespace

// The README's example: one series with mse_mean is the mean of its squared errors.
BOOST_AUTO_TEST_CASE(a_mean_loss_is_a_mean_without_a_scale) {
  const Mlp mlp = network();
  const Vector theta = mlp.initial_parameters(Init::Glorot, 1);
  const Trajectory tr = series(2, 4, 3);
  Solver solver(mlp, SolverOptions{});
  const Gradient g = solver.gradient(theta, Problem({tr}, make_loss("mse_mean")));
  const Matrix e = g.states - tr.values;
  BOOST_TEST(g.loss == e.squaredNorm() / 8, boost::test_tools::tolerance(1e-14));
  // half_sse is a sum, whatever the problem's size.
  const Gradient h = solver.gradient(theta, Problem({tr, tr}, make_loss("half_sse")), 1);
  BOOST_TEST(h.loss == 0.5 * e.squaredNorm(), boost::test_tools::tolerance(1e-14));
}

// l = sum_k c_k^T z(t_k): its gradient is the pullback of the cotangents through the ODE, checked
// against central differences of the loss in the adjoint engines and dopri5 (bound as in
// test_gradient: reference at rtol 1e-13, 1e-6 at rtol 1e-10).
BOOST_AUTO_TEST_CASE(given_cotangents_pull_back_through_every_engine) {
  const Mlp mlp = network();
  const Vector theta = mlp.initial_parameters(Init::Glorot, 2) + random_vector(mlp.param_size(), 4, 0.1);
  const std::vector<Trajectory> batch = {series(2, 5, 10), series(2, 3, 20)};
  const auto loss = std::make_shared<GivenCotangent>(
      std::vector<Matrix>{random_vector(10, 30).reshaped(5, 2), random_vector(6, 31).reshaped(3, 2)});
  const Problem problem(batch, loss);
  SolverOptions tight;
  tight.method = "bdf";
  tight.rtol = 1e-13;
  tight.atol = 1e-15;
  Solver ref(mlp, tight);
  auto total = [&](const Vector& th) { return ref.gradient(th, problem, 0).loss + ref.gradient(th, problem, 1).loss; };
  const Vector fd = fd_gradient(total, theta, 1e-4);
  for (std::string m : {"adams", "bdf", "dopri5"}) {
    BOOST_TEST_CONTEXT(m) {
      SolverOptions o;
      o.method = m;
      o.rtol = 1e-10;
      o.atol = 1e-12;
      const BatchGradient g = BatchSolver(mlp, o, BatchOptions{2}).gradient(theta, problem);
      BOOST_TEST(rel_err(g.theta, fd) < 1e-6);
      // dL/dz0 of the first series is the cotangent pulled back to t0; its own central differences:
      const Vector fd_z0 = fd_gradient(
          [&](const Vector& z0) {
            std::vector<Trajectory> b = batch;
            b[0].z0 = z0;
            return ref.gradient(theta, Problem(b, loss), 0).loss;
          },
          batch[0].z0, 1e-4);
      BOOST_TEST(rel_err(g.z0[0], fd_z0) < 1e-6);
    }
  }
  const auto short_c = std::make_shared<GivenCotangent>(std::vector<Matrix>{Matrix::Zero(5, 2), Matrix::Zero(2, 2)});
  BOOST_TEST(Problem(batch, short_c).validate(2) ==
             "series 1: given cotangents of series 1 are 2 x 2, the series needs 3 x 2 (observation times x state)");
}

// A slice keeps the whole problem's normalisation and the series' indices for the loss: the
// slices' gradients add up to the whole problem's.
BOOST_AUTO_TEST_CASE(slices_add_up_to_the_whole_problem) {
  const Mlp mlp = network();
  const Vector theta = mlp.initial_parameters(Init::Glorot, 5);
  std::vector<Trajectory> batch;
  std::vector<Matrix> c;
  for (int b = 0; b < 5; ++b) {
    batch.push_back(series(2, 3 + b % 2, 40 + b));
    c.push_back(random_vector(2 * (3 + b % 2), 50 + b).reshaped(3 + b % 2, 2));
  }
  BatchSolver solver(mlp, SolverOptions{}, BatchOptions{1});
  for (const auto& loss : {make_loss("mse_mean"), std::shared_ptr<const Loss>(std::make_shared<GivenCotangent>(c))}) {
    BOOST_TEST_CONTEXT(loss->name()) {
      const Problem whole(batch, loss);
      const BatchGradient g = solver.gradient(theta, whole);
      const BatchGradient a = solver.gradient(theta, whole.slice(0, 2)), b = solver.gradient(theta, whole.slice(2, 5));
      BOOST_TEST(whole.slice(2, 5).original_index(0) == 2);
      BOOST_TEST(a.loss + b.loss == g.loss, boost::test_tools::tolerance(1e-14));
      BOOST_TEST(rel_err(a.theta + b.theta, g.theta) < 1e-14);
      BOOST_TEST((b.z0[1] - g.z0[3]).norm() == 0.0);
    }
  }
  BOOST_CHECK_THROW(Problem(batch, make_loss("mse_mean")).slice(3, 6), OptionsError);
}

BOOST_AUTO_TEST_CASE(unknown_names_and_wrong_sizes_are_refused) {
  BOOST_CHECK_EXCEPTION(make_loss("huber"), OptionsError, [](const OptionsError& e) {
    return std::string(e.what()) == "unknown loss 'huber' (expected half_sse, mse_mean, l1_mean, gaussian_nll or huber_mean)";
  });
  BOOST_TEST((loss_kinds() == std::vector<std::string>{"half_sse", "mse_mean", "l1_mean", "gaussian_nll", "huber_mean"}));
  Problem p({series(2, 2, 1)}, make_loss(LossSpec{"mse_mean", {}, {}}, std::make_shared<LinearReadout>(2, 2)));
  BOOST_TEST(p.loss_parameters().size() == 4);
  BOOST_CHECK_EXCEPTION(p.set_loss_parameters(Vector::Zero(3)), OptionsError, [](const OptionsError& e) {
    return std::string(e.what()).find("has 4 parameters, got 3") != std::string::npos;
  });
  BOOST_CHECK_THROW(Problem({series(2, 2, 1)}, nullptr), OptionsError);
}

BOOST_AUTO_TEST_CASE(only_a_series_own_failure_is_skipped) {
  // With skip_failures, a series whose solve throws a runtime error is listed and left out; a
  // refused option (OptionsError) or another logic error is no series' failure: it is rethrown,
  // so a fit cannot run to its end with every gradient refused and an untrained model.
  const Mlp mlp = network();
  const Vector theta = mlp.initial_parameters(Init::Glorot, 5);
  std::vector<Trajectory> batch;
  for (int b = 0; b < 4; ++b) batch.push_back(series(2, 3, 60 + b));
  batch[2].z0[0] = 100;  // the one series whose dynamics throw
  const Problem problem(batch, make_loss("half_sse"));
  SolverOptions o;
  o.method = "dopri5";  // the right-hand side's exception reaches the batch as thrown
  BatchOptions skip{1};
  skip.skip_failures = true;

  const FailsAboveTen<std::runtime_error> runtime(mlp);
  const BatchGradient g = BatchSolver(runtime, o, skip).gradient(theta, problem);
  BOOST_TEST_REQUIRE(g.failures.size() == 1u);
  BOOST_TEST(g.failures[0].series == 2);
  std::vector<Trajectory> others = batch;
  others.erase(others.begin() + 2);
  const BatchGradient rest = BatchSolver(mlp, o, BatchOptions{1}).gradient(theta, Problem(others, make_loss("half_sse")));
  BOOST_TEST(g.loss == rest.loss, boost::test_tools::tolerance(1e-14));

  const FailsAboveTen<OptionsError> refused(mlp);
  BOOST_CHECK_THROW(BatchSolver(refused, o, skip).gradient(theta, problem), OptionsError);
  const FailsAboveTen<std::logic_error> bug(mlp);
  BOOST_CHECK_THROW(BatchSolver(bug, o, skip).gradient(theta, problem), std::logic_error);
}

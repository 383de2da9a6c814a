// The shared benchmark problems (../shared/bench): cvnode reproduces the independent reference
// loss to 1e-8 and gradient to 1e-6 relative at rtol 1e-10 (B3 with BDF, as its stiffness needs),
// B1 and B1L in both adjoint forms (restart at every observation, and the transition matrix); and
// backpropagation through Dormand-Prince (method dopri5) on B1, B1L and B2.
// ctest: labels=integration timeout=300
#define BOOST_TEST_MODULE bench
#include <boost/test/unit_test.hpp>

#include "cvnode/cvnode.h"
#include "app/bench_problem.h"
#include "test_util.h"

using namespace cvnode;

namespace {

void check_problem(const std::string& name, const std::string& method, BatchMode mode = BatchMode::PerSeries,
                   AdjointForm form = AdjointForm::Auto, double tol = 1e-10, double grad_bound = 1e-6) {
  const BenchProblem p = BenchProblem::load(test::shared_path("bench/" + name + ".h5"));
  BOOST_TEST(p.name == name);
  const Mlp mlp(p.spec);
  SolverOptions opt;
  opt.method = method;
  opt.rtol = tol;
  opt.atol = method == "dopri5" ? tol * 1e-2 : tol;
  opt.cvodes.adjoint_form = form;
  BatchOptions bo;
  bo.threads = 2;
  bo.mode = mode;
  BatchSolver solver(mlp, opt, bo);
  const BatchGradient g = solver.gradient(p.theta, test::problem(p.trajectories, p.loss));
  const double loss_err = std::abs(g.loss - p.ref_loss) / std::abs(p.ref_loss);
  const double grad_err = test::rel_err(g.theta, p.ref_grad);
  BOOST_TEST_MESSAGE(name << " (" << method << ", "
                          << (method == "dopri5" ? "backprop" : adjoint_form_name(resolved_adjoint_form(opt, mlp)))
                          << "): loss_rel_err " << loss_err << ", grad_rel_err " << grad_err);
  BOOST_TEST(loss_err < 1e-8);
  BOOST_TEST(grad_err < grad_bound);
}

}  // namespace

BOOST_AUTO_TEST_CASE(b1_spiral_l1, *test::needs_shared("bench")) {
  check_problem("B1", "adams", BatchMode::PerSeries, AdjointForm::Transition);
  check_problem("B1", "adams", BatchMode::PerSeries, AdjointForm::Restart);
}
BOOST_AUTO_TEST_CASE(b1l_long_horizon, *test::needs_shared("bench")) {
  check_problem("B1L", "adams", BatchMode::PerSeries, AdjointForm::Transition);
  check_problem("B1L", "adams", BatchMode::PerSeries, AdjointForm::Restart);
}
BOOST_AUTO_TEST_CASE(b3_stiff_bdf, *test::needs_shared("bench")) { check_problem("B3", "bdf"); }
// B2's 128 series share their time grid: stacked 32 at a time, the wide network runs as
// matrix-matrix products (per series, this check takes minutes instead of seconds).
BOOST_AUTO_TEST_CASE(b2_wide_network_stacked, *test::needs_shared("bench")) { check_problem("B2", "adams", BatchMode::Stacked); }
// Backpropagation through Dormand-Prince: the references were computed the same way (torchdiffeq,
// dopri5 backprop at rtol 1e-12, atol 1e-14), with another error estimator and step controller,
// so the two converged derivatives of discrete solutions agree to about the tolerance, far
// below the adjoint's bound: 1e-10 (measured 1.4e-12, 9.6e-13 and 4.9e-13).
BOOST_AUTO_TEST_CASE(dopri5_backprop_b1_b1l_b2, *test::needs_shared("bench")) {
  check_problem("B1", "dopri5", BatchMode::PerSeries, AdjointForm::Auto, 1e-12, 1e-10);
  check_problem("B1L", "dopri5", BatchMode::PerSeries, AdjointForm::Auto, 1e-12, 1e-10);
  check_problem("B2", "dopri5", BatchMode::Stacked, AdjointForm::Auto, 1e-12, 1e-10);
}
BOOST_AUTO_TEST_CASE(b1_stacked, *test::needs_shared("bench")) {
  check_problem("B1", "adams", BatchMode::Stacked, AdjointForm::Transition);
  check_problem("B1", "adams", BatchMode::Stacked, AdjointForm::Restart);
}

BOOST_AUTO_TEST_CASE(missing_and_malformed_problem_files) {
  BOOST_CHECK_EXCEPTION(BenchProblem::load("/nonexistent/B9.h5"), DataError, [](const DataError& e) {
    return std::string(e.what()).find("/nonexistent/B9.h5: cannot open as HDF5") == 0;
  });
}

// The shared benchmark problems (../shared/bench): cvnode reproduces the independent reference
// loss to 1e-8 and gradient to 1e-6 relative at rtol 1e-10 (B3 with BDF, as its stiffness needs),
// B1 and B1L in both adjoint forms (restart at every observation, and the transition matrix).
#define BOOST_TEST_MODULE bench
#include <boost/test/unit_test.hpp>

#include "cvnode/cvnode.h"
#include "cvnode/bench_problem.h"
#include "test_util.h"

using namespace cvnode;

namespace {

void check_problem(const std::string& name, Method method, BatchMode mode = BatchMode::PerSeries,
                   AdjointForm form = AdjointForm::Auto) {
  const BenchProblem p = BenchProblem::load(test::shared_path("bench/" + name + ".h5"));
  BOOST_TEST(p.name == name);
  const Mlp mlp(p.spec);
  SolverOptions opt;
  opt.method = method;
  opt.rtol = 1e-10;
  opt.atol = 1e-10;
  opt.adjoint_form = form;
  BatchOptions bo;
  bo.threads = 2;
  bo.mode = mode;
  BatchSolver solver(mlp, opt, bo);
  const BatchGradient g = solver.gradient(p.theta, p.trajectories, p.loss);
  const double loss_err = std::abs(g.loss - p.ref_loss) / std::abs(p.ref_loss);
  const double grad_err = test::rel_err(g.theta, p.ref_grad);
  BOOST_TEST_MESSAGE(name << " (" << adjoint_form_name(resolved_adjoint_form(opt, mlp)) << "): loss_rel_err "
                          << loss_err << ", grad_rel_err " << grad_err);
  BOOST_TEST(loss_err < 1e-8);
  BOOST_TEST(grad_err < 1e-6);
}

}  // namespace

BOOST_AUTO_TEST_CASE(b1_spiral_l1) {
  check_problem("B1", Method::Adams, BatchMode::PerSeries, AdjointForm::Transition);
  check_problem("B1", Method::Adams, BatchMode::PerSeries, AdjointForm::Restart);
}
BOOST_AUTO_TEST_CASE(b1l_long_horizon) {
  check_problem("B1L", Method::Adams, BatchMode::PerSeries, AdjointForm::Transition);
  check_problem("B1L", Method::Adams, BatchMode::PerSeries, AdjointForm::Restart);
}
BOOST_AUTO_TEST_CASE(b3_stiff_bdf) { check_problem("B3", Method::Bdf); }
// B2's 128 series share their time grid: stacked 32 at a time, the wide network runs as
// matrix-matrix products (per series, this check takes minutes instead of seconds).
BOOST_AUTO_TEST_CASE(b2_wide_network_stacked) { check_problem("B2", Method::Adams, BatchMode::Stacked); }
BOOST_AUTO_TEST_CASE(b1_stacked) {
  check_problem("B1", Method::Adams, BatchMode::Stacked, AdjointForm::Transition);
  check_problem("B1", Method::Adams, BatchMode::Stacked, AdjointForm::Restart);
}

BOOST_AUTO_TEST_CASE(missing_and_malformed_problem_files) {
  BOOST_CHECK_EXCEPTION(BenchProblem::load("/nonexistent/B9.h5"), DataError, [](const DataError& e) {
    return std::string(e.what()).find("/nonexistent/B9.h5: cannot open as HDF5") == 0;
  });
}

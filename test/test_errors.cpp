// Solver failures become typed errors naming the CVODES flag and the time reached; invalid
// options and inputs are rejected before any solve; SUNDIALS never writes to stderr.
// ctest: labels=unit,sanitize timeout=60
#define BOOST_TEST_MODULE errors
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "cvnode/cvnode.h"
#include "test_util.h"

using namespace cvnode;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Captures everything written to file descriptor 2 while `fn` runs.
template <class F>
std::string capture_stderr(F&& fn) {
  std::fflush(stderr);
  char path[] = "/tmp/cvnode_stderr_XXXXXX";
  const int fd = mkstemp(path);
  const int saved = dup(2);
  dup2(fd, 2);
  try {
    fn();
  } catch (...) {
    std::fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    unlink(path);
    throw;
  }
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  std::string out;
  char buf[4096];
  lseek(fd, 0, SEEK_SET);
  for (ssize_t r; (r = read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(r));
  close(fd);
  unlink(path);
  return out;
}

// dz/dt = z^2 blows up at t = 1 / z0; past it the right-hand side overflows to Inf/NaN.
class BlowUp final : public Dynamics {
 public:
  int state_size() const override { return 1; }
  int param_size() const override { return 1; }
  int workspace_size() const override { return 0; }
  void rhs(double, ConstVectorRef z, ConstVectorRef p, VectorRef f, VectorRef) const override {
    f[0] = p[0] * z[0] * z[0];
  }
  void vjp(double, ConstVectorRef z, ConstVectorRef p, ConstVectorRef a, VectorRef az, VectorRef ap,
           VectorRef) const override {
    az[0] = 2 * p[0] * z[0] * a[0];
    if (ap.size()) ap[0] = z[0] * z[0] * a[0];
  }
  void jacobian(double, ConstVectorRef z, ConstVectorRef p, MatrixRef J, VectorRef) const override {
    J(0, 0) = 2 * p[0] * z[0];
  }
  void jvp(double, ConstVectorRef z, ConstVectorRef p, ConstVectorRef v, VectorRef Jv, VectorRef) const override {
    Jv[0] = 2 * p[0] * z[0] * v[0];
  }
};

// Returns NaN once t passes 0.5.
class NanAfterHalf final : public Dynamics {
 public:
  int state_size() const override { return 2; }
  int param_size() const override { return 0; }
  int workspace_size() const override { return 0; }
  void rhs(double t, ConstVectorRef z, ConstVectorRef, VectorRef f, VectorRef) const override {
    f = -z;
    if (t > 0.5) f[1] = NAN;
  }
  void vjp(double, ConstVectorRef, ConstVectorRef, ConstVectorRef a, VectorRef az, VectorRef, VectorRef) const override {
    az = -a;
  }
  void jacobian(double, ConstVectorRef, ConstVectorRef, MatrixRef J, VectorRef) const override {
    J = -Matrix::Identity(2, 2);
  }
  void jvp(double, ConstVectorRef, ConstVectorRef, ConstVectorRef v, VectorRef Jv, VectorRef) const override { Jv = -v; }
};

Trajectory one_obs(int n, double t) {
  Trajectory tr;
  tr.z0 = Vector::Ones(n);
  tr.times = Vector::Constant(1, t);
  tr.values = Matrix::Zero(1, n);
  return tr;
}

}  // namespace

BOOST_AUTO_TEST_CASE(too_much_work_is_a_typed_error_with_flag_and_time) {
  MlpSpec s;
  s.layers = {2, 8, 2};
  const Mlp mlp(s);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 1);
  for (std::string m : {"adams", "dopri5"}) {
    SolverOptions opt;
    opt.method = m;
    opt.max_steps = 5;
    Solver solver(mlp, opt);
    std::string err = capture_stderr([&] {
      try {
        solver.gradient(theta, test::problem(one_obs(2, 100.0), make_loss("half_sse")));
        BOOST_FAIL("expected a SolverError");
      } catch (const SolverError& e) {
        BOOST_TEST(e.flag() == -1);  // CV_TOO_MUCH_WORK
        BOOST_TEST(e.flag_name() == "CV_TOO_MUCH_WORK");
        BOOST_TEST(e.time_reached() > 0.0);
        BOOST_TEST(e.time_reached() < 100.0);
        BOOST_TEST(contains(e.what(), "CV_TOO_MUCH_WORK"));
        BOOST_TEST(contains(e.what(), "at t = "));
      }
    });
    BOOST_TEST(err.empty(), "SUNDIALS wrote to stderr: " << err);
  }
  // The same solver recovers for the next call.
  Solver ok(mlp, SolverOptions{});
  BOOST_TEST(std::isfinite(ok.gradient(theta, test::problem(one_obs(2, 1.0), make_loss("half_sse"))).loss));
}

BOOST_AUTO_TEST_CASE(nan_right_hand_side_is_a_typed_error) {
  const NanAfterHalf dyn;
  for (std::string m : {"adams", "bdf", "dopri5"}) {
    SolverOptions opt;
    opt.method = m;
    Solver solver(dyn, opt);
    std::string err = capture_stderr([&] {
      try {
        solver.gradient(Vector(0), test::problem(one_obs(2, 1.0), make_loss("half_sse")));
        BOOST_FAIL("expected a SolverError");
      } catch (const SolverError& e) {
        // Stops at the last good step before t = 0.5, within a few dozen evaluations.
        BOOST_TEST(e.time_reached() >= 0.4);
        BOOST_TEST(e.time_reached() <= 0.5);
        BOOST_TEST(contains(e.what(), "the right-hand side was not finite at t = "), e.what());
        BOOST_TEST((e.flag_name() == "CV_RHSFUNC_FAIL" || e.flag_name() == "CV_CONV_FAILURE"), e.what());
      }
    });
    BOOST_TEST(err.empty(), "SUNDIALS wrote to stderr: " << err);
  }
}

BOOST_AUTO_TEST_CASE(finite_time_blow_up_is_a_typed_error) {
  const BlowUp dyn;
  Solver solver(dyn, SolverOptions{});
  std::string err = capture_stderr([&] {
    // z0 = 1, p = 1: z = 1 / (1 - t) blows up at t = 1.
    BOOST_CHECK_EXCEPTION(solver.solve(Vector::Ones(1), 0.0, Vector::Ones(1), Vector::Constant(1, 2.0)),
                          SolverError, [](const SolverError& e) {
                            return e.time_reached() < 1.0 && e.time_reached() > 0.9;
                          });
  });
  BOOST_TEST(err.empty(), "SUNDIALS wrote to stderr: " << err);
}

BOOST_AUTO_TEST_CASE(invalid_options_name_the_option_and_value) {
  struct Bad {
    std::function<void(SolverOptions&)> set;
    std::string expected;
  };
  const std::vector<Bad> cases = {
      {[](SolverOptions& o) { o.rtol = -1; }, "rtol = -1"},
      {[](SolverOptions& o) { o.rtol = 1e-20; }, "rtol = 1e-20"},
      {[](SolverOptions& o) { o.atol = NAN; }, "atol = nan"},
      {[](SolverOptions& o) { o.max_steps = 0; }, "max_steps = 0"},
      {[](SolverOptions& o) { o.cvodes.max_order = 7; o.method = "bdf"; }, "max_order = 7"},
      {[](SolverOptions& o) { o.cvodes.checkpoint_steps = 0; }, "checkpoint_steps = 0"},
      {[](SolverOptions& o) { o.atol_vector = Vector::Ones(3); }, "atol_vector has 3 entries but the state has 2"},
      {[](SolverOptions& o) { o.method = "bdf"; o.cvodes.nonlinear_solver = NonlinearSolver::FixedPoint; }, "nonlinear_solver"},
      {[](SolverOptions& o) { o.max_step = 1; o.min_step = 2; }, "min_step = 2"},
      {[](SolverOptions& o) { o.method = "bdf"; o.cvodes.linear_solver = LinearSolver::Band; }, "band_upper/band_lower = -1/-1"},
      {[](SolverOptions& o) { o.cvodes.preconditioner = Preconditioner::BlockJacobi; }, "preconditioner = block_jacobi needs linear_solver = gmres"},
      {[](SolverOptions& o) { o.cvodes.linear_solver = LinearSolver::Gmres; o.cvodes.preconditioner = Preconditioner::BlockJacobi; o.cvodes.preconditioner_block = 3; }, "preconditioner_block = 3"},
      {[](SolverOptions& o) { o.method = "dopri5"; o.cvodes.adjoint_form = AdjointForm::Restart; }, "adjoint_form = restart applies to the adjoint methods"},
      {[](SolverOptions& o) { o.method = "dopri5"; o.cvodes.quadrature = Quadrature::Cvodes; }, "quadrature = cvodes applies to the adjoint methods"},
      {[](SolverOptions& o) { o.method = "dopri5"; o.cvodes.max_order = 4; }, "max_order = 4 applies to the adjoint methods (adams, bdf), not to dopri5"},
  };
  MlpSpec s;
  s.layers = {2, 4, 2};
  const Mlp mlp(s);
  for (const Bad& b : cases) {
    SolverOptions o;
    b.set(o);
    BOOST_TEST_CONTEXT(b.expected) {
      BOOST_TEST(contains(o.validate(2), b.expected), o.validate(2));
      BOOST_CHECK_EXCEPTION(Solver(mlp, o), OptionsError, [&](const OptionsError& e) {
        return contains(e.what(), b.expected);
      });
    }
  }
  BOOST_TEST(SolverOptions{}.validate(2).empty());
  SolverOptions rk4;
  rk4.method = "rk4";
  BOOST_TEST(rk4.validate(2) == "unknown solver method 'rk4' (expected adams, bdf or dopri5)");
  BOOST_CHECK_THROW(Solver(mlp, rk4), OptionsError);
  // An option of the CVODES engines is refused by dopri5, and dopri5's by them, by name.
  SolverOptions keep;
  keep.dopri5.keep_mib = 8;
  BOOST_TEST(contains(keep.validate(2), "dopri5_keep_mib = 8 applies to method dopri5, not to adams"), keep.validate(2));
  keep.method = "dopri5";
  BOOST_TEST(keep.validate(2).empty());
}

BOOST_AUTO_TEST_CASE(invalid_trajectories_are_rejected_before_solving) {
  MlpSpec s;
  s.layers = {2, 4, 2};
  const Mlp mlp(s);
  Solver solver(mlp, SolverOptions{});
  const Vector theta = mlp.initial_parameters(Init::Glorot, 1);
  Trajectory tr;
  tr.z0 = Vector::Ones(2);
  tr.times = (Vector(3) << 0.5, 0.5, 1.0).finished();
  tr.values = Matrix::Zero(3, 2);
  BOOST_CHECK_EXCEPTION(solver.gradient(theta, test::problem(tr, make_loss("half_sse"))), OptionsError, [](const OptionsError& e) {
    return contains(e.what(), "strictly increasing: times[0] = 0.5, times[1] = 0.5");
  });
  tr.times << 0.2, 0.5, NAN;
  BOOST_CHECK_EXCEPTION(solver.gradient(theta, test::problem(tr, make_loss("half_sse"))), OptionsError, [](const OptionsError& e) {
    return contains(e.what(), "times[2] = nan is not finite");
  });
  tr.times << 0.2, 0.5, 1.0;
  tr.values(1, 1) = NAN;
  BOOST_CHECK_EXCEPTION(solver.gradient(theta, test::problem(tr, make_loss("half_sse"))), OptionsError, [](const OptionsError& e) {
    return contains(e.what(), "values(1, 1) = nan is not finite and not masked");
  });
  tr.values(1, 1) = 0;
  tr.mask = Matrix::Ones(2, 2);
  BOOST_CHECK_EXCEPTION(solver.gradient(theta, test::problem(tr, make_loss("half_sse"))), OptionsError, [](const OptionsError& e) {
    return contains(e.what(), "mask is 2 x 2 but values is 3 x 2");
  });
  tr.mask.resize(0, 0);
  tr.times << -0.5, 0.5, 1.0;
  BOOST_CHECK_EXCEPTION(solver.gradient(theta, test::problem(tr, make_loss("half_sse"))), OptionsError, [](const OptionsError& e) {
    return contains(e.what(), "lies before t0");
  });
  BOOST_CHECK_EXCEPTION(solver.gradient(Vector::Ones(3), test::problem(one_obs(2, 1.0), make_loss("half_sse"))), OptionsError,
                        [](const OptionsError& e) { return contains(e.what(), "theta has 3 entries"); });
}

// Bad event and control tables (issue 12): each message names the field and its value.
BOOST_AUTO_TEST_CASE(bad_event_tables_name_the_field_and_value) {
  Trajectory tr;
  tr.t0 = 1;
  tr.z0 = Vector::Ones(3);
  tr.times = (Vector(2) << 2.0, 5.0).finished();
  tr.values = Matrix::Zero(2, 1);
  auto why = [&](Event e) {
    tr.events = {e};
    return tr.validate(3);
  };
  BOOST_TEST(why({2.0, 1, EventKind::Bolus, 10.0, 0}).empty());
  BOOST_TEST(why({4.0, 0, EventKind::Infusion, 10.0, 0.5}).empty());
  BOOST_TEST(contains(why({2.0, 1, EventKind::Bolus, -10.0, 0}), "events[0].amount = -10 must be finite and >= 0"));
  BOOST_TEST(contains(why({0.5, 1, EventKind::Bolus, 10.0, 0}), "events[0].time = 0.5 lies before t0 = 1"));
  BOOST_TEST(contains(why({6.0, 1, EventKind::Bolus, 10.0, 0}), "events[0].time = 6 lies after the series' end 5"));
  BOOST_TEST(contains(why({2.0, 3, EventKind::Bolus, 10.0, 0}), "events[0].compartment = 3 is not a state component"));
  BOOST_TEST(contains(why({2.0, -1, EventKind::Bolus, 10.0, 0}), "events[0].compartment = -1"));
  BOOST_TEST(contains(why({2.0, 0, EventKind::Infusion, 10.0, 0}), "events[0].duration = 0 must be finite and > 0"));
  BOOST_TEST(contains(why({2.0, 0, EventKind::Remove, 1.5, 0}), "events[0].amount = 1.5 is the fraction"));
  tr.events = {{3.0, 0, EventKind::Bolus, 1.0, 0}, {2.5, 0, EventKind::Bolus, 1.0, 0}};
  BOOST_TEST(contains(tr.validate(3), "events must be in time order: events[1].time = 2.5"));
  tr.events.clear();
  tr.controls.times = (Vector(2) << 0.0, 0.0).finished();
  tr.controls.values = Matrix::Zero(2, 1);
  BOOST_TEST(contains(tr.validate(3), "controls.times must be finite and strictly increasing: controls.times[1] = 0"));
  tr.controls.times << 0.0, 1.0;
  tr.controls.values.resize(3, 1);
  tr.controls.values.setZero();
  BOOST_TEST(contains(tr.validate(3), "controls.values has 3 rows but there are 2 control times"));
  BOOST_CHECK_THROW(parse_event_kind("dose"), OptionsError);
  BOOST_TEST((parse_control_interpolation("monotone_cubic") == ControlInterpolation::MonotoneCubic));
}

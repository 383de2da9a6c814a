// A flow's log-density of new points, its samples and its transport: against the closed form of
// a linear flow, by normalisation (the density of a nonlinear flow integrates to one), and by
// consistency (sampling backwards then evaluating forwards returns the same points and values).
// ctest: labels=unit timeout=120
#define BOOST_TEST_MODULE cnf_flow
#include <boost/test/unit_test.hpp>

#include <cmath>

#include "cvnode/errors.h"
#include "cvnode/flow.h"
#include "cvnode/planar_flow.h"
#include "cvnode/probed_mlp.h"
#include "test_util.h"

using namespace cvnode;
using cvnode::test::random_vector;

namespace {
// e^M by scaling and squaring a 24-term Taylor series (||M / 2^k|| <= 1/2: error ~1e-30
// relative before squaring).
Matrix expm(const Matrix& M) {
  int k = 0;
  while (M.norm() / std::ldexp(1.0, k) > 0.5) ++k;
  const Matrix A = M / std::ldexp(1.0, k);
  Matrix E = Matrix::Identity(M.rows(), M.cols()), term = E;
  for (int i = 1; i <= 24; ++i) {
    term = term * A / i;
    E += term;
  }
  for (int i = 0; i < k; ++i) E = E * E;
  return E;
}

FlowSettings tight(double T, double base_std = 1.0) {
  FlowSettings s;
  s.end_time = T;
  s.base_std = base_std;
  s.solver.rtol = 1e-10;
  s.solver.atol = 1e-12;
  s.chunk = 7;  // several chunks of uneven size
  s.threads = 2;
  return s;
}
}  // namespace

BOOST_AUTO_TEST_CASE(linear_flow_matches_the_closed_form) {
  // f(z) = A z + c: z(T) = e^{AT} x + (int_0^T e^{As} ds) c, and l(T) = -T tr A, so
  // log p(x) = log N(z(T); 0, s^2 I) + T tr A.
  const int D = 3;
  ProbedMlpSpec spec;
  spec.layers = {D, D};
  ProbedMlp field(spec);
  const Vector theta = random_vector(field.param_size(), 4, 0.6);
  const Matrix A = Eigen::Map<const Eigen::Matrix<double, D, D, Eigen::RowMajor>>(theta.data());
  const Vector c = theta.tail(D);
  const double T = 0.8, s = 1.3;
  Matrix M = Matrix::Zero(D + 1, D + 1);
  M.topLeftCorner(D, D) = A * T;
  M.topRightCorner(D, 1) = c * T;
  const Matrix E = expm(M);
  Flow flow(field, theta, tight(T, s));
  Matrix X(20, D);
  for (int i = 0; i < 20; ++i) X.row(i) = random_vector(D, 10 + i, 2.0).transpose();
  const FlowPoints r = flow.log_density(X);
  for (int i = 0; i < 20; ++i) {
    const Vector z = E.topLeftCorner(D, D) * X.row(i).transpose() + E.topRightCorner(D, 1);
    const double ref = -0.5 * z.squaredNorm() / (s * s) - 0.5 * D * std::log(2 * M_PI * s * s) + T * A.trace();
    BOOST_TEST((r.base.row(i).transpose() - z).norm() <= 1e-8 * (1 + z.norm()));
    BOOST_TEST(r.log_density[i] == ref, boost::test_tools::tolerance(1e-8));
  }
  BOOST_TEST(r.nfe > 0);
}

BOOST_AUTO_TEST_CASE(nonlinear_flow_density_integrates_to_one) {
  // A time-conditioned tanh network and the planar hypernetwork flow: the pushed-forward base
  // density integrates to one on a grid (midpoint rule, step 0.1 on [-8, 8]^2: the densities
  // are smooth on a scale of ~0.5 and their tails beyond 8 negligible), to the solver's and the
  // rule's accuracy, 1e-4. A wrong sign or factor of the trace gives O(1) errors.
  ProbedMlpSpec spec;
  spec.layers = {2, 16, 16, 2};
  spec.time_input = true;
  ProbedMlp mlp(spec);
  PlanarFlowSpec ps;
  ps.width = 16;
  ps.hyper_hidden = 8;
  PlanarFlow planar(ps);
  for (const ProbedField* field : {static_cast<const ProbedField*>(&mlp), static_cast<const ProbedField*>(&planar)}) {
    BOOST_TEST_CONTEXT((field == &mlp ? "mlp" : "planar")) {
      FlowSettings st = tight(1.0);
      st.solver.rtol = 1e-8;
      st.solver.atol = 1e-10;
      st.chunk = 400;
      Vector theta = field->initial_parameters(3);
      if (field == &planar) theta *= 2.0;  // a visibly non-Gaussian density
      Flow flow(*field, theta, st);
      const double h = 0.1;
      const int n = 160;
      Matrix X(n * n, 2);
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j) X.row(i * n + j) << -8 + (i + 0.5) * h, -8 + (j + 0.5) * h;
      const FlowPoints r = flow.log_density(X);
      double mass = 0;
      for (Eigen::Index i = 0; i < r.log_density.size(); ++i) mass += std::exp(r.log_density[i]) * h * h;
      // The flow is not the identity: the density differs from the base somewhere by far more.
      double gap = 0;
      for (Eigen::Index i = 0; i < X.rows(); ++i)
        gap = std::max(gap, std::abs(r.log_density[i] - flow.base_log_density(X.row(i).transpose())));
      BOOST_TEST_MESSAGE("mass " << mass << ", largest |log p - log p_base| on the grid " << gap);
      BOOST_TEST(mass == 1.0, boost::test_tools::tolerance(1e-4));
      BOOST_TEST(gap > 0.1);
      // The density of z(t) halfway is one too (the flow restarted at t = 0.5).
      const FlowPoints half = flow.log_density(X, 0.5);
      double mass_half = 0;
      for (Eigen::Index i = 0; i < half.log_density.size(); ++i) mass_half += std::exp(half.log_density[i]) * h * h;
      BOOST_TEST(mass_half == 1.0, boost::test_tools::tolerance(1e-4));
      BOOST_TEST((half.log_density - r.log_density).norm() > 0.1);
    }
  }
}

BOOST_AUTO_TEST_CASE(samples_carry_their_log_density_and_invert_the_flow) {
  ProbedMlpSpec spec;
  spec.layers = {2, 12, 12, 2};
  spec.time_input = true;
  ProbedMlp field(spec);
  const Vector theta = field.initial_parameters(8) * 1.5;
  Flow flow(field, theta, tight(1.0, 0.7));
  const FlowPoints s = flow.sample(30, 2);
  BOOST_TEST(s.points.rows() == 30);
  const FlowPoints f = flow.log_density(s.points);
  BOOST_TEST((f.base - s.base).norm() <= 1e-7 * s.base.norm());
  BOOST_TEST((f.log_density - s.log_density).norm() <= 1e-7 * s.log_density.norm());
  BOOST_TEST((s.points - s.base).norm() > 0.1 * s.base.norm());  // the flow moved them
  // Same seed, same samples (the chunks and threads do not change the bits).
  FlowSettings one = tight(1.0, 0.7);
  one.threads = 1;
  BOOST_TEST((Flow(field, theta, one).sample(30, 2).points - s.points).norm() == 0.0);
  // Transport: the points at t = 0 are the data, at T their images; backwards from the base
  // the other way round.
  const Vector times = (Vector(3) << 0.0, 0.5, 1.0).finished();
  const auto fw = flow.transport(s.points, times, false);
  BOOST_TEST((fw[0] - s.points).norm() == 0.0);
  BOOST_TEST((fw[2] - f.base).norm() <= 1e-8 * f.base.norm());  // other output times, other steps
  const auto bw = flow.transport(s.base, times, true);
  BOOST_TEST((bw[2] - s.base).norm() == 0.0);
  BOOST_TEST((bw[0] - s.points).norm() <= 1e-8 * s.points.norm());
  BOOST_TEST((bw[1] - fw[1]).norm() <= 1e-7 * fw[1].norm());
}

BOOST_AUTO_TEST_CASE(bad_settings_are_refused) {
  ProbedMlpSpec spec;
  spec.layers = {2, 4, 2};
  ProbedMlp field(spec);
  FlowSettings s;
  s.end_time = 0;
  BOOST_CHECK_THROW(Flow(field, field.initial_parameters(1), s), OptionsError);
  BOOST_CHECK_THROW(Flow(field, Vector::Zero(3), FlowSettings{}), OptionsError);
}

// The flow as a trainable model: its minibatch loss and gradient through every engine (CVODES
// adjoint with Adams and BDF, dopri5 backpropagation) against central differences of the loss,
// with Hutchinson probes, both regularisers and STEER's jittered end time; its NLL against the
// Flow's exact log-density.
// ctest: labels=unit timeout=300
#define BOOST_TEST_MODULE cnf_model
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <iomanip>

#include "cvnode/cnf_model.h"
#include "cvnode/densities.h"
#include "cvnode/errors.h"
#include "test_util.h"

using namespace cvnode;
using cvnode::test::directional_fd;
using cvnode::test::random_vector;

namespace {

SolverOptions tight(const std::string& m) {
  SolverOptions s;
  s.method = m;
  s.rtol = 1e-10;
  s.atol = 1e-12;
  return s;
}

Matrix moons(int n) {
  DensityOptions o;
  o.kind = "moons";
  return make_density(o)->sample(n, 9);
}

}  // namespace

BOOST_AUTO_TEST_CASE(minibatch_gradient_matches_finite_differences_on_every_engine) {
  const Matrix X = moons(5);
  const std::vector<std::size_t> rows = {4, 0, 2, 3, 1};
  for (const std::string field : {"mlp", "planar"}) {
    for (const std::string m : {"adams", "bdf", "dopri5"}) {
      BOOST_TEST_CONTEXT("field " << field << " method " << m) {
        CnfModelOptions o;
        o.field = field;
        o.hidden = {8, 8};
        o.width = 6;
        o.hyper_hidden = 5;
        o.trace = TraceEstimator::Hutchinson;
        o.probes = 2;
        o.kinetic_weight = 0.3;
        o.jacobian_weight = 0.2;
        o.steer = 0.4;
        o.end_time = 0.8;
        o.base_std = 1.5;
        CnfModel model(o, 2, 0.25);
        const Vector theta = model.initial_parameters() + random_vector(model.param_size(), 3, 0.2);
        CnfEngine engine = model.engine(tight(m), 3, 2);  // two stacks, one of them short
        CnfStep step;
        step.step = 7;
        step.seed = 11;
        const CnfMinibatch g = model.gradient(theta, X, rows, step, engine);
        BOOST_TEST(g.failures.empty());
        BOOST_TEST(g.end_time != 0.8);  // jittered
        BOOST_TEST(std::abs(g.end_time - 0.8) <= 0.4);
        BOOST_TEST(g.kinetic > 0);
        BOOST_TEST(g.frobenius > 0);
        BOOST_TEST(g.solves == 2);
        // The same step again: the same probes and end time, the same loss.
        auto loss = [&](const Vector& th) { return model.gradient(th, X, rows, step, engine).loss; };
        BOOST_TEST(loss(theta) == g.loss);
        // Loss = mean NLL (model units: nll minus log_scale) + weighted regularisers.
        BOOST_TEST(g.loss == (g.nll - 0.25) + 0.3 * g.kinetic + 0.2 * g.frobenius, boost::test_tools::tolerance(1e-12));
        // Fourth-order differences (h = 1e-3) along three random unit directions. The solves at
        // rtol 1e-10 keep the loss accurate to ~1e-10 relative, and BDF's step choices make it
        // a little rough in theta, so the quotient is good to ~1e-8 absolute: compare with the
        // gradient's norm (a missing or wrong term is off by a fraction of it).
        for (int d = 0; d < 3; ++d) {
          const Vector v = random_vector(model.param_size(), 40 + d, 1.0).normalized();
          const double fd = directional_fd(loss, theta, v, 1e-3);
          BOOST_TEST_MESSAGE(std::setprecision(12) << "directional derivative " << g.gradient.dot(v) << " fd " << fd);
          BOOST_TEST(std::abs(g.gradient.dot(v) - fd) <= 2e-6 * g.gradient.norm() + 2e-8);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(exact_trace_loss_is_the_flow_nll_and_a_new_step_draws_new_probes) {
  const Matrix X = moons(6);
  CnfModelOptions o;
  o.hidden = {8, 8};
  CnfModel model(o, 2);
  const Vector theta = model.initial_parameters() * 3;
  CnfEngine engine = model.engine(tight("adams"), 4, 1);
  const CnfMinibatch g = model.gradient(theta, X, {0, 1, 2, 3, 4, 5}, CnfStep{}, engine);
  FlowSettings fs;
  fs.solver = tight("adams");
  const CnfEvaluation e = model.evaluate(theta, X, fs);
  BOOST_TEST(g.nll == e.nll, boost::test_tools::tolerance(1e-8));
  BOOST_TEST(e.nll_per_dim == e.nll / 2);
  // Hutchinson: another step, other probes, another estimate; the same step, the same one.
  CnfModelOptions h = o;
  h.trace = TraceEstimator::Hutchinson;
  CnfModel hm(h, 2);
  CnfEngine he = hm.engine(tight("adams"), 4, 1);
  CnfStep s1, s2;
  s2.step = 1;
  const double a = hm.gradient(theta, X, {0, 1, 2, 3, 4, 5}, s1, he).nll;
  BOOST_TEST(a != hm.gradient(theta, X, {0, 1, 2, 3, 4, 5}, s2, he).nll);
  BOOST_TEST(a == hm.gradient(theta, X, {0, 1, 2, 3, 4, 5}, s1, he).nll);
}

BOOST_AUTO_TEST_CASE(thread_count_does_not_change_the_bits) {
  const Matrix X = moons(9);
  CnfModelOptions o;
  o.hidden = {8};
  o.trace = TraceEstimator::Hutchinson;
  CnfModel model(o, 2);
  const Vector theta = model.initial_parameters();
  SolverOptions s;
  CnfEngine one = model.engine(s, 4, 1), two = model.engine(s, 4, 2);
  const std::vector<std::size_t> rows = {0, 1, 2, 3, 4, 5, 6, 7, 8};
  const CnfMinibatch a = model.gradient(theta, X, rows, CnfStep{}, one);
  const CnfMinibatch b = model.gradient(theta, X, rows, CnfStep{}, two);
  BOOST_TEST(a.loss == b.loss);
  BOOST_TEST((a.gradient - b.gradient).norm() == 0.0);
}

BOOST_AUTO_TEST_CASE(bad_options_are_refused_with_the_key) {
  CnfModelOptions o;
  o.steer = 1.0;  // = end_time
  BOOST_CHECK_THROW(CnfModel(o, 2), OptionsError);
  try {
    CnfModel(o, 2);
  } catch (const OptionsError& e) {
    BOOST_TEST(std::string(e.what()).find("steer") != std::string::npos);
  }
  o.steer = 0;
  o.field = "radial";
  BOOST_CHECK_THROW(CnfModel(o, 2), OptionsError);
}

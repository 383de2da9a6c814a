// Hybrid models built from their plain description (HybridModelSpec, what a config maps onto):
// parameter layout, initial values through the transforms, the equivalence of the "robertson"
// and the reaction-string description, and readable errors for bad descriptions.
// ctest: labels=unit timeout=60
#define BOOST_TEST_MODULE hybrid_model
#include <boost/test/unit_test.hpp>

#include <cmath>

#include "cvnode/cvnode.h"
#include "cvnode/hybrid_model.h"
#include "cvnode/physics.h"
#include "test_util.h"

using namespace cvnode;
using cvnode::test::random_vector;

namespace {

HybridModelSpec robertson_fit_spec() {
  HybridModelSpec s;
  s.physics.kind = "mass_action";
  s.physics.species = {"y1", "y2", "y3"};
  s.physics.reactions = {"y1 -> y2", "y2 + y3 -> y1 + y3", "2 y2 -> y2 + y3"};
  s.physics.transform = "log";
  s.physics.initial = (Vector(3) << 0.4, 1e5, 3e8).finished();  // 10 times the true rates
  MlpSpec net;
  net.layers = {2, 8, 2};
  s.network = net;
  s.coupling.input_indices = {0, 2};
  s.coupling.output_indices = {0, 2};
  s.coupling.output_mask = (Vector(2) << 0.01, 0.01).finished();
  return s;
}

}  // namespace

BOOST_AUTO_TEST_CASE(robertson_fit_description) {
  const HybridModel m = build_hybrid(robertson_fit_spec());
  const int P = m.network->param_size();
  BOOST_TEST(m.dynamics->param_size() == 3 + P);
  BOOST_TEST(m.physics_size() == 3);
  BOOST_TEST(m.dynamics->state_size() == 3);
  // The optimizer's vector starts at log(initial rates); physical() maps it back.
  // Scalar std::log: Eigen's vectorised log trips a GCC 12 -Wuninitialized false positive (AVX-512).
  const Vector logs = (Vector(3) << std::log(0.4), std::log(1e5), std::log(3e8)).finished();
  BOOST_TEST((m.initial.head(3) - logs).norm() < 1e-12);
  BOOST_TEST((m.physical(m.initial) - (Vector(3) << 0.4, 1e5, 3e8).finished()).norm() <= 1e-6);
  BOOST_TEST(m.initial.tail(P).norm() > 0);  // the network is initialised, not zero

  // With the network's weights zeroed, the model is exactly Robertson at the physical rates.
  Vector theta = m.initial;
  theta.tail(P).setZero();
  const Robertson rob;
  const Vector y = (Vector(3) << 0.7, 2e-5, 0.3).finished();
  Vector f(3), fr(3), w(m.dynamics->workspace_size()), w0(1);
  m.dynamics->rhs(0, y, theta, f, w);
  rob.rhs(0, y, m.physical(theta), fr, w0);
  BOOST_TEST((f - fr).norm() <= 1e-14 * fr.norm());
}

BOOST_AUTO_TEST_CASE(robertson_kind_and_defaults) {
  HybridModelSpec s;
  s.physics.kind = "robertson";
  s.physics.transform = "log_bounded";
  s.physics.lower = 1e-3;
  s.physics.upper = 1e9;
  const HybridModel m = build_hybrid(s);
  BOOST_TEST(!m.network);
  BOOST_TEST(m.dynamics->param_size() == 3);
  BOOST_TEST((m.physical(m.initial) - Robertson::default_parameters()).norm() <= 1e-6);
}

BOOST_AUTO_TEST_CASE(per_parameter_bounds_and_reaction_network_term) {
  // Variant (b) of the Robertson experiment as a description: reactions 1 and 2 as physics (one
  // log rate, one bounded), reaction 3's rate a network entering by its stoichiometry column.
  HybridModelSpec s;
  s.physics.kind = "mass_action";
  s.physics.species = {"y1", "y2", "y3"};
  s.physics.reactions = {"y1 -> y2", "y2 + y3 -> y1 + y3"};
  s.physics.bounds = {ParamBound::log(), ParamBound::log_bounded(1e2, 1e6)};
  s.physics.initial = (Vector(2) << 0.4, 1e5).finished();
  MlpSpec net;
  net.layers = {1, 8, 1};
  s.network = net;
  s.coupling.input_indices = {1};
  s.coupling.input_scale = Vector::Constant(1, 1e4);
  s.coupling.output_matrix = (Matrix(3, 1) << 0, -1, 1).finished();
  const HybridModel m = build_hybrid(s);
  BOOST_TEST((m.physics->bounds()[1].kind == ParamTransform::LogBounded));
  BOOST_TEST((m.physical(m.initial) - s.physics.initial).norm() <= 1e-9 * 1e5);
  BOOST_TEST(m.dynamics->param_size() == 2 + m.network->param_size());
  s.physics.bounds.pop_back();
  BOOST_CHECK_THROW(build_hybrid(s), OptionsError);  // one bound for two parameters
}

BOOST_AUTO_TEST_CASE(b3_description) {
  // B3: fixed decay (no physics parameters) plus an 8-32-8 network.
  HybridModelSpec s;
  s.physics.kind = "linear_decay";
  s.physics.fixed_rates = Vector::LinSpaced(8, 0, 4).unaryExpr([](double e) { return std::pow(10.0, e); });
  MlpSpec net;
  net.layers = {8, 32, 8};
  s.network = net;
  const HybridModel m = build_hybrid(s);
  BOOST_TEST(m.physics_size() == 0);
  BOOST_TEST(m.dynamics->param_size() == m.network->param_size());
  // Learnable rates instead: 8 more parameters in front.
  s.physics.fixed_rates.resize(0);
  s.physics.size = 8;
  s.physics.transform = "log";
  BOOST_TEST(build_hybrid(s).dynamics->param_size() == 8 + m.network->param_size());
}

BOOST_AUTO_TEST_CASE(bad_descriptions_say_what_is_wrong) {
  auto message = [](const HybridModelSpec& s) {
    try {
      build_hybrid(s);
    } catch (const OptionsError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  HybridModelSpec s = robertson_fit_spec();
  s.physics.kind = "arrhenius";
  BOOST_TEST(message(s).find("physics.kind") != std::string::npos);
  s = robertson_fit_spec();
  s.physics.reactions[1] = "y2 + y4 -> y1";
  BOOST_TEST(message(s).find("y4") != std::string::npos);
  s = robertson_fit_spec();
  s.physics.initial = Vector::Ones(2);
  BOOST_TEST(message(s).find("physics.initial") != std::string::npos);
  s = robertson_fit_spec();
  s.physics.initial[0] = -1;  // not in the log transform's domain
  BOOST_TEST(!message(s).empty());
  s = robertson_fit_spec();
  s.physics.transform = "bounded";
  BOOST_TEST(message(s).find("bounded") != std::string::npos);
  s = robertson_fit_spec();
  s.coupling.output_indices = {0, 5};
  BOOST_TEST(message(s).find("output_indices") != std::string::npos);
  s = HybridModelSpec{};
  BOOST_TEST(message(s).find("neither") != std::string::npos);
}

// The regularisers on the latent ODE (issue 16): kinetic energy and Jacobian norm of the latent
// dynamics as running costs of each sample's path, and the solver-error penalty of that path
// (dopri5), in the whole model's gradient (encoder -> z0 -> latent ODE -> decoder) against central
// differences of the loss the gradient reports; loss() and validation without them; the refusals
// of SequenceKind::set_regularization.
// ctest: labels=unit timeout=300
#define BOOST_TEST_MODULE latent_regularization
#include <boost/test/unit_test.hpp>

#include <cmath>

#include "cvnode/errors.h"
#include "cvnode/regularization.h"
#include "models/latent/kind.h"
#include "models/latent/latent_ode.h"
#include "test_util.h"

using namespace cvnode;
using namespace cvnode::latent;
using cvnode::test::fd_gradient;
using cvnode::test::random_vector;
using cvnode::test::rel_err;

namespace {

Trajectory series() {
  Trajectory tr;
  tr.t0 = 0.0;
  tr.times = (Vector(5) << 0.15, 0.4, 0.9, 1.3, 1.45).finished();
  tr.values = Matrix(5, 2);
  tr.mask = Matrix::Ones(5, 2);
  for (int k = 0; k < 5; ++k) {
    tr.values(k, 0) = std::sin(2 * tr.times[k]);
    tr.values(k, 1) = 0.5 * std::cos(3 * tr.times[k]);
  }
  tr.mask(1, 1) = 0;
  return tr;
}

LatentOdeSpec small_spec(EncoderKind enc) {
  LatentOdeSpec s;
  s.channels = 2;
  s.latent = 3;
  s.encoder.kind = enc;
  s.encoder.hidden = 4;
  s.encoder.head_hidden = {};
  s.encoder.ode_hidden = {4};
  s.dynamics_hidden = {6};
  s.dynamics_activation = Activation::Tanh;
  s.decoder_hidden = {5};
  s.decoder_activation = Activation::Tanh;
  s.noise_std = (Vector(2) << 0.3, 0.2).finished();
  return s;
}

SolverOptions tight(const std::string& m) {
  SolverOptions o;
  o.method = m;
  o.rtol = 1e-11;
  o.atol = 1e-12;
  return o;
}

}  // namespace

// The whole model with K = 2 samples: every regulariser's term in the loss the gradient reports
// (loss() stays the plain ELBO), and that loss's gradient against fourth-order differences
// (h = 1e-4). The paths at rtol 1e-11 (adaptive: the solver's noise through 1 / h is ~1e-7);
// the penalty on pinned dopri5 steps (max_step = initial_step, every step accepted) so that
// differences keep the steps the gradient holds fixed. Measured 6e-10 (adams), 2e-11 (dopri5)
// and 2.7e-8 (penalty); 1e-6 is the bound, and each row's regularisers move the gradient by
// 1.6e-2 to 0.16 of its norm, so a term left out of the gradient fails it.
BOOST_AUTO_TEST_CASE(regularised_latent_gradient_matches_central_differences) {
  struct Row {
    const char* name;
    EncoderKind enc;
    std::string method;
    double kinetic, jacobian, error;
  };
  const Row rows[] = {{"rnn, kinetic + jacobian, adams", EncoderKind::Rnn, "adams", 0.3, 0.2, 0},
                      {"ode_rnn, kinetic + jacobian, dopri5", EncoderKind::OdeRnn, "dopri5", 0.3, 0.2, 0},
                      {"rnn, solver error (pinned steps), dopri5", EncoderKind::Rnn, "dopri5", 0, 0, 3e4}};
  for (const Row& r : rows) {
    LatentOde model(small_spec(r.enc));
    const Vector p = model.initial_parameters(31) + random_vector(model.param_size(), 32, 0.1);
    const Trajectory tr = series();
    SolverOptions path = tight(r.method);
    if (r.error > 0) {
      path.rtol = 1e-3;
      path.atol = 1e-4;
      path.initial_step = path.max_step = 0.25;
      path.dopri5.error_weight = r.error / 2;
    }
    LatentOde::Context ctx(model, tight(r.method), path);
    RegularizationOptions o;
    o.kinetic_weight = r.kinetic / 2;  // K = 2: each sample's path weighs 1/K
    o.jacobian_weight = r.jacobian / 2;
    const auto costs = regularizer_costs(model.ode(), o, 7);
    ElboSettings st{2, false, 1.0};
    st.costs = &costs;
    const std::uint64_t seed = LatentOde::noise_seed(5, 1, 2);
    Vector g = Vector::Zero(model.param_size());
    const double l = model.loss_gradient(p, tr, st, seed, 0.5, ctx, g);
    const double plain = 0.5 * model.loss(p, tr, st, seed, ctx);
    auto objective = [&](const Vector& v) {
      Vector scratch = Vector::Zero(model.param_size());
      return model.loss_gradient(v, tr, st, seed, 0.5, ctx, scratch);
    };
    const Vector fd = fd_gradient(objective, p, 1e-4);
    // The same model and draws without any regulariser: what the regularisers add.
    LatentOde::Context bare(model, tight(r.method), r.error > 0 ? SolverOptions(path) : tight(r.method));
    ElboSettings none{2, false, 1.0};
    Vector g0 = Vector::Zero(model.param_size());
    if (r.error > 0) {
      SolverOptions unpenalised = path;
      unpenalised.dopri5.error_weight = 0;
      LatentOde::Context c0(model, tight(r.method), unpenalised);
      model.loss_gradient(p, tr, none, seed, 0.5, c0, g0);
    } else {
      model.loss_gradient(p, tr, none, seed, 0.5, bare, g0);
    }
    const double e = rel_err(g, fd);
    BOOST_TEST_MESSAGE(r.name << ": loss " << l << " (plain " << plain << "), gradient vs differences " << e
                              << ", regularisers' share " << rel_err(g, g0));
    BOOST_TEST(l > plain + 1e-4, r.name);
    BOOST_TEST(rel_err(g, g0) > 1e-2, r.name);
    BOOST_TEST(e < 1e-6, r.name << ": " << e);
  }
}

BOOST_AUTO_TEST_CASE(what_a_latent_model_cannot_take_is_refused_by_name) {
  auto refuses = [](const std::string& kind, bool poisson, const std::string& method, RegularizationOptions r,
                    const std::string& phrase) {
    LatentOptions lo;
    lo.latent_dim = 2;
    lo.encoder.hidden = 4;
    lo.decoder.hidden = {4};
    lo.poisson = poisson;
    lo.intensity_hidden = {4};
    ModelOptions m;
    m.hidden = {4};
    SolverOptions s;
    s.method = method;
    SequenceKind k(kind, lo, m, 2, Vector::Ones(2), s, 1);
    try {
      k.set_regularization(r);
    } catch (const OptionsError& e) {
      BOOST_TEST_MESSAGE(e.what());
      return std::string(e.what()).find(phrase) != std::string::npos;
    }
    return false;
  };
  RegularizationOptions kinetic, error, none;
  kinetic.kinetic_weight = 0.1;
  error.error_weight = 0.1;
  BOOST_TEST(refuses("rnn_baseline", false, "adams", kinetic, "latent_ode"));
  BOOST_TEST(refuses("latent_ode", true, "dopri5", kinetic, "loss.poisson"));
  BOOST_TEST(refuses("latent_ode", false, "adams", error, "regularization.error_weight"));
  BOOST_TEST(!refuses("latent_ode", false, "dopri5", error, "-"));
  BOOST_TEST(!refuses("rnn_baseline", false, "adams", none, "-"));
}

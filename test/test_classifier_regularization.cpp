// The regularisers on the image classifier (issue 16): kinetic energy, the Jacobian norm
// (Hutchinson with central-difference JVPs, JacobianDifference), STEER's end time and the
// solver-error penalty in the classifier's training gradient. Each regulariser's whole-network
// gradient against central differences of the objective it reports (loss + penalty) on fixed
// RK-Net steps (the exact derivative of the discrete network) and through the CVODES adjoint;
// JacobianDifference against the exact |J eps|^2 of the block's JVP; STEER against a model built
// with the drawn horizon; the refusals; metrics of a training run.
// ctest: labels=unit timeout=300
#define BOOST_TEST_MODULE classifier_regularization
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <iomanip>

#include "cvnode/errors.h"
#include "models/classifier/train.h"
#include "test_util.h"

using namespace cvnode;

namespace {

ClassifierSpec small_spec(ClassifierKind kind, const char* method = "dopri5") {
  ClassifierSpec s;
  s.kind = kind;
  s.image_size = 12;
  s.classes = 3;
  s.channels = 4;
  s.groups = 2;
  s.pool_grid = 2;
  s.rk_steps = 3;
  s.chunk = 2;
  s.threads = 1;
  s.activation = Activation::Softplus;  // smooth: differences see no kinks
  s.solver.method = method;
  if (s.solver.method == "dopri5") s.solver.cvodes = CvodesOptions{};
  s.solver.rtol = 1e-10;
  s.solver.atol = 1e-10;
  return s;
}

Matrix random_images(int pixels, int count, std::uint64_t seed) {
  return (test::random_vector(pixels * count, seed).array() * 0.5 + 0.5).matrix().reshaped(pixels, count);
}

const std::vector<int> kLabels = {0, 2, 1, 1, 0};

// The largest relative error of the gradient of loss + penalty along 3 random directions
// against 4th-order central differences (h = 1e-5) of the same objective, one step seed.
double directional_error(ImageClassifier& model, const Vector& theta, const Matrix& X, std::uint64_t seed,
                         double* penalty = nullptr) {
  const ClassifierResult r = model.gradient(theta, X, kLabels, seed);
  if (penalty) *penalty = r.penalty;
  auto objective = [&](const Vector& th) {
    const ClassifierResult q = model.gradient(th, X, kLabels, seed);
    return q.loss + q.penalty;
  };
  double worst = 0;
  for (int d = 0; d < 3; ++d) {
    const Vector v = test::random_vector(static_cast<int>(theta.size()), 200 + d);
    const double fd = test::directional_fd(objective, theta, v, 1e-5), an = r.gradient.dot(v);
    worst = std::max(worst, std::abs(fd - an) / std::max(std::abs(fd), 1e-12));
  }
  return worst;
}

}  // namespace

// RK-Net's fixed steps make the objective a function of theta that the gradient differentiates
// exactly, smooth but for the ReLU kinks of the stem and the head (the block is softplus): a
// direction whose stencil (+-2h) crosses one gives differences an O(h)-independent error of
// ~1e-5 (parameter seeds 3 and 5 here, also for STEER, whose step is a plain one: measured
// 9e-6..4e-5); seed 4 crosses none and measures 3e-11..1.6e-9 per regulariser (1e-8 with 10 or
// 30 steps). 1e-7 is the bound, and a regulariser whose gradient were left out is off by its
// share: each moves the gradient by more than 1e-4 of its norm (measured 5e-4 for STEER, > 0.9
// for the others).
BOOST_AUTO_TEST_CASE(each_regulariser_matches_central_differences_on_rk_net_steps) {
  ImageClassifier plain(small_spec(ClassifierKind::RkNet));
  const Vector theta = plain.initial_parameters(4);
  const Matrix X = random_images(144, 5, 4);
  const Vector g0 = plain.gradient(theta, X, kLabels).gradient;
  struct Case {
    const char* name;
    RegularizationOptions o;
  };
  RegularizationOptions kinetic, jacobian, steer, error;
  kinetic.kinetic_weight = 0.5;
  jacobian.jacobian_weight = 0.5;
  jacobian.jacobian_estimator = TraceEstimator::Hutchinson;
  jacobian.jacobian_probes = 2;
  steer.steer = 0.3;
  error.error_weight = 50;
  for (const Case& c : {Case{"kinetic", kinetic}, Case{"jacobian", jacobian}, Case{"steer", steer}, Case{"error", error}}) {
    ImageClassifier model(small_spec(ClassifierKind::RkNet));
    model.set_regularization(c.o);
    double penalty = 0;
    const double err = directional_error(model, theta, X, 17, &penalty);
    const ClassifierResult r = model.gradient(theta, X, kLabels, 17);
    BOOST_TEST_MESSAGE(std::setprecision(4) << c.name << ": rel err " << err << ", penalty " << penalty << ", end time "
                                            << r.end_time << ", |g - g_plain| / |g| "
                                            << (r.gradient - g0).norm() / r.gradient.norm());
    BOOST_TEST(err < 1e-7, c.name);
    BOOST_TEST((r.gradient - g0).norm() > 1e-4 * r.gradient.norm(), c.name);
    if (c.o.steer > 0) {
      BOOST_TEST(penalty == 0.0);
      BOOST_TEST(std::abs(r.end_time - 1.0) <= 0.3);
      BOOST_TEST(r.end_time != 1.0);
    } else {
      BOOST_TEST(penalty > 0);
      BOOST_TEST(r.end_time == 1.0);
    }
  }
}

// The running costs through adaptive dopri5 at rtol 1e-10 against differences (the solver's
// ~rtol noise through 1 / h: measured 5.4e-9 with the costs, 5.1e-10 without; bound 1e-7), and
// through the CVODES adjoint (the classifier's default engine) against that dopri5 gradient: two
// engines converging to the continuous gradient (measured 2.3e-9; penalties 2.8e-10 apart). Differences of the adjoint's loss
// itself are not the check: its running-cost quadrature carries ~1e-9 of noise, 2e-5 through
// 1 / h (1.4e-8 without the costs).
BOOST_AUTO_TEST_CASE(running_costs_through_adaptive_dopri5_and_the_adjoint) {
  RegularizationOptions o;
  o.kinetic_weight = 0.5;
  o.jacobian_weight = 0.5;
  o.jacobian_estimator = TraceEstimator::Hutchinson;
  ImageClassifier model(small_spec(ClassifierKind::OdeNet, "dopri5"));
  model.set_regularization(o);
  const Vector theta = model.initial_parameters(5);
  const Matrix X = random_images(144, 5, 6);
  double penalty = 0;
  const double err = directional_error(model, theta, X, 23, &penalty);
  ImageClassifier adjoint(small_spec(ClassifierKind::OdeNet, "adams"));
  adjoint.set_regularization(o);
  const ClassifierResult a = adjoint.gradient(theta, X, kLabels, 23), d = model.gradient(theta, X, kLabels, 23);
  const ClassifierResult plain = ImageClassifier(small_spec(ClassifierKind::OdeNet, "dopri5")).gradient(theta, X, kLabels);
  BOOST_TEST_MESSAGE("dopri5: rel err " << err << ", penalty " << penalty << "; adjoint vs dopri5: gradient "
                                        << test::rel_err(a.gradient, d.gradient) << ", penalty " << a.penalty - d.penalty
                                        << "; the costs' share of the gradient "
                                        << test::rel_err(d.gradient, plain.gradient));
  BOOST_TEST(penalty > 0);
  BOOST_TEST(err < 1e-7);
  BOOST_TEST(test::rel_err(a.gradient, d.gradient) < 1e-6);
  BOOST_TEST(a.penalty == d.penalty, boost::test_tools::tolerance(1e-8));
}

// STEER draws one end time per step seed; the step is then exactly that of a model whose
// horizon is the drawn time (same engine, same span: the same bits).
BOOST_AUTO_TEST_CASE(steer_is_a_model_with_the_drawn_horizon) {
  ClassifierSpec s = small_spec(ClassifierKind::OdeNet);
  s.solver.rtol = s.solver.atol = 1e-6;
  ImageClassifier model(s);
  RegularizationOptions o;
  o.steer = 0.5;
  model.set_regularization(o);
  const Vector theta = model.initial_parameters(7);
  const Matrix X = random_images(144, 5, 8);
  double lo = 2, hi = 0;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    const double T = model.gradient(theta, X, kLabels, seed).end_time;
    lo = std::min(lo, T);
    hi = std::max(hi, T);
  }
  BOOST_TEST(lo >= 0.5);
  BOOST_TEST(hi <= 1.5);
  BOOST_TEST(hi - lo > 0.5);  // 20 draws of U(0.5, 1.5) spread over more than half the range
  const ClassifierResult r = model.gradient(theta, X, kLabels, 3);
  ImageClassifier plain(s);
  // evaluate() never applies the regulariser: the horizon's loss.
  BOOST_TEST(model.evaluate(theta, X, kLabels).loss == plain.evaluate(theta, X, kLabels).loss);
  s.horizon = r.end_time;
  ImageClassifier fixed(s);
  const ClassifierResult q = fixed.gradient(theta, X, kLabels);
  BOOST_TEST(q.loss == r.loss);
  BOOST_TEST(test::rel_err(r.gradient, q.gradient) == 0.0);
}

// JacobianDifference's |(f(z + d e) - f(z - d e)) / 2d|^2 against |J e|^2 from the block's own
// JVP: relative bias O(d^2), measured ~1e-7 at d = 1e-3 on the smooth block; its gradient
// against central differences of the cost.
BOOST_AUTO_TEST_CASE(differenced_jacobian_norm_against_the_block_jvp) {
  ConvDynamicsSpec cs;
  cs.channels = 4;
  cs.height = cs.width = 3;
  cs.groups = 2;
  cs.activation = Activation::Softplus;
  cs.threads = 1;
  const ConvDynamics f(cs);
  const int n = f.state_size();
  const Vector theta = f.initial_parameters(2);
  const Vector z = test::random_vector(n, 3);
  JacobianDifference::Options o;
  o.weight = 0.7;
  o.probes = 3;
  o.seed = 9;
  const JacobianDifference cost(f, o);
  Vector work(std::max(cost.workspace_size(), f.workspace_size()));
  // The same probes: JacobianDifference draws Rademacher probes from the seed like draw_probes.
  Matrix E(n, 3);
  draw_probes(ProbeNoise::Rademacher, 9, Eigen::Map<Vector>(E.data(), E.size()));
  double exact = 0;
  Vector Jv(n);
  for (int k = 0; k < 3; ++k) {
    f.jvp(0.4, z, theta, E.col(k), Jv, work);
    exact += Jv.squaredNorm();
  }
  exact *= 0.7 / 3;
  const double value = cost.value(0.4, z, theta, work);
  BOOST_TEST_MESSAGE(std::setprecision(10) << "differenced " << value << " exact " << exact);
  BOOST_TEST(value == exact, boost::test_tools::tolerance(1e-5));
  Vector dz(n), dtheta(f.param_size());
  cost.gradient(0.4, z, theta, dz, dtheta, work);
  const Vector fd_z = test::fd_gradient([&](const Vector& x) { return cost.value(0.4, x, theta, work); }, z, 1e-4);
  const Vector v = test::random_vector(f.param_size(), 5);
  const double fd_theta = test::directional_fd([&](const Vector& th) { return cost.value(0.4, z, th, work); }, theta, v, 1e-4);
  BOOST_TEST_MESSAGE("dz rel err " << test::rel_err(dz, fd_z) << ", dtheta along v " << (dtheta.dot(v) - fd_theta) / fd_theta);
  BOOST_TEST(test::rel_err(dz, fd_z) < 1e-6);
  BOOST_TEST(std::abs(dtheta.dot(v) - fd_theta) < 1e-6 * std::abs(fd_theta));
}

BOOST_AUTO_TEST_CASE(what_a_block_cannot_take_is_refused_by_name) {
  auto refuses = [](ClassifierSpec s, RegularizationOptions o, const std::string& phrase) {
    ImageClassifier model(s);
    try {
      model.set_regularization(o);
    } catch (const OptionsError& e) {
      BOOST_TEST_MESSAGE(e.what());
      return std::string(e.what()).find(phrase) != std::string::npos;
    }
    return false;
  };
  RegularizationOptions kinetic, error, steer, exact;
  kinetic.kinetic_weight = 0.1;
  error.error_weight = 0.1;
  steer.steer = 1.0;
  exact.jacobian_weight = 0.1;
  BOOST_TEST(refuses(small_spec(ClassifierKind::ResNet), kinetic, "a resnet has no solver"));
  BOOST_TEST(refuses(small_spec(ClassifierKind::OdeNet, "adams"), error, "regularization.error_weight"));
  BOOST_TEST(refuses(small_spec(ClassifierKind::OdeNet), steer, "regularization.steer = 1"));
  BOOST_TEST(refuses(small_spec(ClassifierKind::OdeNet), exact, "regularization.jacobian_estimator = exact"));
  error.error_weight = -1;
  BOOST_TEST(refuses(small_spec(ClassifierKind::RkNet), error, "regularization.error_weight = -1"));
}

// A training run reports the regularisers per epoch (penalty, solver_error, NFE) and per step
// (end times drawn per step).
BOOST_AUTO_TEST_CASE(training_reports_the_penalty_and_the_nfe_per_epoch) {
  ClassifierSpec s = small_spec(ClassifierKind::OdeNet);
  s.solver.rtol = s.solver.atol = 1e-3;
  ImageClassifier model(s);
  ImageSet set;
  set.rows = set.cols = 12;
  set.classes = 3;
  const int N = 12;
  const Matrix X = random_images(144, N, 11);
  for (int i = 0; i < N; ++i) {
    for (int p = 0; p < 144; ++p) set.pixels.push_back(static_cast<std::uint8_t>(std::lround(255 * X(p, i))));
    set.labels.push_back(static_cast<std::uint8_t>(i % 3));
  }
  ClassifierTrainOptions o;
  o.epochs = 2;
  o.batch_size = 4;
  o.regularization.kinetic_weight = 0.1;
  o.regularization.steer = 0.2;
  o.regularization.error_weight = 0.01;
  const ClassifierTrainResult r = train_classifier(model, model.initial_parameters(1), set, set, o);
  BOOST_TEST(r.epochs.size() == 2u);
  for (const ClassifierEpoch& e : r.epochs) {
    BOOST_TEST(e.penalty > 0);
    BOOST_TEST(e.solver_error > 0);
    BOOST_TEST(e.nfe_forward > 0);
    BOOST_TEST(e.nfe_backward > 0);
    BOOST_TEST(e.test_nfe > 0);
  }
  BOOST_TEST(r.steps.size() == 6u);
  BOOST_TEST(r.steps[0].end_time != r.steps[1].end_time);
}

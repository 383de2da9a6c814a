// Adjoint gradients (theta and z0) against fourth-order central differences of the loss, for
// Adams, BDF with the dense Jacobian and BDF with GMRES, every activation, 1, 2 and 7 irregular
// observation times, with and without masks, every loss, and a running cost; and the gradient
// of backpropagation through Dormand-Prince steps (method dopri5), against the same references
// and against central differences of its own discrete solution.
// ctest: labels=unit,slow timeout=900
#define BOOST_TEST_MODULE gradient
#include <boost/test/unit_test.hpp>

#include <cmath>

#include <malloc.h>

#include <cvodes/cvodes.h>

#include "cvnode/cvnode.h"
#include "test_util.h"

using namespace cvnode;
using cvnode::test::fd_gradient;
using cvnode::test::random_vector;
using cvnode::test::rel_err;

namespace {

struct Config {
  const char* name;
  const char* method;
  LinearSolver ls;
};
const Config kSolvers[] = {{"adams", "adams", LinearSolver::Dense},
                           {"bdf-dense", "bdf", LinearSolver::Dense},
                           {"bdf-gmres", "bdf", LinearSolver::Gmres}};

SolverOptions options(const Config& c, double rtol) {
  SolverOptions o;
  o.method = c.method;
  o.cvodes.linear_solver = c.ls;
  o.rtol = rtol;
  o.atol = rtol * 1e-2;
  return o;
}

Trajectory make_trajectory(int n, int T, bool masked, bool obs_at_t0, std::uint64_t seed) {
  Trajectory tr;
  tr.t0 = 0.1;
  tr.z0 = random_vector(n, seed, 1.0);
  tr.times.resize(T);
  // Irregular times in (t0, t0 + 1.5]; optionally the first one at t0 itself.
  Vector gaps = random_vector(T, seed + 1).array().abs() + 0.05;
  double t = tr.t0;
  for (int k = 0; k < T; ++k) {
    t += (k == 0 && obs_at_t0) ? 0.0 : 1.5 * gaps[k] / gaps.sum();
    tr.times[k] = t;
  }
  tr.values = random_vector(T * n, seed + 2, 0.8).reshaped(T, n);
  if (masked) {
    tr.mask = Matrix::Ones(T, n);
    for (int k = 0; k < T; ++k) tr.mask(k, (k + 1) % n) = 0;  // one channel missing each time
    tr.values(0, 1 % n) = NAN;                                 // a masked NaN must be harmless
  }
  return tr;
}

// The gradient check itself, for several solver configurations against one finite-difference
// reference. The reference solves at rtol 1e-13, so the loss noise (~1e-13 relative) over the
// step h = 1e-4 stays near 1e-9 of the gradient; the fourth-order stencil's truncation at that
// h is ~1e-16. Both are far below the 1e-6 bound the adjoint must meet at rtol 1e-10.
void check_gradient(const Dynamics& dyn, const Vector& theta, const Trajectory& tr, const std::shared_ptr<const Loss>& loss,
                    const std::vector<SolverOptions>& configs, const RunningCost* rc = nullptr,
                    double bound = 1e-6) {
  SolverOptions tight;
  tight.method = "bdf";
  tight.rtol = 1e-13;
  tight.atol = 1e-15;
  Solver ref(dyn, tight);
  auto loss_theta = [&](const Vector& th) { return ref.gradient(th, test::problem(tr, loss, rc)).loss; };
  auto loss_z0 = [&](const Vector& z0) {
    Trajectory t2 = tr;
    t2.z0 = z0;
    return ref.gradient(theta, test::problem(t2, loss, rc)).loss;
  };
  const double h = 1e-4;
  const Vector g_theta = fd_gradient(loss_theta, theta, h);
  const Vector g_z0 = fd_gradient(loss_z0, tr.z0, h);
  const double L = loss_theta(theta);
  for (const SolverOptions& opt : configs) {
    BOOST_TEST_CONTEXT("method " << opt.method << " gmres "
                                 << (opt.cvodes.linear_solver == LinearSolver::Gmres)) {
      Solver solver(dyn, opt);
      const Gradient g = solver.gradient(theta, test::problem(tr, loss, rc));
      BOOST_TEST(std::abs(g.loss - L) <= 1e-8 * std::abs(L));
      BOOST_TEST(rel_err(g.theta, g_theta) < bound);
      BOOST_TEST(rel_err(g.z0, g_z0) < bound);
      BOOST_TEST(g.nfe_forward > 0);
      BOOST_TEST(g.nfe_backward > 0);
    }
  }
}

std::vector<SolverOptions> all_solvers(double rtol) {
  std::vector<SolverOptions> out;
  for (const Config& c : kSolvers) out.push_back(options(c, rtol));
  return out;
}

// check_gradient for a 3-6-3 network with each activation, masked or not, 7 observations (the
// first at t0 when obs_at_t0_if_masked and masked).
void check_activations(std::initializer_list<Activation> activations, std::uint64_t seed,
                       const std::vector<SolverOptions>& configs, bool obs_at_t0_if_masked) {
  for (Activation a : activations) {
    MlpSpec s;
    s.layers = {3, 6, 3};
    s.activation = a;
    const Mlp mlp(s);
    const Vector theta = mlp.initial_parameters(Init::Glorot, seed) + random_vector(mlp.param_size(), seed, 0.1);
    for (bool masked : {false, true}) {
      BOOST_TEST_CONTEXT(activation_name(a) << " masked " << masked) {
        const Trajectory tr = make_trajectory(3, 7, masked, masked && obs_at_t0_if_masked, seed += 3);
        check_gradient(mlp, theta, tr, make_loss("half_sse"), configs);
      }
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_activation_and_solver_with_masks) {
  check_activations({Activation::Identity, Activation::Tanh, Activation::Relu, Activation::Softplus,
                     Activation::Sigmoid, Activation::Silu, Activation::Elu},
                    100, all_solvers(1e-10), false);
}

BOOST_AUTO_TEST_CASE(one_two_and_seven_observations_including_t0) {
  MlpSpec s;
  s.layers = {2, 8, 2};
  s.time_input = true;
  const Mlp mlp(s);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 7);
  std::uint64_t seed = 500;
  for (int T : {1, 2, 7}) {
    for (bool at_t0 : {false, true}) {
      if (T == 1 && at_t0) continue;  // a lone observation at t0 involves no dynamics (below)
      BOOST_TEST_CONTEXT(T << " observations, first at t0 " << at_t0) {
        check_gradient(mlp, theta, make_trajectory(2, T, T > 1, at_t0, seed += 3), make_loss("half_sse"), all_solvers(1e-10));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(every_loss) {
  MlpSpec s;
  s.layers = {2, 8, 2};
  const Mlp mlp(s);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 3);
  LossSpec nll{"gaussian_nll", {}, (Vector(2) << 0.5, 2.0).finished()};
  LossSpec weighted{"half_sse", (Vector(2) << 1e4, 0.5).finished(), {}};  // channels on very different scales
  for (const auto& loss : {make_loss("half_sse"), make_loss("mse_mean"), make_loss("l1_mean"), make_loss(nll),
                           make_loss(weighted), make_loss("huber_mean")}) {
    BOOST_TEST_CONTEXT("loss " << loss->name()) {
      SolverOptions rk;
      rk.method = "dopri5";
      rk.rtol = 1e-10;
      rk.atol = 1e-12;
      check_gradient(mlp, theta, make_trajectory(2, 5, true, true, 77), loss,
                     {options(kSolvers[0], 1e-10), options(kSolvers[1], 1e-10), rk});
    }
  }
}

// huber_mean on both sides of its kink |r| = 1: the values tripled so that some residuals pass
// 1 and others stay below (counted at the predicted states); its loss against the closed form
// (mean over the observed entries of 0.5 r^2 inside, |r| - 0.5 outside) and its gradient against
// central differences.
BOOST_AUTO_TEST_CASE(huber_mean_on_both_sides_of_its_kink) {
  MlpSpec s;
  s.layers = {2, 8, 2};
  const Mlp mlp(s);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 3);
  Trajectory tr = make_trajectory(2, 5, true, true, 77);
  tr.values *= 3.0;
  const auto loss = make_loss("huber_mean");
  const Gradient g = Solver(mlp, options(kSolvers[0], 1e-10)).gradient(theta, test::problem(tr, loss));
  int inside = 0, outside = 0;
  double sum = 0;
  for (Eigen::Index k = 0; k < tr.values.rows(); ++k)
    for (Eigen::Index c = 0; c < tr.values.cols(); ++c) {
      if (tr.mask(k, c) == 0) continue;
      const double r = g.states(k, c) - tr.values(k, c);
      (std::abs(r) <= 1 ? inside : outside) += 1;
      sum += std::abs(r) <= 1 ? 0.5 * r * r : std::abs(r) - 0.5;
    }
  BOOST_TEST(inside >= 2);
  BOOST_TEST(outside >= 2);
  BOOST_TEST(std::abs(g.loss - sum / (inside + outside)) <= 1e-14 * g.loss);
  SolverOptions rk;
  rk.method = "dopri5";
  rk.rtol = 1e-10;
  rk.atol = 1e-12;
  check_gradient(mlp, theta, tr, loss, {options(kSolvers[0], 1e-10), options(kSolvers[1], 1e-10), rk});
}

BOOST_AUTO_TEST_CASE(running_cost_kinetic_energy) {
  MlpSpec s;
  s.layers = {2, 8, 2};
  const Mlp mlp(s);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 11);
  const KineticEnergy ke(mlp, 0.3);
  Trajectory tr = make_trajectory(2, 4, false, false, 31);
  tr.t_end = tr.times[3] + 0.5;  // the running cost continues past the last observation
  check_gradient(mlp, theta, tr, make_loss("half_sse"), all_solvers(1e-10), &ke);
}

// The theta-gradient integrated outside CVODES (Gauss-Legendre per backward step, Adams): masks,
// observations at t0, checkpoints every 5 steps (backward steps crossing into recomputed
// segments), and a running cost continuing past the last observation. (The other tests run the
// default, auto: Gauss-Legendre for Adams, CVODES' quadrature for BDF.)
BOOST_AUTO_TEST_CASE(gauss_legendre_quadrature) {
  MlpSpec s;
  s.layers = {3, 8, 3};
  s.time_input = true;
  const Mlp mlp(s);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 21) + random_vector(mlp.param_size(), 21, 0.1);
  auto gl = [](int checkpoint_steps) {
    SolverOptions o = options(kSolvers[0], 1e-10);
    o.cvodes.quadrature = Quadrature::GaussLegendre;
    o.cvodes.checkpoint_steps = checkpoint_steps;
    SolverOptions cv = o;
    cv.cvodes.quadrature = Quadrature::Cvodes;  // and CVODES' quadrature, for comparison
    return std::vector<SolverOptions>{o, cv};
  };
  BOOST_TEST_CONTEXT("masked, first observation at t0") {
    check_gradient(mlp, theta, make_trajectory(3, 7, true, true, 901), make_loss("half_sse"), gl(5));
  }
  BOOST_TEST_CONTEXT("mse_mean, default checkpoints") {
    check_gradient(mlp, theta, make_trajectory(3, 4, false, false, 911), make_loss("mse_mean"),
                   gl(100));
  }
  BOOST_TEST_CONTEXT("running cost past the last observation") {
    const KineticEnergy ke(mlp, 0.3);
    Trajectory tr = make_trajectory(3, 3, false, false, 921);
    tr.t_end = tr.times[2] + 0.5;
    check_gradient(mlp, theta, tr, make_loss("half_sse"), gl(7), &ke);
  }
  SolverOptions bdf;
  bdf.method = "bdf";
  bdf.cvodes.quadrature = Quadrature::GaussLegendre;
  BOOST_TEST(bdf.validate().find("quadrature = gauss_legendre needs method = adams") != std::string::npos);
  bdf.cvodes.quadrature = Quadrature::Auto;
  BOOST_TEST(!bdf.cvodes.uses_gauss_legendre(bdf.is_bdf()));
}

// The adjoint's transition form (no restart at observations, SolverOptions::adjoint_form) next
// to the restart form, against finite differences: one 3x3 block (a network with time input)
// with masks, an observation at t0 and checkpoints every 5 steps; a stacked batch (three 2x2
// blocks); and decay rates 1 and 40, whose transition matrix passes condition number 1e4 so
// that the solver re-anchors it.
BOOST_AUTO_TEST_CASE(adjoint_transition_form) {
  auto forms = [](int checkpoint_steps) {
    SolverOptions t = options(kSolvers[0], 1e-10);
    t.cvodes.checkpoint_steps = checkpoint_steps;
    t.cvodes.adjoint_form = AdjointForm::Transition;
    SolverOptions r = t;
    r.cvodes.adjoint_form = AdjointForm::Restart;
    return std::vector<SolverOptions>{t, r};
  };
  MlpSpec s3;
  s3.layers = {3, 8, 3};
  s3.time_input = true;
  const Mlp mlp3(s3);
  const Vector theta3 = mlp3.initial_parameters(Init::Glorot, 31) + random_vector(mlp3.param_size(), 31, 0.1);
  BOOST_TEST((resolved_adjoint_form(SolverOptions{}, mlp3) == AdjointForm::Transition));
  BOOST_TEST_CONTEXT("one 3x3 block, masked, observation at t0, checkpoints every 5 steps") {
    check_gradient(mlp3, theta3, make_trajectory(3, 7, true, true, 931), make_loss("half_sse"), forms(5));
  }
  BOOST_TEST_CONTEXT("one 3x3 block, mse_mean") {
    check_gradient(mlp3, theta3, make_trajectory(3, 4, false, false, 941), make_loss("mse_mean"), forms(100));
  }
  MlpSpec s2;
  s2.layers = {2, 8, 2};
  const Mlp mlp2(s2);
  const Stacked stacked(mlp2, 3);
  BOOST_TEST(stacked.block_size() == 2);
  const Vector theta2 = mlp2.initial_parameters(Init::Glorot, 32) + random_vector(mlp2.param_size(), 32, 0.1);
  BOOST_TEST_CONTEXT("stacked: three 2x2 blocks") {
    check_gradient(stacked, theta2, make_trajectory(6, 5, true, false, 951), make_loss("half_sse"), forms(100));
  }
  const LinearDecay decay(2);
  const Vector rates = (Vector(2) << 1.0, 40.0).finished();
  const Trajectory tr = make_trajectory(2, 6, false, false, 961);
  BOOST_TEST_CONTEXT("rates 1 and 40: re-anchored") {
    check_gradient(decay, rates, tr, make_loss("mse_mean"), forms(100));
  }
  Solver t(decay, forms(100)[0]), r(decay, forms(100)[1]), plain(mlp3, forms(100)[0]);
  BOOST_TEST(t.gradient(rates, test::problem(tr, make_loss("half_sse"))).backward.restarts > 0);
  BOOST_TEST(r.gradient(rates, test::problem(tr, make_loss("half_sse"))).backward.restarts == 5);  // one per observation before the last
  BOOST_TEST(plain.gradient(theta3, test::problem(make_trajectory(3, 7, false, false, 971), make_loss("half_sse"))).backward.restarts == 0);

  // Where it does not apply: asked for, a readable refusal; on Auto, the restart form.
  SolverOptions bdf;
  bdf.method = "bdf";
  bdf.cvodes.adjoint_form = AdjointForm::Transition;
  BOOST_TEST(bdf.validate().find("adjoint_form = transition needs method = adams") != std::string::npos);
  MlpSpec s5;
  s5.layers = {5, 4, 5};
  const Mlp mlp5(s5);
  SolverOptions wide;
  BOOST_TEST((resolved_adjoint_form(wide, mlp5) == AdjointForm::Restart));
  wide.cvodes.adjoint_form = AdjointForm::Transition;
  BOOST_CHECK_THROW(Solver(mlp5, wide), OptionsError);
}

// The same network declared non-smooth: the gradient rule then runs per backward step.
class Kinked final : public Dynamics {
 public:
  explicit Kinked(const Dynamics& d) : d_(d) {}
  int state_size() const override { return d_.state_size(); }
  int param_size() const override { return d_.param_size(); }
  int workspace_size() const override { return d_.workspace_size(); }
  bool smooth() const override { return false; }
  void rhs(double t, ConstVectorRef z, ConstVectorRef th, VectorRef f, VectorRef w) const override { d_.rhs(t, z, th, f, w); }
  void vjp(double t, ConstVectorRef z, ConstVectorRef th, ConstVectorRef a, VectorRef az, VectorRef ap,
           VectorRef w) const override {
    d_.vjp(t, z, th, a, az, ap, w);
  }
  void jacobian(double t, ConstVectorRef z, ConstVectorRef th, MatrixRef J, VectorRef w) const override {
    d_.jacobian(t, z, th, J, w);
  }
  void jvp(double t, ConstVectorRef z, ConstVectorRef th, ConstVectorRef v, VectorRef Jv, VectorRef w) const override {
    d_.jvp(t, z, th, v, Jv, w);
  }

 private:
  const Dynamics& d_;
};

// The Gauss-Legendre gradient rule on panels (the forward steps split at observations) for a
// smooth f, per backward step otherwise: both against finite differences, the panels with
// fewer evaluations; which models count as smooth; the forward step budget of the one-step
// forward loop the panels need.
BOOST_AUTO_TEST_CASE(gradient_rule_panels) {
  MlpSpec s;
  s.layers = {3, 12, 3};
  const Mlp tanh_net(s);
  s.activation = Activation::Relu;
  BOOST_TEST(tanh_net.smooth());
  BOOST_TEST(!Mlp(s).smooth());
  BOOST_TEST(Stacked(tanh_net, 2).smooth());
  BOOST_TEST(LinearDecay(3).smooth());
  const Kinked kinked(tanh_net);
  const Vector theta = tanh_net.initial_parameters(Init::Glorot, 41) + random_vector(tanh_net.param_size(), 41, 0.2);
  for (AdjointForm form : {AdjointForm::Restart, AdjointForm::Transition}) {
    SolverOptions o = options(kSolvers[0], 1e-10);
    o.cvodes.adjoint_form = form;
    const Trajectory tr = make_trajectory(3, 9, true, false, 981);
    BOOST_TEST_CONTEXT("form " << adjoint_form_name(form)) {
      check_gradient(tanh_net, theta, tr, make_loss("mse_mean"), {o});
      check_gradient(kinked, theta, tr, make_loss("mse_mean"), {o});
      const Gradient panels = Solver(tanh_net, o).gradient(theta, test::problem(tr, make_loss("half_sse")));
      const Gradient steps = Solver(kinked, o).gradient(theta, test::problem(tr, make_loss("half_sse")));
      BOOST_TEST_MESSAGE("gradient-rule VJPs: panels " << panels.backward.quad_evals << ", per backward step "
                                                        << steps.backward.quad_evals);
      BOOST_TEST(panels.backward.quad_evals < steps.backward.quad_evals);
      // Two nodes per panel, at most one panel per forward step and observation.
      BOOST_TEST(panels.backward.quad_evals <= 2 * (panels.forward.steps + tr.times.size()));
      BOOST_TEST(rel_err(panels.theta, steps.theta) < 1e-7);
    }
  }
  SolverOptions o;
  o.max_steps = 3;
  Trajectory tr = make_trajectory(3, 2, false, false, 991);
  tr.times[1] = 30.0;
  try {
    Solver(tanh_net, o).gradient(theta, test::problem(tr, make_loss("half_sse")));
    BOOST_FAIL("the forward pass exceeded max_steps without an error");
  } catch (const SolverError& e) {
    BOOST_TEST(e.flag() == CV_TOO_MUCH_WORK);
    BOOST_TEST(std::string(e.what()).find("forward steps") != std::string::npos, e.what());
  }
}

// A mean over many entries makes the adjoint tiny (here: every term scaled by 1e-6, as a mean
// over a million entries would). With adjoint_atol = atol = rtol the restart form's adjoint is
// then effectively uncontrolled; the default, adjoint_atol = 0, puts atol on the adjoint's own
// scale and the error follows rtol again. Both against the same tight-tolerance reference.
BOOST_AUTO_TEST_CASE(adjoint_tolerance_on_the_adjoints_scale) {
  MlpSpec s;
  s.layers = {5, 16, 5};  // blocks of 5: the restart form
  const Mlp mlp(s);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 51) + random_vector(mlp.param_size(), 51, 0.2);
  const Trajectory tr = make_trajectory(5, 12, false, false, 1001);
  LossSpec spec;
  spec.weight = Vector::Constant(5, 1e-6);
  const Problem problem = test::problem(tr, make_loss(spec));
  SolverOptions tight;
  tight.rtol = 1e-12;
  tight.atol = 1e-12;
  tight.cvodes.adjoint_atol = 1e-20;
  const Gradient ref = Solver(mlp, tight).gradient(theta, problem);
  SolverOptions o;
  o.rtol = o.atol = 1e-6;
  BOOST_TEST(o.cvodes.adjoint_atol == 0.0);  // the default
  const Gradient scaled = Solver(mlp, o).gradient(theta, problem);
  o.cvodes.adjoint_atol = -1;  // atol as it is
  const Gradient plain = Solver(mlp, o).gradient(theta, problem);
  const double e_plain = rel_err(plain.theta, ref.theta), e_scaled = rel_err(scaled.theta, ref.theta);
  BOOST_TEST_MESSAGE("gradient error at rtol = atol = 1e-6: adjoint_atol = atol " << e_plain << ", scaled " << e_scaled);
  BOOST_TEST(e_scaled < 1e-5);
  BOOST_TEST(e_scaled * 10 < e_plain);
  BOOST_TEST(rel_err(scaled.z0, ref.z0) < 1e-5);
}

// The backward step budget holds with the quadrature outside CVODES too (there the backward
// pass runs one step per CVodeB call, so cvnode counts): a typed CV_TOO_MUCH_WORK with the time.
BOOST_AUTO_TEST_CASE(gauss_legendre_backward_step_budget) {
  MlpSpec s;
  s.layers = {2, 16, 2};
  const Mlp mlp(s);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 5);
  Trajectory tr;
  tr.z0 = random_vector(2, 55);
  tr.times = (Vector(1) << 20.0).finished();  // one long interval
  tr.values = Matrix::Zero(1, 2);
  SolverOptions o;
  o.rtol = 1e-8;
  o.cvodes.adjoint_atol = 1e-14;  // a backward pass that needs more steps than the forward one
  o.cvodes.quadrature = Quadrature::GaussLegendre;
  const Gradient free = Solver(mlp, o).gradient(theta, test::problem(tr, make_loss("half_sse")));
  BOOST_TEST_MESSAGE("steps forward " << free.forward.steps << ", backward " << free.backward.steps);
  BOOST_TEST_REQUIRE(free.backward.steps > free.forward.steps + 2);  // room for a budget between
  o.max_steps = (free.forward.steps + free.backward.steps) / 2;
  Solver tight(mlp, o);
  try {
    tight.gradient(theta, test::problem(tr, make_loss("half_sse")));
    BOOST_FAIL("the backward pass exceeded max_steps without an error");
  } catch (const SolverError& e) {
    BOOST_TEST(e.flag() == CV_TOO_MUCH_WORK);
    BOOST_TEST(e.time_reached() > 0.0);
    BOOST_TEST(e.time_reached() < 20.0);
    BOOST_TEST(std::string(e.what()).find("backward steps") != std::string::npos, e.what());
  }
}

// Per-channel weights multiply each entry's term and its jump; a mean loss divides by the
// problem's observed entries (here 2 series x 1 time x 2 channels = 4).
BOOST_AUTO_TEST_CASE(channel_weights_scale_each_term) {
  LossSpec spec;
  spec.kind = "mse_mean";
  spec.weight = (Vector(2) << 4.0, 0.0).finished();
  Trajectory tr;
  tr.z0 = Vector::Zero(2);
  tr.times = Vector::Ones(1);
  tr.values = (Matrix(1, 2) << 1.0, 1.0).finished();
  const Problem p({tr, tr}, make_loss(spec));
  BOOST_TEST(p.normalization() == 0.25);
  const ObservationTerms t = p.observe(0, (Matrix(1, 2) << 3.0, 3.0).finished());
  BOOST_TEST(t.loss == 0.25 * 4.0 * 4.0);
  BOOST_TEST(t.jumps(0, 0) == 0.25 * 4.0 * 4.0);
  BOOST_TEST(t.jumps(0, 1) == 0.0);
  Trajectory three = tr;
  three.z0 = Vector::Zero(3);
  three.values = Matrix::Ones(1, 3);
  BOOST_TEST(Problem({three}, make_loss(spec)).validate(3).find("one entry per observed channel") != std::string::npos);
  spec.weight[1] = -1;
  BOOST_TEST(Problem({tr}, make_loss(spec)).validate(2).find("weight[1] = -1") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(observation_only_at_t0_needs_no_solve) {
  MlpSpec s;
  s.layers = {2, 4, 2};
  const Mlp mlp(s);
  Solver solver(mlp, SolverOptions{});
  Trajectory tr;
  tr.z0 = Vector::Constant(2, 1.0);
  tr.times = Vector::Zero(1);
  tr.values = Matrix::Zero(1, 2);
  const Gradient g = solver.gradient(mlp.initial_parameters(Init::Glorot, 1), test::problem(tr, make_loss("half_sse")));
  BOOST_TEST(g.loss == 1.0);  // 0.5 * (1 + 1)
  BOOST_TEST(g.z0[0] == 1.0);
  BOOST_TEST(g.theta.norm() == 0.0);
  BOOST_TEST(g.nfe_forward == 0);
}

BOOST_AUTO_TEST_CASE(batch_is_bit_identical_for_one_and_two_threads) {
  MlpSpec s;
  s.layers = {2, 16, 2};
  const Mlp mlp(s);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 5);
  std::vector<Trajectory> batch;
  for (int b = 0; b < 9; ++b) batch.push_back(make_trajectory(2, 6, b % 2 == 0, false, 1000 + 10 * b));
  for (std::string m : {"adams", "dopri5"}) {
    BOOST_TEST_CONTEXT(m) {
      SolverOptions opt;
      opt.method = m;
      opt.rtol = 1e-7;
      BatchSolver one(mlp, opt, BatchOptions{1}), two(mlp, opt, BatchOptions{2});
      const Problem problem(batch, make_loss("mse_mean"));
      const BatchGradient g1 = one.gradient(theta, problem), g2 = two.gradient(theta, problem);
      BOOST_TEST(g1.loss == g2.loss);
      BOOST_TEST((g1.theta - g2.theta).cwiseAbs().maxCoeff() == 0.0);
      // And the batch sum equals the per-series gradients with the batch-wide mean.
      Solver single(mlp, opt);
      Vector sum = Vector::Zero(theta.size());
      for (int b = 0; b < problem.size(); ++b) sum += single.gradient(theta, problem, b).theta;
      BOOST_TEST((sum - g1.theta).norm() <= 1e-14 * sum.norm());
    }
  }
}

// Backpropagation through Dormand-Prince differentiates the discrete solution exactly: with the
// step sizes fixed (max_step = initial_step, a tolerance no step can fail) the loss is a smooth
// function of theta and z0, and central differences of it agree with the reverse sweep to the
// differences' own accuracy: loss round-off ~1e-16 over h = 1e-4, truncation O(h^4) ~1e-16, so
// 1e-9 leaves a wide margin. Seven irregular observations (one at t0, the rest answered from the
// continuous extension inside the steps), masks and a mean loss.
BOOST_AUTO_TEST_CASE(dopri5_backprop_is_the_derivative_of_its_discrete_solution) {
  MlpSpec s;
  s.layers = {3, 8, 3};
  const Mlp mlp(s);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 77) + random_vector(mlp.param_size(), 78, 0.1);
  const Trajectory tr = make_trajectory(3, 7, true, true, 79);
  SolverOptions opt;
  opt.method = "dopri5";
  opt.rtol = 0.5;
  opt.atol = 1e3;
  opt.initial_step = opt.max_step = 0.13;  // the last step is cut short at the horizon
  const long steps = static_cast<long>(std::ceil((tr.horizon() - tr.t0) / 0.13));
  const auto loss = make_loss("mse_mean");
  Solver solver(mlp, opt);
  const Gradient g = solver.gradient(theta, test::problem(tr, loss));
  BOOST_TEST(steps >= 8);
  BOOST_TEST(g.forward.steps == steps);
  BOOST_TEST(g.forward.err_test_fails == 0);
  auto loss_theta = [&](const Vector& th) { return solver.gradient(th, test::problem(tr, loss)).loss; };
  auto loss_z0 = [&](const Vector& z0) {
    Trajectory t2 = tr;
    t2.z0 = z0;
    return solver.gradient(theta, test::problem(t2, loss)).loss;
  };
  BOOST_TEST(rel_err(g.theta, fd_gradient(loss_theta, theta, 1e-4)) < 1e-9);
  BOOST_TEST(rel_err(g.z0, fd_gradient(loss_z0, tr.z0, 1e-4)) < 1e-9);
  // Six VJPs per step, one more for the first step's first stage.
  BOOST_TEST(g.nfe_backward == 6 * steps + 1);
}

// With its adaptive steps at a tight tolerance, the same gradient converges to the continuous
// one: against the BDF rtol 1e-13 differences of check_gradient, at the adjoint's bound.
BOOST_AUTO_TEST_CASE(dopri5_backprop_against_the_continuous_gradient) {
  SolverOptions opt;
  opt.method = "dopri5";
  opt.rtol = 1e-10;
  opt.atol = 1e-12;
  check_activations({Activation::Tanh, Activation::Softplus}, 500, {opt}, true);
  // Running costs on dopri5: test_dopri5_running_cost.
}

// dz/dt = -k z against its closed form: the solution at irregular times (from the continuous
// extension between steps) and the gradient of 0.5 sum_k (z(t_k) - y_k)^2 with respect to k and
// z0. rtol 1e-10 bounds the global error near 1e-9 relative, so 1e-8 is the bound. A model with
// no workspace also takes the reverse sweep's recomputing branch (nothing kept).
BOOST_AUTO_TEST_CASE(dopri5_linear_decay_against_the_closed_form) {
  const LinearDecay decay(2);
  const Vector k = (Vector(2) << 0.7, 2.5).finished();
  Trajectory tr;
  tr.t0 = 0.2;
  tr.z0 = (Vector(2) << 1.3, -0.4).finished();
  tr.times = (Vector(4) << 0.2, 0.45, 1.1, 2.0).finished();
  tr.values = Matrix::Constant(4, 2, 0.1);
  SolverOptions opt;
  opt.method = "dopri5";
  opt.rtol = 1e-10;
  opt.atol = 1e-12;
  Solver solver(decay, opt);
  const Solution sol = solver.solve(k, tr.t0, tr.z0, tr.times);
  Vector gk = Vector::Zero(2), gz0 = Vector::Zero(2);
  double loss = 0;
  for (int j = 0; j < 4; ++j) {
    const double dt = tr.times[j] - tr.t0;
    for (int i = 0; i < 2; ++i) {
      const double e = std::exp(-k[i] * dt), z = tr.z0[i] * e;
      BOOST_TEST(std::abs(sol.states(j, i) - z) <= 1e-8 * std::abs(tr.z0[i]));
      const double r = z - tr.values(j, i);
      loss += 0.5 * r * r;
      gk[i] += r * tr.z0[i] * (-dt) * e;
      gz0[i] += r * e;
    }
  }
  const Gradient g = solver.gradient(k, test::problem(tr, make_loss("half_sse")));
  BOOST_TEST(std::abs(g.loss - loss) <= 1e-8 * loss);
  BOOST_TEST(rel_err(g.theta, gk) < 1e-8);
  BOOST_TEST(rel_err(g.z0, gz0) < 1e-8);
}

BOOST_AUTO_TEST_CASE(band_and_block_jacobi_preconditioned_gmres) {
  // A stiff banded system: Mlp on 6 components, each output depending on its neighbours only
  // through a tridiagonal linear decay would not be banded, so use a stacked batch instead: its
  // Jacobian is block diagonal (bandwidth n - 1) and the block-Jacobi preconditioner is exact.
  MlpSpec s;
  s.layers = {2, 8, 2};
  s.k_diag = (Vector(2) << 1.0, 300.0).finished();  // stiff
  const Mlp mlp(s);
  const Stacked stacked(mlp, 3);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 21);
  Trajectory tr = make_trajectory(6, 5, true, false, 4242);
  std::vector<SolverOptions> configs;
  SolverOptions band = options(kSolvers[1], 1e-10);
  band.cvodes.linear_solver = LinearSolver::Band;
  band.cvodes.band_upper = band.cvodes.band_lower = 1;
  configs.push_back(band);
  SolverOptions pre = options(kSolvers[2], 1e-10);
  pre.cvodes.preconditioner = Preconditioner::BlockJacobi;
  pre.cvodes.preconditioner_block = 2;
  configs.push_back(pre);
  check_gradient(stacked, theta, tr, make_loss("half_sse"), configs);
  // The exact preconditioner makes GMRES converge in about one iteration per Newton iteration.
  Solver solver(stacked, pre);
  const Gradient g = solver.gradient(theta, test::problem(tr, make_loss("half_sse")));
  BOOST_TEST(g.forward.lin_iters <= 2 * g.forward.nonlin_iters);
  SolverOptions plain = options(kSolvers[2], 1e-10);
  Solver unpre(stacked, plain);
  BOOST_TEST(unpre.gradient(theta, test::problem(tr, make_loss("half_sse"))).forward.lin_iters > g.forward.lin_iters);
}

BOOST_AUTO_TEST_CASE(a_series_result_does_not_depend_on_what_the_solver_did_before) {
  // Several checkpoint intervals, so CVODES recomputes from checkpoints in the backward pass.
  MlpSpec s;
  s.layers = {2, 16, 2};
  const Mlp mlp(s);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 9);
  SolverOptions opt;
  opt.rtol = 1e-8;
  opt.cvodes.checkpoint_steps = 5;
  const Trajectory a = make_trajectory(2, 6, false, false, 700), b = make_trajectory(2, 6, true, false, 800);
  Solver fresh(mlp, opt), used(mlp, opt);
  used.gradient(theta, test::problem(b, make_loss("half_sse")));
  const Gradient ga = fresh.gradient(theta, test::problem(a, make_loss("half_sse"))), ga2 = used.gradient(theta, test::problem(a, make_loss("half_sse")));
  BOOST_TEST(ga.loss == ga2.loss);
  BOOST_TEST((ga.theta - ga2.theta).cwiseAbs().maxCoeff() == 0.0);
  BOOST_TEST((ga.z0 - ga2.z0).cwiseAbs().maxCoeff() == 0.0);
}

BOOST_AUTO_TEST_CASE(stacked_batches_are_bit_identical_for_one_and_two_threads) {
  MlpSpec s;
  s.layers = {2, 16, 2};
  const Mlp mlp(s);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 5);
  std::vector<Trajectory> batch;
  for (int b = 0; b < 13; ++b) batch.push_back(make_trajectory(2, 6, b % 2 == 0, false, 3000 + 10 * b));
  SolverOptions opt;
  opt.rtol = 1e-7;
  opt.cvodes.checkpoint_steps = 5;  // recomputation from checkpoints in the backward pass
  BatchOptions bo;
  bo.mode = BatchMode::Stacked;
  bo.stack_size = 3;  // five units of different sizes (3, 3, 3, 3, 1)
  bo.threads = 1;
  BatchSolver one(mlp, opt, bo);
  bo.threads = 2;
  BatchSolver two(mlp, opt, bo);
  const auto loss = make_loss("mse_mean");
  for (int repeat = 0; repeat < 2; ++repeat) {  // the second call reuses cached solvers
    const BatchGradient g1 = one.gradient(theta, test::problem(batch, loss)), g2 = two.gradient(theta, test::problem(batch, loss));
    BOOST_TEST(g1.loss == g2.loss);
    BOOST_TEST((g1.theta - g2.theta).cwiseAbs().maxCoeff() == 0.0);
    for (size_t b = 0; b < batch.size(); ++b) BOOST_TEST((g1.z0[b] - g2.z0[b]).cwiseAbs().maxCoeff() == 0.0);
  }
}

BOOST_AUTO_TEST_CASE(observation_times_within_round_off_count_as_one_instant) {
  MlpSpec s;
  s.layers = {2, 8, 2};
  const Mlp mlp(s);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 2);
  Trajectory near;
  near.t0 = 0.0;
  near.z0 = (Vector(2) << 1.0, -0.5).finished();
  near.times = (Vector(3) << 0.7, std::nextafter(0.7, 1.0), 1.3).finished();
  near.values = (Matrix(3, 2) << 0.1, 0.2, 0.3, -0.4, 0.5, 0.6).finished();
  // The same observations with the first two at exactly one time, as two series stacked.
  SolverOptions opt;
  opt.rtol = 1e-10;
  opt.atol = 1e-12;
  Solver solver(mlp, opt);
  const Gradient g = solver.gradient(theta, test::problem(near, make_loss("half_sse")));  // must not fail with CV_TOO_CLOSE
  Trajectory first = near, second = near;
  first.times = (Vector(2) << 0.7, 1.3).finished();
  first.values = near.values({0, 2}, Eigen::all);
  second.times = Vector::Constant(1, 0.7);
  second.values = near.values.row(1);
  const Gradient g1 = solver.gradient(theta, test::problem(first, make_loss("half_sse"))), g2 = solver.gradient(theta, test::problem(second, make_loss("half_sse")));
  BOOST_TEST(std::abs(g.loss - (g1.loss + g2.loss)) <= 1e-9 * g.loss);
  BOOST_TEST(rel_err(g.theta, g1.theta + g2.theta) < 1e-7);
  BOOST_TEST(rel_err(g.z0, g1.z0 + g2.z0) < 1e-7);
}

// Dopri5Options::fixed_step (RK-Net): every step h, no error control even at rtol 1e-12, the last
// step cut at the horizon, so ceil(span / h) steps; on dz/dt = -k z each step multiplies z by
// Dormand-Prince's stability polynomial R(x) = sum_{j<=5} x^j / j! + x^6 / 600 at x = -k h
// (worked out from the tableau by hand), and a span that is a whole number of steps takes
// exactly that many (round-off does not add a sliver step). The gradient is the discrete one.
BOOST_AUTO_TEST_CASE(dopri5_fixed_step_takes_the_steps_it_is_told) {
  const LinearDecay decay(2);
  const Vector k = (Vector(2) << 0.7, 2.5).finished();
  auto R = [](double x) { return 1 + x + x * x / 2 + std::pow(x, 3) / 6 + std::pow(x, 4) / 24 + std::pow(x, 5) / 120 + std::pow(x, 6) / 600; };
  SolverOptions opt;
  opt.method = "dopri5";
  opt.rtol = 1e-12;
  opt.atol = 1e-14;
  opt.dopri5.fixed_step = 0.13;
  Solver solver(decay, opt);
  Trajectory tr;
  tr.t0 = 0.2;
  tr.z0 = (Vector(2) << 1.3, -0.4).finished();
  tr.times = (Vector(2) << 1.5, 2.0).finished();  // 1.5 - 0.2 = 10 steps exactly; 2.0: 13 + 0.11
  tr.values = Matrix::Constant(2, 2, 0.1);
  const Gradient g = solver.gradient(k, test::problem(tr, make_loss("half_sse")));
  BOOST_TEST(g.forward.steps == 14);
  BOOST_TEST(g.forward.err_test_fails == 0);
  for (int i = 0; i < 2; ++i) {
    const double z10 = std::pow(R(-k[i] * 0.13), 10) * tr.z0[i];
    const double z14 = std::pow(R(-k[i] * 0.13), 13) * R(-k[i] * (1.8 - 13 * 0.13)) * tr.z0[i];
    BOOST_TEST(g.states(0, i) == z10, boost::test_tools::tolerance(1e-13));
    BOOST_TEST(g.states(1, i) == z14, boost::test_tools::tolerance(1e-13));
  }
  BOOST_TEST(solver.solve(k, 0.2, tr.z0, Vector::Constant(1, 1.5)).stats.steps == 10);
  auto loss_k = [&](const Vector& kk) { return solver.gradient(kk, test::problem(tr, make_loss("half_sse"))).loss; };
  BOOST_TEST(rel_err(g.theta, fd_gradient(loss_k, k, 1e-5)) < 1e-8);
  opt.dopri5.fixed_step = -1;
  BOOST_TEST(opt.validate(2).find("dopri5_fixed_step") != std::string::npos);
  opt.dopri5.fixed_step = 0.13;
  opt.max_step = 0.2;  // would be silently ignored
  BOOST_TEST(opt.validate(2).find("dopri5_fixed_step = 0.13 sets every step") != std::string::npos);
}

// A Solver's gradient depends on its call alone, not on the calls before it: a call with a
// running cost runs the adjoint in the restart form (the transition form does not take one), and
// the next call without one is in the transition form again, bit for bit what a fresh Solver
// gives. (A BatchSolver's per-thread Solver sees series in any order under dynamic scheduling;
// one running cost used to leave it in the restart form for good, so results depended on the
// thread count.)
BOOST_AUTO_TEST_CASE(a_running_cost_leaves_later_calls_in_their_own_form) {
  MlpSpec s;
  s.layers = {2, 8, 2};
  const Mlp mlp(s);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 12);
  const KineticEnergy ke(mlp, 0.3);
  const Trajectory tr = make_trajectory(2, 6, false, false, 41);
  const SolverOptions o = options(kSolvers[0], 1e-8);  // adams, adjoint_form auto: transition here
  const auto loss = make_loss("half_sse");
  Solver fresh(mlp, o), used(mlp, o);
  const Gradient ref = fresh.gradient(theta, test::problem(tr, loss));
  const Gradient with_cost = used.gradient(theta, test::problem(tr, loss, &ke));
  const Gradient after = used.gradient(theta, test::problem(tr, loss));
  BOOST_TEST(with_cost.loss > ref.loss);  // the cost was on
  BOOST_TEST(after.loss == ref.loss);
  BOOST_TEST((after.theta.array() == ref.theta.array()).all());
  BOOST_TEST((after.z0.array() == ref.z0.array()).all());
  BOOST_TEST(after.backward.steps == ref.backward.steps);
  // The restart form gives other bits (and more backward steps), so the checks above can fail.
  SolverOptions r = o;
  r.cvodes.adjoint_form = AdjointForm::Restart;
  const Gradient restart = Solver(mlp, r).gradient(theta, test::problem(tr, loss));
  BOOST_TEST(!(restart.theta.array() == ref.theta.array()).all());
  BOOST_TEST(restart.backward.steps != ref.backward.steps);
}

// docs/solver-options.md: initial_step sets the forward solve's first step, not the backward
// problem's. A first step of 0.05 is more than the error test accepts at rtol 1e-7 here: forward
// it is tried and rejected (more error-test failures), backward nothing changes. Were it applied
// to the backward problem (CVodeSetInitStepB with -0.05; +0.05 is CV_ILL_INPUT), every one of the
// 6 restarts would start with a rejected step: measured 18 -> 30 (adams) and 0 -> 12 (bdf)
// backward error-test failures, 171 -> 207 and 194 -> 225 backward evaluations; as it is, both
// are equal to the automatic first step's (the forward solution they interpolate moved by a step).
BOOST_AUTO_TEST_CASE(initial_step_is_not_applied_to_the_backward_problem) {
  MlpSpec s;
  s.layers = {2, 8, 2};
  const Mlp mlp(s);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 12);
  const Trajectory tr = make_trajectory(2, 6, false, false, 41);
  const auto loss = make_loss("half_sse");
  for (int i : {0, 1}) {
    const auto& c = kSolvers[i];
    BOOST_TEST_CONTEXT(c.name) {
      SolverOptions o = options(c, 1e-7);
      o.cvodes.adjoint_form = AdjointForm::Restart;  // a fresh backward start at every observation
      const Gradient automatic = Solver(mlp, o).gradient(theta, test::problem(tr, loss));
      o.initial_step = 0.05;
      const Gradient given = Solver(mlp, o).gradient(theta, test::problem(tr, loss));
      BOOST_TEST(automatic.backward.restarts == 5);
      BOOST_TEST(given.backward.restarts == automatic.backward.restarts);
      // Forward: applied.
      BOOST_TEST(given.forward.err_test_fails >= automatic.forward.err_test_fails + 2);
      // Backward: not applied.
      BOOST_TEST(given.backward.err_test_fails <= automatic.backward.err_test_fails + 2);
      BOOST_TEST(std::abs(given.backward.rhs_evals - automatic.backward.rhs_evals) <= automatic.backward.rhs_evals / 20);
      BOOST_TEST(std::abs(given.backward.steps - automatic.backward.steps) <= 2);
      BOOST_TEST(rel_err(given.theta, automatic.theta) < 1e-4);
    }
  }
}

// The thread-count side of the same defect (issue 18: leave_transition() switched a per-thread
// Solver to the restart form for good): after a problem with a running cost, the next problem
// without one gets the bits of fresh solvers whatever the number of threads; before, a thread whose
// solver had served the cost stayed in the restart form, so the bits followed the scheduling.
BOOST_AUTO_TEST_CASE(a_running_cost_leaves_no_thread_count_dependence) {
  MlpSpec s;
  s.layers = {2, 8, 2};
  const Mlp mlp(s);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 12);
  const KineticEnergy ke(mlp, 0.3);
  std::vector<Trajectory> batch;
  for (int b = 0; b < 6; ++b) batch.push_back(make_trajectory(2, 6, false, false, 50 + b));
  const auto loss = make_loss("half_sse");
  const SolverOptions o = options(kSolvers[0], 1e-8);  // adams, adjoint_form auto: transition here
  BatchSolver fresh(mlp, o, BatchOptions{1});
  const BatchGradient ref = fresh.gradient(theta, Problem(batch, loss));
  Problem with_cost(batch, loss);
  with_cost.add_running_cost(std::shared_ptr<const RunningCost>(&ke, [](const RunningCost*) {}));
  for (int threads : {1, 2}) {
    BOOST_TEST_CONTEXT("threads " << threads) {
      BatchSolver used(mlp, o, BatchOptions{threads});
      (void)used.gradient(theta, with_cost);
      const BatchGradient after = used.gradient(theta, Problem(batch, loss));
      BOOST_TEST(after.loss == ref.loss);
      BOOST_TEST((after.theta - ref.theta).cwiseAbs().maxCoeff() == 0.0);
      BOOST_TEST(after.nfe_backward == ref.nfe_backward);
    }
  }
}

// dopri5's kept network passes (Dopri5Options::keep_mib) live in one buffer per thread, shared by
// every dopri5 engine on it: an idle engine holds none. (A BatchSolver has one engine per thread
// and per stacked unit, and each kept up to keep_mib, 64 MiB, for good.) Measured with glibc's
// mallinfo2 (bytes in use, heap and mmap): 1000 fixed steps of a 2-64-64-2 network keep
// 1000 x 7 x (workspace rounded to 8 doubles) x 8 bytes, 36 MB; two engines that ran one after
// the other hold it once: the second adds its steps' states and stages (1000 x 8 x 2 doubles,
// 128 kB), where it used to add another 36 MB.
BOOST_AUTO_TEST_CASE(dopri5_engines_on_one_thread_share_their_kept_passes) {
  MlpSpec s;
  s.layers = {2, 64, 64, 2};
  const Mlp mlp(s);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 5);
  SolverOptions o;
  o.method = "dopri5";
  o.dopri5.fixed_step = 0.01;
  Trajectory tr = make_trajectory(2, 4, false, false, 8);
  tr.times << 1.0, 3.0, 6.0, 10.1;  // 1000 steps from t0 = 0.1
  const double kept = 1000.0 * 7 * ((mlp.workspace_size() + 7) / 8 * 8) * 8;
  BOOST_TEST_REQUIRE(kept > 8e6);
  auto in_use = [] {
    const struct mallinfo2 m = mallinfo2();
    return static_cast<double>(m.uordblks + m.hblkhd);
  };
  Solver a(mlp, o), b(mlp, o);
  const double before = in_use();
  const Gradient ga = a.gradient(theta, test::problem(tr, make_loss("half_sse")));
  const double after_a = in_use();
  const Gradient gb = b.gradient(theta, test::problem(tr, make_loss("half_sse")));
  const double added_by_b = in_use() - after_a;
  BOOST_TEST_MESSAGE("dopri5: the first engine's gradient left " << after_a - before << " bytes in use, the second's "
                                                                 << added_by_b << "; each kept " << kept);
  BOOST_TEST(ga.forward.steps == 1000);
  BOOST_TEST(after_a - before > kept);  // the thread's buffer stays: no page faults on the next call
  BOOST_TEST(added_by_b < 1e6);         // the second engine reuses it
  BOOST_TEST((gb.theta.array() == ga.theta.array()).all());  // the same bits from a used buffer
}

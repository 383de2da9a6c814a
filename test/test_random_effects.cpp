// Per-subject random effects (include/cvnode/random_effects.h): a hybrid oral PK model whose
// subject parameters ka exp(eta_ka), ke exp(eta_ke), V exp(eta_V) reproduce the closed-form
// Bateman curve of that subject; gradients with respect to the shared parameters AND the
// subject's eta (a row of the wrapper's table) against central differences in both engines; a
// learned embedding (neural mixed effects) beside a covariate; the typical subject (slot -1).
// ctest: labels=unit timeout=120
#define BOOST_TEST_MODULE random_effects
#include <boost/test/unit_test.hpp>

#include <cmath>

#include "cvnode/cvnode.h"
#include "cvnode/pk.h"
#include "cvnode/random_effects.h"
#include "test_util.h"

using namespace cvnode;
using cvnode::test::fd_gradient;
using cvnode::test::random_vector;
using cvnode::test::rel_err;

namespace {

// First-order elimination of component 0 with theta = [log ke]; component 1 (the depot) is left
// to the network.
class Elimination final : public Dynamics {
 public:
  int state_size() const override { return 2; }
  int param_size() const override { return 1; }
  int workspace_size() const override { return 0; }
  bool smooth() const override { return true; }
  void rhs(double, ConstVectorRef z, ConstVectorRef th, VectorRef f, VectorRef) const override {
    f[0] = -std::exp(th[0]) * z[0];
    f[1] = 0;
  }
  void vjp(double, ConstVectorRef z, ConstVectorRef th, ConstVectorRef a, VectorRef dz, VectorRef dth,
           VectorRef) const override {
    dz[0] = -std::exp(th[0]) * a[0];
    dz[1] = 0;
    if (dth.size() > 0) dth[0] = -std::exp(th[0]) * z[0] * a[0];
  }
  void jacobian(double, ConstVectorRef, ConstVectorRef th, MatrixRef J, VectorRef) const override {
    J << -std::exp(th[0]), 0, 0, 0;
  }
  void jvp(double, ConstVectorRef, ConstVectorRef th, ConstVectorRef v, VectorRef Jv, VectorRef) const override {
    Jv[0] = -std::exp(th[0]) * v[0];
    Jv[1] = 0;
  }
};

SolverOptions options(const std::string& method, double rtol) {
  SolverOptions o;
  o.method = method;
  o.rtol = rtol;
  o.atol = rtol * 1e-2;
  return o;
}

// The hybrid of data/pk_hybrid.toml: dconc/dt = -ke conc + N_0(depot), ddepot/dt = N_1(depot),
// with a network of the given hidden widths reading the depot only (no biases when linear).
struct PkHybrid {
  std::shared_ptr<Mlp> mlp;
  std::shared_ptr<Hybrid> hybrid;
  RandomEffectMap map;  // eta = (ka, ke, V)
  explicit PkHybrid(std::vector<int> hidden) {
    MlpSpec s;
    s.layers = {2};
    for (int h : hidden) s.layers.push_back(h);
    s.layers.push_back(2);
    mlp = std::make_shared<Mlp>(s);
    HybridCoupling c;
    c.input_indices = {0, 1};
    c.input_scale = (Vector(2) << 0.0, 1.0).finished();  // the network sees the depot only
    c.output_matrix = Matrix::Identity(2, 2);
    hybrid = std::make_shared<Hybrid>(std::make_shared<Elimination>(), mlp, c);
    map.effects = 3;
    add_output_scale(map, *mlp, 1, 0, 0, 1.0);   // ka scales the flow into the central compartment
    add_output_scale(map, *mlp, 1, 1, 0, 1.0);   // ... and out of the depot
    map.shift.push_back({0, 1, 1.0});            // ke = exp(log ke + eta_ke)
    add_output_scale(map, *mlp, 1, 0, 2, -1.0);  // conc = amount / V: the inflow / exp(eta_V)
  }
};

Event bolus(double time, double amount) {
  Event e;
  e.time = time;
  e.compartment = 1;
  e.amount = amount;
  return e;
}

}  // namespace

// With a linear network (N = [ka 100 / V, -ka] depot: W = [[0, ka 100 / V], [0, -ka]]) the hybrid IS the oral one-compartment
// model, and slot s's eta makes it subject s's: two doses against the Bateman function with
// ka exp(eta_ka), ke exp(eta_ke), V exp(eta_V), to 1e-7 relative (dopri5 and BDF at rtol 1e-10;
// the global error stays within ~100 rtol). Slot -1 (and a slot beyond the table) is the
// typical subject.
BOOST_AUTO_TEST_CASE(subject_effects_give_the_subjects_bateman_curve) {
  PkHybrid pk({});
  const double ka = 1.0, ke = 0.1, V = 30;
  const RandomEffectsDynamics re(pk.hybrid, pk.map, 3);
  BOOST_TEST(re.param_size() == 1 + 6 + 9);
  BOOST_TEST(re.input_size() == 1);
  Vector theta = Vector::Zero(re.param_size());
  theta[0] = std::log(ke);
  theta[2] = ka * 100 / V;  // W (2 x 2, row-major), biases 0
  theta[4] = -ka;
  const Vector eta1 = (Vector(3) << 0.4, -0.3, 0.2).finished();
  theta.segment(re.eta_offset() + 3, 3) = eta1;
  theta.segment(re.eta_offset(), 3) << 5, 5, 5;  // another subject's row: must not matter
  Trajectory tr;
  tr.z0 = (Vector(2) << 0, 0.5).finished();  // 50 mg at t0 (100 mg = 1 unit)
  tr.times = (Vector(8) << 0.3, 1, 2, 5, 12, 13, 16, 24).finished();
  tr.values = Matrix::Zero(8, 1);
  tr.events = {bolus(12, 1.0)};
  const std::vector<EventRecord> doses = {{0, 0, 50}, {12, 0, 100}};
  for (std::string m : {"bdf", "dopri5"})
    for (int slot : {1, -1, 7}) {
      BOOST_TEST_CONTEXT(m << " slot " << slot) {
        tr.covariates = Vector::Constant(1, slot);
        const Vector eta = slot == 1 ? eta1 : Vector::Zero(3);
        const Solution sol = Solver(re, options(m, 1e-10)).solve(theta, tr);
        for (Eigen::Index k = 0; k < tr.times.size(); ++k) {
          const double ref = bateman_concentration(tr.times[k], doses, ka * std::exp(eta[0]), ke * std::exp(eta[1]),
                                                   V * std::exp(eta[2]));
          BOOST_TEST(std::abs(sol.states(k, 0) - ref) < 1e-7 * ref);
        }
      }
    }
}

// d loss / d [theta, W, eta table] of a nonlinear hybrid (tanh network) and of an Mlp with a
// covariate and a learned 2-dim embedding, against central differences of a reference at rtol
// 1e-13; bound 1e-6 at rtol 1e-10 in the adjoint (bdf, adams) and dopri5's backpropagation, as
// for every other gradient path (test_gradient, test_events). Only the solved subject's row of
// the table gets a gradient (exactly 0 elsewhere); the typical subject's eta gets none.
BOOST_AUTO_TEST_CASE(gradients_with_respect_to_eta_match_central_differences) {
  const auto loss = make_loss("half_sse");
  PkHybrid pk({6});
  const RandomEffectsDynamics hyb(pk.hybrid, pk.map, 3);
  Vector th_h(hyb.param_size());
  th_h << std::log(0.1), 0.5 * pk.mlp->initial_parameters(Init::Glorot, 3), random_vector(9, 4, 0.3);
  Trajectory th;
  th.z0 = (Vector(2) << 0, 1.0).finished();
  th.times = (Vector(6) << 0.5, 1, 2, 4, 6, 8).finished();
  th.values = random_vector(6, 5, 0.5).reshaped(6, 1).array().abs();
  th.events = {bolus(4, 0.5)};
  th.covariates = Vector::Constant(1, 2);

  MlpSpec s;
  s.layers = {2, 8, 2};
  s.inputs = 1;
  auto mlp = std::make_shared<Mlp>(s);
  RandomEffectMap emb;
  emb.effects = 2;
  add_first_layer_embedding(emb, *mlp, 0);
  const RandomEffectsDynamics net(mlp, emb, 4);
  BOOST_TEST(net.input_size() == 2);
  Vector th_n(net.param_size());
  th_n << mlp->initial_parameters(Init::Glorot, 6), random_vector(16, 7, 0.5), random_vector(8, 8, 0.5);
  Trajectory tn;
  tn.z0 = (Vector(2) << 0.3, -0.2).finished();
  tn.times = (Vector(5) << 0.3, 0.6, 1.0, 1.4, 2.0).finished();
  tn.values = random_vector(10, 9).reshaped(5, 2);
  tn.covariates = (Vector(2) << 0.7, 3).finished();  // the covariate, then the slot

  struct Case {
    const char* name;
    const RandomEffectsDynamics& dyn;
    Vector theta;
    Trajectory tr;
    int slot;
  };
  for (const Case& c : {Case{"hybrid", hyb, th_h, th, 2}, Case{"embedding", net, th_n, tn, 3}}) {
    Solver ref(c.dyn, options("bdf", 1e-13));
    const Vector fd = fd_gradient([&](const Vector& x) { return ref.gradient(x, Problem({c.tr}, loss)).loss; },
                                  c.theta, 1e-4);
    const int k = c.dyn.effects(), off = c.dyn.eta_offset();
    // The subject's eta moves the loss (the test would pass trivially otherwise).
    BOOST_TEST(fd.segment(off + c.slot * k, k).norm() > 1e-3 * fd.norm());
    for (std::string m : {"adams", "bdf", "dopri5"}) {
      BOOST_TEST_CONTEXT(c.name << " " << m) {
        const Gradient g = Solver(c.dyn, options(m, 1e-10)).gradient(c.theta, Problem({c.tr}, loss));
        BOOST_TEST_MESSAGE(c.name << " " << m << ": relative error [theta, W, eta] " << rel_err(g.theta, fd)
                                  << ", eta alone " << rel_err(g.theta.segment(off + c.slot * k, k), fd.segment(off + c.slot * k, k)));
        BOOST_TEST(rel_err(g.theta, fd) < 1e-6);
        BOOST_TEST(rel_err(g.theta.segment(off + c.slot * k, k), fd.segment(off + c.slot * k, k)) < 1e-6);
        Vector others = g.theta.tail(g.theta.size() - off);
        others.segment(c.slot * k, k).setZero();
        BOOST_TEST(others.norm() == 0.0);
        Trajectory typical = c.tr;
        typical.covariates[typical.covariates.size() - 1] = -1;
        const Gradient gt = Solver(c.dyn, options(m, 1e-10)).gradient(c.theta, Problem({typical}, loss));
        BOOST_TEST(gt.theta.tail(gt.theta.size() - off).norm() == 0.0);
      }
    }
  }
}

// subject_parameters gives the parameters the wrapper hands to its base for an eta.
BOOST_AUTO_TEST_CASE(subject_parameters_apply_the_map) {
  PkHybrid pk({});
  const RandomEffectsDynamics re(pk.hybrid, pk.map, 2);
  Vector theta = Vector::Zero(re.param_size());
  theta.head(7) << std::log(0.1), 0.0, 3.0, 0.0, -1.0, 0.25, 0.5;
  const Vector p = re.subject_parameters(theta, (Vector(3) << 0.5, 0.2, -0.1).finished());
  BOOST_TEST(p[0] == std::log(0.1) + 0.2, boost::test_tools::tolerance(1e-15));
  BOOST_TEST(p[2] == 3.0 * std::exp(0.5 + 0.1), boost::test_tools::tolerance(1e-15));
  BOOST_TEST(p[4] == -1.0 * std::exp(0.5), boost::test_tools::tolerance(1e-15));
  BOOST_TEST(p[5] == 0.25 * std::exp(0.5 + 0.1), boost::test_tools::tolerance(1e-15));  // output 0's bias
  BOOST_TEST(p[6] == 0.5 * std::exp(0.5), boost::test_tools::tolerance(1e-15));
  BOOST_CHECK_THROW(RandomEffectsDynamics(pk.hybrid, RandomEffectMap{1, {{99, 0, 1.0}}, {}, {}}, 1), OptionsError);
}

// Moving the mean of the subjects' etas into the typical parameters changes no subject's
// parameters (to rounding) and leaves the etas centred: the hybrid's three kinds of effects and
// the embedding.
BOOST_AUTO_TEST_CASE(recentring_keeps_every_subject) {
  PkHybrid pk({4});
  const RandomEffectsDynamics hyb(pk.hybrid, pk.map, 5);
  MlpSpec s;
  s.layers = {2, 6, 2};
  auto mlp = std::make_shared<Mlp>(s);
  RandomEffectMap emb;
  emb.effects = 2;
  add_first_layer_embedding(emb, *mlp, 0);
  const RandomEffectsDynamics net(mlp, emb, 4);
  for (const RandomEffectsDynamics* re : {&hyb, &net}) {
    const Vector p = random_vector(re->param_size(), 21) + Vector::Constant(re->param_size(), 0.3);
    const Vector q = re->recentered(p);
    const int k = re->effects();
    Vector mean = Vector::Zero(k);
    for (int i = 0; i < re->slots(); ++i) {
      const Vector before = re->subject_parameters(p, p.segment(re->eta_offset() + i * k, k));
      const Vector after = re->subject_parameters(q, q.segment(re->eta_offset() + i * k, k));
      BOOST_TEST((before - after).norm() < 1e-13 * before.norm());
      mean += q.segment(re->eta_offset() + i * k, k);
    }
    BOOST_TEST(mean.norm() < 1e-14);
    BOOST_TEST((q - p).head(re->eta_offset()).norm() > 0.01);  // the typical values moved
  }
}

// Empirical Bayes on a subject made by the exact model (linear hybrid = Bateman) with a known
// eta and no noise: with a negligible residual variance the mode is that eta (to 1e-5: the
// Jacobian's central differences and the solver at rtol 1e-10 bound it), with an overwhelming
// one the prior's mode 0 and covariance Omega; between them the mode shrinks toward 0 along the
// prior (|eta_hat| < |eta|).
BOOST_AUTO_TEST_CASE(empirical_bayes_finds_a_subjects_eta) {
  PkHybrid pk({});
  const auto re = std::make_shared<RandomEffectsDynamics>(pk.hybrid, pk.map, 1);
  Vector theta = Vector::Zero(re->param_size());
  theta[0] = std::log(0.1);
  theta[2] = 1.0 * 100 / 30;
  theta[4] = -1.0;
  const Vector eta = (Vector(3) << 0.3, -0.2, 0.1).finished();
  Trajectory tr;
  tr.z0 = (Vector(2) << 0, 1.0).finished();
  tr.times = (Vector(8) << 0.5, 1, 2, 4, 8, 12.5, 14, 20).finished();
  tr.events = {bolus(12, 1.0)};
  tr.covariates = Vector::Constant(1, 0);
  tr.values = Matrix::Zero(8, 1);
  Vector truth = theta;
  truth.tail(3) = eta;
  const SolverOptions o = options("dopri5", 1e-10);
  Solution sol = Solver(*re, o).solve(truth, tr);
  tr.values = sol.states.topRows(8).col(0);
  const Problem p({tr}, make_loss("mse_mean"));
  EmpiricalBayesOptions eb;
  eb.omega = Vector::Constant(3, 0.1);
  eb.sigma2 = 1e-12;
  const SubjectEstimate sharp = empirical_bayes(*re, theta, p, o, eb).at(0);
  BOOST_TEST_MESSAGE("eta " << sharp.eta.transpose() << " after " << sharp.iterations << " iterations");
  BOOST_TEST(sharp.error.empty());
  BOOST_TEST((sharp.eta - eta).norm() < 1e-5);
  eb.sigma2 = 1e12;
  const SubjectEstimate vague = empirical_bayes(*re, theta, p, o, eb).at(0);
  BOOST_TEST(vague.eta.norm() < 1e-6);
  BOOST_TEST((vague.covariance - Matrix(eb.omega.asDiagonal())).norm() < 1e-6);
  eb.sigma2 = 0.05;
  const SubjectEstimate mid = empirical_bayes(*re, theta, p, o, eb).at(0);
  BOOST_TEST(mid.eta.norm() < eta.norm());
  BOOST_TEST(mid.eta.norm() > 0.1 * eta.norm());
  BOOST_TEST(mid.covariance.diagonal().maxCoeff() < 0.1);  // the data narrowed the prior
}

namespace {
std::string error_of(const std::string& toml) {
  try {
    (void)Config::parse(toml, "re.toml").validate();
    return Config::parse(toml, "re.toml").validate();
  } catch (const std::exception& e) {
    return e.what();
  }
}
}  // namespace

// [random_effects] keys are validated with one message naming the key and value.
BOOST_AUTO_TEST_CASE(random_effects_settings_are_checked) {
  const std::string base = "[data]\nfile = \"x.h5\"\nnormalize = false\n[loss]\nkind = \"mse_mean\"\n[random_effects]\n";
  auto msg = [&](const std::string& extra) { return error_of(base + extra); };
  BOOST_TEST(msg("names = [\"ka\"]\nphysics = [0, 1]\n").find("random_effects.physics has 2 entries, random_effects.names 1") != std::string::npos);
  BOOST_TEST(msg("names = [\"ka\", \"ka\"]\nphysics = [0, 0]\n").find("'ka' is given twice") != std::string::npos);
  BOOST_TEST(msg("names = [\"ka\"]\nomega = [-1]\nphysics = [0]\n").find("random_effects.omega = -1") != std::string::npos);
  BOOST_TEST(msg("names = [\"ka\"]\n").find("random effect 'ka' acts on nothing") != std::string::npos);
  BOOST_TEST(msg("names = [\"e\"]\nnetwork_input = true\n").find("set random_effects.estimate_omega = false") != std::string::npos);
  const std::string loss = error_of("[data]\nfile = \"x.h5\"\n[random_effects]\nnames = [\"e\"]\nnetwork_input = true\nestimate_omega = false\n[loss]\nkind = \"half_sse\"\n");
  BOOST_TEST_MESSAGE(loss);
  BOOST_TEST(loss.find("needs loss.kind = \"mse_mean\"") != std::string::npos);
  BOOST_TEST(msg("nmes = [\"e\"]\n").find("random_effects.nmes") != std::string::npos);
  // Sizes the model knows: a physics index beyond the physics' parameters, a row per output.
  ModelOptions m;
  m.physics.kind = "mass_action";
  m.physics.species = {"conc", "depot"};
  m.physics.reactions = {"conc ->"};
  m.physics.network = true;
  m.hidden = {4};
  m.augment = 1;
  m.random_effects.names = {"ke"};
  m.random_effects.physics = {3};
  BOOST_CHECK_EXCEPTION(Model(m, 1, 0, 4), OptionsError, [](const OptionsError& e) {
    return std::string(e.what()).find("random_effects.physics[0] = 3: the physics has 1 parameters") != std::string::npos;
  });
  m.random_effects.physics = {0};
  m.random_effects.output_scale = {{1.0}};
  BOOST_CHECK_EXCEPTION(Model(m, 1, 0, 4), OptionsError, [](const OptionsError& e) {
    return std::string(e.what()).find("output_scale row 0 ('ke') has 1 entries, the network has 2 outputs") != std::string::npos;
  });
  m.random_effects.output_scale = {{1.0, 1.0}};
  const Model ok(m, 1, 0, 4);
  BOOST_TEST(ok.random_effects()->slots() == 4);
  BOOST_TEST(ok.network_params() == 1 + ok.mlp().param_size() + 4);
}

// The whole path on generated PK data (few subjects, few epochs: it checks the plumbing, not
// the acceptance numbers of docs/measurement-data.md): a fit with random effects writes Omega and
// sigma^2 into its checkpoint; the reloaded model gives each held-out subject an
// empirical-Bayes eta, whose individual predictions beat the typical subject's on the same
// observations; the true model's EB errors lie below its typical-value errors and near its own.
BOOST_AUTO_TEST_CASE(a_fit_with_random_effects_and_held_out_subjects) {
  PkOptions po;
  po.subjects = 16;
  po.observations = 10;
  po.doses = 2;
  po.seed = 5;
  const std::string dir = test::make_temp_dir("re");
  const std::string file = dir + "/pk.h5";
  const Dataset ds = generate_pk(po);
  ds.write(file);
  const std::string toml = "[data]\nfile = \"" + file + "\"\ntrain_fraction = 0.5\nval_fraction = 0.25\nnormalize = false\n"
      "compartment_states = [1, 0]\ndose_scale = [0.01, 1.0]\nignore = [\"WT\"]\n"
      "[model]\nhidden = [8]\naugment = 1\ninitial_state = \"zero\"\nbias = false\ninit = \"glorot\"\n"
      "[physics]\nkind = \"mass_action\"\nspecies = [\"conc\", \"depot\"]\nreactions = [\"conc ->\"]\ntransform = \"log\"\n"
      "initial = [0.2]\nnetwork = true\ninputs = [0, 1]\ninput_scale = [0.0, 0.1]\noutput_matrix = [[1.0, 0.0], [0.0, 1.0]]\n"
      "[random_effects]\nnames = [\"ka\", \"ke\", \"V\"]\nphysics = [-1, 0, -1]\noutput_scale = [[1, 1], [0, 0], [-1, 0]]\n"
      "omega = [0.1]\n[solver]\nmethod = \"dopri5\"\nrtol = 1e-5\natol = 1e-7\n[loss]\nkind = \"mse_mean\"\n"
      "[optimizer]\nlr = 0.02\n[run]\nepochs = 30\nbatch_size = 4\nthreads = 1\nval_every = 10\n";
  const Config c = Config::parse(toml, "re.toml");
  FitOptions fo;
  fo.out_dir = dir + "/run";
  fo.quiet = true;
  run_fit(c, fo);
  TrainedModel tm = load_trained(fo.out_dir + "/latest.h5");
  BOOST_REQUIRE(tm.model->random_effects());
  BOOST_TEST(tm.model->random_effects()->slots() == 12);  // 8 training + 4 validation subjects
  BOOST_TEST(tm.re_omega.size() == 3);
  BOOST_TEST(tm.re_sigma2 > 0);
  const FitData d = load_model_data(tm);
  std::vector<Trajectory> lifted;
  for (std::size_t s = 0; s < d.test.size(); ++s) lifted.push_back(tm.lift(d.test[s], d.test_ids[s]));
  BOOST_REQUIRE_EQUAL(lifted.size(), 4u);
  const Evaluation typical = evaluate(tm.model->dynamics(), tm.theta, tm.problem(lifted), c.train.solver, 1);
  const IndividualFit f = empirical_bayes_fit(tm, lifted, c.train.solver, 1);
  const Evaluation individual = evaluate(*f.dynamics, f.theta, tm.problem(f.series), c.train.solver, 1);
  BOOST_TEST_MESSAGE("held out: typical RMSE " << typical.rmse_all << ", individual " << individual.rmse_all);
  BOOST_TEST(individual.failures == 0);
  BOOST_TEST(individual.rmse_all < typical.rmse_all);
  for (const auto& e : f.estimates) BOOST_TEST(e.error.empty());
  const PkTruthErrors t = pk_truth_errors(ds, d.test_ids);
  BOOST_TEST_MESSAGE("truth: own " << t.own << ", typical at weight " << t.typical_at_weight << ", EB " << t.eb_at_weight
                                   << ", EB without the weight " << t.eb_70kg);
  BOOST_TEST(t.eb_at_weight < 0.8 * t.typical_at_weight);
  BOOST_TEST(t.eb_at_weight < 1.1 * t.own);
  BOOST_TEST(t.eb_70kg < 1.1 * t.own);
}

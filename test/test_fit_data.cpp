// The data side of a fit (issue 12's "Why" list): per-channel transforms with results in data
// units, sign constraints that mean the same in data units, time splits for forecasting with
// their naive baselines, separate train/validation/test files, whole series for evaluation
// after a windowed curriculum, the best checkpoint chosen on whole series, the checkpoint's
// normalisation on any file, windows that start their unobserved state from the model, and the
// initial-state rules for eval, predict and new subjects.
// ctest: labels=integration timeout=300
#define BOOST_TEST_MODULE fit_data
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>

#include "cvnode/checkpoint.h"
#include "app/config.h"
#include "cvnode/errors.h"
#include "app/fit.h"
#include "cvnode/generators.h"
#include "cvnode/physics.h"
#include "cvnode/pk.h"
#include "cvnode/solver.h"
#include "test_util.h"

using namespace cvnode;
namespace fs = std::filesystem;

namespace {

std::string temp_dir() {
  static const std::string dir = cvnode::test::make_temp_dir("fit_data");  // removed at exit
  return dir;
}

// Lotka-Volterra series: positive, oscillating.
std::string lv_file(const std::string& name, int series, int observations, double t_end, std::uint64_t seed = 5) {
  const std::string path = temp_dir() + "/" + name + ".h5";
  if (!fs::exists(path)) cvnode::test::write_lotka_volterra(path, series, observations, t_end, seed);
  return path;
}

Config config(const std::string& file, const std::vector<std::string>& overrides = {}) {
  const std::string text = "[data]\nfile = \"" + file + "\"\n[model]\nhidden = [8]\n[solver]\nrtol = 1e-6\natol = 1e-8\n"
                           "[run]\nepochs = 2\nbatch_size = 4\nthreads = 1\n";
  return Config::parse(text, "test.toml", overrides);
}

template <class E>
void expect_error(const std::function<void()>& f, const std::vector<std::string>& fragments) {
  try {
    f();
    BOOST_ERROR("no error; expected one mentioning '" + fragments.front() + "'");
  } catch (const E& e) {
    const std::string msg = e.what();
    BOOST_TEST_MESSAGE("message: " << msg);
    for (const auto& fr : fragments) BOOST_CHECK_MESSAGE(msg.find(fr) != std::string::npos, "'" << fr << "' not in: " << msg);
  }
}

FitResult quiet_fit(const Config& c, const std::string& out) {
  FitOptions o;
  o.out_dir = out;
  o.quiet = true;
  return run_fit(c, o);
}

}  // namespace

BOOST_AUTO_TEST_CASE(log_transform_works_in_log_units_and_reports_in_data_units) {
  const std::string file = lv_file("lv", 12, 10, 4);
  const FitData plain = load_fit_data(config(file, {"data.normalize=false"}));
  const FitData logged = load_fit_data(config(file, {"data.normalize=false", "data.transform=[\"log\", \"none\"]"}));
  BOOST_REQUIRE(logged.transforms[0] == ChannelTransform::Log);
  BOOST_REQUIRE(logged.transforms[1] == ChannelTransform::None);
  for (std::size_t s = 0; s < plain.train.size(); ++s) {
    BOOST_CHECK(logged.train[s].values.col(0).isApprox(plain.train[s].values.col(0).array().log().matrix(), 1e-15));
    BOOST_CHECK(logged.train[s].values.col(1) == plain.train[s].values.col(1));
    // Back to data units: the original numbers to rounding.
    const Matrix back = to_data_units(logged.train[s].values, logged.normalization, logged.transforms);
    BOOST_CHECK(back.isApprox(plain.train[s].values, 1e-14));
  }
  // With normalisation too: the statistics are those of log(y), and errors come out in data
  // units: a prediction off by a factor e^0.1 in prey is off by (e^0.1 - 1) y in data units.
  const FitData n = load_fit_data(config(file, {"data.transform=[\"log\"]"}));
  std::vector<Matrix> pred;
  for (const auto& tr : n.val) {
    Matrix p = tr.values;
    p.col(0).array() += 0.1 / n.normalization.std[0];
    pred.push_back(p);
  }
  const DataErrors e = data_errors(n, n.val, pred);
  double se = 0, count = 0;
  for (const auto& tr : n.val) {
    const Matrix y = to_data_units(tr.values, n.normalization, n.transforms);
    se += ((std::exp(0.1) - 1) * y.col(0)).squaredNorm();
    count += y.rows();
  }
  BOOST_CHECK_CLOSE(e.rmse[0], std::sqrt(se / count), 1e-9);
  BOOST_CHECK_SMALL(e.rmse[1], 1e-12);
  // log1p takes zeros; log does not: the offending value is named with its series and time.
  Dataset d({"count"}, {});
  Series s;
  s.id = "plate 3";
  s.times = Vector::LinSpaced(3, 0, 2);
  s.values = (Matrix(3, 1) << 4, 0, 2).finished();
  d.add(s);
  s.id = "plate 4";
  d.add(s);
  const std::string zeros = temp_dir() + "/zeros.h5";
  d.write(zeros);
  BOOST_CHECK_NO_THROW(load_fit_data(config(zeros, {"data.transform=[\"log1p\"]", "data.train_fraction=1", "data.val_fraction=0"})));
  expect_error<DataError>([&] { load_fit_data(config(zeros, {"data.transform=[\"log\"]", "data.train_fraction=1",
                                                             "data.val_fraction=0"})); },
                          {zeros, "series 'plate 3'", "channel 'count' at time 1 is 0", "data.transform = log"});
  expect_error<ConfigError>([&] { load_fit_data(config(file, {"data.transform=[\"log\", \"log\", \"log\"]"})); },
                            {"data.transform has 3 entries for the 2 channels"});
  expect_error<ConfigError>([&] { config(file, {"data.transform=[\"sqrt\"]"}); }, {"\"sqrt\" (expected none, log or log1p)"});
}

BOOST_AUTO_TEST_CASE(constraints_hold_in_data_units) {
  // solver.constraints with normalisation on: the constrained channels are scaled, not shifted,
  // so that >= 0 in the model's units is >= 0 in the data's. (It used to shift them by their
  // mean: every series started below zero and failed at t = 0.)
  const std::string file = lv_file("lv", 12, 10, 4);
  const Config c = config(file, {"solver.method=\"bdf\"", "solver.constraints=[1.0, 0.0]"});
  const FitData d = load_fit_data(c);
  BOOST_CHECK_EQUAL(d.normalization.mean[0], 0.0);
  BOOST_CHECK(d.normalization.mean[1] != 0.0);
  for (const auto& tr : d.train) BOOST_CHECK(tr.values.col(0).minCoeff() > 0);
  const FitResult r = quiet_fit(c, temp_dir() + "/constrained");
  BOOST_CHECK_EQUAL(r.state.failures_total, 0);
  BOOST_CHECK(std::isfinite(r.state.best_val));
  // A first observation that breaks a constraint is named before any solve.
  Dataset neg({"x"}, {});
  for (int i = 0; i < 3; ++i) {
    Series s;
    s.id = "run" + std::to_string(i);
    s.times = Vector::LinSpaced(4, 0, 3);
    s.values = (Matrix(4, 1) << (i == 2 ? -0.5 : 0.5), 1, 2, 1).finished();
    neg.add(s);
  }
  const std::string negative = temp_dir() + "/negative.h5";
  neg.write(negative);
  expect_error<DataError>([&] { load_fit_data(config(negative, {"solver.constraints=[1.0]", "data.train_fraction=1",
                                                                "data.val_fraction=0"})); },
                          {"series 'run2'", "channel 'x'", "is -0.5", "solver.constraints[0] = 1 (>= 0) forbids"});
  // A log transform keeps a channel positive by itself: a constraint on it is refused.
  expect_error<ConfigError>([&] { load_fit_data(config(file, {"solver.constraints=[1.0, 0.0]", "data.transform=[\"log\"]"})); },
                            {"solver.constraints[0] = 1 on channel 'prey'", "data.transform = log"});
}

BOOST_AUTO_TEST_CASE(a_run_stopped_by_its_constraints_names_them) {
  // dz/dt = -1 from z0 = 0.05 under z >= 0: every solve has to cross zero and fails; the run
  // ends after its rollbacks with a message that names the constraints (it used to advise
  // looser tolerances).
  ModelOptions mo;
  mo.hidden = {};
  mo.activation = Activation::Identity;
  const Model m(mo, 1);
  TrainerSettings ts;
  ts.solver.method = "bdf";
  ts.solver.cvodes.constraints = Vector::Ones(1);
  ts.run.epochs = 5;
  ts.run.threads = 1;
  ts.run.failure_patience = 1;
  ts.run.max_rollbacks = 1;
  Trajectory tr;
  tr.times = (Vector(2) << 0.5, 1.0).finished();
  tr.values = (Matrix(2, 1) << 0.05, 0.01).finished();
  Trainer t(m, {tr}, {"falling"}, {}, {}, ts);
  t.log = [](const std::string&) {};
  TrainState s = t.state();
  s.params.setZero();
  s.params[s.params.size() - 1] = -1;  // the bias: f = -1
  s.good_params = s.params;
  t.restore(s);
  try {
    t.run();
    BOOST_ERROR("the run did not stop");
  } catch (const SolverError& e) {
    const std::string msg = e.what();
    BOOST_TEST_MESSAGE(msg);
    BOOST_TEST(msg.find("TOO_MANY_ROLLBACKS") != std::string::npos);
    BOOST_TEST(msg.find("series 'falling'") != std::string::npos);
    BOOST_TEST(msg.find("solver.constraints = [1]") != std::string::npos);
    BOOST_TEST(msg.find("loosen the tolerances") == std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(time_split_of_one_long_series) {
  const std::string file = lv_file("lv_long", 1, 200, 40);
  const Config c = config(file, {"data.split=\"time\"", "data.train_fraction=0.7", "data.val_fraction=0.1"});
  const FitData d = load_fit_data(c);
  BOOST_REQUIRE(d.forecast);
  BOOST_REQUIRE_EQUAL(d.train.size(), 1u);
  BOOST_REQUIRE_EQUAL(d.val.size(), 1u);
  BOOST_REQUIRE_EQUAL(d.test.size(), 1u);
  const Series s = Dataset::read(file).series(0);
  const double first = s.times[0], last = s.times[s.times.size() - 1];
  const double c1 = first + 0.7 * (last - first), c2 = first + 0.8 * (last - first);
  BOOST_CHECK(d.train[0].times.maxCoeff() <= c1);
  BOOST_CHECK_EQUAL(d.train[0].times.size(), (s.times.array() <= c1).count());
  // The normalisation comes from the training part only.
  std::vector<double> prey;
  for (Eigen::Index k = 0; k < s.times.size(); ++k)
    if (s.times[k] <= c1) prey.push_back(s.values(k, 0));
  double mean = 0;
  for (double v : prey) mean += v;
  BOOST_CHECK_CLOSE(d.normalization.mean[0], mean / prey.size(), 1e-10);
  // The forecast windows start at their origin (the last observation at or before the cutoff,
  // the initial condition, not scored) and are scored after the cutoff only.
  const Trajectory& v = d.val[0];
  BOOST_CHECK(v.times[0] <= c1);
  BOOST_CHECK(v.times[1] > c1);
  BOOST_CHECK(v.times[v.times.size() - 1] <= c2);
  BOOST_CHECK_EQUAL(d.val_history[0], 1);
  BOOST_CHECK(d.test[0].times[0] <= c2 && d.test[0].times[1] > c2);
  BOOST_CHECK_EQUAL(d.test[0].times[d.test[0].times.size() - 1], last);
  BOOST_CHECK_EQUAL(d.val_past[0].times[d.val_past[0].times.size() - 1], v.times[0]);
  // Absolute cutoffs.
  const FitData a = load_fit_data(config(file, {"data.split=\"time\"", "data.time_cutoffs=[20.0, 30.0]"}));
  BOOST_CHECK(a.train[0].times.maxCoeff() <= 20.0);
  BOOST_CHECK(a.val[0].times[1] > 20.0 && a.val[0].times[a.val[0].times.size() - 1] <= 30.0);
  expect_error<ConfigError>([&] { config(file, {"data.time_cutoffs=[20.0]"}); }, {"data.time_cutoffs needs data.split"});
}

BOOST_AUTO_TEST_CASE(naive_forecasts_and_the_best_season) {
  // A noiseless sine of period 2 sampled irregularly: the seasonal naive forecast with the
  // right period is nearly exact, persistence is not, and best_season finds the period.
  Dataset d({"y"}, {});
  Series s;
  s.id = "sine";
  std::vector<double> t;
  for (int k = 0; k < 400; ++k) t.push_back(0.05 * k + 0.02 * std::sin(3.7 * k));
  s.times = Eigen::Map<Vector>(t.data(), 400);
  s.values = (2 * M_PI * s.times.array() / 2.0).sin().matrix() + Vector::Constant(400, 3.0);
  d.add(s);
  const std::string file = temp_dir() + "/sine.h5";
  d.write(file);
  const FitData f = load_fit_data(config(file, {"data.split=\"time\"", "data.train_fraction=0.8", "data.val_fraction=0.0"}));
  BOOST_REQUIRE_EQUAL(f.test.size(), 1u);
  BOOST_CHECK_CLOSE(best_season(f.test_past), 2.0, 1.0);
  const DataErrors seasonal = naive_forecast_errors(f, f.test, f.test_history, f.test_past, 2.0);
  const DataErrors persistence = naive_forecast_errors(f, f.test, f.test_history, f.test_past, 0);
  BOOST_TEST_MESSAGE("seasonal " << seasonal.rmse[0] << ", persistence " << persistence.rmse[0]);
  BOOST_CHECK(seasonal.rmse[0] < 0.01);  // linear interpolation of a 0.05-sampled sine
  BOOST_CHECK(persistence.rmse[0] > 0.5);
  BOOST_CHECK_EQUAL(seasonal.entries, static_cast<long>(f.test[0].times.size()) - 1);  // not the origin
  // A model forecast scored by data_errors on the same entries: the truth scores 0.
  std::vector<Matrix> truth{f.test[0].values};
  BOOST_CHECK_SMALL(data_errors(f, f.test, truth, f.test_history).rmse_all, 1e-12);
}

BOOST_AUTO_TEST_CASE(separate_files_and_the_checkpoints_normalisation) {
  // `cvnode data split` writes three files; fit takes them as training, validation and test.
  const std::string file = lv_file("lv_split", 20, 10, 4, 9);
  const Dataset all = Dataset::read(file);
  const Split sp = all.split(0.6, 0.2, 3);
  const std::string tr = temp_dir() + "/p_train.h5", va = temp_dir() + "/p_validation.h5", te = temp_dir() + "/p_test.h5";
  all.subset(sp.train).write(tr);
  all.subset(sp.validation).write(va);
  all.subset(sp.test).write(te);
  const Config c = config(tr, {"data.validation_file=\"" + va + "\"", "data.test_file=\"" + te + "\""});
  const FitData d = load_fit_data(c);
  BOOST_CHECK_EQUAL(d.train.size(), sp.train.size());
  BOOST_CHECK_EQUAL(d.val.size(), sp.validation.size());
  BOOST_CHECK_EQUAL(d.test.size(), sp.test.size());
  BOOST_CHECK_EQUAL(d.val_ids[0], all.id(sp.validation[0]));
  const Normalization n = all.compute_normalization(sp.train);
  BOOST_CHECK(d.normalization.mean.isApprox(n.mean, 1e-14));
  // Other channels in a validation file are named.
  Dataset other({"a", "b"}, {});
  Series s;
  s.id = "x";
  s.times = Vector::LinSpaced(2, 0, 1);
  s.values = Matrix::Ones(2, 2);
  other.add(s);
  const std::string bad = temp_dir() + "/other.h5";
  other.write(bad);
  expect_error<DataError>([&] { load_fit_data(config(tr, {"data.validation_file=\"" + bad + "\""})); },
                          {bad, "the channels (a, b) differ from those of", "(prey, predator)"});

  // A fit's checkpoint scales any file with its own normalisation (eval --set data.file=OTHER
  // used to recompute it on OTHER's series).
  const std::string run = temp_dir() + "/files_run";
  quiet_fit(c, run);
  const TrainedModel tm = load_trained(run + "/best.h5", {"data.file=\"" + te + "\"", "data.validation_file=\"\"",
                                                          "data.test_file=\"\""});
  const FitData on_test = load_model_data(tm);
  BOOST_CHECK(on_test.normalization.mean == d.normalization.mean);
  BOOST_CHECK(on_test.normalization.std == d.normalization.std);
  BOOST_CHECK(!(load_fit_data(tm.config).normalization.mean == d.normalization.mean));  // what it was
  // How data are scaled is part of the model: an override cannot change it.
  expect_error<ConfigError>([&] { load_trained(run + "/best.h5", {"data.transform=[\"log\"]"}); },
                            {"data.transform", "part of the trained model"});
}

BOOST_AUTO_TEST_CASE(windows_for_training_whole_series_for_everything_else) {
  const std::string file = lv_file("lv", 12, 10, 4);
  // A curriculum of windows with no validation split.
  const Config c = config(file, {"data.window=4", "data.window_epochs=1", "data.val_fraction=0", "run.epochs=3"});
  FitDataOptions w;
  w.windows = true;
  const FitData windows = load_fit_data(c, w), whole = load_fit_data(c);
  BOOST_CHECK(windows.train.size() > whole.train.size());
  BOOST_CHECK(windows.train_ids[0].find("[0]") != std::string::npos);
  BOOST_CHECK_EQUAL(windows.window_parent.size(), windows.train.size());
  BOOST_CHECK_EQUAL(whole.train_ids[0].find('['), std::string::npos);
  BOOST_CHECK_EQUAL(whole.train[0].times.size(), 10);
  // predict --split train / eval use whole series (load_model_data never cuts windows).
  const std::string run = temp_dir() + "/windows_run";
  const FitResult r = quiet_fit(c, run);
  const TrainedModel tm = load_trained(run + "/latest.h5");
  const FitData md = load_model_data(tm);
  BOOST_CHECK_EQUAL(md.train.size(), whole.train.size());
  // Without a validation split the best checkpoint is chosen on the whole training series, not
  // on the windows: the validation loss recorded for the last epoch is the whole series' loss
  // with that epoch's parameters.
  const Model m(c.model, 2);
  std::vector<Trajectory> lifted;
  for (std::size_t s = 0; s < whole.train.size(); ++s) lifted.push_back(m.lift(whole.train[s], whole.train_ids[s]));
  const Evaluation ev = evaluate(m.dynamics(), r.state.params.head(m.network_params()),
                                 Problem(lifted, make_loss(c.train.loss)), c.train.solver, 1);
  BOOST_CHECK_EQUAL(r.state.history.back().val_loss, ev.loss);
  BOOST_CHECK(r.state.history.back().val_loss != r.state.history.back().train_loss);
}

BOOST_AUTO_TEST_CASE(windows_start_unobserved_components_from_the_model) {
  // One augmented dimension, windows of 4: the unobserved component of every window's initial
  // state is the model's own solution of the whole series at the window's first time (with the
  // parameters at the start of the epoch), not zero.
  const std::string file = lv_file("lv", 12, 10, 4);
  const Config c = config(file, {"data.window=4", "model.augment=1", "run.epochs=1", "data.train_fraction=0.75",
                                 "data.val_fraction=0.25"});
  const std::string run = temp_dir() + "/warm_run";
  quiet_fit(c, run);
  const Checkpoint ck = Checkpoint::read(run + "/latest.h5");
  const auto it = ck.optimizer_vectors.find("window_start_states");
  BOOST_REQUIRE(it != ck.optimizer_vectors.end());
  FitDataOptions w;
  w.windows = true;
  const FitData d = load_fit_data(c, w);
  BOOST_REQUIRE_EQUAL(it->second.size(), static_cast<Eigen::Index>(d.train.size()));
  const Model m(c.model, 2);
  Solver solver(m.dynamics(), c.train.solver);
  const Vector theta = m.initial_parameters();  // the parameters at the start of epoch 1
  double largest = 0;
  for (std::size_t k = 0; k < d.train.size(); ++k) {
    const std::size_t s = d.window_parent[k];
    const Trajectory whole = m.lift(d.train_whole[s], d.train_whole_ids[s]);
    const Vector at = (Vector(1) << d.train[k].times[0]).finished();
    const double expected = at[0] == whole.t0 ? 0.0 : solver.solve(theta, whole.t0, whole.z0, at).states(0, 2);
    BOOST_CHECK_SMALL(it->second[k] - expected, 1e-6);  // (solved for all windows at once: rtol 1e-6)
    largest = std::max(largest, std::abs(it->second[k]));
  }
  BOOST_CHECK(largest > 1e-4);  // not all zero: the model's own latent state moved
  // data.window_start = "zero" keeps the old behaviour (and stores nothing).
  const std::string zero_run = temp_dir() + "/zero_run";
  quiet_fit(config(file, {"data.window=4", "model.augment=1", "run.epochs=1", "data.window_start=\"zero\""}), zero_run);
  BOOST_CHECK(Checkpoint::read(zero_run + "/latest.h5").optimizer_vectors.count("window_start_states") == 0);
}

BOOST_AUTO_TEST_CASE(initial_state_rules_for_eval_predict_and_new_subjects) {
  // given with a 2-entry initial state and one observed channel (it used to fail: "state size 1
  // is smaller than the 2 channels or initial-state entries"): the second entry starts the
  // unobserved component.
  Dataset d({"x"}, {});
  for (int i = 0; i < 6; ++i) {
    Series s;
    s.id = "s" + std::to_string(i);
    s.t0 = 0;
    s.times = Vector::LinSpaced(5, 0.5, 2.5);
    s.values = (-s.times.array() * 0.3).exp().matrix() * (1 + 0.1 * i);
    s.initial_state = (Vector(2) << 1 + 0.1 * i, 0.5).finished();
    d.add(s);
  }
  const std::string file = temp_dir() + "/given2.h5";
  d.write(file);
  const Config g = config(file, {"model.initial_state=\"given\"", "model.augment=1", "data.normalize=false"});
  const FitData fd = load_fit_data(g);
  const Model m(g.model, 1);
  const Trajectory tr = m.lift(fd.train[0], fd.train_ids[0]);
  BOOST_CHECK_EQUAL(tr.z0.size(), 2);
  BOOST_CHECK_EQUAL(tr.z0[1], 0.5);
  BOOST_CHECK_EQUAL(tr.t0, 0.0);
  const Config too_small = config(file, {"model.initial_state=\"given\"", "data.normalize=false"});
  expect_error<DataError>([&] { Model(too_small.model, 1).lift(load_fit_data(too_small).train[0], "s0"); },
                          {"2-entry initial state", "has 1 components"});

  // learned: training series start from their learned z0 in eval and predict; a new subject
  // from its first observation with the unobserved components at the mean learned value.
  const std::string lv = lv_file("lv", 12, 10, 4);
  const Config l = config(lv, {"model.initial_state=\"learned\"", "model.augment=1", "run.epochs=3"});
  const std::string run = temp_dir() + "/learned_run";
  const FitResult r = quiet_fit(l, run);
  const TrainedModel tm = load_trained(run + "/latest.h5");
  const FitData data = load_model_data(tm);
  const Model& model = *tm.model;
  const int Q = model.shared_params(), N = model.state_size();
  const Vector own = r.state.params.segment(Q, N);  // the first training series' z0
  BOOST_CHECK(tm.lift(data.train[0], data.train_ids[0]).z0 == own);
  Vector mean = Vector::Zero(1);
  const Eigen::Index S = (r.state.params.size() - Q) / N;
  for (Eigen::Index i = 0; i < S; ++i) mean[0] += r.state.params[Q + i * N + 2];
  mean /= static_cast<double>(S);
  const Trajectory fresh = tm.lift(data.val[0], data.val_ids[0]);
  BOOST_CHECK_CLOSE(fresh.z0[2], mean[0], 1e-10);
  // (Its observed components as the rule gives them: here the stored initial state.)
  BOOST_CHECK(fresh.z0.head(2) == model.lift(data.val[0], data.val_ids[0]).z0.head(2));
  BOOST_CHECK(std::abs(mean[0]) > 0);
}

BOOST_AUTO_TEST_CASE(inputs_are_standardised_with_the_training_statistics) {
  // Covariates and controls reach the model standardised with the training part's mean and std
  // (inputs in the order [controls; covariates]); the statistics travel in the checkpoint.
  Dataset d({"x"}, {});
  d.set_covariate_names({"WT"});
  d.set_control_names({"food"});
  for (int i = 0; i < 8; ++i) {
    Series s;
    s.id = "s" + std::to_string(i);
    s.times = Vector::LinSpaced(3, 0, 2);
    s.values = Matrix::Ones(3, 1) * (1 + i);
    s.covariates = Vector::Constant(1, 50.0 + 5 * i);
    s.control_times = (Vector(2) << 0.0, 1.0).finished();
    s.control_values = (Matrix(2, 1) << 0.0, 10.0 * (i % 2)).finished();
    d.add(s);
  }
  const std::string file = temp_dir() + "/inputs.h5";
  d.write(file);
  const FitData f = load_fit_data(config(file, {"data.train_fraction=0.5", "data.val_fraction=0.25"}));
  BOOST_REQUIRE_EQUAL(f.input_normalization.mean.size(), 2);
  // From the training series alone.
  double wt = 0, food = 0;
  const Split sp = d.split(0.5, 0.25, 0);
  for (std::size_t i : sp.train) {
    wt += d.series(i).covariates[0];
    food += d.series(i).control_values.sum();
  }
  BOOST_CHECK_CLOSE(f.input_normalization.mean[1], wt / sp.train.size(), 1e-12);
  BOOST_CHECK_CLOSE(f.input_normalization.mean[0], food / (2.0 * sp.train.size()), 1e-12);
  const Series raw = d.series(sp.validation[0]);
  BOOST_CHECK_CLOSE(f.val[0].covariates[0],
                    (raw.covariates[0] - f.input_normalization.mean[1]) / f.input_normalization.std[1], 1e-12);
  BOOST_CHECK_CLOSE(f.val[0].controls.values(1, 0) + 10.0,
                    (raw.control_values(1, 0) - f.input_normalization.mean[0]) / f.input_normalization.std[0] + 10.0, 1e-12);
  // A checkpoint keeps them.
  Checkpoint ck;
  ck.model_spec = "{}";
  ck.parameters = Vector::Ones(3);
  ck.config = "x";
  ck.normalization = f.normalization;
  ck.input_normalization = f.input_normalization;
  ck.write(temp_dir() + "/inputs_ck.h5");
  const Checkpoint back = Checkpoint::read(temp_dir() + "/inputs_ck.h5");
  BOOST_CHECK(back.input_normalization.mean == f.input_normalization.mean);
  BOOST_CHECK(back.input_normalization.std == f.input_normalization.std);
  // data.normalize = false (a hybrid's physics in data units) leaves the channels raw, not the
  // inputs: only the network reads them (a raw 50-85 kg would saturate its tanh layer).
  const FitData r = load_fit_data(config(file, {"data.normalize=false", "data.train_fraction=0.5", "data.val_fraction=0.25"}));
  BOOST_CHECK(r.normalization.empty());
  BOOST_CHECK(r.input_normalization.mean == f.input_normalization.mean);
  BOOST_CHECK_CLOSE(r.val[0].covariates[0], f.val[0].covariates[0], 1e-12);
}

BOOST_AUTO_TEST_CASE(predictions_are_back_transformed_to_data_units) {
  // A model whose dynamics are zero keeps its first observation: in data units every predicted
  // value must be that observation itself, through log and normalisation and back (without the
  // back-transform predict would return log-normalised numbers around 0).
  const std::string file = lv_file("lv", 12, 10, 4);
  const Config c = config(file, {"data.transform=[\"log\", \"log1p\"]", "run.epochs=1", "model.hidden=[]"});
  const std::string run = temp_dir() + "/transform_run";
  quiet_fit(c, run);
  Checkpoint ck = Checkpoint::read(run + "/best.h5");
  ck.parameters.setZero();  // no hidden layer: f = W z + b = 0
  ck.write(run + "/zero.h5");
  const TrainedModel tm = load_trained(run + "/zero.h5");
  BOOST_REQUIRE(tm.transforms.size() == 2 && tm.transforms[1] == ChannelTransform::Log1p);
  const FitData data = load_model_data(tm);
  std::vector<Vector> times;
  for (const auto& tr : data.val) times.push_back(tr.times);
  const auto pred = predict(tm, data.val, data.val_ids, times, c.train.solver, 1);
  const Dataset raw = Dataset::read(file);
  BOOST_REQUIRE(!pred.empty());
  for (std::size_t s = 0; s < pred.size(); ++s) {
    BOOST_REQUIRE(pred[s].error.empty());
    std::size_t i = 0;
    while (raw.id(i) != data.val_ids[s]) ++i;
    const Series obs = raw.series(i);
    for (Eigen::Index k = 0; k < pred[s].values.rows(); ++k)
      for (int ch = 0; ch < 2; ++ch) BOOST_CHECK_CLOSE(pred[s].values(k, ch), obs.values(0, ch), 1e-9);
  }
}

BOOST_AUTO_TEST_CASE(a_single_dose_into_an_unobserved_depot) {
  // Generated oral PK data, one dose per subject at t = 0: with model.initial_state = zero the
  // dose is the initial state of the unobserved depot (component 1 by data.compartment_states),
  // the concentration channel is scaled without a shift (0 must mean no drug) and the weight
  // covariate is left out by data.ignore. The linear model with the subject's true rates then
  // reproduces the closed-form Bateman concentration in data units.
  PkOptions po;
  po.subjects = 6;
  po.observations = 8;
  po.seed = 3;
  std::vector<PkSubject> truth;
  const std::string file = temp_dir() + "/pk1.h5";
  generate_pk(po, &truth).write(file);
  const Config c = config(file, {"model.initial_state=\"zero\"", "model.augment=1", "model.hidden=[]",
                                 "model.activation=\"identity\"", "model.bias=false", "data.compartment_states=[1, 0]",
                                 "data.dose_scale=[0.01, 1.0]", "data.ignore=[\"WT\"]", "data.train_fraction=1",
                                 "data.val_fraction=0", "solver.rtol=1e-10", "solver.atol=1e-12"});
  const FitData d = load_fit_data(c);
  BOOST_CHECK_EQUAL(d.normalization.mean[0], 0.0);
  BOOST_CHECK(d.input_normalization.empty());
  const Model m(c.model, 1);
  const Dataset raw = Dataset::read(file);
  for (std::size_t s = 0; s < d.train.size(); ++s) {
    BOOST_REQUIRE_EQUAL(d.train[s].covariates.size(), 0);
    const Trajectory tr = m.lift(d.train[s], d.train_ids[s]);
    const Series obs = raw.series(s);
    BOOST_REQUIRE_EQUAL(obs.events.size(), 1u);
    BOOST_CHECK(tr.events.empty());  // applied as the initial state
    BOOST_CHECK_EQUAL(tr.t0, 0.0);
    BOOST_CHECK_EQUAL(tr.z0[0], 0.0);
    BOOST_CHECK_CLOSE(tr.z0[1], 0.01 * obs.events[0].amount, 1e-12);
    // dc/dt = ka d / (0.01 V std) - ke c, dd/dt = -ka d (c normalised, d in 0.01 mg).
    const PkSubject& p = truth[s];
    const double sd = d.normalization.std[0];
    Vector theta = Vector::Zero(m.network_params());  // [W row-major, b = 0]
    theta.head(4) << -p.ke, p.ka / (0.01 * p.V * sd), 0.0, -p.ka;
    Solver solver(m.dynamics(), c.train.solver);
    const Solution sol = solver.solve(theta, tr.t0, tr.z0, tr.times);
    for (Eigen::Index k = 0; k < tr.times.size(); ++k) {
      const double exact = bateman_concentration(tr.times[k], obs.events, p.ka, p.ke, p.V);
      BOOST_CHECK_CLOSE(sol.states(k, 0) * sd, exact, 1e-6);
    }
  }
  // Names that are not inputs of the file are refused with the ones that are.
  expect_error<ConfigError>([&] { load_fit_data(config(file, {"data.ignore=[\"AGE\"]"})); },
                            {"data.ignore has \"AGE\"", file, "covariates: WT"});
  // zero with a log-transformed channel cannot start at 0.
  expect_error<ConfigError>(
      [&] { load_fit_data(config(file, {"model.initial_state=\"zero\"", "model.augment=1", "data.compartment_states=[1, 0]",
                                           "data.transform=[\"log\"]", "data.ignore=[\"WT\"]"})); },
      {"data.transform = log on channel 'conc'", "model.initial_state = zero"});
}

BOOST_AUTO_TEST_CASE(two_doses_and_the_weight_reach_the_solver) {
  // Two oral doses 12 h apart and the weight covariate as a network input (issue 12: the second
  // dose used to be refused, the covariate ignored). The first dose is the initial state
  // (initial_state = zero), the second an event the engine applies; the weight reaches the first
  // layer standardised with the training statistics.
  PkOptions po;
  po.subjects = 6;
  po.observations = 10;
  po.doses = 2;
  po.seed = 4;
  std::vector<PkSubject> truth;
  const std::string file = temp_dir() + "/pk2.h5";
  generate_pk(po, &truth).write(file);
  const std::vector<std::string> keys = {"model.initial_state=\"zero\"", "model.augment=1", "model.hidden=[]",
                                         "model.activation=\"identity\"", "model.bias=false",
                                         "data.compartment_states=[1, 0]", "data.dose_scale=[0.01, 1.0]",
                                         "data.train_fraction=1", "data.val_fraction=0", "solver.rtol=1e-10",
                                         "solver.atol=1e-12"};
  const Config c = config(file, keys);
  const FitData d = load_fit_data(c);
  BOOST_CHECK_EQUAL(d.inputs, 1);
  const Model m(c.model, 1, d.inputs);
  BOOST_CHECK_EQUAL(m.dynamics().input_size(), 1);
  BOOST_CHECK_EQUAL(m.network_params(), 8);  // W: 2 x [conc, depot, WT], biases (frozen at 0)
  const Dataset raw = Dataset::read(file);
  const double sd = d.normalization.std[0];
  Solver solver(m.dynamics(), c.train.solver);
  for (std::size_t s = 0; s < d.train.size(); ++s) {
    const Trajectory tr = m.lift(d.train[s], d.train_ids[s]);
    const Series obs = raw.series(s);
    BOOST_REQUIRE_EQUAL(obs.events.size(), 2u);
    BOOST_REQUIRE_EQUAL(tr.events.size(), 1u);  // the first is z0, the second waits at t = 12
    BOOST_CHECK_EQUAL(tr.events[0].time, 12.0);
    BOOST_CHECK_EQUAL(tr.events[0].compartment, 1);
    BOOST_CHECK_CLOSE(tr.events[0].amount, 0.01 * obs.events[1].amount, 1e-12);
    BOOST_REQUIRE_EQUAL(tr.covariates.size(), 1);
    BOOST_CHECK_CLOSE(tr.covariates[0], (obs.covariates[0] - d.input_normalization.mean[0]) / d.input_normalization.std[0],
                      1e-10);
    // The subject's true rates (no weight term): both doses, superposed, to 1e-6.
    const PkSubject& p = truth[s];
    Vector theta = Vector::Zero(8);
    theta.head(6) << -p.ke, p.ka / (0.01 * p.V * sd), 0.0, 0.0, -p.ka, 0.0;
    const Solution sol = solver.solve(theta, tr);
    for (Eigen::Index k = 0; k < tr.times.size(); ++k)
      BOOST_CHECK_CLOSE(sol.states(k, 0) * sd, bateman_concentration(tr.times[k], obs.events, p.ka, p.ke, p.V), 1e-6);
    // Only the weight column: dconc/dt = u, so conc(t) = u t exactly (the doses stay in the depot).
    Vector only_u = Vector::Zero(8);
    only_u[2] = 1.0;
    const Solution lin = solver.solve(only_u, tr);
    for (Eigen::Index k = 0; k < tr.times.size(); ++k)
      BOOST_CHECK_CLOSE(lin.states(k, 0), tr.covariates[0] * tr.times[k], 1e-8);
  }

  // Windows carry the dose that falls inside them, and the depot at a window's start comes from
  // the model's own solution of the whole series with its doses (data.window_start = model).
  const Config wc = config(file, {"model.initial_state=\"zero\"", "model.augment=1", "model.hidden=[4]",
                                  "data.compartment_states=[1, 0]", "data.dose_scale=[0.01, 1.0]", "data.window=4",
                                  "data.train_fraction=1", "data.val_fraction=0", "run.epochs=1"});
  FitDataOptions w;
  w.windows = true;
  const FitData wd = load_fit_data(wc, w);
  bool carried = false;
  for (const Trajectory& win : wd.train) {
    const bool spans = win.times[0] <= 12.0 && win.times[win.times.size() - 1] >= 12.0;
    BOOST_CHECK_EQUAL(win.events.size(), spans ? 1u : 0u);
    carried = carried || spans;
    BOOST_CHECK_EQUAL(win.covariates.size(), 1);
  }
  BOOST_CHECK(carried);
  const std::string run = temp_dir() + "/pk2_windows";
  quiet_fit(wc, run);
  const Checkpoint ck = Checkpoint::read(run + "/latest.h5");
  const Vector& warm = ck.optimizer_vectors.at("window_start_states");
  BOOST_REQUIRE_EQUAL(warm.size(), static_cast<Eigen::Index>(wd.train.size()));
  const Model wm(wc.model, 1, 1);
  Solver ws(wm.dynamics(), wc.train.solver);
  const Vector theta0 = wm.initial_parameters();  // the parameters at the start of epoch 1
  double after_second = 0;
  for (std::size_t k = 0; k < wd.train.size(); ++k) {
    Trajectory whole = wm.lift(wd.train_whole[wd.window_parent[k]], "whole");
    const double start = wd.train[k].times[0];
    whole.times = (Vector(1) << start).finished();
    whole.values = whole.mask = Matrix::Zero(1, 1);
    whole.events.erase(std::remove_if(whole.events.begin(), whole.events.end(), [&](const Event& e) { return e.time > start; }),
                       whole.events.end());
    const double expected = ws.solve(theta0, whole).states(0, 1);
    BOOST_CHECK_CLOSE(warm[k], expected, 1e-4);  // (all windows of a series in one solve: rtol 1e-6)
    if (start > 12.0) after_second = std::max(after_second, expected);
  }
  // After the second dose the depot holds more than the first dose's remainder: the event counted.
  BOOST_CHECK(after_second > 0.1);
  // The checkpoint records the inputs and gives the same model back.
  const TrainedModel tm = load_trained(run + "/latest.h5");
  BOOST_CHECK_EQUAL(tm.model->inputs(), 1);
  BOOST_CHECK(tm.checkpoint.model_spec.find("\"inputs\":1") != std::string::npos);

  // The auto mode moves every series to t0 = 0 for stacking (autonomous dynamics): a window's
  // dose moves with it (solved on its own), so its solution is the same, shifted.
  TrainerSettings as;
  as.run.batch_mode = BatchMode::Auto;
  as.run.threads = 1;
  std::vector<Trajectory> lifted_windows;
  for (std::size_t k = 0; k < wd.train.size(); ++k) {
    Trajectory win = wd.train[k];
    win.z0.resize(0);  // the rule's own start (zero-rule windows start from their observation)
    if (!win.events.empty() && win.times[0] > 0) lifted_windows.push_back(win);
  }
  BOOST_REQUIRE(!lifted_windows.empty());
  const Trainer shifted(wm, lifted_windows, std::vector<std::string>(lifted_windows.size(), "w"), {}, {}, as);
  for (std::size_t k = 0; k < lifted_windows.size(); ++k) {
    const Trajectory& a = shifted.train_series()[k];
    const Trajectory b = wm.lift(lifted_windows[k], "w");
    BOOST_REQUIRE_EQUAL(a.events.size(), b.events.size());
    BOOST_CHECK_EQUAL(a.t0, 0.0);
    BOOST_CHECK_CLOSE(a.events[0].time, b.events[0].time - b.t0, 1e-7);
    const Matrix sa = ws.solve(theta0, a).states, sb = ws.solve(theta0, b).states;
    BOOST_CHECK_SMALL((sa - sb).cwiseAbs().maxCoeff(), 1e-6);  // other steps, same solution (rtol 1e-6)
  }

  // The stacked mode cannot take series with their own events and inputs: refused once, clearly.
  TrainerSettings ts;
  ts.run.batch_mode = BatchMode::Stacked;
  ts.run.threads = 1;
  std::vector<Trajectory> series(d.train.begin(), d.train.begin() + 2);
  expect_error<OptionsError>([&] { Trainer(m, series, {d.train_ids[0], d.train_ids[1]}, {}, {}, ts); },
                             {"run.batch_mode = \"stacked\"", "series '" + d.train_ids[0] + "' has 1 event(s)",
                              "per_series"});
}

BOOST_AUTO_TEST_CASE(a_forecast_starts_from_the_state_fitted_to_its_past) {
  // data.forecast_history = H: the state at the first of the H known observations is fitted to
  // them (Levenberg-Marquardt on z0). With the true predator-prey dynamics and exact
  // observations of the prey alone, the fit recovers the whole state, the unobserved predator
  // included, from a start 20% off; the past rows are then masked, the forecast rows kept.
  const LotkaVolterra lv;
  const Vector theta = LotkaVolterra::default_parameters();
  SolverOptions exact;
  exact.rtol = 1e-11;
  exact.atol = 1e-13;
  Solver solver(lv, exact);
  const Vector truth = (Vector(2) << 1.2, 0.8).finished();
  const Vector times = Vector::LinSpaced(30, 0.0, 6.0);
  const Matrix states = solver.solve(theta, 0.0, truth, times).states;
  Trajectory tr;
  tr.t0 = 0;
  tr.times = times;
  tr.values = states.leftCols(1);  // prey only
  tr.z0 = (Vector(2) << 1.2 * 0.8, 0.8 * 1.2).finished();
  const int H = 12;  // t <= 2.28: about a third of a period
  std::vector<Trajectory> lifted{tr};
  SolverOptions run;
  run.rtol = 1e-6;
  run.atol = 1e-8;
  start_forecasts(lv, theta, lifted, {H}, run, 1);
  BOOST_TEST_MESSAGE("fitted z0 " << lifted[0].z0.transpose() << ", truth " << truth.transpose());
  // The sensitivities come from solves at rtol 1e-8: the start is right to about that.
  BOOST_CHECK_SMALL((lifted[0].z0 - truth).cwiseAbs().maxCoeff(), 1e-6);
  BOOST_REQUIRE_EQUAL(lifted[0].mask.rows(), 30);
  BOOST_CHECK_EQUAL(lifted[0].mask.topRows(H).sum(), 0.0);
  BOOST_CHECK_EQUAL(lifted[0].mask.bottomRows(30 - H).sum(), 30.0 - H);
  // history <= 1 leaves a series alone (its start is the origin's observation).
  std::vector<Trajectory> one{tr};
  start_forecasts(lv, theta, one, {1}, run, 1);
  BOOST_CHECK(one[0].z0 == tr.z0);
  BOOST_CHECK_EQUAL(one[0].mask.size(), 0);

  // Through load_fit_data: the forecast windows begin H observations before the origin and
  // score only what follows it.
  const std::string file = lv_file("lv_long", 1, 120, 24, 7);
  const Config c = config(file, {"data.split=\"time\"", "data.train_fraction=0.7", "data.val_fraction=0.1",
                                 "data.forecast_history=8"});
  const FitData d = load_fit_data(c);
  const FitData one_row = load_fit_data(config(file, {"data.split=\"time\"", "data.train_fraction=0.7",
                                                      "data.val_fraction=0.1"}));
  BOOST_REQUIRE_EQUAL(d.test.size(), 1u);
  BOOST_CHECK_EQUAL(d.test_history[0], 8);
  BOOST_CHECK_EQUAL(one_row.test_history[0], 1);
  BOOST_CHECK_EQUAL(d.test[0].times.size(), one_row.test[0].times.size() + 7);
  BOOST_CHECK_EQUAL(d.test[0].times[7], one_row.test[0].times[0]);  // the origin
  expect_error<ConfigError>([&] { load_fit_data(config(file, {"data.forecast_history=4"})); },
                            {"data.forecast_history = 4 needs data.split = \"time\""});
}

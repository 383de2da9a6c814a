// run.batch_mode and run.stack_size: configuration errors name the key, the keys round-trip
// through the printed configuration, and the stacked mode (several series as one ODE) gives the
// per-series loss and gradient to the accuracy the tolerances promise, on whole series (shared
// t0) and on windows (each shifted to start at t = 0, the dynamics being autonomous), and a
// stacked fit does not depend on the thread count beyond round-off (stacked_fit_is_thread_independent); and
// solver.method = dopri5 through the same path.
// ctest: labels=integration timeout=180
#define BOOST_TEST_MODULE train_batch_mode
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <cmath>
#include <stdexcept>
#include <filesystem>

#include "app/config.h"
#include "app/fit.h"
#include "cvnode/generators.h"
#include "cvnode/trainer.h"
#include "test_util.h"

using namespace cvnode;
namespace fs = std::filesystem;

namespace {

const std::string& dataset() {
  static const std::string path = [] {
    const std::string dir = cvnode::test::make_temp_dir("batch_mode");
    GeneratorOptions g;
    g.system = "lotka_volterra";
    g.series = 12;
    g.observations = 12;
    g.t_end = 4;
    g.noise = 0.01;
    g.seed = 5;
    const std::string p = dir + "/lv.h5";
    generate(g).write(p);
    return p;
  }();
  return path;
}

std::string config_text(int window) {
  return "[data]\nfile = \"" + dataset() + "\"\ntrain_fraction = 1.0\nval_fraction = 0.0\n" +
         "window = " + std::to_string(window) + "\n" +
         "[model]\nhidden = [16]\nseed = 3\n"
         "[solver]\nrtol = 1e-9\natol = 1e-11\n"
         "[run]\nthreads = 2\n";
}

std::string message(const std::string& text, const std::vector<std::string>& ov = {}) {
  try {
    Config::parse(text, "bm.toml", ov);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// Loss and gradient of all training series of `c` as one minibatch, in `mode`.
BatchGradient batch_gradient(const Config& c, BatchMode mode, int stack_size) {
  FitDataOptions windows;
  windows.windows = true;
  const FitData d = load_fit_data(c, windows);
  Model model(c.model, d.channels);
  TrainerSettings s = c.train;
  s.run.batch_mode = mode;
  s.run.stack_size = stack_size;
  // The Trainer lifts the series and applies the t0 shift of the stacked modes.
  Trainer t(model, d.train, d.train_ids, d.val, d.val_ids, s);
  ThreadBackend backend(model.mlp(), s.solver, BatchOptions{2, mode, stack_size});
  return backend.gradient(t.network(t.state().params), Problem(t.train_series(), make_loss(s.loss)));
}

// A quiet fit in a temporary folder, removed afterwards.
FitResult quiet_fit(const Config& c) {
  const std::string dir = cvnode::test::make_temp_dir("batch_fit");
  FitOptions fo;
  fo.out_dir = dir;
  fo.quiet = true;
  FitResult r = run_fit(c, fo);
  fs::remove_all(dir);
  return r;
}

}  // namespace

BOOST_AUTO_TEST_CASE(batch_mode_keys_name_the_key) {
  const std::string base = "[data]\nfile = \"x.h5\"\n";
  std::string m = message(base + "[run]\nbatch_mode = \"stackd\"\n");
  BOOST_TEST(m.find("bm.toml") != std::string::npos);
  BOOST_TEST(m.find("run.batch_mode") != std::string::npos);
  BOOST_TEST(m.find("per_series") != std::string::npos);  // the choices are listed
  m = message(base + "[run]\nbatch_mode = 2\n");
  BOOST_TEST(m.find("run.batch_mode") != std::string::npos);
  m = message(base, {"run.stack_size=0"});
  BOOST_TEST(m.find("run.stack_size") != std::string::npos);
  m = message(base, {"run.stack_size=\"big\""});
  BOOST_TEST(m.find("run.stack_size") != std::string::npos);
  m = message(base, {"run.batch_mode=stacked", "loss.kinetic_weight=0.1"});
  BOOST_TEST(m.find("run.batch_mode") != std::string::npos);

  const Config c = Config::parse(base, "bm.toml", {"run.batch_mode=stacked", "run.stack_size=8"});
  BOOST_TEST(c.train.run.stack_size == 8);
  BOOST_TEST((c.train.run.batch_mode == BatchMode::Stacked));
  const std::string toml = c.to_toml();
  BOOST_TEST(toml.find("batch_mode = \"stacked\"") != std::string::npos);
  const Config back = Config::parse(toml, "printed");
  BOOST_TEST((back.train.run.batch_mode == BatchMode::Stacked));
  BOOST_TEST(back.train.run.stack_size == 8);
  BOOST_TEST((Config::parse(base, "bm.toml").train.run.batch_mode == BatchMode::PerSeries));
}

// Per-series and stacked solves take different steps (the stacked error test is a WRMS norm over
// all stacked components), so they agree to the integration error, not bitwise. At rtol 1e-9 the
// states agree to ~1e-8 relative; the loss (residuals ~1e-2 of the states) and the gradient
// (an adjoint solved at the same tolerance) agree to well within 1e-5 relative.
BOOST_AUTO_TEST_CASE(stacked_matches_per_series) {
  for (int window : {0, 4}) {
    const Config c = Config::parse(config_text(window), "bm.toml");
    const BatchGradient per = batch_gradient(c, BatchMode::PerSeries, 32);
    for (int stack : {5, 32}) {
      const BatchGradient st = batch_gradient(c, BatchMode::Stacked, stack);
      BOOST_TEST_CONTEXT("window " << window << ", stack " << stack) {
        BOOST_TEST(per.failures.empty());
        BOOST_TEST(st.failures.empty());
        BOOST_TEST(std::abs(st.loss - per.loss) <= 1e-5 * per.loss);
        BOOST_TEST((st.theta - per.theta).norm() <= 1e-5 * per.theta.norm());
      }
    }
  }
}

// The whole fit runs in stacked mode on windows (shifted to t0 = 0), and the thread count does not
// change the work units (the stack size decides them): the losses are the same bits. (They once
// differed in the last bits: the stacked solver built on a worker thread got CVODES vectors at
// differently aligned heap addresses, and Eigen's kernels round differently by alignment; the
// solver's callbacks now compute in their own aligned buffers.)
BOOST_AUTO_TEST_CASE(stacked_fit_is_thread_independent) {
  std::vector<double> losses[2];
  for (int threads : {1, 2}) {
    const Config c = Config::parse(config_text(4), "bm.toml",
                                   {"run.batch_mode=stacked", "run.stack_size=6", "run.epochs=3",
                                    "run.batch_size=12", "run.threads=" + std::to_string(threads),
                                    "data.train_fraction=0.75", "data.val_fraction=0.25"});
    for (const auto& m : quiet_fit(c).state.history) {
      losses[threads - 1].push_back(m.train_loss);
      losses[threads - 1].push_back(m.val_loss);
    }
  }
  BOOST_TEST(losses[0].size() == 6u);
  for (double l : losses[0]) BOOST_TEST(std::isfinite(l));
  BOOST_REQUIRE(losses[1].size() == losses[0].size());
  for (std::size_t i = 0; i < losses[0].size(); ++i)
    BOOST_TEST(losses[0][i] == losses[1][i]);
}

// solver.method = dopri5 through the whole training path: the configuration's gradient on
// windows and whole series equals the adjoint's (both converged at rtol 1e-9: their gap is the
// solvers' error, measured 2e-9, bounded at 1e-6), and a fit with it is thread-independent bits.
BOOST_AUTO_TEST_CASE(dopri5_trains_with_the_adjoints_gradient) {
  for (int window : {0, 4}) {
    const Config adj = Config::parse(config_text(window), "bm.toml");
    const Config rk = Config::parse(config_text(window), "bm.toml", {"solver.method=dopri5"});
    BOOST_TEST((rk.train.solver.method == "dopri5"));
    const BatchGradient a = batch_gradient(adj, BatchMode::PerSeries, 32);
    const BatchGradient b = batch_gradient(rk, BatchMode::PerSeries, 32);
    BOOST_TEST_MESSAGE("window " << window << ": dopri5 vs adjoint, loss " << std::abs(b.loss - a.loss) / a.loss
                                  << ", gradient " << (b.theta - a.theta).norm() / a.theta.norm());
    BOOST_TEST_CONTEXT("window " << window) {
      BOOST_TEST(b.failures.empty());
      BOOST_TEST(std::abs(b.loss - a.loss) <= 1e-6 * a.loss);
      BOOST_TEST((b.theta - a.theta).norm() <= 1e-6 * a.theta.norm());
    }
  }
  std::vector<double> losses[2];
  for (int threads : {1, 2}) {
    const Config c = Config::parse(config_text(4), "bm.toml",
                                   {"solver.method=dopri5", "run.epochs=3", "run.batch_size=12",
                                    "run.threads=" + std::to_string(threads), "data.train_fraction=0.75",
                                    "data.val_fraction=0.25"});
    for (const auto& m : quiet_fit(c).state.history) losses[threads - 1].push_back(m.train_loss);
  }
  BOOST_REQUIRE(losses[0].size() == 3u);
  BOOST_TEST(losses[0].back() < losses[0].front());
  BOOST_REQUIRE(losses[1].size() == losses[0].size());
  for (std::size_t i = 0; i < losses[0].size(); ++i) BOOST_TEST(losses[0][i] == losses[1][i]);
}

// The stacked modes move every series to t0 = 0 on one grid relative to the data's times
// (src/train/shift_times.h): in any time unit the shifted times stay within 1e-11 (relative) of
// the exact offsets and strictly increasing, and series whose offsets are equal in exact
// arithmetic get equal doubles. An absolute 2^-30 grid collapsed every observation closer than
// ~1e-9 time units: in the 1e-10 unit all of a series' times became 0 and the Trainer refused
// them (times not increasing).
BOOST_AUTO_TEST_CASE(stacked_time_shift_is_relative_to_the_time_unit) {
  ModelOptions mo;
  mo.hidden = {4};
  const Model model(mo, 1);
  TrainerSettings s;
  s.run.batch_mode = BatchMode::Stacked;
  s.run.threads = 1;
  const double offsets[] = {0.1, 0.2, 0.7};
  for (double unit : {1e-10, 1.0, 1e6}) {
    BOOST_TEST_CONTEXT("time unit " << unit) {
      std::vector<Trajectory> series;
      for (int b = 0; b < 3; ++b) {
        Trajectory tr;
        tr.t0 = unit * (0.3 + 0.8 * b);
        tr.times.resize(3);
        for (int k = 0; k < 3; ++k) tr.times[k] = tr.t0 + unit * offsets[k];
        tr.values = Matrix::Constant(3, 1, 0.5);
        series.push_back(tr);
      }
      const Trainer t(model, series, {"a", "b", "c"}, {}, {}, s);
      const auto& shifted = t.train_series();
      BOOST_TEST_REQUIRE(shifted.size() == 3u);
      for (const Trajectory& tr : shifted) {
        BOOST_TEST(tr.t0 == 0.0);
        // The model's initial-state rule starts a series at its first observation.
        for (int k = 0; k < 3; ++k)
          BOOST_TEST(std::abs(tr.times[k] - unit * (offsets[k] - offsets[0])) <= 1e-11 * unit);
        BOOST_TEST((tr.times.array() == shifted[0].times.array()).all());
      }
    }
  }
}

// loss.scale = "std" over windows: each observation once. Consecutive windows share their end
// point (window 4 on 12 observations: rows 0-3, 3-6, 6-9, 9-11), and counting those rows twice
// gave weights 1/std^2 off by ~1%; the reference is the standard deviation over the whole
// training series (no masks here, so the windows cover exactly their rows), to round-off.
BOOST_AUTO_TEST_CASE(loss_scale_counts_each_observation_once_over_windows) {
  const Config c = Config::parse(config_text(4) + "[loss]\nscale = \"std\"\n", "bm.toml");
  const Vector w = resolve_loss_scale(c).train.loss.weight;
  const FitData whole = load_fit_data(c, FitDataOptions{});
  BOOST_TEST_REQUIRE(w.size() == whole.channels);
  for (int i = 0; i < whole.channels; ++i) {
    double sum = 0, sum2 = 0;
    long count = 0;
    for (const Trajectory& tr : whole.train)
      for (Eigen::Index k = 0; k < tr.values.rows(); ++k, ++count) {
        sum += tr.values(k, i);
        sum2 += tr.values(k, i) * tr.values(k, i);
      }
    const double var = (sum2 - sum * sum / count) / (count - 1);
    BOOST_TEST(w[i] == 1 / var, boost::test_tools::tolerance(1e-10));
  }
}

// The fit pipeline end to end on a small generated Lotka-Volterra dataset: bit-identical results
// for 1 and 2 threads, --resume after stopping equals an uninterrupted run, checkpoints carry the
// configuration, a series that makes the solver fail is reported and skipped, and configuration
// errors name the key and the file.
// ctest: labels=integration timeout=300
#define BOOST_TEST_MODULE train_fit
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cvnode/checkpoint.h"
#include "app/config.h"
#include "app/fit.h"
#include "cvnode/generators.h"
#include "test_util.h"

using namespace cvnode;
namespace fs = std::filesystem;

namespace {

std::string temp_dir(const std::string& tag) { return cvnode::test::make_temp_dir("fit_" + tag); }

// 16 short series keep each epoch around a tenth of a second.
const std::string& dataset() {
  static const std::string path = [] {
    const std::string p = temp_dir("data") + "/lv.h5";
    cvnode::test::write_lotka_volterra(p, 16, 12, 4, 11);
    return p;
  }();
  return path;
}

std::string config_text(const std::string& data, int threads) {
  return "[data]\nfile = \"" + data + "\"\ntrain_fraction = 0.75\nval_fraction = 0.25\n"
         "[model]\nhidden = [16]\nseed = 4\n"
         "[solver]\nrtol = 1e-6\natol = 1e-8\n"
         "[optimizer]\nlr = 0.02\nclip_norm = 10.0\n"
         "[schedule]\nkind = \"cosine\"\n"
         "[run]\nepochs = 5\nbatch_size = 4\nthreads = " + std::to_string(threads) + "\n";
}

FitResult fit(const Config& c, const std::string& out, int stop = 0, const std::string& resume = "") {
  return cvnode::test::fit_quietly(c, out, stop, resume);
}

void expect_identical(const TrainState& a, const TrainState& b) {
  BOOST_TEST_REQUIRE(a.history.size() == b.history.size());
  for (std::size_t e = 0; e < a.history.size(); ++e) {
    // Exact comparisons: the claim is bit-identical, not close.
    BOOST_TEST(a.history[e].train_loss == b.history[e].train_loss);
    BOOST_TEST(a.history[e].val_loss == b.history[e].val_loss);
    BOOST_TEST(a.history[e].nfe_forward == b.history[e].nfe_forward);
  }
  BOOST_TEST((a.params.array() == b.params.array()).all());
}

}  // namespace

BOOST_AUTO_TEST_CASE(threads_and_resume_are_bit_identical) {
  const Config c1 = Config::parse(config_text(dataset(), 1), "test1");
  const Config c2 = Config::parse(config_text(dataset(), 2), "test2");
  const FitResult one = fit(c1, temp_dir("t1"));
  const FitResult two = fit(c2, temp_dir("t2"));
  BOOST_TEST_MESSAGE("5 epochs: train loss " << one.state.history.front().train_loss << " -> "
                     << one.state.history.back().train_loss << ", " << one.seconds << " s (1 thread), "
                     << two.seconds << " s (2 threads)");
  // The fit learns something (the losses fall) and the threads do not change a bit.
  BOOST_TEST(one.state.history.back().train_loss < 0.8 * one.state.history.front().train_loss);
  expect_identical(one.state, two.state);

  // Stop after epoch 2, then continue from the checkpoint with its stored configuration.
  const std::string dir = temp_dir("resume");
  const FitResult part = fit(c2, dir, 2);
  BOOST_TEST(part.state.epoch == 2);
  const Checkpoint ck = Checkpoint::read(dir + "/latest.h5");
  BOOST_TEST(ck.epoch == 2);
  const Config stored = Config::parse(ck.config, "checkpoint");
  BOOST_TEST(stored.to_toml() == c2.to_toml());
  const FitResult rest = fit(stored, dir, 0, dir + "/latest.h5");
  expect_identical(one.state, rest.state);
  // metrics.csv continues without duplicates: a header and 5 rows.
  std::ifstream f(dir + "/metrics.csv");
  int lines = 0;
  for (std::string l; std::getline(f, l);) ++lines;
  BOOST_TEST(lines == 6);
}

BOOST_AUTO_TEST_CASE(failing_series_is_reported_and_skipped) {
  // A copy of the data plus one series whose single long interval exceeds solver.max_steps.
  Dataset ds = Dataset::read(dataset());
  Series bad = ds.series(0);
  bad.id = "runaway";
  bad.times = Vector::LinSpaced(3, 0.5, 1e5);  // far beyond 500 steps whatever the parameters
  bad.values = bad.values.topRows(3).eval();
  bad.mask.resize(0, 0);
  ds.add(bad);
  const std::string dir = temp_dir("fail");
  ds.write(dir + "/lv_bad.h5");
  Config c = Config::parse(config_text(dir + "/lv_bad.h5", 2), "fail",
                           {"data.train_fraction=1.0", "data.val_fraction=0.0", "solver.max_steps=500",
                            "run.epochs=4"});
  FitOptions fo;
  fo.out_dir = dir + "/run";
  std::vector<std::string> lines;
  fo.log = [&](const std::string& l) { lines.push_back(l); };
  const FitResult r = run_fit(c, fo);
  int reports = 0;
  for (const auto& l : lines)
    if (l.find("series 'runaway' failed") != std::string::npos) ++reports;
  // In the training split every epoch: one failure, one report, per epoch.
  BOOST_TEST(r.state.failures_total == 4);
  BOOST_TEST(reports == 4);
  BOOST_TEST(r.state.rollbacks == 0);
  for (const auto& m : r.state.history) BOOST_TEST(std::isfinite(m.train_loss));
  BOOST_TEST(r.state.history.back().train_loss < r.state.history.front().train_loss);
}

BOOST_AUTO_TEST_CASE(config_errors_name_the_key) {
  auto message = [](const std::string& text, std::vector<std::string> ov = {}) -> std::string {
    try {
      Config::parse(text, "my.toml", ov);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  };
  const std::string base = "[data]\nfile = \"x.h5\"\n";
  std::string m = message(base + "[solver]\nrtoll = 1e-6\n");
  BOOST_TEST(m.find("my.toml") != std::string::npos);
  BOOST_TEST(m.find("solver.rtoll") != std::string::npos);
  m = message(base + "[solver]\nrtol = \"tight\"\n");
  BOOST_TEST(m.find("solver.rtol") != std::string::npos);
  m = message(base + "[solver]\nrtol = -1.0\n");
  BOOST_TEST(m.find("rtol") != std::string::npos);
  m = message(base + "[model]\nactivation = \"tanhh\"\n");
  BOOST_TEST(m.find("model.activation") != std::string::npos);
  m = message(base, {"optimizer.lr=0"});
  BOOST_TEST(m.find("optimizer.lr") != std::string::npos);
  m = message(base, {"optimizer.learning_rate=0.1"});
  BOOST_TEST(m.find("optimizer.learning_rate") != std::string::npos);
  // Overrides apply, bare words are strings, and the printed config reads back identically.
  const Config c = Config::parse(base, "my.toml", {"solver.rtol=1e-7", "solver.method=bdf", "model.hidden=[8, 8]"});
  BOOST_TEST(c.train.solver.rtol == 1e-7);
  BOOST_TEST(std::string(c.train.solver.method) == "bdf");
  BOOST_TEST(c.model.hidden.size() == 2u);
  BOOST_TEST(Config::parse(c.to_toml(), "again").to_toml() == c.to_toml());
}

BOOST_AUTO_TEST_CASE(augmented_learned_z0_time_input) {
  // Two augmented dimensions, time input and one learned initial state per training series:
  // the parameter vector is the network plus 12 x 4 initial states, which the checkpoint keeps,
  // and training lowers the loss.
  const Config c = Config::parse(config_text(dataset(), 2), "aug",
                                 {"model.augment=2", "model.time_input=true",
                                  "model.initial_state=learned", "run.epochs=6"});
  const std::string dir = temp_dir("aug");
  const FitResult r = fit(c, dir);
  const Model m(c.model, 2);
  BOOST_TEST(m.state_size() == 4);
  BOOST_TEST(r.state.params.size() == m.network_params() + 12 * 4);
  const Checkpoint ck = Checkpoint::read(dir + "/latest.h5");
  BOOST_TEST(ck.parameters.size() == r.state.params.size());
  // The learned initial states moved away from their start (first observation, zeros).
  const FitData d = load_fit_data(c);
  const Trajectory first = m.lift(d.train[0], d.train_ids[0]);
  const Vector z0 = r.state.params.segment(m.network_params(), 4);
  BOOST_TEST((z0 - first.z0).norm() > 1e-4);
  BOOST_TEST(r.state.history.back().train_loss < 0.9 * r.state.history.front().train_loss);
  BOOST_TEST(std::isfinite(r.state.history.back().val_loss));
}

BOOST_AUTO_TEST_CASE(window_curriculum_resumes_bit_identically) {
  // Windows of 4 observations for 2 epochs, then whole series: stopping before and after the
  // switch and resuming gives the uninterrupted run's bits.
  const Config c = Config::parse(config_text(dataset(), 2), "curriculum",
                                 {"data.window=4", "data.window_epochs=2", "run.epochs=4",
                                  "model.initial_state=given"});
  const FitResult full = fit(c, temp_dir("cur_full"));
  BOOST_TEST(full.state.epoch == 4);
  for (int stop : {1, 3}) {
    const std::string dir = temp_dir("cur_" + std::to_string(stop));
    fit(c, dir, stop);
    const FitResult rest = fit(c, dir, 0, dir + "/latest.h5");
    expect_identical(full.state, rest.state);
  }
  // Windowed epochs see more, shorter trajectories: fewer forward evaluations per trajectory.
  BOOST_TEST(full.state.history[1].nfe_forward < full.state.history[2].nfe_forward);
}

BOOST_AUTO_TEST_CASE(growing_windows_with_reset_and_warmup) {
  // Windows of 3 for epoch 1, windows of 6 for epochs 2-3, whole series for 4-5; fresh Adam
  // moments and a 2-epoch warm-up after each switch. Stopping at every epoch (also exactly at a
  // switch, where the checkpoint predates the reset) and resuming gives the uninterrupted bits.
  const Config c = Config::parse(config_text(dataset(), 2), "stages",
                                 {"data.window=3", "data.window_epochs=1", "data.window_stages=[6]",
                                  "data.window_stage_epochs=[3]", "run.epochs=5",
                                  "model.initial_state=given", "optimizer.reset_at_phase=true",
                                  "schedule.phase_warmup_epochs=2"});
  BOOST_TEST(Config::parse(c.to_toml(), "again").to_toml() == c.to_toml());
  const FitResult full = fit(c, temp_dir("stages_full"));
  BOOST_TEST_REQUIRE(full.state.history.size() == 5u);
  const auto& h = full.state.history;
  for (const auto& m : h) BOOST_TEST(std::isfinite(m.train_loss));
  // Longer trajectories in each phase: more forward evaluations per trajectory.
  BOOST_TEST(h[0].nfe_forward < h[1].nfe_forward);
  BOOST_TEST(h[2].nfe_forward < h[3].nfe_forward);
  // The warm-up after the switches at epochs 1 and 3: lr/10, then lr * 0.55, then the schedule.
  const Schedule sched(c.train.schedule, c.train.optimizer.lr, c.train.run.epochs);
  BOOST_TEST(h[0].lr == sched.lr(1));
  BOOST_TEST(h[1].lr == sched.lr(2) * 0.1);
  BOOST_TEST(h[2].lr == sched.lr(3) * (0.1 + 0.9 * 1.0 / 2));
  BOOST_TEST(h[3].lr == sched.lr(4) * 0.1);
  BOOST_TEST(h[4].lr == sched.lr(5) * (0.1 + 0.9 * 1.0 / 2));
  for (int stop : {1, 2, 3, 4}) {
    BOOST_TEST_CONTEXT("stop after epoch " << stop) {
      const std::string dir = temp_dir("stages_" + std::to_string(stop));
      fit(c, dir, stop);
      const FitResult rest = fit(c, dir, 0, dir + "/latest.h5");
      expect_identical(full.state, rest.state);
    }
  }
  // Without the reset the moments carry over: a different run.
  Config keep = c;
  keep.train.optimizer.reset_at_phase = false;
  const FitResult kept = fit(keep, temp_dir("stages_keep"));
  BOOST_TEST(kept.state.history[0].train_loss == h[0].train_loss);
  BOOST_TEST(kept.state.history[1].train_loss != h[1].train_loss);

  // Stages must grow and end after the previous phase; one last epoch per stage.
  auto message = [](std::vector<std::string> ov) -> std::string {
    try {
      Config::parse("[data]\nfile = \"x.h5\"\nwindow = 5\nwindow_epochs = 10\n", "my.toml", ov);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  };
  BOOST_TEST(message({"data.window_stages=[10]", "data.window_stage_epochs=[20]"}).empty());
  BOOST_TEST(message({"data.window_stages=[10]"}).find("data.window_stage_epochs") != std::string::npos);
  BOOST_TEST(message({"data.window_stages=[4]", "data.window_stage_epochs=[20]"}).find("data.window_stages[0]") != std::string::npos);
  BOOST_TEST(message({"data.window_stages=[10]", "data.window_stage_epochs=[10]"}).find("data.window_stage_epochs[0]") != std::string::npos);
  BOOST_TEST(message({"schedule.phase_warmup_epochs=-1"}).find("schedule.phase_warmup_epochs") != std::string::npos);
}

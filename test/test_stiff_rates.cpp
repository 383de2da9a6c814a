// Robertson's three rate constants recovered from noisy stiff data: the shipped config
// data/robertson_rates.toml (hybrid model, physics only, log transform, initial guesses 10x off,
// BDF, per-species loss scaling) fitted through run_fit, the library entry point of `cvnode fit`.
// ctest: labels=integration,slow timeout=600
#define BOOST_TEST_MODULE stiff_rates
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <filesystem>

#include "app/config.h"
#include "app/fit.h"
#include "cvnode/physics.h"
#include "test_util.h"

using namespace cvnode;
namespace fs = std::filesystem;

BOOST_AUTO_TEST_CASE(robertson_rates_recovered_within_5_percent) {
  const std::string cfg_path = std::string(CVNODE_SOURCE_DIR) + "/data/robertson_rates.toml";
  // One thread: the test suite runs tests side by side on two cores.
  const Config cfg = Config::load(cfg_path, {"run.threads=1"});
  BOOST_TEST(cfg.model.physics.kind == "robertson");
  BOOST_TEST(cfg.loss_scale == "std");
  const Vector truth = Robertson::default_parameters();  // (0.04, 1e4, 3e7)
  // The starting guesses really are a factor 10 off, each.
  for (int i = 0; i < 3; ++i)
    BOOST_TEST(std::abs(std::log10(cfg.model.physics.initial[i] / truth[i])) == 1.0,
               boost::test_tools::tolerance(1e-12));

  const std::string dir = cvnode::test::make_temp_dir("stiff_rates");
  FitOptions fo;
  fo.out_dir = dir;
  fo.quiet = true;
  const FitResult r = run_fit(cfg, fo);
  BOOST_TEST_REQUIRE(r.physical.size() == 3);
  BOOST_TEST(r.state.failures_total == 0);
  for (int i = 0; i < 3; ++i) {
    const double rel = std::abs(r.physical[i] / truth[i] - 1);
    BOOST_TEST_MESSAGE("k" << i + 1 << " = " << r.physical[i] << " (truth " << truth[i] << ", rel. error " << rel << ")");
    BOOST_TEST(rel < 0.05, "k" << i + 1 << " = " << r.physical[i] << " is " << rel * 100 << "% off " << truth[i]);
  }
  // The fit explains the data to the noise level: 1% relative noise gives a validation RMSE of
  // y1 and y3 about 1% of their magnitude (<= 1 mol/L) and of y2 far below its 3.6e-5 peak.
  BOOST_TEST_REQUIRE(r.best_val.rmse.size() == 3);
  BOOST_TEST(r.best_val.rmse[0] < 0.02);
  BOOST_TEST(r.best_val.rmse[1] < 1e-6);
  BOOST_TEST(r.best_val.rmse[2] < 0.02);
  // The resolved loss weights (loss.scale = std) are stored in the run's configuration.
  const Checkpoint ck = Checkpoint::read(dir + "/best.h5");
  const Config stored = Config::parse(ck.config, "best.h5");
  BOOST_TEST(stored.loss_scale == "none");
  BOOST_TEST_REQUIRE(stored.train.loss.weight.size() == 3);
  BOOST_TEST(stored.train.loss.weight[1] > 1e8);  // y2's 1/std^2: ~1e5 .. 1e6 times the others'
}

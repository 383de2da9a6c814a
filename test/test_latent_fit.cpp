// `cvnode latent train|eval|predict` as library calls on small spirals: a run stopped after one
// epoch and resumed from latest.h5 ends with the same bits as an uninterrupted one; eval counts
// exactly the window's and the targets' entries and agrees with predict's numbers; the held-out
// workflow (another file, its first half) gives bands; channels observed at different times
// (masks) are read through their masks only; bad input is refused by name.
// ctest: labels=unit timeout=120
#define BOOST_TEST_MODULE latent_fit
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <filesystem>

#include "cvnode/checkpoint.h"
#include "app/config.h"
#include "cvnode/errors.h"
#include "app/fit.h"
#include "cvnode/latent.h"
#include "models/latent/latent_fit.h"

using namespace cvnode;
namespace fs = std::filesystem;

namespace {

struct Fixture {
  fs::path dir;
  SpiralOptions so;
  std::string data;
  Fixture() {
    dir = fs::temp_directory_path() / ("cvnode_latent_fit_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    so.spirals = 20;
    so.window = 20;
    so.total = 100;
    so.observed = 8;
    so.extrapolate = 5;
    so.seed = 4;
    data = (dir / "spirals.h5").string();
    generate_spirals(so).write(data);
  }
  ~Fixture() { fs::remove_all(dir); }

  Config config(const std::string& kind) const {
    const std::string toml = "[data]\nfile = \"" + data +
                             "\"\ntrain_fraction = 0.6\nval_fraction = 0.2\nnormalize = true\n"
                             "[model]\nkind = \"" + kind +
                             "\"\nlatent_dim = 3\nhidden = [6]\nactivation = \"elu\"\nseed = 2\n"
                             "[encoder]\nhidden = 5\n[decoder]\nhidden = [6]\nnoise_std = [0.3]\n"
                             "[loss]\nsamples = 2\nbound = \"iwae\"\nkl_warmup_epochs = 2\n"
                             "[solver]\nmethod = \"dopri5\"\nrtol = 1e-6\natol = 1e-8\n"
                             "[optimizer]\nlr = 0.01\n[run]\nepochs = 2\nbatch_size = 5\nthreads = 2\nseed = 3\n";
    return Config::parse(toml, "test");
  }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(resume_gives_the_same_bits_and_eval_counts_entries, Fixture) {
  const Config c = config("latent_ode");
  LatentFitOptions whole;
  whole.out_dir = (dir / "whole").string();
  whole.quiet = true;
  const LatentFitResult r = run_latent_fit(c, whole);
  BOOST_TEST(r.epochs == 2);
  BOOST_TEST(r.steps == 6);  // 12 training spirals in minibatches of 5: 3 steps per epoch

  LatentFitOptions first = whole;
  first.out_dir = (dir / "split").string();
  first.stop_after_epoch = 1;
  BOOST_TEST(run_latent_fit(c, first).epochs == 1);
  LatentFitOptions second = first;
  second.stop_after_epoch = 0;
  second.resume = (dir / "split" / "latest.h5").string();
  const LatentFitResult r2 = run_latent_fit(c, second);
  BOOST_TEST(r2.steps == 6);
  const Checkpoint a = Checkpoint::read((dir / "whole" / "latest.h5").string());
  const Checkpoint b = Checkpoint::read((dir / "split" / "latest.h5").string());
  BOOST_TEST(a.parameters.size() > 0);
  BOOST_TEST((a.parameters.array() == b.parameters.array()).all());
  BOOST_TEST(a.metrics.at("val_loss") == b.metrics.at("val_loss"));
  BOOST_TEST(a.metrics.at("kl_weight")[0] == 0.5);  // warm-up over 2 epochs

  // 4 test spirals: the window end from the file's provenance; 8 observed points and 5 targets
  // of 2 channels each.
  LatentEvalOptions eo;
  eo.samples = 30;
  const LatentScores s = latent_evaluate((dir / "whole" / "best.h5").string(), eo);
  BOOST_TEST(s.series == 4);
  BOOST_TEST(s.failures == 0);
  BOOST_TEST(s.interpolation_points == 4 * 8 * 2);
  BOOST_TEST(s.extrapolation_points == 4 * 5 * 2);
  BOOST_TEST(std::isfinite(s.extrapolation_rmse));
  BOOST_TEST(s.extrapolation_coverage >= 0.0);
  BOOST_TEST(s.extrapolation_coverage <= 1.0);

  // predict with the same seed and samples: eval's extrapolation RMSE from its rows.
  LatentPredictOptions po;
  po.samples = 30;
  po.levels = {0.05, 0.95};
  const auto pred = latent_predict((dir / "whole" / "best.h5").string(), po);
  BOOST_REQUIRE(pred.size() == 4u);
  double se = 0, inside = 0;
  long n = 0;
  for (const auto& p : pred) {
    BOOST_TEST(p.error.empty());
    BOOST_TEST(p.samples.size() == 30u);
    BOOST_TEST(p.latent.size() == 30u);
    BOOST_TEST(p.latent[0].cols() == 3);
    for (Eigen::Index k = 0; k < p.times.size(); ++k)
      if (p.times[k] > p.window_end)
        for (int ch = 0; ch < 2; ++ch) {
          se += std::pow(p.mean(k, ch) - p.observed(k, ch), 2);
          inside += p.observed(k, ch) >= p.quantiles[0](k, ch) && p.observed(k, ch) <= p.quantiles[1](k, ch);
          ++n;
          BOOST_TEST(p.quantiles[0](k, ch) < p.quantiles[1](k, ch));
        }
  }
  BOOST_TEST(n == 40);
  BOOST_TEST(std::sqrt(se / n) == s.extrapolation_rmse, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(inside / n == s.extrapolation_coverage, boost::test_tools::tolerance(1e-12));
}

BOOST_FIXTURE_TEST_CASE(held_out_file_from_its_first_half, Fixture) {
  Config c = config("rnn_baseline");
  LatentFitOptions o;
  o.out_dir = (dir / "rnn").string();
  o.quiet = true;
  run_latent_fit(c, o);
  SpiralOptions other = so;
  other.spirals = 3;
  other.seed = 99;  // spirals the model never saw
  const std::string unseen = (dir / "unseen.h5").string();
  generate_spirals(other).write(unseen);
  LatentPredictOptions po;
  po.series.data_file = unseen;
  po.series.ids = {"spiral_2"};
  po.window.fraction = 0.5;
  po.grid = 11;
  po.samples = 5;  // deterministic model: one trajectory, the band from the noise std
  po.levels = {0.05, 0.5, 0.95};
  const auto pred = latent_predict((dir / "rnn" / "best.h5").string(), po);
  BOOST_REQUIRE(pred.size() == 1u);
  const LatentPrediction& p = pred[0];
  BOOST_TEST(p.id == "spiral_2");
  BOOST_TEST(p.times.size() == 11);
  BOOST_TEST(p.samples.size() == 1u);
  const double span = p.observed_times[p.observed_times.size() - 1] - p.observed_times[0];
  BOOST_TEST(p.window_end == p.observed_times[0] + 0.5 * span, boost::test_tools::tolerance(1e-12));
  // One Gaussian per point: the median is the mean and the 90% band is mean +- 1.6449 * 0.3
  // (noise_std in data units).
  for (Eigen::Index k = 0; k < p.times.size(); ++k)
    for (int ch = 0; ch < 2; ++ch) {
      BOOST_TEST(p.quantiles[1](k, ch) == p.mean(k, ch), boost::test_tools::tolerance(1e-9));
      BOOST_TEST(p.quantiles[2](k, ch) - p.mean(k, ch) == 1.6448536269514722 * 0.3,
                 boost::test_tools::tolerance(1e-8));
    }

  // The latent ODE on the same unseen series, with both posteriors: samples drawn, bands
  // ordered and wider than the noise alone (the posterior's spread adds to it).
  o.out_dir = (dir / "ode").string();
  run_latent_fit(config("latent_ode"), o);
  for (const char* method : {"encoder", "importance"}) {
    po.posterior.method = method;
    po.samples = 20;
    const auto q = latent_predict((dir / "ode" / "best.h5").string(), po);
    BOOST_REQUIRE(q.size() == 1u);
    BOOST_TEST(q[0].error.empty());
    BOOST_TEST(q[0].samples.size() == 20u);
    BOOST_TEST(q[0].window_end == p.window_end);
    BOOST_TEST(q[0].ess > 1.0);
    BOOST_TEST(q[0].ess <= 200.0);  // importance: of 10 x 20 proposals
    for (Eigen::Index k = 0; k < q[0].times.size(); ++k)
      for (int ch = 0; ch < 2; ++ch) {
        BOOST_TEST(q[0].quantiles[0](k, ch) < q[0].quantiles[1](k, ch));
        BOOST_TEST(q[0].quantiles[1](k, ch) < q[0].quantiles[2](k, ch));
        BOOST_TEST(q[0].quantiles[2](k, ch) - q[0].quantiles[0](k, ch) > 2 * 1.6448536269514722 * 0.3 - 1e-9);
      }
  }
  po.posterior.method = "exact";
  BOOST_CHECK_EXCEPTION(latent_predict((dir / "ode" / "best.h5").string(), po), OptionsError,
                        [](const OptionsError& e) { return std::string(e.what()).find("'exact'") != std::string::npos; });
  po.posterior.method = "importance";
  BOOST_CHECK_EXCEPTION(latent_predict((dir / "rnn" / "best.h5").string(), po), OptionsError,
                        [](const OptionsError& e) { return std::string(e.what()).find("latent_ode") != std::string::npos; });
}

// Two channels observed at different times (`cvnode data spirals --missing 0.5`): what lies under
// a mask must not matter. The same training with every missing entry holding 1e6 instead of
// NaN ends with the same bits, and eval scores exactly the observed entries.
BOOST_FIXTURE_TEST_CASE(channels_observed_at_different_times, Fixture) {
  SpiralOptions m = so;
  m.missing = 0.5;
  const Dataset nan_data = generate_spirals(m);
  Dataset big(nan_data.channel_names(), nan_data.channel_units());
  big.set_provenance(nan_data.provenance());
  long window_missing = 0;
  for (std::size_t i = 0; i < nan_data.size(); ++i) {
    Series s = nan_data.series(i);
    BOOST_REQUIRE(s.mask.size() > 0);
    for (Eigen::Index k = 0; k < s.values.rows(); ++k)
      for (int c = 0; c < 2; ++c)
        if (s.mask(k, c) == 0) {
          BOOST_TEST(std::isnan(s.values(k, c)));
          s.values(k, c) = 1e6;
          ++window_missing;
        }
    big.add(s);
  }
  BOOST_TEST(window_missing > 20 * 8 * 2 / 5);  // P(missing) = 0.375 of 320 window entries
  const std::string a = (dir / "missing_nan.h5").string(), b = (dir / "missing_big.h5").string();
  nan_data.write(a);
  big.write(b);
  Config c = config("latent_ode");
  LatentFitOptions o;
  o.quiet = true;
  c.data.file = a;
  o.out_dir = (dir / "nan").string();
  run_latent_fit(c, o);
  c.data.file = b;
  o.out_dir = (dir / "big").string();
  run_latent_fit(c, o);
  const Checkpoint ca = Checkpoint::read((dir / "nan" / "latest.h5").string());
  const Checkpoint cb = Checkpoint::read((dir / "big" / "latest.h5").string());
  BOOST_TEST(ca.parameters.allFinite());
  BOOST_TEST((ca.parameters.array() == cb.parameters.array()).all());
  // Eval of the 4 test spirals: the observed window entries and all 5 x 2 target entries.
  LatentEvalOptions eo;
  eo.samples = 10;
  const LatentScores sa = latent_evaluate((dir / "nan" / "best.h5").string(), eo);
  const LatentScores sb = latent_evaluate((dir / "big" / "best.h5").string(), eo);
  long observed = 0;
  LatentPredictOptions po;
  po.samples = 1;
  for (const auto& p : latent_predict((dir / "nan" / "best.h5").string(), po))
    observed += static_cast<long>(p.seen.sum());
  BOOST_TEST(observed < 4 * 8 * 2);
  BOOST_TEST(observed >= 4 * 8);  // every window point keeps a channel
  BOOST_TEST(sa.interpolation_points == observed);
  BOOST_TEST(sa.extrapolation_points == 4 * 5 * 2);
  BOOST_TEST(sa.extrapolation_rmse == sb.extrapolation_rmse);
}

BOOST_FIXTURE_TEST_CASE(bad_input_is_refused_by_name, Fixture) {
  LatentFitOptions o;
  o.out_dir = (dir / "bad").string();
  o.quiet = true;
  Config c = config("latent_ode");
  c.model.kind = "neural_ode";
  BOOST_CHECK_EXCEPTION(run_latent_fit(c, o), OptionsError, [](const OptionsError& e) {
    return std::string(e.what()).find("cvnode fit") != std::string::npos;
  });
  // and `cvnode fit` sends latent kinds here
  FitOptions fo;
  fo.out_dir = o.out_dir;
  BOOST_CHECK_EXCEPTION(run_fit(config("latent_ode"), fo), OptionsError, [](const OptionsError& e) {
    return std::string(e.what()).find("cvnode latent train") != std::string::npos;
  });
  LatentFitOptions late = o;
  late.window.until = -1;  // before every observation
  BOOST_CHECK_EXCEPTION(run_latent_fit(config("latent_ode"), late), DataError, [](const DataError& e) {
    return std::string(e.what()).find("spiral_") != std::string::npos;
  });
  LatentEvalOptions eo;
  eo.level = 1.5;
  BOOST_CHECK_EXCEPTION(latent_evaluate((dir / "none.h5").string(), eo), OptionsError, [](const OptionsError& e) {
    return std::string(e.what()).find("--level") != std::string::npos;
  });
}

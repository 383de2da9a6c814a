// ctest: labels=unit timeout=120
// Latent ODE model behaviour beyond its gradients: bit-identical batch sums for any thread count,
// the seeded posterior draws, the bidirectional spiral generator, and the RNN baseline's
// autoregressive predictions.
// ctest: labels=unit timeout=180
#define BOOST_TEST_MODULE latent_model
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <memory>

#include <nlohmann/json.hpp>

#include "cvnode/errors.h"
#include "cvnode/latent.h"
#include "models/latent/bands.h"
#include "models/latent/batch.h"
#include "models/latent/latent_ode.h"
#include "models/latent/rnn_baseline.h"

using namespace cvnode;
using namespace cvnode::latent;

namespace {

std::vector<Trajectory> spiral_series(int n, int observed) {
  SpiralOptions o;
  o.spirals = n;
  o.observed = observed;
  o.seed = 3;
  const Dataset d = generate_spirals(o);
  std::vector<Trajectory> out;
  for (std::size_t i = 0; i < d.size(); ++i) {
    Trajectory t = d.trajectory(i, 2);
    t.t0 = d.series(i).t0;  // the window's start, before the first observed point
    t.values /= 5;          // roughly unit scale
    out.push_back(t);
  }
  return out;
}

LatentOdeSpec spec(EncoderKind kind) {
  LatentOdeSpec s;
  s.channels = 2;
  s.latent = 3;
  s.encoder.kind = kind;
  s.encoder.hidden = 6;
  s.encoder.ode_hidden = {6};
  s.dynamics_hidden = {8};
  s.decoder_hidden = {8};
  s.noise_std = Vector::Constant(2, 0.1);
  return s;
}

SumResult batch_gradient(const LatentOde& model, const Vector& p, const std::vector<Trajectory>& data, int threads,
                         const ElboSettings& st) {
  SolverOptions so;
  so.method = "dopri5";
  so.rtol = 1e-6;
  so.atol = 1e-8;
  std::vector<std::unique_ptr<LatentOde::Context>> ctx;
  for (int i = 0; i < resolve_threads(threads); ++i) ctx.push_back(std::make_unique<LatentOde::Context>(model, so));
  return sum_in_order(static_cast<int>(data.size()), threads, model.param_size(), true,
                      [&](int th, int s, SeriesResult& r) {
                        r.loss = model.loss_gradient(p, data[s], st, LatentOde::noise_seed(9, 4, s),
                                                     1.0 / data.size(), *ctx[th], r.grad);
                      });
}

}  // namespace

BOOST_AUTO_TEST_CASE(same_bits_for_any_thread_count) {
  const auto data = spiral_series(12, 10);
  for (EncoderKind kind : {EncoderKind::Rnn, EncoderKind::OdeRnn}) {
    LatentOde model(spec(kind));
    const Vector p = model.initial_parameters(2);
    const ElboSettings st{3, true, 1.0};
    const SumResult one = batch_gradient(model, p, data, 1, st);
    const SumResult two = batch_gradient(model, p, data, 2, st);
    const SumResult three = batch_gradient(model, p, data, 3, st);
    BOOST_TEST(one.failures.empty());
    BOOST_TEST(one.loss == two.loss);
    BOOST_TEST(one.loss == three.loss);
    BOOST_TEST((one.grad.array() == two.grad.array()).all());
    BOOST_TEST((one.grad.array() == three.grad.array()).all());
    // The draws follow the seed: another pass gives another loss.
    LatentOde::Context ctx(model, SolverOptions{});
    BOOST_TEST(model.loss(p, data[0], st, LatentOde::noise_seed(9, 4, 0), ctx) ==
               model.loss(p, data[0], st, LatentOde::noise_seed(9, 4, 0), ctx));
    BOOST_TEST(model.loss(p, data[0], st, LatentOde::noise_seed(9, 4, 0), ctx) !=
               model.loss(p, data[0], st, LatentOde::noise_seed(9, 5, 0), ctx));
  }
}

BOOST_AUTO_TEST_CASE(posterior_samples) {
  LatentOde model(spec(EncoderKind::Rnn));
  const Vector p = model.initial_parameters(5);
  const auto data = spiral_series(1, 20);
  LatentOde::Context ctx(model, SolverOptions{});
  const Vector times = Vector::LinSpaced(7, 0.0, 3.0);
  const PosteriorSamples mean = model.sample(p, data[0], times, 0, 1, ctx);
  BOOST_TEST(mean.means.size() == 1u);
  BOOST_TEST(mean.means[0].rows() == 7);
  BOOST_TEST(mean.means[0].cols() == 2);
  const PosteriorSamples a = model.sample(p, data[0], times, 50, 1, ctx);
  const PosteriorSamples b = model.sample(p, data[0], times, 50, 1, ctx);
  BOOST_TEST(a.means.size() == 50u);
  BOOST_TEST((a.means[49].array() == b.means[49].array()).all());
  // At t0 every sample starts at its own z0 = mu + sigma eps: their latent mean is near mu
  // (50 draws: within 4 standard errors).
  Vector m = Vector::Zero(3);
  for (const auto& z : a.latent) m += z.row(0).transpose() / 50.0;
  const Vector sd = (0.5 * a.logvar.array()).exp();
  BOOST_TEST(((m - a.mu).array().abs() < 4 * sd.array() / std::sqrt(50.0)).all());
}

BOOST_AUTO_TEST_CASE(spiral_generator) {
  SpiralOptions o;
  o.spirals = 40;
  o.observed = 30;
  o.extrapolate = 100;
  o.seed = 7;
  const Dataset d = generate_spirals(o);
  BOOST_TEST(d.size() == 40u);
  const double dt = o.stop / (o.total - 1);
  const auto prov = nlohmann::json::parse(d.provenance());
  BOOST_TEST(std::abs(prov["window_end"].get<double>() - 99 * dt) < 1e-12);
  int cw = 0;
  for (int c : prov["clockwise"]) cw += c;
  BOOST_TEST(cw > 5);  // both directions drawn
  BOOST_TEST(cw < 35);
  for (std::size_t i = 0; i < d.size(); ++i) {
    const Series s = d.series(i);
    BOOST_TEST(s.times.size() == 130);
    BOOST_TEST(s.times[29] <= 99 * dt + 1e-12);
    BOOST_TEST(std::abs(s.times[30] - 100 * dt) < 1e-12);
    // The targets are the clean curve: counter-clockwise ones lie on r = b theta around (5, 0).
    const int start = prov["start_index"][i];
    if (prov["clockwise"][i] == 0) {
      const double th = (start + 100) * dt;
      BOOST_TEST(std::abs(s.values(30, 0) - (o.b * th * std::cos(th) + 5)) < 1e-12);
      BOOST_TEST(std::abs(s.values(30, 1) - o.b * th * std::sin(th)) < 1e-12);
    }
  }
  // The same spirals and noise for another number of observed points: a point observed in both
  // has the same value.
  SpiralOptions o2 = o;
  o2.observed = 100;
  o2.extrapolate = 0;
  const Dataset d2 = generate_spirals(o2);
  const Series a = d.series(3), b = d2.series(3);
  BOOST_TEST(b.times.size() == 100);
  const int j = static_cast<int>(std::lround(a.times[5] / dt));
  BOOST_TEST(b.values(j, 0) == a.values(5, 0));
  BOOST_TEST(b.values(j, 1) == a.values(5, 1));
  // The observed points carry noise of about the given std.
  double se = 0;
  int n = 0;
  const auto prov2 = nlohmann::json::parse(d2.provenance());
  BOOST_TEST(prov2["start_index"] == prov["start_index"]);
  for (std::size_t i = 0; i < d2.size(); ++i) {
    const Series s = d2.series(i);
    if (prov2["clockwise"][i] != 0) continue;
    const int st = prov2["start_index"][i];
    for (int k = 0; k < 100; ++k) {
      const double th = (st + k) * dt;
      se += std::pow(s.values(k, 0) - (o.b * th * std::cos(th) + 5), 2);
      ++n;
    }
  }
  BOOST_TEST(std::abs(std::sqrt(se / n) - 0.3) < 0.03);  // ~2000 draws: 3 sigma of the std is ~0.015
  o.observed = 101;
  BOOST_CHECK_THROW(generate_spirals(o), OptionsError);
}

BOOST_AUTO_TEST_CASE(rnn_baseline_predictions) {
  RnnBaselineSpec s;
  s.channels = 2;
  s.hidden = 5;
  s.noise_std = Vector::Constant(2, 0.1);
  RnnBaseline rnn(s);
  const Vector p = rnn.initial_parameters(3);
  const auto data = spiral_series(1, 10);
  const Trajectory& tr = data[0];
  // At the observed times the predictions are the one-step-ahead ones of the training loss.
  const Matrix at_obs = rnn.predict(p, tr, tr.times);
  Vector g;
  const double nll = rnn.loss(p, tr, 1.0, nullptr);
  double ref = 0;
  for (int k = 1; k < tr.times.size(); ++k)
    for (int c = 0; c < 2; ++c)
      ref += 0.5 * std::pow((at_obs(k, c) - tr.values(k, c)) / 0.1, 2) + std::log(0.1) + 0.5 * std::log(2 * M_PI);
  BOOST_TEST(std::abs(nll - ref) < 1e-10 * std::abs(ref));
  // Past the data it feeds back its own predictions; the same query twice gives the same rows.
  const Vector later = Vector::LinSpaced(5, tr.times[tr.times.size() - 1] + 0.1, 3.0);
  const Matrix a = rnn.predict(p, tr, later), b = rnn.predict(p, tr, later);
  BOOST_TEST(a.allFinite());
  BOOST_TEST((a.array() == b.array()).all());
}

BOOST_AUTO_TEST_CASE(band_quantiles) {
  // One sample with noise sigma: the quantiles of N(mu, sigma^2).
  const Matrix mu = (Matrix(2, 2) << 1.0, -2.0, 0.5, 3.0).finished();
  const Vector sd = (Vector(2) << 0.5, 2.0).finished();
  const Band one = summarize({mu}, sd, {0.05, 0.5, 0.95});
  const double z95 = 1.6448536269514722;
  BOOST_TEST(std::abs(one.quantiles[2](0, 1) - (-2.0 + z95 * 2.0)) < 1e-9);
  BOOST_TEST(std::abs(one.quantiles[0](1, 0) - (0.5 - z95 * 0.5)) < 1e-9);
  BOOST_TEST(std::abs(one.quantiles[1](1, 1) - 3.0) < 1e-9);
  // Two samples +-1 with sigma: the mixture is symmetric about 0, its median 0, and its 0.95
  // quantile solves (Phi((x-1)/s) + Phi((x+1)/s))/2 = 0.95.
  const Matrix a = Matrix::Constant(1, 1, 1.0), b = Matrix::Constant(1, 1, -1.0);
  const Band two = summarize({a, b}, Vector::Constant(1, 0.5), {0.5, 0.95});
  BOOST_TEST(std::abs(two.quantiles[0](0, 0)) < 1e-9);
  const double x = two.quantiles[1](0, 0);
  const double F = 0.25 * (std::erfc(-(x - 1) / (0.5 * std::sqrt(2.0))) + std::erfc(-(x + 1) / (0.5 * std::sqrt(2.0))));
  BOOST_TEST(std::abs(F - 0.95) < 1e-9);
  // Without noise: quantiles of the samples themselves (linear between order statistics).
  std::vector<Matrix> five;
  for (double v : {3.0, 1.0, 4.0, 0.0, 2.0}) five.push_back(Matrix::Constant(1, 1, v));
  const Band s = summarize(five, Vector(), {0.0, 0.25, 0.9, 1.0});
  BOOST_TEST(s.mean(0, 0) == 2.0);
  BOOST_TEST(s.quantiles[0](0, 0) == 0.0);
  BOOST_TEST(s.quantiles[1](0, 0) == 1.0);
  BOOST_TEST(std::abs(s.quantiles[2](0, 0) - 3.6) < 1e-12);
  BOOST_TEST(s.quantiles[3](0, 0) == 4.0);
}

BOOST_AUTO_TEST_CASE(conditioning_cuts) {
  Trajectory tr;
  tr.t0 = 0;
  tr.times = Vector::LinSpaced(10, 0.1, 1.0);
  tr.values = Matrix::Ones(10, 2);
  tr.mask = Matrix::Ones(10, 2);
  tr.mask(2, 1) = 0;
  Condition c;
  c.until = 0.5;  // rows 0..4 seen
  Cut k = cut(tr, c, 0, "s");
  BOOST_TEST(k.seen.mask.topRows(5).sum() == 9);
  BOOST_TEST(k.seen.mask.bottomRows(5).sum() == 0);
  BOOST_TEST(k.interpolate.sum() == 9);   // the conditioning entries themselves
  BOOST_TEST(k.extrapolate.sum() == 10);
  c = Condition{};
  c.fraction = 0.5;  // [0, 1]: up to t = 0.5
  BOOST_TEST(cut(tr, c, 0, "s").seen.mask.sum() == 9);
  c.holdout = 0.5;
  c.seed = 4;
  k = cut(tr, c, 0, "s");
  // Held-out rows are targets and hidden; the others are seen and not scored.
  BOOST_TEST(k.interpolate.sum() + k.seen.mask.sum() == 9);
  BOOST_TEST((k.interpolate.array() * k.seen.mask.array()).sum() == 0);
  BOOST_TEST((cut(tr, c, 0, "s").interpolate.array() == k.interpolate.array()).all());  // seeded
  c = Condition{};
  c.until = 0.05;
  BOOST_CHECK_THROW(cut(tr, c, 0, "s"), DataError);
}

BOOST_AUTO_TEST_CASE(spirals_with_missing_channels) {
  SpiralOptions o;
  o.spirals = 200;
  o.observed = 30;
  o.extrapolate = 10;
  o.seed = 5;
  const Dataset full = generate_spirals(o);
  o.missing = 0.5;
  const Dataset holes = generate_spirals(o);
  long missing = 0, window_entries = 0;
  for (std::size_t i = 0; i < holes.size(); ++i) {
    const Series a = full.series(i), b = holes.series(i);
    BOOST_REQUIRE(b.mask.rows() == 40);
    BOOST_TEST((a.times.array() == b.times.array()).all());  // the same points and noise
    for (Eigen::Index k = 0; k < 40; ++k) {
      BOOST_TEST(b.mask.row(k).sum() >= 1);  // every point observes a channel
      if (k >= 30) BOOST_TEST(b.mask.row(k).sum() == 2);  // targets complete
      for (int c = 0; c < 2; ++c)
        if (b.mask(k, c) != 0) BOOST_TEST(b.values(k, c) == a.values(k, c));
      if (k < 30) {
        window_entries += 2;
        missing += 2 - static_cast<long>(b.mask.row(k).sum());
      }
    }
  }
  // P(entry missing) = p - p^2 / 2 = 0.375 (both gone: one is kept); binomial std over 12000
  // entries 0.0044, tolerance ~4.5 std.
  BOOST_TEST(static_cast<double>(missing) / window_entries == 0.375, boost::test_tools::tolerance(0.02 / 0.375));
  o.missing = 1;
  BOOST_CHECK_THROW(generate_spirals(o), OptionsError);
}

// `cvnode latent train|eval|predict` as library calls: the epoch loop of a latent sequence model
// (SequenceKind) on cvnode's Optimizer and Schedule with atomic checkpoints, and its scores and
// sampled predictions from a checkpoint.
#include "models/latent/latent_fit.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cvnode/checkpoint.h"
#include "cvnode/errors.h"
#include "app/fit.h"
#include "cvnode/optimizer.h"
#include "cvnode/schedule.h"
#include "data/atomic_file.h"
#include "models/latent/kind.h"
#include "core/random.h"

namespace cvnode {

namespace fs = std::filesystem;
using latent::SequenceKind;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

using io::write_text;  // atomic, every write checked (a full disk is an error naming the file)

// The "window_end" a generator stored in the file's provenance (NaN when there is none).
double provenance_window_end(const std::string& file) {
  if (Dataset::count_series(file) == 0) return kNaN;
  const std::string p = Dataset::read_range(file, 0, 1).provenance();
  const auto j = nlohmann::json::parse(p, nullptr, false);
  if (j.is_object() && j.contains("window_end") && j["window_end"].is_number()) return j["window_end"].get<double>();
  return kNaN;
}

// The end of the conditioning window of one series (NaN: the whole series).
double window_end(const LatentWindow& w, double file_end, const Trajectory& tr) {
  if (!std::isnan(w.until)) return w.until;
  if (!std::isnan(w.fraction)) {
    const double a = tr.times[0], b = tr.times[tr.times.size() - 1];
    return a + w.fraction * (b - a);
  }
  return file_end;
}

// The series' rows at times <= end with at least one entry seen (mask, if any).
Trajectory rows_until(const Trajectory& tr, double end, const Matrix& seen, const std::string& id) {
  std::vector<Eigen::Index> keep;
  for (Eigen::Index k = 0; k < tr.times.size(); ++k)
    if (!(tr.times[k] > end) && (seen.size() == 0 || seen.row(k).sum() > 0)) keep.push_back(k);
  if (keep.empty())
    throw DataError("series '" + id + "': nothing observed at times <= " + std::to_string(end) + " to condition on");
  Trajectory out;
  out.t0 = tr.t0;
  out.z0 = tr.z0;
  const auto n = static_cast<Eigen::Index>(keep.size());
  out.times.resize(n);
  out.values.resize(n, tr.values.cols());
  out.mask.resize(n, tr.values.cols());
  for (Eigen::Index r = 0; r < n; ++r) {
    out.times[r] = tr.times[keep[r]];
    out.values.row(r) = tr.values.row(keep[r]);
    if (seen.size()) out.mask.row(r) = seen.row(keep[r]);
    else if (tr.mask.size()) out.mask.row(r) = tr.mask.row(keep[r]);
    else out.mask.row(r).setOnes();
  }
  return out;
}

std::vector<Trajectory> windows(const std::vector<Trajectory>& series, const std::vector<std::string>& ids,
                                const LatentWindow& w, double file_end) {
  std::vector<Trajectory> out;
  for (std::size_t i = 0; i < series.size(); ++i) {
    const double end = window_end(w, file_end, series[i]);
    out.push_back(std::isnan(end) ? series[i] : rows_until(series[i], end, Matrix(), ids[i]));
  }
  return out;
}

Vector channel_std(const Normalization& n, int channels) {
  return n.empty() ? Vector(Vector::Ones(channels)) : n.std;
}

// The metrics of one epoch; the names are the checkpoint's and metrics.csv's columns.
const std::vector<std::string> kColumns = {"epoch",    "lr",        "train_loss", "val_loss", "val_rmse",
                                           "kl_weight", "nfe",      "grad_norm",  "failures", "seconds"};

std::string csv(const std::map<std::string, std::vector<double>>& m) {
  std::ostringstream o;
  o.precision(10);
  for (std::size_t i = 0; i < kColumns.size(); ++i) o << (i ? "," : "") << kColumns[i];
  o << "\n";
  const std::size_t rows = m.at("epoch").size();
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t i = 0; i < kColumns.size(); ++i) o << (i ? "," : "") << m.at(kColumns[i])[r];
    o << "\n";
  }
  return o.str();
}

double scalar(const Checkpoint& c, const std::string& name, const std::string& path) {
  auto it = c.optimizer_scalars.find(name);
  if (it == c.optimizer_scalars.end()) throw DataError(path + ": checkpoint scalar '" + name + "' is missing");
  return it->second;
}

const Vector& vec(const Checkpoint& c, const std::string& name, const std::string& path) {
  auto it = c.optimizer_vectors.find(name);
  if (it == c.optimizer_vectors.end()) throw DataError(path + ": checkpoint vector '" + name + "' is missing");
  return it->second;
}

std::unique_ptr<SequenceKind> make_kind(const Config& c, int channels, const Normalization& n, int threads) {
  if (c.model.kind != "latent_ode" && c.model.kind != "rnn_baseline")
    throw OptionsError("model.kind = \"" + c.model.kind + "\" is not a latent sequence model (latent_ode or "
                       "rnn_baseline); neural_ode models are fitted by `cvnode fit`");
  return std::make_unique<SequenceKind>(c.model.kind, c.latent, c.model, channels, channel_std(n, channels),
                                        c.train.solver, threads);
}

// A trained latent model from a checkpoint (best.h5 or latest.h5).
struct Trained {
  Config config;
  Checkpoint checkpoint;
  std::unique_ptr<SequenceKind> kind;
  int channels = 0;
};

Trained load(const std::string& path, int threads) {
  Trained t;
  t.checkpoint = Checkpoint::read(path);
  t.config = Config::parse(t.checkpoint.config, path);
  const auto spec = nlohmann::json::parse(t.checkpoint.model_spec, nullptr, false);
  if (!spec.is_object() || !spec.contains("channels") || !spec.contains("kind"))
    throw DataError(path + ": model_spec is not a latent model's (no kind/channels): `cvnode latent` reads "
                    "checkpoints of `cvnode latent train`");
  t.channels = spec["channels"].get<int>();
  t.kind = make_kind(t.config, t.channels, t.checkpoint.normalization,
                     threads > 0 ? threads : t.config.train.run.threads);
  if (nlohmann::json::parse(t.kind->spec()) != spec)
    throw DataError(path + ": the stored configuration does not give the stored model_spec " + t.checkpoint.model_spec);
  if (t.checkpoint.parameters.size() != t.kind->param_size())
    throw DataError(path + ": " + std::to_string(t.checkpoint.parameters.size()) + " parameters, the model has " +
                    std::to_string(t.kind->param_size()));
  return t;
}

// The chosen series in model units, their ids, and the file's window end.
void choose(const Trained& t, const LatentSeriesChoice& ch, std::vector<Trajectory>& series,
            std::vector<std::string>& ids, double& file_end) {
  if (ch.data_file.empty()) {
    const FitData d = load_fit_data(t.config);
    split_series(d, ch.split, series, ids);
    file_end = provenance_window_end(t.config.data.file);
  } else {
    Dataset ds = Dataset::read(ch.data_file);
    if (ds.channels() != t.channels)
      throw DataError(ch.data_file + ": " + std::to_string(ds.channels()) + " channels, the model has " +
                      std::to_string(t.channels));
    if (!t.checkpoint.normalization.empty()) ds.normalize(t.checkpoint.normalization);
    for (std::size_t i = 0; i < ds.size(); ++i) {
      series.push_back(ds.trajectory(i, ds.channels()));
      ids.push_back(ds.id(i));
    }
    file_end = provenance_window_end(ch.data_file);
  }
  if (!ch.ids.empty()) {
    std::vector<Trajectory> s;
    std::vector<std::string> k;
    for (const auto& want : ch.ids) {
      auto it = std::find(ids.begin(), ids.end(), want);
      if (it == ids.end())
        throw DataError("series '" + want + "' is not in " +
                        (ch.data_file.empty() ? "the '" + ch.split + "' split" : ch.data_file));
      s.push_back(series[it - ids.begin()]);
      k.push_back(want);
    }
    series = std::move(s);
    ids = std::move(k);
  }
  if (ch.max_series > 0 && static_cast<std::size_t>(ch.max_series) < series.size()) {
    series.resize(ch.max_series);
    ids.resize(ch.max_series);
  }
  if (series.empty()) throw DataError("no series to use (split '" + ch.split + "')");
}

// Model units -> data units for a T x channels matrix.
Matrix to_data(const Matrix& m, const Normalization& n) {
  if (n.empty()) return m;
  Matrix out = m;
  for (Eigen::Index c = 0; c < m.cols(); ++c) out.col(c) = m.col(c).array() * n.std[c] + n.mean[c];
  return out;
}

}  // namespace

LatentFitResult run_latent_fit(const Config& config, const LatentFitOptions& o) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  if (std::string why = config.validate(); !why.empty()) throw ConfigError(config.source + ": " + why);
  if (o.out_dir.empty()) throw OptionsError("latent train: an output directory (--out) is needed");
  auto log = [&](const std::string& s) {
    if (!o.quiet) std::cerr << s << std::endl;
  };
  const FitData data = load_fit_data(config);
  const double file_end = provenance_window_end(config.data.file);
  const std::vector<Trajectory> train = windows(data.train, data.train_ids, o.window, file_end);
  const std::vector<Trajectory> val = windows(data.val, data.val_ids, o.window, file_end);
  std::unique_ptr<SequenceKind> kind = make_kind(config, data.channels, data.normalization, config.train.run.threads);
  kind->set_training_series(train);
  RegularizationOptions reg = config.train.regularization;
  reg.kinetic_weight = config.train.run.kinetic_weight;  // [regularization] kinetic_weight is read into run
  try {
    kind->set_regularization(reg);
  } catch (const OptionsError& e) {
    throw ConfigError(config.source + ": " + e.what());
  }

  fs::create_directories(o.out_dir);
  const std::string latest = (fs::path(o.out_dir) / "latest.h5").string();
  const std::string best = (fs::path(o.out_dir) / "best.h5").string();
  const std::string metrics = (fs::path(o.out_dir) / "metrics.csv").string();
  write_text((fs::path(o.out_dir) / "config.toml").string(),
             "# resolved configuration of this run (cvnode latent train)\n" + config.to_toml());
  log("cvnode latent train: " + kind->describe() + "; " + std::to_string(train.size()) + " training, " +
      std::to_string(val.size()) + " validation series" +
      (std::isnan(o.window.until) && std::isnan(o.window.fraction) && std::isnan(file_end)
           ? std::string(" (whole series)")
           : " (conditioning window only)"));

  const auto& run = config.train.run;
  const int n = kind->param_size();
  Vector params = kind->initial_parameters();
  Optimizer opt(config.train.optimizer, n);
  Schedule schedule(config.train.schedule, config.train.optimizer.lr, run.epochs);
  const Vector ones = Vector::Ones(n);
  std::map<std::string, std::vector<double>> history;
  for (const auto& c : kColumns) history[c];
  LatentFitResult r;
  Vector best_params = params;
  int stale = 0;
  if (!o.resume.empty()) {
    const Checkpoint c = Checkpoint::read(o.resume, kind->spec());
    params = c.parameters;
    opt.set_state(vec(c, "m", o.resume), vec(c, "v", o.resume), static_cast<long>(scalar(c, "opt_steps", o.resume)));
    best_params = vec(c, "best_params", o.resume);
    schedule.set_state({scalar(c, "schedule_scale", o.resume), scalar(c, "schedule_best", o.resume),
                        static_cast<int>(scalar(c, "schedule_bad", o.resume))});
    r.best_val_loss = scalar(c, "best_val", o.resume);
    r.best_epoch = static_cast<int>(scalar(c, "best_epoch", o.resume));
    stale = static_cast<int>(scalar(c, "stale", o.resume));
    r.epochs = static_cast<int>(c.epoch);
    r.steps = c.step;
    for (const auto& col : kColumns) {
      auto it = c.metrics.find(col);
      if (it == c.metrics.end()) throw DataError(o.resume + ": metrics column '" + col + "' is missing");
      history[col] = it->second;
    }
    log("resumed from " + o.resume + " after epoch " + std::to_string(r.epochs));
  }
  auto checkpoint = [&](const Vector& p) {
    Checkpoint c;
    c.model_spec = kind->spec();
    c.parameters = p;
    c.optimizer_vectors = {{"m", opt.m()}, {"v", opt.v()}, {"best_params", best_params}};
    c.optimizer_scalars = {{"opt_steps", static_cast<double>(opt.steps())},
                           {"schedule_scale", schedule.state().scale},
                           {"schedule_best", schedule.state().best},
                           {"schedule_bad", static_cast<double>(schedule.state().bad)},
                           {"best_val", r.best_val_loss},
                           {"best_epoch", static_cast<double>(r.best_epoch)},
                           {"stale", static_cast<double>(stale)}};
    c.epoch = r.epochs;
    c.step = r.steps;
    c.rng_state = {run.seed};  // minibatch order and noise are pure functions of (seed, epoch, step)
    c.config = config.to_toml();
    c.normalization = data.normalization;
    c.metrics = history;
    return c;
  };

  const auto B = static_cast<std::size_t>(std::max(1, run.batch_size));
  for (int epoch = r.epochs + 1; epoch <= run.epochs; ++epoch) {
    const auto t_epoch = clock::now();
    // The epoch's order: a Fisher-Yates shuffle seeded by (run.seed, epoch) alone.
    std::vector<std::size_t> order(train.size());
    std::iota(order.begin(), order.end(), 0);
    detail::Rng rng(run.seed ^ (0xA0761D6478BD642FULL * static_cast<std::uint64_t>(epoch)));
    for (std::size_t i = order.size(); i > 1; --i)
      std::swap(order[i - 1], order[std::min(i - 1, static_cast<std::size_t>(rng.uniform() * i))]);
    const double lr = schedule.lr(epoch);
    double loss_sum = 0, norm_sum = 0, nfe_sum = 0;
    long failures = 0, good = 0, steps = 0;
    for (std::size_t a = 0; a < order.size(); a += B) {
      const std::vector<std::size_t> batch(order.begin() + a, order.begin() + std::min(order.size(), a + B));
      latent::MinibatchGradient g = kind->gradient(params, batch, {epoch, r.steps, run.seed});
      ++r.steps;
      ++steps;
      failures += static_cast<long>(g.failures.size());
      // A step whose loss or gradient is not finite, or where too many series failed, changes nothing.
      if (!std::isfinite(g.loss) || !g.grad.allFinite() || g.failures.size() == batch.size() ||
          g.failures.size() > run.failure_fraction * batch.size())
        continue;
      norm_sum += clip_gradient(g.grad, config.train.optimizer.clip_norm);
      opt.step(params, g.grad, lr, ones, ones);
      loss_sum += g.loss;
      nfe_sum += static_cast<double>(g.nfe);
      ++good;
    }
    if (good == 0) throw std::runtime_error("latent train: no good step in epoch " + std::to_string(epoch) + " (" +
                                     std::to_string(failures) + " series failed)");
    r.epochs = epoch;
    double val_loss = kNaN, val_rmse = kNaN;
    const bool validate = !val.empty() && (epoch % std::max(1, run.val_every) == 0 || epoch == run.epochs);
    if (validate) {
      const SequenceKind::Score s = kind->evaluate(params, val, run.seed);
      val_loss = s.loss;
      val_rmse = s.rmse;
      schedule.observe(val_loss);
      if (val_loss < r.best_val_loss) {
        r.best_val_loss = val_loss;
        r.best_epoch = epoch;
        best_params = params;
        stale = 0;
      } else {
        ++stale;
      }
    } else if (val.empty()) {
      best_params = params;
      r.best_epoch = epoch;
    }
    const double secs = std::chrono::duration<double>(clock::now() - t_epoch).count();
    const std::vector<double> row = {static_cast<double>(epoch), lr, loss_sum / good, val_loss, val_rmse,
                                     kind->kl_weight(epoch), nfe_sum / good, norm_sum / good,
                                     static_cast<double>(failures), secs};
    for (std::size_t i = 0; i < kColumns.size(); ++i) history[kColumns[i]].push_back(row[i]);
    if (r.best_epoch == epoch) checkpoint(best_params).write(best);
    checkpoint(params).write(latest);
    write_text(metrics, csv(history));
    std::ostringstream line;
    line.precision(5);
    line << "epoch " << epoch << "/" << run.epochs << " lr " << lr << " loss " << loss_sum / good;
    if (validate) line << " val " << val_loss << " val_rmse " << val_rmse;
    line << " nfe " << nfe_sum / good << " (" << secs << " s)";
    log(line.str());
    if (o.stop_after_epoch > 0 && epoch >= o.stop_after_epoch) break;
    if (run.early_stop_patience > 0 && stale >= run.early_stop_patience) {
      log("early stop: no validation improvement in " + std::to_string(stale) + " validations");
      break;
    }
  }
  r.seconds = std::chrono::duration<double>(clock::now() - start).count();
  return r;
}

std::string LatentScores::to_json() const {
  nlohmann::json j;
  j["kind"] = kind;
  j["series"] = series;
  j["failures"] = failures;
  j["interpolation"] = {{"rmse", interpolation_rmse}, {"points", interpolation_points},
                        {"coverage", interpolation_coverage}};
  j["extrapolation"] = {{"rmse", extrapolation_rmse}, {"points", extrapolation_points},
                        {"coverage", extrapolation_coverage}};
  j["level"] = level;
  j["samples"] = samples;
  j["posterior"] = posterior;
  if (posterior == "importance") j["mean_ess"] = mean_ess;
  return j.dump();
}

LatentScores latent_evaluate(const std::string& path, const LatentEvalOptions& o) {
  if (!(o.level > 0 && o.level < 1)) throw OptionsError("--level = " + std::to_string(o.level) + " must lie in (0, 1)");
  if (o.samples < 1) throw OptionsError("--samples = " + std::to_string(o.samples) + " must be >= 1");
  LatentPredictOptions p;
  p.series = o.series;
  p.window = o.window;
  p.samples = o.samples;
  p.posterior = o.posterior;
  p.levels = {0.5 - o.level / 2, 0.5 + o.level / 2};
  p.seed = o.seed;
  p.threads = o.threads;
  std::vector<LatentPrediction> pred = latent_predict(path, p);
  LatentScores s;
  s.kind = Config::parse(Checkpoint::read(path).config, path).model.kind;
  s.series = static_cast<int>(pred.size());
  s.level = o.level;
  s.samples = o.samples;
  s.posterior = o.posterior.method;
  double se_i = 0, se_e = 0, in_i = 0, in_e = 0;
  for (const auto& q : pred) {
    if (!q.error.empty()) {
      ++s.failures;
      continue;
    }
    s.mean_ess += q.ess;
    // The query times are the series' own rows (grid = 0).
    for (Eigen::Index k = 0; k < q.times.size(); ++k)
      for (Eigen::Index c = 0; c < q.mean.cols(); ++c) {
        const double y = q.observed(k, c);
        if (std::isnan(y)) continue;
        // Interpolation: the observations inside the window, which the model conditioned on
        // (reconstruction); extrapolation: those after it.
        const bool extra = q.times[k] > q.window_end;
        const double e = q.mean(k, c) - y;
        const bool inside = y >= q.quantiles[0](k, c) && y <= q.quantiles[1](k, c);
        (extra ? se_e : se_i) += e * e;
        (extra ? in_e : in_i) += inside;
        ++(extra ? s.extrapolation_points : s.interpolation_points);
      }
  }
  auto rmse = [](double se, long n) { return n > 0 ? std::sqrt(se / n) : kNaN; };
  s.interpolation_rmse = rmse(se_i, s.interpolation_points);
  s.extrapolation_rmse = rmse(se_e, s.extrapolation_points);
  s.mean_ess /= std::max(1, s.series - s.failures);
  s.interpolation_coverage = s.interpolation_points ? in_i / s.interpolation_points : kNaN;
  s.extrapolation_coverage = s.extrapolation_points ? in_e / s.extrapolation_points : kNaN;
  return s;
}

std::vector<LatentPrediction> latent_predict(const std::string& path, const LatentPredictOptions& o,
                                             std::vector<std::string>* channel_names) {
  for (double l : o.levels)
    if (!(l > 0 && l < 1)) throw OptionsError("--levels: " + std::to_string(l) + " must lie in (0, 1)");
  if (o.samples < 0) throw OptionsError("--samples = " + std::to_string(o.samples) + " must be >= 0");
  if (o.grid < 0 || !(o.extend >= 0)) throw OptionsError("--grid must be >= 0 and --extend >= 0");
  latent::PosteriorOptions posterior;
  if (o.posterior.method == "importance") posterior.importance = true;
  else if (o.posterior.method != "encoder")
    throw OptionsError("--posterior = '" + o.posterior.method + "': expected encoder or importance");
  posterior.proposal_scale = o.posterior.proposal_scale;
  posterior.proposals = o.posterior.proposals;
  if (!(posterior.proposal_scale >= 1) || !std::isfinite(posterior.proposal_scale))
    throw OptionsError("--proposal-scale = " + std::to_string(posterior.proposal_scale) + " must be finite and >= 1");
  if (posterior.proposals < 0)
    throw OptionsError("--proposals = " + std::to_string(posterior.proposals) + " must be >= 0 (0: 10 per sample)");
  const Trained t = load(path, o.threads);
  std::vector<Trajectory> series;
  std::vector<std::string> ids;
  double file_end = kNaN;
  choose(t, o.series, series, ids, file_end);
  if (channel_names)
    *channel_names =
        Dataset::read_range(o.series.data_file.empty() ? t.config.data.file : o.series.data_file, 0, 1).channel_names();
  const Normalization& norm = t.checkpoint.normalization;
  std::vector<LatentPrediction> out(series.size());
  std::vector<Trajectory> cond(series.size());
  std::vector<Vector> times(series.size());
  for (std::size_t s = 0; s < series.size(); ++s) {
    const Trajectory& tr = series[s];
    LatentPrediction& p = out[s];
    p.id = ids[s];
    const double end = window_end(o.window, file_end, tr);
    p.window_end = std::isnan(end) ? tr.times[tr.times.size() - 1] : end;
    cond[s] = rows_until(tr, p.window_end, Matrix(), ids[s]);
    p.observed_times = tr.times;
    p.observed = to_data(tr.values, norm);
    p.seen = Matrix::Zero(tr.values.rows(), tr.values.cols());
    for (Eigen::Index k = 0; k < tr.times.size(); ++k)
      for (Eigen::Index c = 0; c < tr.values.cols(); ++c) {
        const bool obs = tr.mask.size() == 0 || tr.mask(k, c) != 0;
        if (!obs) p.observed(k, c) = kNaN;
        p.seen(k, c) = obs && !(tr.times[k] > p.window_end);
      }
    if (o.grid > 0) {
      const double a = tr.times[0], b = tr.times[tr.times.size() - 1];
      times[s] = o.grid == 1 ? Vector(Vector::Constant(1, a)) : Vector(Vector::LinSpaced(o.grid, a, b + o.extend * (b - a)));
    } else {
      times[s] = tr.times;
    }
    p.times = times[s];
  }
  const Vector params = t.checkpoint.parameters;
  std::vector<latent::SampleSet> sets = t.kind->predict(params, cond, times, o.samples, o.seed, posterior);
  for (std::size_t s = 0; s < series.size(); ++s) {
    LatentPrediction& p = out[s];
    if (!sets[s].error.empty()) {
      p.error = sets[s].error;
      continue;
    }
    const latent::Band band = latent::summarize(sets[s].means, sets[s].noise_std, o.levels);
    p.mean = to_data(band.mean, norm);
    for (const auto& q : band.quantiles) p.quantiles.push_back(to_data(q, norm));
    for (const auto& m : sets[s].means) p.samples.push_back(to_data(m, norm));
    p.latent = std::move(sets[s].latent);
    p.ess = sets[s].ess;
  }
  return out;
}

}  // namespace cvnode

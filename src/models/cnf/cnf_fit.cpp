#include "models/cnf/cnf_fit.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cvnode/errors.h"
#include "data/atomic_file.h"
#include "core/random.h"

namespace cvnode {

namespace fs = std::filesystem;

namespace {

// The points of `rows` of a dataset: one fully observed row per series.
Matrix points_of(const Dataset& data, const std::vector<std::size_t>& rows, const std::string& file) {
  Matrix X(static_cast<Eigen::Index>(rows.size()), data.channels());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Series s = data.series(rows[i]);
    if (s.values.rows() != 1 || !s.values.allFinite())
      throw DataError(file + ": series '" + s.id + "' has " + std::to_string(s.values.rows()) +
                      " observations" + (s.values.allFinite() ? "" : " with missing entries") +
                      ": a flow's dataset holds one fully observed point per series "
                      "(cvnode data generate --system moons ...)");
    X.row(static_cast<Eigen::Index>(i)) = s.values.row(0);
  }
  return X;
}


std::string csv_of(const std::vector<CnfEpoch>& history) {
  std::ostringstream o;
  o.precision(10);
  const auto names = CnfEpoch::names();
  for (std::size_t i = 0; i < names.size(); ++i) o << (i ? "," : "") << names[i];
  o << "\n";
  for (const auto& e : history) {
    const auto v = e.values();
    for (std::size_t i = 0; i < v.size(); ++i) o << (i ? "," : "") << v[i];
    o << "\n";
  }
  return o.str();
}

// Minibatch order of an epoch: a pure function of (seed, epoch), so a resumed run repeats it.
std::vector<std::size_t> epoch_order(std::size_t n, std::uint64_t seed, int epoch) {
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  detail::Rng rng(seed * 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(epoch) + 1);
  for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng.next() % i]);
  return order;
}

FlowSettings flow_settings(const CnfFitConfig& c) {
  FlowSettings f;
  f.solver = c.base.train.solver;
  f.chunk = c.base.train.run.stack_size;
  f.threads = c.base.train.run.threads;
  return f;
}

struct RunState {
  int epoch = 0;
  long step = 0;
  Vector params, m, v, best;
  long opt_steps = 0;
  double best_val = std::numeric_limits<double>::infinity();
  int best_epoch = 0;
  Schedule::State schedule;
  std::vector<CnfEpoch> history;
};

Checkpoint checkpoint_of(const RunState& s, const CnfModel& model, const CnfFitConfig& c, const CnfData& d,
                         const Vector& params) {
  Checkpoint k;
  k.model_spec = cnf_model_spec(model);
  k.parameters = params;
  k.optimizer_vectors = {{"m", s.m}, {"v", s.v}, {"best_params", s.best}};
  k.optimizer_scalars = {{"opt_steps", static_cast<double>(s.opt_steps)},
                         {"best_val", s.best_val},
                         {"best_epoch", s.best_epoch},
                         {"schedule_scale", s.schedule.scale},
                         {"schedule_best", s.schedule.best},
                         {"schedule_bad", s.schedule.bad}};
  k.epoch = s.epoch;
  k.step = s.step;
  k.config = c.to_toml();
  if (c.base.data.normalize) k.normalization = {d.mean, d.std};
  const auto names = CnfEpoch::names();
  for (const auto& e : s.history) {
    const auto v = e.values();
    for (std::size_t i = 0; i < names.size(); ++i) k.metrics[names[i]].push_back(v[i]);
  }
  return k;
}

RunState state_of(const Checkpoint& k) {
  RunState s;
  s.epoch = static_cast<int>(k.epoch);
  s.step = k.step;
  s.params = k.parameters;
  s.m = k.optimizer_vectors.at("m");
  s.v = k.optimizer_vectors.at("v");
  s.best = k.optimizer_vectors.at("best_params");
  s.opt_steps = static_cast<long>(k.optimizer_scalars.at("opt_steps"));
  s.best_val = k.optimizer_scalars.at("best_val");
  s.best_epoch = static_cast<int>(k.optimizer_scalars.at("best_epoch"));
  s.schedule.scale = k.optimizer_scalars.at("schedule_scale");
  s.schedule.best = k.optimizer_scalars.at("schedule_best");
  s.schedule.bad = static_cast<int>(k.optimizer_scalars.at("schedule_bad"));
  const auto names = CnfEpoch::names();
  const std::size_t rows = k.metrics.count("epoch") ? k.metrics.at("epoch").size() : 0;
  for (std::size_t r = 0; r < rows; ++r) {
    std::vector<double> v;
    for (const auto& n : names) v.push_back(k.metrics.count(n) && r < k.metrics.at(n).size() ? k.metrics.at(n)[r] : NAN);
    s.history.push_back(CnfEpoch::from_values(v));
  }
  return s;
}

}  // namespace

Matrix CnfData::to_data(const Matrix& Y) const {
  return (Y.array().rowwise() * std.transpose().array()).rowwise() + mean.transpose().array();
}

CnfData load_cnf_data(const CnfFitConfig& config) {
  const DataOptions& o = config.base.data;
  Dataset data = Dataset::read(o.file);
  const Split split = data.split(o.train_fraction, o.val_fraction, o.split_seed);
  auto first = [&](std::vector<std::size_t> v) {
    if (o.max_series > 0) v.erase(std::remove_if(v.begin(), v.end(), [&](std::size_t i) {
                                    return i >= static_cast<std::size_t>(o.max_series);
                                  }), v.end());
    return v;
  };
  CnfData d;
  const Matrix train = points_of(data, first(split.train), o.file);
  if (train.rows() < 2) throw DataError(o.file + ": " + std::to_string(train.rows()) + " training points");
  const int D = static_cast<int>(train.cols());
  d.mean = Vector::Zero(D);
  d.std = Vector::Ones(D);
  if (o.normalize) {
    d.mean = train.colwise().mean().transpose();
    d.std = ((train.rowwise() - d.mean.transpose()).array().square().colwise().sum() / (train.rows() - 1)).sqrt().transpose();
    for (int j = 0; j < D; ++j)
      if (!(d.std[j] > 0)) throw DataError(o.file + ": dimension " + data.channel_names()[j] + " is constant over the training points");
  }
  const auto to_model = [&](const Matrix& X) -> Matrix {
    return (X.rowwise() - d.mean.transpose()).array().rowwise() / d.std.transpose().array();
  };
  d.train = to_model(train);
  d.val = to_model(points_of(data, first(split.validation), o.file));
  d.test = to_model(points_of(data, first(split.test), o.file));
  d.log_scale = d.std.array().log().sum();
  d.density = dataset_density(data, o.file);
  d.entropy = dataset_entropy(data);
  return d;
}

std::vector<std::string> CnfEpoch::names() {
  return {"epoch", "lr", "train_loss", "train_nll", "val_nll", "val_nll_per_dim", "nfe_forward",
          "nfe_backward", "kinetic", "frobenius", "solver_error", "failures", "seconds"};
}
std::vector<double> CnfEpoch::values() const {
  return {static_cast<double>(epoch), lr, train_loss, train_nll, val_nll, val_nll_per_dim, nfe_forward,
          nfe_backward, kinetic, frobenius, solver_error, static_cast<double>(failures), seconds};
}
CnfEpoch CnfEpoch::from_values(const std::vector<double>& v) {
  CnfEpoch e;
  e.epoch = static_cast<int>(v.at(0));
  e.lr = v.at(1);
  e.train_loss = v.at(2);
  e.train_nll = v.at(3);
  e.val_nll = v.at(4);
  e.val_nll_per_dim = v.at(5);
  e.nfe_forward = v.at(6);
  e.nfe_backward = v.at(7);
  e.kinetic = v.at(8);
  e.frobenius = v.at(9);
  e.solver_error = v.at(10);
  e.failures = static_cast<long>(v.at(11));
  e.seconds = v.at(12);
  return e;
}

std::string cnf_model_spec(const CnfModel& m) {
  const CnfModelOptions& o = m.options();
  nlohmann::json j{{"kind", "cnf"}, {"dim", m.dim()}, {"field", o.field}, {"params", m.param_size()}};
  if (o.field == "mlp") {
    j["hidden"] = o.hidden;
    j["activation"] = activation_name(o.activation);
    j["time_input"] = o.time_input;
  } else {
    j["width"] = o.width;
    j["hyper_hidden"] = o.hyper_hidden;
  }
  return j.dump();
}

bool is_cnf_checkpoint(const Checkpoint& k) {
  const auto j = nlohmann::json::parse(k.model_spec, nullptr, false);
  return j.is_object() && j.value("kind", "") == "cnf";
}

CnfFitResult run_cnf_fit(const CnfFitConfig& c, const CnfFitOptions& options) {
  const auto t_start = std::chrono::steady_clock::now();
  auto log = options.log ? options.log : [](const std::string& s) { std::cerr << s << "\n"; };
  if (options.out_dir.empty()) throw OptionsError("cnf fit: no output directory");
  fs::create_directories(options.out_dir);
  const std::string latest = (fs::path(options.out_dir) / "latest.h5").string();
  const std::string best = (fs::path(options.out_dir) / "best.h5").string();
  const std::string metrics = (fs::path(options.out_dir) / "metrics.csv").string();

  const CnfData d = load_cnf_data(c);
  const CnfModel model(c.model, static_cast<int>(d.train.cols()), d.log_scale);
  const TrainOptions& run = c.base.train.run;
  CnfEngine engine = model.engine(c.base.train.solver, run.stack_size, run.threads);
  Optimizer opt(c.base.train.optimizer, model.param_size());
  Schedule schedule(c.base.train.schedule, c.base.train.optimizer.lr, run.epochs);
  const FlowSettings fs_eval = flow_settings(c);

  RunState s;
  if (!options.resume.empty()) {
    s = state_of(Checkpoint::read(options.resume, cnf_model_spec(model)));
    opt.set_state(s.m, s.v, s.opt_steps);
    schedule.set_state(s.schedule);
  } else {
    s.params = model.initial_parameters();
    s.best = s.params;
  }
  io::write_text((fs::path(options.out_dir) / "config.toml").string(), c.to_toml());
  if (!options.quiet) {
    std::ostringstream o;
    o << model.describe() << "; " << d.train.rows() << " training, " << d.val.rows() << " validation, "
      << d.test.rows() << " test points; " << c.base.train.solver.method << " rtol " << c.base.train.solver.rtol;
    log(o.str());
  }
  const Vector ones = Vector::Ones(model.param_size());
  const std::size_t N = static_cast<std::size_t>(d.train.rows());
  const std::size_t B = std::min<std::size_t>(N, static_cast<std::size_t>(run.batch_size));
  while (s.epoch < run.epochs) {
    const auto t0 = std::chrono::steady_clock::now();
    const int epoch = s.epoch + 1;
    CnfEpoch e;
    e.epoch = epoch;
    e.lr = schedule.lr(epoch);
    const auto order = epoch_order(N, run.seed, epoch);
    int steps = 0;
    double solves = 0;
    for (std::size_t first = 0; first < N; first += B) {
      const std::vector<std::size_t> rows(order.begin() + first, order.begin() + std::min(N, first + B));
      CnfStep step{epoch, s.step, run.seed};
      CnfMinibatch g = model.gradient(s.params, d.train, rows, step, engine);
      ++s.step;
      e.failures += static_cast<long>(g.failures.size());
      if (g.failures.size() * 2 > rows.size() || !std::isfinite(g.loss) || !g.gradient.allFinite()) {
        log("epoch " + std::to_string(epoch) + " step " + std::to_string(s.step) + ": " +
            std::to_string(g.failures.size()) + " of " + std::to_string(rows.size()) +
            " samples failed to solve or the loss is not finite; step skipped" +
            (g.failures.empty() ? std::string() : " (" + g.failures.front().message + ")"));
        continue;
      }
      clip_gradient(g.gradient, c.base.train.optimizer.clip_norm);
      opt.step(s.params, g.gradient, e.lr, ones, ones);
      ++steps;
      solves += g.solves;
      e.train_loss += g.loss;
      e.train_nll += g.nll;
      e.kinetic += g.kinetic;
      e.frobenius += g.frobenius;
      e.solver_error += g.solver_error;
      e.nfe_forward += static_cast<double>(g.nfe_forward);
      e.nfe_backward += static_cast<double>(g.nfe_backward);
    }
    if (steps > 0) {
      e.train_loss /= steps;
      e.train_nll /= steps;
      e.kinetic /= steps;
      e.frobenius /= steps;
      e.solver_error /= steps;
    }
    if (solves > 0) {
      e.nfe_forward /= solves;
      e.nfe_backward /= solves;
    }
    if (epoch % run.val_every == 0 || epoch == run.epochs) {
      const CnfEvaluation v = model.evaluate(s.params, d.val, fs_eval);
      e.val_nll = v.nll;
      e.val_nll_per_dim = v.nll_per_dim;
      schedule.observe(v.nll);
      if (v.nll < s.best_val) {
        s.best_val = v.nll;
        s.best_epoch = epoch;
        s.best = s.params;
      }
    }
    s.epoch = epoch;
    s.m = opt.m();
    s.v = opt.v();
    s.opt_steps = opt.steps();
    s.schedule = schedule.state();
    e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    s.history.push_back(e);
    checkpoint_of(s, model, c, d, s.params).write(latest);
    if (s.best_epoch == epoch) checkpoint_of(s, model, c, d, s.best).write(best);
    io::write_text(metrics, csv_of(s.history));
    if (!options.quiet) {
      std::ostringstream o;
      o.precision(5);
      o << "epoch " << epoch << ": lr " << e.lr << ", train NLL " << e.train_nll << ", val NLL " << e.val_nll
        << " (" << e.val_nll_per_dim << " per dim), NFE " << e.nfe_forward << " + " << e.nfe_backward << ", "
        << e.seconds << " s";
      log(o.str());
    }
    if (options.stop_after_epoch > 0 && epoch >= options.stop_after_epoch) break;
  }
  CnfFitResult r;
  r.dim = model.dim();
  r.epochs = s.epoch;
  r.steps = s.step;
  r.best_val_nll = s.best_val;
  r.best_epoch = s.best_epoch;
  r.history = s.history;
  r.entropy = d.entropy;
  if (s.epoch >= run.epochs && d.test.rows() > 0) r.test = model.evaluate(s.best, d.test, fs_eval);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  return r;
}

FlowSettings TrainedCnf::settings() const {
  FlowSettings f = flow_settings(config);
  f.end_time = config.model.end_time;
  f.base_std = config.model.base_std;
  return f;
}

Vector TrainedCnf::log_density(const Matrix& X) const {
  if (X.cols() != model->dim())
    throw DataError("points of " + std::to_string(X.cols()) + " dimensions for a flow of " + std::to_string(model->dim()));
  const Matrix Y = (X.rowwise() - mean.transpose()).array().rowwise() / std.transpose().array();
  return flow().log_density(Y).log_density.array() - std.array().log().sum();
}

FlowPoints TrainedCnf::sample(int n, std::uint64_t seed) const {
  FlowPoints p = flow().sample(n, seed);
  p.points = (p.points.array().rowwise() * std.transpose().array()).rowwise() + mean.transpose().array();
  p.log_density.array() -= std.array().log().sum();
  return p;
}

TrainedCnf load_trained_cnf(const std::string& path, const std::vector<std::string>& overrides) {
  TrainedCnf t;
  t.checkpoint = Checkpoint::read(path);
  if (!is_cnf_checkpoint(t.checkpoint)) throw DataError(path + ": not a flow's checkpoint (model_spec kind is not cnf)");
  t.config = CnfFitConfig::parse(t.checkpoint.config, path + " (stored configuration)", overrides);
  const auto spec = nlohmann::json::parse(t.checkpoint.model_spec);
  const int D = spec.at("dim").get<int>();
  t.model = std::make_unique<CnfModel>(t.config.model, D);
  if (cnf_model_spec(*t.model) != t.checkpoint.model_spec)
    throw DataError(path + ": the stored configuration does not build the stored model (" + t.checkpoint.model_spec + ")");
  t.params = t.checkpoint.parameters;
  t.mean = Vector::Zero(D);
  t.std = Vector::Ones(D);
  if (!t.checkpoint.normalization.empty()) {
    t.mean = t.checkpoint.normalization.mean;
    t.std = t.checkpoint.normalization.std;
  }
  return t;
}

}  // namespace cvnode

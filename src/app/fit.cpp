#include "app/fit.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <iostream>
#include <limits>

#include <omp.h>

#include <nlohmann/json.hpp>

#include "cvnode/errors.h"
#include "cvnode/solver.h"
#include "cvnode/rank_backend.h"
#include "cvnode/ranks.h"
#include "data/atomic_file.h"
#include "data/memory_check.h"
#include "data/run_folder.h"
#include "train/model_kind.h"
#include "train/random_effect_prior.h"

namespace cvnode {

namespace fs = std::filesystem;

std::string model_spec(const Model& model) {
  nlohmann::json j;
  const auto& o = model.options();
  model.kind().spec(j);  // "type", "layers", "physics": what the kind built
  j["activation"] = activation_name(o.activation);
  j["observed"] = model.observed();
  j["augment"] = o.augment;
  j["time_input"] = o.time_input;
  j["bias"] = o.bias;
  j["initial_state"] = initial_state_name(o.initial_state);
  j["network_params"] = model.network_params();
  // Only with inputs: specs of models without them stay byte-identical to older checkpoints'.
  if (model.inputs() > 0) j["inputs"] = model.inputs();
  // Only when on: the specs of identity-readout models (every checkpoint written before the
  // readout existed) stay byte-identical.
  if (o.readout == Readout::Linear) j["readout"] = readout_name(o.readout);
  if (const auto* re = model.random_effects()) {
    const RandomEffectsOptions& r = o.random_effects;
    j["random_effects"] = {{"names", r.names},
                           {"physics", r.physics},
                           {"output_scale", r.output_scale},
                           {"network_input", r.network_input},
                           {"subjects", re->slots()}};
  }
  return j.dump();
}

namespace {

// Names of the TrainState scalars in the checkpoint's optimizer_scalars.
struct ScalarField {
  const char* name;
  double (*get)(const TrainState&);
  void (*set)(TrainState&, double);
};
const ScalarField kScalars[] = {
    {"opt_steps", [](const TrainState& s) { return double(s.opt_steps); }, [](TrainState& s, double v) { s.opt_steps = long(v); }},
    {"good_opt_steps", [](const TrainState& s) { return double(s.good_opt_steps); }, [](TrainState& s, double v) { s.good_opt_steps = long(v); }},
    {"schedule_scale", [](const TrainState& s) { return s.schedule.scale; }, [](TrainState& s, double v) { s.schedule.scale = v; }},
    {"schedule_best", [](const TrainState& s) { return s.schedule.best; }, [](TrainState& s, double v) { s.schedule.best = v; }},
    {"schedule_bad", [](const TrainState& s) { return double(s.schedule.bad); }, [](TrainState& s, double v) { s.schedule.bad = int(v); }},
    {"best_val", [](const TrainState& s) { return s.best_val; }, [](TrainState& s, double v) { s.best_val = v; }},
    {"best_epoch", [](const TrainState& s) { return double(s.best_epoch); }, [](TrainState& s, double v) { s.best_epoch = int(v); }},
    {"stale_validations", [](const TrainState& s) { return double(s.stale_validations); }, [](TrainState& s, double v) { s.stale_validations = int(v); }},
    {"bad_steps", [](const TrainState& s) { return double(s.bad_steps); }, [](TrainState& s, double v) { s.bad_steps = int(v); }},
    {"rollbacks", [](const TrainState& s) { return double(s.rollbacks); }, [](TrainState& s, double v) { s.rollbacks = int(v); }},
    {"failures_total", [](const TrainState& s) { return double(s.failures_total); }, [](TrainState& s, double v) { s.failures_total = long(v); }},
    {"stopped_early", [](const TrainState& s) { return s.stopped_early ? 1.0 : 0.0; }, [](TrainState& s, double v) { s.stopped_early = v != 0; }},
};
// The mid-epoch state of a fit stopped by a signal; absent (0) in checkpoints written at an
// epoch boundary by versions before it.
const ScalarField kPartialScalars[] = {
    {"epoch_step", [](const TrainState& s) { return double(s.epoch_step); }, [](TrainState& s, double v) { s.epoch_step = int(v); }},
    {"partial_lr", [](const TrainState& s) { return s.partial_lr; }, [](TrainState& s, double v) { s.partial_lr = v; }},
    {"partial_loss_weighted", [](const TrainState& s) { return s.partial_loss_weighted; }, [](TrainState& s, double v) { s.partial_loss_weighted = v; }},
    {"partial_weight", [](const TrainState& s) { return s.partial_weight; }, [](TrainState& s, double v) { s.partial_weight = v; }},
    {"partial_grad_norm", [](const TrainState& s) { return s.partial_grad_norm; }, [](TrainState& s, double v) { s.partial_grad_norm = v; }},
    {"partial_nfe_forward", [](const TrainState& s) { return s.partial_nfe_forward; }, [](TrainState& s, double v) { s.partial_nfe_forward = v; }},
    {"partial_nfe_backward", [](const TrainState& s) { return s.partial_nfe_backward; }, [](TrainState& s, double v) { s.partial_nfe_backward = v; }},
    {"partial_solved", [](const TrainState& s) { return double(s.partial_solved); }, [](TrainState& s, double v) { s.partial_solved = long(v); }},
    {"partial_steps", [](const TrainState& s) { return double(s.partial_steps); }, [](TrainState& s, double v) { s.partial_steps = long(v); }},
    {"partial_failures", [](const TrainState& s) { return double(s.partial_failures); }, [](TrainState& s, double v) { s.partial_failures = long(v); }},
};

// Every rank applies the same steps to the same numbers, so the parameters must agree to the bit;
// a difference (ranks built for different instruction sets, a bug) stops the run instead of
// silently training several models.
void check_ranks_agree(const Ranks& ranks, const TrainState& s) {
  if (!ranks.distributed()) return;
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a over the parameters' bytes
  const auto* p = reinterpret_cast<const unsigned char*>(s.params.data());
  for (std::size_t i = 0; i < sizeof(double) * static_cast<std::size_t>(s.params.size()); ++i)
    h = (h ^ p[i]) * 1099511628211ULL;
  const long mine = static_cast<long>(h >> 1);
  if (ranks.allreduce_max(mine) != -ranks.allreduce_max(-mine))
    throw std::runtime_error("MPI ranks hold different parameters after epoch " + std::to_string(s.epoch) +
                             " (ranks built for different instruction sets?)");
}

void write_metrics_csv(const std::string& path, const std::vector<EpochMetrics>& history) {
  // Rewritten whole after every epoch, atomically, right after latest.h5 (a resumed run rewrites
  // it from the checkpoint's history first, so the two agree again after a kill between them).
  std::string text = std::string(EpochMetrics::csv_header()) + "\n";
  for (const auto& m : history) text += m.csv_row() + "\n";
  io::write_text(path, text);
}

}  // namespace

Checkpoint to_checkpoint(const TrainState& s, const Model& model, const Config& config,
                         const Normalization& normalization, const Normalization& input_normalization) {
  Checkpoint c;
  c.model_spec = model_spec(model);
  c.parameters = s.params;
  c.optimizer_vectors["m"] = s.opt_m;
  c.optimizer_vectors["v"] = s.opt_v;
  c.optimizer_vectors["best_params"] = s.best_params;
  c.optimizer_vectors["good_params"] = s.good_params;
  c.optimizer_vectors["good_m"] = s.good_m;
  c.optimizer_vectors["good_v"] = s.good_v;
  for (const auto& f : kScalars) c.optimizer_scalars[f.name] = f.get(s);
  if (s.epoch_step > 0)
    for (const auto& f : kPartialScalars) c.optimizer_scalars[f.name] = f.get(s);
  c.epoch = s.epoch;
  c.step = s.step;
  // Minibatch order is a pure function of (run.seed, epoch); the seed is the whole RNG state.
  c.rng_state = {config.train.run.seed};
  c.config = config.to_toml();
  c.normalization = normalization;
  c.input_normalization = input_normalization;
  const auto names = EpochMetrics::names();
  for (const auto& n : names) c.metrics[n];
  for (const auto& m : s.history) {
    const auto v = m.values();
    for (std::size_t i = 0; i < names.size(); ++i) c.metrics[names[i]].push_back(v[i]);
  }
  return c;
}

TrainState from_checkpoint(const Checkpoint& c) {
  TrainState s;
  s.params = c.parameters;
  auto vec = [&](const char* name) -> Vector {
    auto it = c.optimizer_vectors.find(name);
    if (it == c.optimizer_vectors.end()) throw DataError(std::string("checkpoint: optimizer vector '") + name + "' is missing");
    return it->second;
  };
  s.opt_m = vec("m");
  s.opt_v = vec("v");
  s.best_params = vec("best_params");
  s.good_params = vec("good_params");
  s.good_m = vec("good_m");
  s.good_v = vec("good_v");
  for (const auto& f : kScalars) {
    auto it = c.optimizer_scalars.find(f.name);
    if (it == c.optimizer_scalars.end()) throw DataError(std::string("checkpoint: scalar '") + f.name + "' is missing");
    f.set(s, it->second);
  }
  for (const auto& f : kPartialScalars) {
    auto it = c.optimizer_scalars.find(f.name);
    f.set(s, it == c.optimizer_scalars.end() ? 0.0 : it->second);
  }
  s.epoch = static_cast<int>(c.epoch);
  s.step = c.step;
  const auto names = EpochMetrics::names();
  const auto& first = c.metrics.at(names[0]);
  for (std::size_t r = 0; r < first.size(); ++r) {
    std::vector<double> row;
    for (const auto& n : names) {
      auto it = c.metrics.find(n);
      if (it == c.metrics.end() || it->second.size() != first.size())
        throw DataError("checkpoint: metrics column '" + n + "' is missing or has the wrong length");
      row.push_back(it->second[r]);
    }
    s.history.push_back(EpochMetrics::from_values(row));
  }
  return s;
}

// loss.scale = "std" | "max": per-channel loss weights 1/scale^2 from the observed entries of the
// training series (in the units the loss sees), written into loss.weight so that the stored,
// resolved configuration gives the same loss on its own.
Config resolve_loss_scale(const Config& c) {
  if (c.loss_scale == "none") return c;
  Config r = c;
  FitDataOptions fo;
  fo.windows = true;  // the series the loss first sees
  const FitData d = load_fit_data(c, fo);
  // Each observation once: a window starts at the previous window's last row (shared end points),
  // so the rows of a window up to where its series' previous window ended are skipped.
  std::vector<Eigen::Index> first(d.train.size(), 0);
  if (!d.window_parent.empty()) {
    std::vector<double> counted(d.train_whole.size(), -HUGE_VAL);
    for (std::size_t w = 0; w < d.train.size(); ++w) {
      const Vector& t = d.train[w].times;
      double& until = counted[d.window_parent[w]];
      while (first[w] < t.size() && t[first[w]] <= until) ++first[w];
      if (t.size()) until = std::max(until, t[t.size() - 1]);
    }
  }
  Vector w(d.channels);
  for (int i = 0; i < d.channels; ++i) {
    double sum = 0, sum2 = 0, maxabs = 0;
    long count = 0;
    for (std::size_t s = 0; s < d.train.size(); ++s)
      for (Eigen::Index k = first[s], T = d.train[s].values.rows(); k < T; ++k) {
        const Trajectory& tr = d.train[s];
        if (tr.mask.size() != 0 && tr.mask(k, i) == 0) continue;
        const double v = tr.values(k, i);
        if (!std::isfinite(v)) continue;
        sum += v;
        sum2 += v * v;
        maxabs = std::max(maxabs, std::abs(v));
        ++count;
      }
    double scale = maxabs;
    if (c.loss_scale == "std" && count > 1) {
      const double mean = sum / count;
      scale = std::sqrt(std::max(0.0, (sum2 - count * mean * mean) / (count - 1)));
    }
    if (!(scale > 0) || !std::isfinite(scale))
      throw DataError("loss.scale = \"" + c.loss_scale + "\": channel " + std::to_string(i) +
                      " of the training series has scale " + std::to_string(scale) + " (no spread)");
    w[i] = 1.0 / (scale * scale);
  }
  r.train.loss.weight = w;
  r.loss_scale = "none";
  return r;
}

namespace {

// The unobserved components (beyond the channels) of each training window's initial state from
// the model itself: every whole training series solved from its own start with the current
// parameters, read at its windows' first times. Windows x (state - channels), row-major; the
// windows of a series whose solve fails start at 0 there.
Vector window_start_states(const Model& model, const Vector& params, const FitData& d, const SolverOptions& options) {
  const int N = model.state_size(), C = model.observed(), U = N - C;
  Vector out = Vector::Zero(static_cast<Eigen::Index>(d.train.size()) * U);
  Solver solver(model.dynamics(), options);
  const Vector theta = params.head(model.network_params());
  for (std::size_t s = 0; s < d.train_whole.size(); ++s) {
    std::vector<std::size_t> mine;
    std::vector<double> starts;
    for (std::size_t w = 0; w < d.window_parent.size(); ++w)
      if (d.window_parent[w] == s) {
        mine.push_back(w);
        starts.push_back(d.train[w].times[0]);
      }
    if (mine.empty()) continue;
    try {
      Trajectory whole = d.train_whole[s];
      whole.z0.resize(0);  // the model's own rule, as for a series it has not seen
      Trajectory tr = model.lift(whole, d.train_whole_ids[s]);
      // Read at the windows' starts, with the series' events and inputs up to the last of them
      // (an event at a window's start comes after the state read there, as in the window).
      tr.times = Eigen::Map<const Vector>(starts.data(), static_cast<Eigen::Index>(starts.size()));
      tr.values = Matrix::Zero(tr.times.size(), C);
      tr.mask = Matrix::Zero(tr.times.size(), C);
      tr.t_end = std::numeric_limits<double>::quiet_NaN();
      tr.events.erase(std::remove_if(tr.events.begin(), tr.events.end(), [&](const Event& e) { return e.time > starts.back(); }),
                      tr.events.end());
      const Solution sol = solver.solve(theta, tr);
      if (!sol.states.allFinite()) continue;
      for (std::size_t k = 0; k < mine.size(); ++k)
        out.segment(static_cast<Eigen::Index>(mine[k]) * U, U) = sol.states.row(static_cast<Eigen::Index>(k)).tail(U).transpose();
    } catch (const std::exception&) {
      // Left at zero: the training step reports this series' failures itself.
    }
  }
  return out;
}

// Parameters of the dynamics network from the options alone (a lower bound for hybrids), so that
// a model too large for the machine is refused before anything is allocated.
double network_parameter_estimate(const ModelOptions& o, int observed, int inputs) {
  double n = observed + o.augment, total = 0, in = n + (o.time_input ? 1 : 0) + inputs;
  for (int h : o.hidden) {
    total += (in + 1) * h;
    in = h;
  }
  return total + (in + 1) * n;
}

std::string join_ints(const std::vector<int>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s;
}

// The refusal of a fresh fit into a folder that holds another run.
std::string holds_run_message(const io::RunFolder& folder, const std::vector<std::string>& files) {
  std::string names;
  for (const auto& f : files) names += (names.empty() ? "" : ", ") + f;
  std::string epoch;
  try {
    epoch = " (latest.h5 after epoch " + std::to_string(Checkpoint::read(folder.file("latest.h5")).epoch) + ")";
  } catch (const std::exception&) {
  }
  return folder.dir() + ": holds an earlier run" + epoch + ": " + names +
         ". Continue it with --resume, or replace it with --overwrite, or choose another --out";
}

// Why MPI ranks cannot read only their shards of the data ("" when they can). A shard is a fixed
// set of series per rank, so every unit must be solved by the rank holding its series' values.
std::string why_not_shards(const Config& c) {
  if (c.train.run.balance != Balance::Static)
    return "run.balance = \"dynamic\" may hand any series to any rank";
  if (c.train.run.batch_mode != BatchMode::PerSeries)
    return "run.batch_mode = \"" + std::string(c.train.run.batch_mode == BatchMode::Stacked ? "stacked" : "auto") +
           "\" stacks series of several ranks' shards";
  if (c.data.split == "time") return "data.split = \"time\" cuts every series";
  if (c.model.initial_state == InitialState::Learned) return "model.initial_state = \"learned\" starts from every series";
  if (c.data.window >= 2 && c.data.window_start == "model")
    return "data.window_start = \"model\" solves every series on every rank";
  return "";
}

}  // namespace

FitResult run_fit(const Config& given, const FitOptions& options) {
  if (const std::string command = model_kind_command(given.model.kind); command != "fit")
    throw OptionsError("model.kind = \"" + given.model.kind + "\" is trained by `cvnode " + command + "`");
  const Config config = resolve_loss_scale(given);
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  // With MPI ranks, rank 0 alone logs and writes; every rank computes the same state.
  const Ranks& ranks = Ranks::world();
  auto log = options.log ? options.log : [](const std::string& s) { std::cerr << s << std::endl; };
  if (!ranks.root()) log = [](const std::string&) {};
  if (options.out_dir.empty()) throw OptionsError("fit: an output directory (--out) is needed");
  io::RunFolder folder(options.out_dir);
  const std::string latest = folder.file("latest.h5"), best = folder.file("best.h5"),
                    metrics = folder.file("metrics.csv");
  // A run continues in its own folder; anything else into a folder holding a run needs
  // --overwrite. Checked first (a quick refusal) and again under the folder's lock.
  std::error_code ec;
  const bool own_run = !options.resume.empty() && fs::exists(options.resume, ec) &&
                       fs::equivalent(fs::absolute(options.resume).parent_path(), fs::absolute(options.out_dir), ec);
  auto check_folder = [&] {
    if (own_run || options.overwrite) return;
    if (const auto files = folder.run_files(); !files.empty()) throw OptionsError(holds_run_message(folder, files));
  };
  if (ranks.root()) check_folder();
  for (const auto& out : io::RunFolder::outputs())
    io::check_not_input("fit", folder.file(out), {given.data.file, given.data.validation_file, given.data.test_file});

  // Everything that can refuse the run is checked before anything is written: the data, the
  // model's size, the checkpoint to resume and the trainer's own validation.
  // On MPI ranks each rank reads the values of its shard of the series only, where the run's
  // options let every series be solved by the rank holding it (why_not_shards).
  const std::string no_shards = ranks.distributed() ? why_not_shards(config) : "";
  const bool shards = ranks.distributed() && no_shards.empty();
  FitDataOptions windowed;
  windowed.windows = true;
  if (shards) {
    windowed.shard_rank = ranks.rank();
    windowed.shard_size = ranks.size();
    windowed.combine = [&ranks](ExactSum& s) { ranks.allreduce(s); };
  }
  // (Shards: rank 0 alone checks the file's seal, which reads it whole, and tells the others.)
  std::string fingerprint;
  if (!shards || ranks.root()) fingerprint = io::content_fingerprint(config.data.file);
  if (shards) ranks.broadcast(fingerprint, 0);
  FitData data = load_fit_data(config, windowed);
  {
    const double P = network_parameter_estimate(config.model, data.channels, data.inputs);
    // Parameters, optimizer moments, the best and rollback copies, gradients, checkpoint images,
    // and each thread's gradient and solver workspace.
    const int threads = config.train.run.threads > 0 ? config.train.run.threads : omp_get_max_threads();
    io::require_memory(8.0 * P * (24.0 + 4.0 * threads),
                       "model.hidden = [" + join_ints(config.model.hidden) + "] (about " +
                           std::to_string(static_cast<long long>(P)) + " network parameters, trained with " +
                           std::to_string(threads) + " thread(s))");
  }
  const RandomEffectsOptions& reo = config.model.random_effects;
  const int train_subjects = static_cast<int>(data.train.size());
  Model model(config.model, data.channels, data.inputs,
              reo.enabled() ? static_cast<int>(data.train.size() + data.val.size()) : 0);
  // Random effects: training subject i uses row i of the eta table, validation subject j row
  // (training subjects + j), which holds its empirical-Bayes eta at each validation (the best
  // checkpoint is chosen on the individual predictions, as eval scores them); test subjects are
  // not seen (eval estimates theirs).
  detail::RandomEffectPrior prior;
  if (model.random_effects()) {
    for (int i = 0; i < train_subjects; ++i) data.train[i] = model.with_subject(std::move(data.train[i]), i);
    for (std::size_t j = 0; j < data.val.size(); ++j)
      data.val[j] = model.with_subject(std::move(data.val[j]), train_subjects + static_cast<int>(j));
    for (auto& v : data.test) v = model.with_subject(std::move(v), -1);
    prior = detail::RandomEffectPrior::start(reo, data.train);
  }
  // The curriculum: windows of data.window observations until data.window_epochs, then windows
  // of each data.window_stages[i] until data.window_stage_epochs[i], then whole series (until =
  // 0: to the end). Same model, same parameter layout in every phase.
  struct Phase {
    int window, until;
  };
  std::vector<Phase> phases;
  const bool curriculum = config.data.window >= 2 && config.data.window_epochs > 0;
  if (curriculum) {
    phases.push_back({config.data.window, config.data.window_epochs});
    for (std::size_t i = 0; i < config.data.window_stages.size(); ++i)
      phases.push_back({config.data.window_stages[i], config.data.window_stage_epochs[i]});
    phases.push_back({0, 0});
  } else {
    phases.push_back({config.data.window, 0});
  }
  auto phase_data = [&](std::size_t p) {
    if (p == 0) return data;
    Config c = config;
    c.data.window = phases[p].window;
    return load_fit_data(c, windowed);
  };
  // The series the best checkpoint is chosen on: the validation split, whole; without one the
  // whole training series (never the windows of a curriculum's phase, whose loss is not
  // comparable between phases nor with the model's use on whole series).
  const bool windows_used = config.data.window >= 2;
  std::vector<Trajectory> selection = data.val;
  std::vector<std::string> selection_ids = data.val_ids;
  std::vector<int> selection_history = data.val_history;  // forecast windows: their known past
  if (selection.empty() && windows_used) {
    FitDataOptions series = windowed;
    series.windows = false;
    const FitData whole = load_fit_data(config, series);
    selection = whole.train;
    selection_ids = whole.train_ids;
    selection_history.clear();
  }
  // Windows warm-started from the model's own solution (data.window_start = "model"): their
  // unobserved components, recomputed at the start of every epoch and stored in latest.h5 so
  // that a run resumed within an epoch uses the same ones.
  Vector warm_states;
  auto warm_phase = [&](std::size_t p) {
    return config.data.window_start == "model" && phases[p].window >= 2 && model.state_size() > data.channels &&
           config.model.initial_state != InitialState::Learned;  // (learned: each window's z0 is a parameter)
  };
  auto quiet_log = std::function<void(const std::string&)>([](const std::string&) {});
  auto checkpoint_of = [&](const TrainState& s) {
    Checkpoint c = to_checkpoint(s, model, config, data.normalization, data.input_normalization);
    c.data_fingerprint = fingerprint;
    if (model.random_effects()) prior.store(c);
    return c;
  };
  auto write_best = [&](const TrainState& s) {
    TrainState b = s;
    b.params = s.best_params;
    checkpoint_of(b).write(best);
  };
  auto make = [&](const FitData& d) {
    auto t = std::make_unique<Trainer>(model, d.train, d.train_ids, selection, selection_ids, config.train);
    if (shards) t->set_series_owners(d.train_owner);
    if (config.data.forecast_history > 1 && !selection_history.empty())
      t->prepare_val = [&](const Vector& theta, std::vector<Trajectory>& v) {
        start_forecasts(model.dynamics(), theta, v, selection_history, config.train.solver, data.channels);
      };
    t->log = options.quiet ? quiet_log : log;
    Trainer* tp = t.get();
    if (model.random_effects())
      t->add_prior = [&](const Vector& params, const std::vector<int>& series, long entries, Vector& grad) {
        prior.add_gradient(*model.random_effects(), params, series, entries, grad);
      };
    if (model.random_effects())
      t->after_epoch_steps = [&, tp](bool validate, Vector& params) {
        const RandomEffectsDynamics& re = *model.random_effects();
        const int P = model.network_params(), k = re.effects();
        params.head(P) = re.recentered(params.head(P), train_subjects);
        const int V = re.slots() - train_subjects;
        if (!validate || V == 0 || tp->val_series().empty()) return;
        Matrix start(V, k);
        for (int j = 0; j < V; ++j) start.row(j) = params.segment(re.eta_offset() + (train_subjects + j) * k, k).transpose();
        EmpiricalBayesOptions eb;
        eb.omega = prior.omega;
        eb.sigma2 = prior.sigma2;
        eb.threads = config.train.run.threads;
        const auto est = empirical_bayes(re, params.head(P), tp->val_problem(params), config.train.solver, eb, &start);
        for (int j = 0; j < V; ++j) params.segment(re.eta_offset() + (train_subjects + j) * k, k) = est[static_cast<std::size_t>(j)].eta;
      };
    t->on_epoch = [&, tp](const TrainState& s) {
      if (model.random_effects() && s.epoch_step == 0 && !s.history.empty()) {
        const EpochMetrics& m = s.history.back();
        const bool refit = reo.estimate_omega && (s.epoch % config.train.run.val_every == 0 || s.epoch == config.train.run.epochs);
        prior.update(model, s.params, m.train_loss, refit ? &tp->train_series() : nullptr, train_subjects,
                     config.train, config.train.run.threads);
        if (!std::isnan(m.val_loss) && !options.quiet) log("  " + prior.describe(reo));
      }
      check_ranks_agree(ranks, s);
      if (!ranks.root()) return;
      Checkpoint ck = checkpoint_of(s);
      if (warm_states.size()) ck.optimizer_vectors["window_start_states"] = warm_states;
      ck.write(latest);
      if (s.best_epoch == s.epoch && s.epoch_step == 0) write_best(s);
      write_metrics_csv(metrics, s.history);
      if (options.on_epoch) options.on_epoch(s);
    };
    return t;
  };
  TrainState resumed_state;
  bool resumed = false;
  if (!options.resume.empty()) {
    const Checkpoint ck = Checkpoint::read(options.resume, model_spec(model));
    if (!ck.data_fingerprint.empty() && ck.data_fingerprint != fingerprint && !options.allow_data_change)
      throw DataError(config.data.file + ": the data file changed since " + options.resume +
                      " was written (its content was " + ck.data_fingerprint + ", now " + fingerprint +
                      "): the split, the normalisation and the minibatches would differ from the run's. Pass "
                      "--allow-data-change to continue on the new data anyway");
    resumed_state = from_checkpoint(ck);
    resumed = true;
    if (model.random_effects()) prior.restore(ck);
    if (const auto it = ck.optimizer_vectors.find("window_start_states"); it != ck.optimizer_vectors.end())
      warm_states = it->second;
  }
  // At a switch: fresh optimizer moments (and the rollback target's), see
  // OptimizerOptions::reset_at_phase.
  auto enter_phase = [&](TrainState& s) {
    if (!config.train.optimizer.reset_at_phase) return;
    s.opt_m.setZero();
    s.opt_v.setZero();
    s.opt_steps = 0;
    s.good_params = s.params;
    s.good_m = s.opt_m;
    s.good_v = s.opt_v;
    s.good_opt_steps = 0;
    s.bad_steps = 0;
  };
  // The phase a resumed run is in: the first one whose last epoch is still ahead. A checkpoint
  // of a phase's last epoch was written before the switch, so the switch happens now.
  std::size_t phase = 0;
  if (resumed) {
    while (phases[phase].until > 0 && resumed_state.epoch >= phases[phase].until) ++phase;
    // (Not when resumed mid-epoch: the switch happened before the epoch began.)
    if (phase > 0 && resumed_state.epoch == phases[phase - 1].until && resumed_state.epoch_step == 0)
      enter_phase(resumed_state);
  }
  std::unique_ptr<Trainer> trainer = make(phase_data(phase));  // validates the training options
  if (resumed) trainer->restore(resumed_state);
  if (phase > 0) trainer->set_phase_start(phases[phase - 1].until);

  // Valid: the folder becomes this run's, for as long as it lasts (rank 0 holds it for all ranks).
  if (ranks.root()) {
    folder.lock();
    check_folder();
    if (options.overwrite && !own_run) folder.clear_run();
    io::write_text(folder.file("config.toml"), "# resolved configuration of this run (cvnode fit)\n" + config.to_toml());
    if (resumed) {
      // The folder's files follow the checkpoint from the start: metrics.csv is its history (also
      // after a kill between latest.h5 and metrics.csv), and a new folder gets the best model so
      // far (a checkpoint taken mid-epoch by a stop signal holds it too).
      write_metrics_csv(metrics, resumed_state.history);
      if (resumed_state.best_epoch > 0 && !fs::exists(best, ec)) write_best(resumed_state);
    }
  }
  if (!options.quiet) {
    log("cvnode fit: resolved configuration (" + config.source + ")\n" + config.to_toml());
    char buf[400];
    std::snprintf(buf, sizeof buf, "data: %s, %zu train %s / %zu validation / %zu test %s, %d channels",
                  config.data.file.c_str(), data.train.size(), config.data.window >= 2 ? "windows" : "series",
                  data.val.size(), data.test.size(), data.forecast ? "forecast windows" : "series", data.channels);
    log(buf);
    if (data.val.empty() && windows_used)
      log("no validation split: the best checkpoint is chosen on the whole training series");
    log("model: " + model.describe());
    if (ranks.distributed()) {
      log("parallel: " + std::to_string(ranks.size()) + " MPI ranks x " + std::to_string(config.train.run.threads) +
          " thread(s), " + reduction_name(config.train.run.reduction) + " reduction");
      log(shards ? "data: each rank reads the values of its shard of the series only (run.balance = \"static\")"
                 : "data: every rank reads every series (" + no_shards + ")");
    }
    if (resumed) log("resumed from " + options.resume + " after epoch " + std::to_string(resumed_state.epoch));
  }
  std::optional<FitData> current;  // the phase's windows, kept while they are warm-started
  for (;;) {
    int stop = phases[phase].until;
    if (options.stop_after_epoch > 0) stop = stop > 0 ? std::min(stop, options.stop_after_epoch) : options.stop_after_epoch;
    if (!warm_phase(phase)) {
      warm_states.resize(0);
      trainer->run(stop);
    } else {
      // One epoch at a time, each from windows started at the model's own state.
      if (!current) current = phase_data(phase);
      const int U = model.state_size() - data.channels;
      while (!trainer->finished() && !(stop > 0 && trainer->state().epoch >= stop) && !trainer->stopped_by_signal()) {
        const TrainState s = trainer->state();
        if (s.epoch_step == 0 || warm_states.size() != static_cast<Eigen::Index>(current->train.size()) * U)
          warm_states = window_start_states(model, s.params, *current, config.train.solver);
        FitData w = *current;
        for (std::size_t k = 0; k < w.train.size(); ++k) {
          Vector z0(model.state_size());
          z0 << w.train[k].values.row(0).transpose(), warm_states.segment(static_cast<Eigen::Index>(k) * U, U);
          w.train[k].z0 = z0;
        }
        trainer = make(w);
        trainer->restore(s);
        if (phase > 0) trainer->set_phase_start(phases[phase - 1].until);
        trainer->run(s.epoch + 1);
      }
      current.reset();
    }
    const bool interrupted = (options.stop_after_epoch > 0 && trainer->state().epoch >= options.stop_after_epoch) ||
                             trainer->stopped_by_signal() != 0;
    if (phases[phase].until == 0 || trainer->finished() || interrupted) break;
    ++phase;
    if (!options.quiet) {
      const int w = phases[phase].window;
      log("curriculum: epoch " + std::to_string(trainer->state().epoch) + " done, " +
          (w >= 2 ? "windows of " + std::to_string(w) + " observations until epoch " +
                        std::to_string(phases[phase].until)
                  : std::string("whole series")) +
          " from here on");
    }
    TrainState s = trainer->state();
    enter_phase(s);
    trainer = make(phase_data(phase));
    trainer->restore(s);
    trainer->set_phase_start(phases[phase - 1].until);
  }

  // Where the last phase's steps spent their time on each rank (bench/cluster reads this line).
  if (const auto* rb = dynamic_cast<const RankBackend*>(&trainer->backend())) {
    const std::string report = timing_report(ranks, rb->timing());
    if (!options.quiet) log("parallel timing: " + report);
  }
  FitResult r;
  r.state = trainer->state();
  r.stopped_by_signal = trainer->stopped_by_signal();
  if (!data.val.empty() && !r.stopped_by_signal) {
    r.best_val = evaluate_on_ranks(ranks, model.dynamics(), trainer->network(r.state.best_params),
                                   trainer->val_problem(r.state.best_params), config.train.solver,
                                   config.train.run.threads);
    // Each rank holds the predictions of its validation series: their error sums merge.
    ExactSum sums = data_error_sums(data, data.val, r.best_val.predictions, data.val_history);
    ranks.allreduce(sums);
    r.best_val_data = finish_data_errors(sums);
  }
  if (const HybridModel* h = model.hybrid(); h && h->physics)
    r.physical = h->physical(r.state.best_params.head(model.network_params()));
  r.seconds = std::chrono::duration<double>(clock::now() - start).count();
  return r;
}

TrainedModel load_trained(const std::string& path, const std::vector<std::string>& overrides) {
  TrainedModel t;
  t.checkpoint = Checkpoint::read(path);
  t.config = Config::parse(t.checkpoint.config, path + " (stored configuration)", overrides);
  nlohmann::json spec;
  try {
    spec = nlohmann::json::parse(t.checkpoint.model_spec);
  } catch (const std::exception& e) {
    throw DataError(path + ": model_spec is not JSON: " + e.what());
  }
  const int observed = spec.value("observed", 0);
  const int subjects = spec.contains("random_effects") ? spec["random_effects"].value("subjects", 0) : 0;
  t.model = std::make_unique<Model>(t.config.model, observed, spec.value("inputs", 0), subjects);
  if (model_spec(*t.model) != t.checkpoint.model_spec)
    throw DataError(path + ": the stored configuration does not give the stored model_spec " +
                    t.checkpoint.model_spec + " (a --set changed the model?)");
  t.theta = t.checkpoint.parameters.head(t.model->network_params());
  t.phi = t.model->loss_parameters(t.checkpoint.parameters);
  t.normalization = t.checkpoint.normalization;
  t.input_normalization = t.checkpoint.input_normalization;
  // How the data were scaled and dosed is part of the model: an override may point at other
  // data (data.file, a split), never change these.
  const Config stored = Config::parse(t.checkpoint.config, path + " (stored configuration)");
  const DataOptions &now = t.config.data, &then = stored.data;
  if (now.transform != then.transform || now.normalize != then.normalize ||
      now.compartment_states != then.compartment_states || now.dose_scale != then.dose_scale ||
      now.ignore != then.ignore)
    throw ConfigError(path + ": data.transform, data.normalize, data.compartment_states, data.dose_scale and "
                      "data.ignore are part of the trained model and cannot be changed by --set");
  t.transforms = channel_transforms(t.config.data, observed);
  if (t.model->random_effects()) {
    detail::RandomEffectPrior p;
    p.restore(t.checkpoint);
    t.re_omega = p.omega;
    t.re_sigma2 = p.sigma2;
  }
  // Learned initial states: each training series' own z0 by id, and the mean of their
  // unobserved components, the starting point of every other series.
  const Model& m = *t.model;
  const int N = m.state_size(), Q = m.shared_params();
  const Eigen::Index learned = t.checkpoint.parameters.size() - Q;
  if (m.options().initial_state == InitialState::Learned && N > 0 && learned > 0 && learned % N == 0) {
    const Eigen::Index S = learned / N;
    t.latent_mean = Vector::Zero(N - observed);
    for (Eigen::Index i = 0; i < S; ++i) t.latent_mean += t.checkpoint.parameters.segment(Q + i * N + observed, N - observed);
    t.latent_mean /= static_cast<double>(S);
    try {  // the ids of the series those belong to: the fit's own training split of its own file
      FitDataOptions o;
      o.windows = true;
      const FitData fd = load_fit_data(stored, o);
      if (static_cast<Eigen::Index>(fd.train_ids.size()) == S)
        for (Eigen::Index i = 0; i < S; ++i)
          t.learned_z0[fd.train_ids[i]] = {fd.train[i].times[0], t.checkpoint.parameters.segment(Q + i * N, N)};
    } catch (const std::exception&) {
      // The training file is gone or changed: every series is a new one.
    }
  }
  return t;
}

Problem TrainedModel::problem(std::vector<Trajectory> lifted) const {
  Problem p(std::move(lifted), make_loss(config.train.loss, model->observation_map()));
  p.set_loss_parameters(phi);
  return p;
}

Trajectory TrainedModel::lift(const Trajectory& obs, const std::string& id) const {
  // With random effects, as the typical subject (its row -1) until empirical_bayes_fit gives it its own.
  Trajectory tr = model->with_subject(model->lift(obs, id), -1);
  if (model->options().initial_state != InitialState::Learned) return tr;
  // A training series (or its first window, when it was trained in windows) starts from its own
  // learned z0; any other from its first observation, unobserved components at the mean learned.
  for (const std::string& key : {id, id + "[0]"}) {
    const auto it = learned_z0.find(key);
    if (it != learned_z0.end() && it->second.first == obs.times[0]) {
      tr.z0 = it->second.second;
      return tr;
    }
  }
  if (latent_mean.size() > 0) tr.z0.tail(latent_mean.size()) = latent_mean;
  return tr;
}

FitData load_model_data(const TrainedModel& tm) {
  FitDataOptions o;
  o.normalization = &tm.normalization;
  o.input_normalization = &tm.input_normalization;
  return load_fit_data(tm.config, o);
}

}  // namespace cvnode

namespace cvnode {

IndividualFit empirical_bayes_fit(const TrainedModel& tm, std::vector<Trajectory> lifted, const SolverOptions& options,
                                  int threads) {
  const RandomEffectsDynamics* re = tm.model->random_effects();
  if (!re) throw OptionsError("the model has no random effects ([random_effects])");
  IndividualFit f;
  const int S = static_cast<int>(lifted.size());
  EmpiricalBayesOptions eb;
  eb.omega = tm.re_omega;
  eb.sigma2 = tm.re_sigma2;
  eb.threads = threads;
  f.estimates = empirical_bayes(*re, tm.theta, tm.problem(lifted), options, eb);
  f.etas.resize(S, re->effects());
  for (int s = 0; s < S; ++s) {
    f.etas.row(s) = f.estimates[static_cast<std::size_t>(s)].eta.transpose();
    lifted[static_cast<std::size_t>(s)].covariates[lifted[static_cast<std::size_t>(s)].covariates.size() - 1] = s;
  }
  f.dynamics = re->with_slots(S);
  f.theta = re->parameters_with(tm.theta, f.etas);
  f.series = std::move(lifted);
  return f;
}

std::vector<Prediction> predict(const TrainedModel& tm, const std::vector<Trajectory>& series,
                                const std::vector<std::string>& ids, const std::vector<Vector>& times,
                                const SolverOptions& options, int threads, const std::vector<int>& history) {
  std::vector<Prediction> out(series.size());
  std::vector<Trajectory> lifted(series.size());
  for (std::size_t s = 0; s < series.size(); ++s) lifted[s] = tm.lift(series[s], ids[s]);
  // Forecast windows with a known past: their start fitted to it first (data.forecast_history).
  start_forecasts(tm.model->dynamics(), tm.theta, lifted, history, options, tm.model->observed());
  // Random effects: each subject with its own eta, estimated from its observations.
  const Dynamics* dynamics = &tm.model->dynamics();
  Vector theta = tm.theta;
  std::optional<IndividualFit> individual;
  if (tm.model->random_effects() && tm.individual) {
    individual = empirical_bayes_fit(tm, std::move(lifted), options, threads);
    lifted = individual->series;
    dynamics = individual->dynamics.get();
    theta = individual->theta;
  }
  for (std::size_t s = 0; s < series.size(); ++s) {
    lifted[s].times = times[s];
    // Events after the last requested time change nothing that is asked for.
    const double last = times[s].size() ? times[s][times[s].size() - 1] : lifted[s].t0;
    auto& ev = lifted[s].events;
    ev.erase(std::remove_if(ev.begin(), ev.end(), [&](const Event& e) { return e.time > last; }), ev.end());
    lifted[s].values = Matrix::Zero(times[s].size(), tm.model->observed());
    lifted[s].mask = Matrix::Zero(times[s].size(), tm.model->observed());
  }
  // evaluate() runs the forward solves in parallel and keeps the per-series predictions.
  for (std::size_t s = 0; s < series.size(); ++s) {
    out[s].id = ids[s];
    out[s].times = times[s];
  }
  const Evaluation ev = evaluate(*dynamics, theta, tm.problem(std::move(lifted)), options, threads);
  std::vector<std::string> err(series.size());
  for (const auto& f : ev.failed) err[f.series] = f.message.empty() ? "failed" : f.message;
  for (std::size_t s = 0; s < series.size(); ++s) {
    out[s].error = err[s];
    out[s].nfe = ev.series_nfe[s];
    if (err[s].empty()) out[s].values = to_data_units(ev.predictions[s], tm.normalization, tm.transforms);
  }
  return out;
}

void split_series(const FitData& d, const std::string& split, std::vector<Trajectory>& series,
                  std::vector<std::string>& ids, std::vector<int>* history) {
  series.clear();
  ids.clear();
  if (history) history->clear();
  auto add = [&](const std::vector<Trajectory>& t, const std::vector<std::string>& i, const std::vector<int>& h) {
    series.insert(series.end(), t.begin(), t.end());
    ids.insert(ids.end(), i.begin(), i.end());
    if (history) {
      if (h.empty()) history->insert(history->end(), t.size(), 0);
      else history->insert(history->end(), h.begin(), h.end());
    }
  };
  if (split == "train" || split == "all") add(d.train, d.train_ids, {});
  if (split == "val" || split == "all") add(d.val, d.val_ids, d.val_history);
  if (split == "test" || split == "all") add(d.test, d.test_ids, d.test_history);
  if (split != "train" && split != "val" && split != "test" && split != "all")
    throw OptionsError("--split = '" + split + "' (expected train, val, test or all)");
}

}  // namespace cvnode

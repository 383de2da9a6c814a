// The data side of a fit (src/app/fit_data.h).
#include "app/fit_data.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <memory>
#include <sstream>

#include <Eigen/Cholesky>

#include "core/names.h"
#include "cvnode/errors.h"
#include "cvnode/model.h"
#include "cvnode/solver.h"

namespace cvnode {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string num(double v) {
  std::ostringstream o;
  o.precision(10);
  o << v;
  return o.str();
}

double forward(ChannelTransform t, double y) {
  switch (t) {
    case ChannelTransform::Log: return std::log(y);
    case ChannelTransform::Log1p: return std::log1p(y);
    case ChannelTransform::None: break;
  }
  return y;
}

double inverse(ChannelTransform t, double y) {
  switch (t) {
    case ChannelTransform::Log: return std::exp(y);
    case ChannelTransform::Log1p: return std::expm1(y);
    case ChannelTransform::None: break;
  }
  return y;
}

bool in_domain(ChannelTransform t, double y) {
  return t == ChannelTransform::Log ? y > 0 : t == ChannelTransform::Log1p ? y > -1 : true;
}

// The same dataset with every observed value (and the stored initial state's channel entries)
// transformed; a value outside a transform's domain is named with its file, series, channel and
// time.
Dataset transformed(const Dataset& d, const std::vector<ChannelTransform>& t, const std::string& file) {
  if (std::all_of(t.begin(), t.end(), [](ChannelTransform x) { return x == ChannelTransform::None; })) return d;
  Dataset out = d.subset({});
  const int C = d.channels();
  for (std::size_t i = 0; i < d.size(); ++i) {
    Series s = d.series(i);
    if (!d.has_values(i)) {  // another rank's series (a shard): nothing to transform
      out.add(s);
      out.drop_values(out.size() - 1);
      continue;
    }
    for (int c = 0; c < C; ++c) {
      if (t[c] == ChannelTransform::None) continue;
      for (Eigen::Index k = 0; k < s.times.size(); ++k) {
        if (s.mask(k, c) == 0) continue;
        if (!in_domain(t[c], s.values(k, c)))
          throw DataError(file + ": series '" + s.id + "': channel '" + d.channel_names()[c] + "' at time " +
                          num(s.times[k]) + " is " + num(s.values(k, c)) + ", outside the domain of data.transform = " +
                          channel_transform_name(t[c]) + (t[c] == ChannelTransform::Log ? " (needs > 0; log1p takes 0)"
                                                                                         : " (needs > -1)"));
        s.values(k, c) = forward(t[c], s.values(k, c));
      }
      if (c < s.initial_state.size()) {
        if (!in_domain(t[c], s.initial_state[c]))
          throw DataError(file + ": series '" + s.id + "': initial_state[" + std::to_string(c) + "] = " +
                          num(s.initial_state[c]) + " is outside the domain of data.transform = " +
                          channel_transform_name(t[c]));
        s.initial_state[c] = forward(t[c], s.initial_state[c]);
      }
    }
    out.add(s);
  }
  return out;
}

// Every series cut to its observations at or before `until[i]` (events up to its new last
// observation); series with none are left out. `kept` gets the indices kept.
Dataset truncated(const Dataset& d, const std::vector<double>& until, std::vector<std::size_t>* kept) {
  Dataset out = d.subset({});
  for (std::size_t i = 0; i < d.size(); ++i) {
    Series s = d.series(i);
    Eigen::Index n = 0;
    while (n < s.times.size() && s.times[n] <= until[i]) ++n;
    if (n == 0) continue;
    s.times = s.times.head(n).eval();
    s.values = s.values.topRows(n).eval();
    s.mask = s.mask.topRows(n).eval();
    const double last = s.times[n - 1];
    s.events.erase(std::remove_if(s.events.begin(), s.events.end(), [&](const EventRecord& e) { return e.time > last; }),
                   s.events.end());
    out.add(s);
    if (kept) kept->push_back(i);
  }
  return out;
}

std::string list(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& e : v) s += (s.empty() ? "" : ", ") + e;
  return s;
}

bool complete_row(const Trajectory& tr, Eigen::Index k) {
  return tr.mask.size() == 0 || (tr.mask.row(k).array() != 0).all();
}

// Rows [a, b) of a series as a series of its own starting at times[a]: the events of that span
// (an event at times[a] comes after the observation there) and the controls and covariates.
Trajectory slice(const Trajectory& tr, Eigen::Index a, Eigen::Index b) {
  Trajectory w;
  const Eigen::Index n = b - a;
  w.times = tr.times.segment(a, n);
  w.t0 = w.times[0];
  w.values = tr.values.middleRows(a, n);
  if (tr.mask.size()) w.mask = tr.mask.middleRows(a, n);
  for (const Event& e : tr.events)
    if (e.time >= w.times[0] && e.time <= w.times[n - 1]) w.events.push_back(e);
  w.controls = tr.controls;
  w.covariates = tr.covariates;
  return w;
}

void check_same_layout(const Dataset& a, const Dataset& b, const std::string& fa, const std::string& fb) {
  auto differ = [&](const char* what, const std::vector<std::string>& x, const std::vector<std::string>& y) {
    if (x == y) return;
    throw DataError(fb + ": " + what + " (" + list(y) + ") differ from those of " + fa + " (" + list(x) + ")");
  };
  differ("the channels", a.channel_names(), b.channel_names());
  differ("the covariates", a.covariate_names(), b.covariate_names());
  differ("the controls", a.control_names(), b.control_names());
  differ("the compartments", a.compartment_names(), b.compartment_names());
}

// Mean and std of the controls (over the knots) and covariates (over the series) of a dataset,
// in the inputs' order [controls; covariates]; a constant input gets std 1.
Normalization input_statistics(const Dataset& d) {
  const int U = d.control_count(), K = d.covariate_count();
  Vector sum = Vector::Zero(U + K), sq = Vector::Zero(U + K), n = Vector::Zero(U + K);
  std::vector<Series> all;
  for (std::size_t i = 0; i < d.size(); ++i) all.push_back(d.series(i));
  for (int pass = 0; pass < 2; ++pass) {
    const Vector mean = (sum.array() / n.array().max(1.0)).matrix();
    for (const Series& s : all) {
      auto add = [&](int j, double v) {
        if (pass == 0) {
          sum[j] += v;
          n[j] += 1;
        } else {
          sq[j] += (v - mean[j]) * (v - mean[j]);
        }
      };
      for (Eigen::Index k = 0; k < s.control_values.rows(); ++k)
        for (int u = 0; u < U; ++u) add(u, s.control_values(k, u));
      for (int c = 0; c < K; ++c) add(U + c, s.covariates[c]);
    }
  }
  Normalization out;
  out.mean = (sum.array() / n.array().max(1.0)).matrix();
  out.std = (sq.array() / n.array().max(1.0)).sqrt().matrix();
  for (int j = 0; j < U + K; ++j)
    if (!(out.std[j] > 0) || !std::isfinite(out.std[j])) out.std[j] = 1;
  return out;
}

// Only the inputs at `keep` (positions in [controls; covariates]) stay with the series.
void select_inputs(Trajectory& tr, const std::vector<Eigen::Index>& keep) {
  const Eigen::Index U = tr.controls.values.cols(), K = tr.covariates.size();
  if (static_cast<Eigen::Index>(keep.size()) == U + K) return;
  std::vector<Eigen::Index> u, k;
  for (Eigen::Index j : keep) (j < U ? u : k).push_back(j < U ? j : j - U);
  if (u.empty()) tr.controls = Controls{};
  else tr.controls.values = tr.controls.values(Eigen::all, u).eval();
  tr.covariates = tr.covariates(k).eval();
}

void standardise_inputs(Trajectory& tr, const Normalization& n) {
  if (n.empty()) return;
  const auto U = tr.controls.values.cols(), K = tr.covariates.size();
  if (U + K != n.mean.size())
    throw DataError("inputs: " + std::to_string(U + K) + " controls and covariates, " +
                    std::to_string(n.mean.size()) + " statistics");
  for (Eigen::Index u = 0; u < U; ++u)
    tr.controls.values.col(u) = ((tr.controls.values.col(u).array() - n.mean[u]) / n.std[u]).matrix();
  for (Eigen::Index c = 0; c < K; ++c) tr.covariates[c] = (tr.covariates[c] - n.mean[U + c]) / n.std[U + c];
}

// CVODES refuses to start from a state that breaks solver.constraints (every step of every
// epoch would fail, and the run would end in rollbacks): find such an initial state first and
// name it, in data units.
void check_constraints(const Config& config, const Model& model, const FitData& d) {
  const Vector& cons = config.train.solver.cvodes.constraints;
  if (cons.size() == 0) return;
  auto broken = [](double rule, double v) {
    return (rule == 1 && v < 0) || (rule == 2 && v <= 0) || (rule == -1 && v > 0) || (rule == -2 && v >= 0);
  };
  const char* meaning[] = {"< 0", "<= 0", "free", ">= 0", "> 0"};
  auto check = [&](const std::vector<Trajectory>& part, const std::vector<std::string>& ids,
                   const std::function<bool(std::size_t)>& held) {
    for (std::size_t s = 0; s < part.size(); ++s) {
      if (!held(s)) continue;  // another rank's series (its values are not here)
      const Trajectory tr = model.lift(part[s], ids[s]);
      for (Eigen::Index c = 0; c < cons.size() && c < tr.z0.size(); ++c) {
        if (!broken(cons[c], tr.z0[c])) continue;
        const bool channel = c < d.channels;
        const double value = channel && !d.normalization.empty() ? tr.z0[c] * d.normalization.std[c] + d.normalization.mean[c]
                                                                 : tr.z0[c];
        throw DataError(config.data.file + ": series '" + ids[s] + "': the initial state of " +
                        (channel ? "channel '" + d.channel_names[c] + "'" : "state component " + std::to_string(c)) +
                        " at t = " + num(tr.t0) + " is " + num(value) + ", which solver.constraints[" +
                        std::to_string(c) + "] = " + num(cons[c]) + " (" + meaning[static_cast<int>(cons[c]) + 2] +
                        ") forbids: the solver cannot start from it (correct the data, drop the constraint, or keep "
                        "the channel positive with data.transform = \"log\")");
      }
    }
  };
  check(d.train, d.train_ids, [&](std::size_t i) { return d.holds_train(i); });
  check(d.val, d.val_ids, [&](std::size_t i) { return d.holds_val(i); });
  check(d.test, d.test_ids, [&](std::size_t) { return d.holds_test(); });
}

}  // namespace

namespace {
const detail::EnumName<ChannelTransform> kChannelTransformNames[] = {
    {ChannelTransform::None, "none"},
    {ChannelTransform::Log, "log"},
    {ChannelTransform::Log1p, "log1p"}};
}  // namespace

ChannelTransform parse_channel_transform(const std::string& name) {
  return detail::parse_enum(kChannelTransformNames, name, "channel transform");
}

const char* channel_transform_name(ChannelTransform t) { return detail::enum_name(kChannelTransformNames, t); }

std::vector<ChannelTransform> channel_transforms(const DataOptions& data, int channels) {
  std::vector<ChannelTransform> t(static_cast<std::size_t>(channels), ChannelTransform::None);
  if (data.transform.empty()) return t;
  if (data.transform.size() != 1 && static_cast<int>(data.transform.size()) != channels)
    throw ConfigError("data.transform has " + std::to_string(data.transform.size()) + " entries for the " +
                      std::to_string(channels) + " channels of " + data.file + " (give one for all, or one each)");
  for (int c = 0; c < channels; ++c) t[c] = parse_channel_transform(data.transform[data.transform.size() == 1 ? 0 : c]);
  return t;
}

namespace {

// The values one rank reads of a part of a file: the series at positions p of `part` (file
// indices) with p mod size = rank.
std::vector<bool> shard_of(const std::vector<std::size_t>& part, std::size_t series, int rank, int size,
                           std::vector<bool> wanted = {}) {
  if (wanted.empty()) wanted.assign(series, false);
  for (std::size_t p = static_cast<std::size_t>(rank); p < part.size(); p += static_cast<std::size_t>(size))
    wanted[part[p]] = true;
  return wanted;
}

// Dataset::compute_normalization over the series whose values this process holds, with
// ExactSums that `combine` merges with the other ranks' (two passes: sums and counts, then squared
// deviations from the mean): the same bits however the series are spread over ranks, and for one
// process reading everything.
Normalization merged_normalization(const Dataset& d, const std::vector<std::size_t>& series,
                                   const std::vector<bool>& scale_only, const std::function<void(ExactSum&)>& combine) {
  const int C = d.channels();
  ExactSum first(2 * C);  // [sum | count] per channel
  for (std::size_t i : series) {
    if (!d.has_values(i)) continue;  // another rank's
    const Series s = d.series(i);
    for (Eigen::Index k = 0; k < s.times.size(); ++k)
      for (int c = 0; c < C; ++c)
        if (s.mask(k, c) != 0) {
          first.add(c, s.values(k, c));
          first.add(C + c, 1.0);
        }
  }
  if (combine) combine(first);
  const Vector v = first.values();
  Normalization n;
  n.mean = Vector::Zero(C);
  n.std = Vector::Ones(C);
  for (int c = 0; c < C; ++c) {
    if (v[C + c] == 0)
      throw DataError("normalization: channel '" + d.channel_names()[c] + "' has no observed value in the chosen series");
    n.mean[c] = scale_only.empty() || !scale_only[c] ? v[c] / v[C + c] : 0.0;
  }
  ExactSum second(C);
  for (std::size_t i : series) {
    if (!d.has_values(i)) continue;
    const Series s = d.series(i);
    for (Eigen::Index k = 0; k < s.times.size(); ++k)
      for (int c = 0; c < C; ++c)
        if (s.mask(k, c) != 0) second.add(c, (s.values(k, c) - n.mean[c]) * (s.values(k, c) - n.mean[c]));
  }
  if (combine) combine(second);
  const Vector sq = second.values();
  for (int c = 0; c < C; ++c) {
    const double sd = std::sqrt(sq[c] / v[C + c]);
    n.std[c] = sd > 0 && std::isfinite(sd) ? sd : 1.0;
  }
  return n;
}

std::vector<std::size_t> first_n(std::size_t n) {
  std::vector<std::size_t> v(n);
  std::iota(v.begin(), v.end(), std::size_t{0});
  return v;
}

}  // namespace

FitData load_fit_data(const Config& config, const FitDataOptions& options) {
  const DataOptions& o = config.data;
  const bool shard = options.shard_size > 1;
  if (shard && o.split == "time")
    throw std::logic_error("load_fit_data: shard reads take a series split (data.split = \"series\")");
  Dataset ds;
  if (shard && o.validation_file.empty()) {
    // The split needs the series count only: read the small arrays, split, then the shard's values.
    Dataset meta = Dataset::read_shard(o.file, {});
    const std::size_t S = meta.size();
    if (o.max_series > 0 && static_cast<std::size_t>(o.max_series) < S) meta = meta.subset(first_n(o.max_series));
    const Split split = meta.split(o.train_fraction, o.val_fraction, o.split_seed);
    std::vector<bool> wanted = shard_of(split.train, S, options.shard_rank, options.shard_size);
    wanted = shard_of(split.validation, S, options.shard_rank, options.shard_size, wanted);
    ds = Dataset::read_shard(o.file, wanted);
  } else if (shard) {
    // Every training series of data.file is in the training part.
    const std::size_t S = Dataset::count_series(o.file);
    const std::size_t n = o.max_series > 0 ? std::min<std::size_t>(S, o.max_series) : S;
    std::vector<bool> wanted = shard_of(first_n(n), S, options.shard_rank, options.shard_size);
    ds = Dataset::read_shard(o.file, wanted);
  } else {
    ds = Dataset::read(o.file);
  }
  if (o.max_series > 0 && static_cast<std::size_t>(o.max_series) < ds.size()) {
    std::vector<std::size_t> first(o.max_series);
    for (std::size_t i = 0; i < first.size(); ++i) first[i] = i;
    ds = ds.subset(first);
  }
  const int C = ds.channels();
  FitData d;
  d.channels = C;
  d.channel_names = ds.channel_names();
  d.channel_units = ds.channel_units();
  d.transforms = channel_transforms(o, C);
  d.forecast = o.split == "time";

  // The raw parts: training, validation, test (time split: the whole series, cut below).
  Dataset train, val, test;
  std::vector<std::string> val_file_ids;
  std::vector<double> c1, c2;  // time split: per-series cutoffs
  if (!o.validation_file.empty()) {
    train = ds;
    if (shard) {
      const std::size_t V = Dataset::count_series(o.validation_file);
      val = Dataset::read_shard(o.validation_file, shard_of(first_n(V), V, options.shard_rank, options.shard_size));
    } else {
      val = Dataset::read(o.validation_file);
    }
    check_same_layout(ds, val, o.file, o.validation_file);
    if (!o.test_file.empty()) {
      test = shard ? Dataset::read_shard(o.test_file, {}) : Dataset::read(o.test_file);
      check_same_layout(ds, test, o.file, o.test_file);
    } else {
      test = ds.subset({});
    }
  } else if (d.forecast) {
    for (std::size_t i = 0; i < ds.size(); ++i) {
      const Series s = ds.series(i);
      const double first = s.times[0], last = s.times[s.times.size() - 1];
      c1.push_back(o.time_cutoffs.empty() ? first + o.train_fraction * (last - first) : o.time_cutoffs[0]);
      c2.push_back(o.time_cutoffs.size() == 2 ? o.time_cutoffs[1]
                   : o.time_cutoffs.size() == 1 ? c1.back()
                                                : first + (o.train_fraction + o.val_fraction) * (last - first));
    }
    std::vector<std::size_t> kept;
    train = truncated(ds, c1, &kept);
    if (train.size() == 0)
      throw DataError(o.file + ": no series has an observation at or before its training cutoff (data.split = "
                      "\"time\", data.train_fraction = " + num(o.train_fraction) + ")");
  } else {
    const Split split = ds.split(o.train_fraction, o.val_fraction, o.split_seed);
    train = ds.subset(split.train);
    val = ds.subset(split.validation);
    test = ds.subset(split.test);
  }
  if (train.size() == 0)
    throw DataError(o.file + ": the training split is empty (" + std::to_string(ds.size()) +
                    " series, data.train_fraction = " + num(o.train_fraction) + ")");

  // The inputs the model gets: every control and covariate not in data.ignore (positions in
  // [controls; covariates]).
  std::vector<Eigen::Index> keep_inputs;
  {
    const auto controls = ds.control_names(), covariates = ds.covariate_names();
    for (const std::string& name : o.ignore)
      if (std::find(controls.begin(), controls.end(), name) == controls.end() &&
          std::find(covariates.begin(), covariates.end(), name) == covariates.end())
        throw ConfigError("data.ignore has \"" + name + "\", which is neither a control nor a covariate of " + o.file +
                          " (controls: " + (controls.empty() ? "none" : list(controls)) +
                          "; covariates: " + (covariates.empty() ? "none" : list(covariates)) + ")");
    std::vector<std::string> all = controls;
    all.insert(all.end(), covariates.begin(), covariates.end());
    for (std::size_t j = 0; j < all.size(); ++j)
      if (std::find(o.ignore.begin(), o.ignore.end(), all[j]) == o.ignore.end())
        keep_inputs.push_back(static_cast<Eigen::Index>(j));
  }

  // Which channels are normalised by scale only: those events dose, and those a sign
  // constraint holds (zero and the sign must mean the same in the model's units).
  d.inputs = static_cast<int>(keep_inputs.size());
  // The series' state layout, initial-state rule and constraints are a Model's; the latent kinds
  // (fitted by `cvnode latent train`) prepare their data with the plain neural_ode layout.
  ModelOptions layout = config.model;
  if (model_kind_command(layout.kind) != "fit") layout.kind = "neural_ode";
  const Model model(layout, C, d.inputs);
  const int N = model.state_size();
  TrajectoryOptions topt;
  topt.compartment_state = o.compartment_states;
  topt.dose_scale = Eigen::Map<const Vector>(o.dose_scale.data(), static_cast<Eigen::Index>(o.dose_scale.size()));
  const auto P = static_cast<int>(ds.compartment_names().size());
  if (ds.has_events()) {
    if (!o.compartment_states.empty() && static_cast<int>(o.compartment_states.size()) != P)
      throw ConfigError("data.compartment_states has " + std::to_string(o.compartment_states.size()) +
                        " entries for the " + std::to_string(P) + " compartments of " + o.file);
    if (!o.dose_scale.empty() && static_cast<int>(o.dose_scale.size()) != P)
      throw ConfigError("data.dose_scale has " + std::to_string(o.dose_scale.size()) + " entries for the " +
                        std::to_string(P) + " compartments of " + o.file);
  }
  std::vector<bool> scale_only(static_cast<std::size_t>(C), false);
  // (The compartments the file's records dose or reset; a compartment without records does not
  // constrain its channel.)
  std::vector<bool> dosed(static_cast<std::size_t>(P), false);
  bool resets = false;  // EVID 3/4 set the whole state to 0, which must mean 0 in data units
  for (std::size_t i = 0; i < ds.size() && ds.has_events(); ++i)
    for (const EventRecord& e : ds.series(i).events) {
      if (e.compartment >= 0 && e.compartment < P && e.kind != Evid::Reset) dosed[static_cast<std::size_t>(e.compartment)] = true;
      resets = resets || e.kind != Evid::Dose;
    }
  for (int k = 0; k < P; ++k) {
    if (!dosed[static_cast<std::size_t>(k)]) continue;
    const int state = o.compartment_states.empty() ? k : o.compartment_states[k];
    if (state < C) {
      scale_only[state] = true;
      if (d.transforms[state] != ChannelTransform::None)
        throw ConfigError("data.transform = " + std::string(channel_transform_name(d.transforms[state])) +
                          " on channel '" + d.channel_names[state] + "', which compartment '" +
                          ds.compartment_names()[k] + "' doses: a dose adds in data units, not in " +
                          channel_transform_name(d.transforms[state]) + " units");
    }
  }
  const Vector& cons = config.train.solver.cvodes.constraints;
  for (int c = 0; c < C && c < cons.size(); ++c) {
    if (cons[c] == 0) continue;
    scale_only[c] = true;
    if (d.transforms[c] != ChannelTransform::None)
      throw ConfigError("solver.constraints[" + std::to_string(c) + "] = " + num(cons[c]) + " on channel '" +
                        d.channel_names[c] + "' with data.transform = " + channel_transform_name(d.transforms[c]) +
                        ": the model's state is the transformed value, whose sign is free (a log keeps the data "
                        "positive by itself): set the constraint to 0");
  }

  // model.initial_state = zero, or resets in the data: the state is set to 0, which must mean 0
  // in data units too.
  if (config.model.initial_state == InitialState::Zero || resets)
    for (int c = 0; c < C; ++c) {
      scale_only[c] = true;
      if (d.transforms[c] == ChannelTransform::Log)
        throw ConfigError("data.transform = log on channel '" + d.channel_names[c] + "' with " +
                          (resets ? std::string("reset events (EVID 3/4) in ") + o.file : "model.initial_state = zero") +
                          ": the state is set to 0, which log units cannot hold (log1p can: 0 is log1p(0))");
    }

  // Data-unit spread of the training part (reports), then transform and normalise every part.
  {
    std::vector<std::size_t> all(train.size());
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
    d.data_std = merged_normalization(train, all, {}, options.combine).std;
    train = transformed(train, d.transforms, o.file);
    if (d.forecast) ds = transformed(ds, d.transforms, o.file);
    if (val.channels()) val = transformed(val, d.transforms, o.validation_file.empty() ? o.file : o.validation_file);
    if (test.channels()) test = transformed(test, d.transforms, o.test_file.empty() ? o.file : o.test_file);
    const auto inputs = static_cast<Eigen::Index>(keep_inputs.size());
    if (options.input_normalization) {
      if (!options.input_normalization->empty() && options.input_normalization->mean.size() != inputs)
        throw DataError(o.file + ": " + std::to_string(inputs) + " inputs (controls and covariates), the model's "
                        "input normalisation has " + std::to_string(options.input_normalization->mean.size()));
      d.input_normalization = *options.input_normalization;
    } else if (inputs > 0) {
      // Also with data.normalize = false (a hybrid's physics in data units): only the network
      // reads the inputs, and a raw weight of 70 kg would saturate its first layer.
      const Normalization all = input_statistics(train);
      d.input_normalization.mean = all.mean(keep_inputs);
      d.input_normalization.std = all.std(keep_inputs);
    }
    if (options.normalization) {
      if (!options.normalization->empty() && options.normalization->mean.size() != C)
        throw DataError(o.file + ": " + std::to_string(C) + " channels, the model's normalisation has " +
                        std::to_string(options.normalization->mean.size()));
      d.normalization = *options.normalization;
    } else if (o.normalize) {
      d.normalization = merged_normalization(train, all, scale_only, options.combine);
    }
  }
  if (!d.normalization.empty()) {
    // A checkpoint's normalisation must also leave dosed and constrained channels unshifted.
    for (int c = 0; c < C; ++c)
      if (scale_only[c] && d.normalization.mean[c] != 0)
        throw DataError(o.file + ": channel '" + d.channel_names[c] + "' is dosed or sign-constrained, but the "
                        "normalisation shifts it by its mean " + num(d.normalization.mean[c]));
    for (Dataset* part : {&train, &val, &test, &ds})
      if (part->channels() && part->size()) part->normalize(d.normalization);
  }

  // The solver's series. z0 only where the data store an initial state (Model::lift decides).
  auto take = [&](const Dataset& part, std::vector<Trajectory>& out, std::vector<std::string>& ids) {
    for (std::size_t i = 0; i < part.size(); ++i) {
      Trajectory tr = part.trajectory(i, std::max(N, part.initial_state_size()), topt);
      select_inputs(tr, keep_inputs);
      standardise_inputs(tr, d.input_normalization);
      if (part.initial_state_size() == 0) tr.z0.resize(0);
      else tr.z0 = tr.z0.head(part.initial_state_size()).eval();
      out.push_back(std::move(tr));
      ids.push_back(part.id(i));
    }
  };
  take(train, d.train, d.train_ids);
  if (options.windows && o.window >= 2) {
    std::vector<Trajectory> windows;
    std::vector<std::string> ids;
    make_windows(d.train, d.train_ids, o.window, windows, ids, &d.window_parent);
    d.train_whole = std::move(d.train);
    d.train_whole_ids = std::move(d.train_ids);
    d.train = std::move(windows);
    d.train_ids = std::move(ids);
  }
  if (shard) {
    d.shard_rank = options.shard_rank;
    d.shard_size = options.shard_size;
    d.train_owner.resize(d.train.size());
    for (std::size_t k = 0; k < d.train.size(); ++k) {
      const std::size_t p = d.window_parent.empty() ? k : d.window_parent[k];
      d.train_owner[k] = static_cast<int>(p % static_cast<std::size_t>(options.shard_size));
    }
  }
  if (!d.forecast) {
    if (val.channels()) take(val, d.val, d.val_ids);
    if (test.channels()) take(test, d.test, d.test_ids);
    d.val_history.assign(d.val.size(), 0);
    d.test_history.assign(d.test.size(), 0);
    check_constraints(config, model, d);
    return d;
  }
  // Forecast windows: from the origin (the last fully observed row at or before the cutoff)
  // to the window's end; the rows between the origin and the cutoff are not scored.
  std::vector<Trajectory> whole;
  std::vector<std::string> ids;
  take(ds, whole, ids);
  auto forecast = [&](std::size_t i, double from, double to, std::vector<Trajectory>& out, std::vector<std::string>& out_ids,
                      std::vector<int>& history, std::vector<Trajectory>& past) {
    const Trajectory& tr = whole[i];
    const Eigen::Index T = tr.times.size();
    Eigen::Index origin = -1, end = 0;
    for (Eigen::Index k = 0; k < T; ++k) {
      if (tr.times[k] <= from && complete_row(tr, k)) origin = k;
      if (tr.times[k] <= to) end = k + 1;
    }
    if (origin < 0 || end <= origin + 1) return;  // nothing known before, or nothing to score
    bool scored = false;
    for (Eigen::Index k = origin + 1; k < end && !scored; ++k) scored = tr.times[k] > from;
    if (!scored) return;
    // data.forecast_history observations up to the origin are the forecast's past (its start is
    // fitted to them when there are several: start_forecasts).
    const Eigen::Index start = std::max<Eigen::Index>(0, origin - (o.forecast_history - 1));
    Trajectory w = slice(tr, start, end);
    const Eigen::Index known = origin - start + 1;
    for (Eigen::Index k = known; k < w.times.size(); ++k)
      if (w.times[k] <= from && w.mask.size()) w.mask.row(k).setZero();
    out.push_back(std::move(w));
    out_ids.push_back(ids[i]);
    history.push_back(static_cast<int>(known));
    past.push_back(slice(tr, 0, origin + 1));
  };
  for (std::size_t i = 0; i < whole.size(); ++i) {
    forecast(i, c1[i], c2[i], d.val, d.val_ids, d.val_history, d.val_past);
    forecast(i, c2[i], std::numeric_limits<double>::infinity(), d.test, d.test_ids, d.test_history, d.test_past);
  }
  check_constraints(config, model, d);
  return d;
}

void make_windows(const std::vector<Trajectory>& series, const std::vector<std::string>& ids, int length,
                  std::vector<Trajectory>& windows, std::vector<std::string>& window_ids,
                  std::vector<std::size_t>* parent) {
  windows.clear();
  window_ids.clear();
  if (parent) parent->clear();
  for (std::size_t s = 0; s < series.size(); ++s) {
    const Trajectory& tr = series[s];
    const auto T = static_cast<int>(tr.times.size());
    // A window starts at a fully observed row: its first observation is its initial state, and
    // a missing entry there would have to be guessed.
    int w = 0;
    for (int a = 0; a < T;) {
      while (a < T && !complete_row(tr, a)) ++a;
      if (a >= T || (a == T - 1 && w > 0)) break;
      const int n = std::min(length, T - a);
      Trajectory win = slice(tr, a, a + n);
      win.z0 = win.values.row(0).transpose();
      windows.push_back(std::move(win));
      window_ids.push_back(ids[s] + "[" + std::to_string(w++) + "]");
      if (parent) parent->push_back(s);
      if (n == 1) break;
      a += n - 1;
    }
  }
}

Matrix to_data_units(const Matrix& values, const Normalization& n, const std::vector<ChannelTransform>& transforms) {
  Matrix out = values;
  for (Eigen::Index i = 0; i < out.cols(); ++i) {
    if (!n.empty() && i < n.mean.size()) out.col(i) = (values.col(i).array() * n.std[i] + n.mean[i]).matrix();
    if (i < static_cast<Eigen::Index>(transforms.size()) && transforms[i] != ChannelTransform::None)
      out.col(i) = out.col(i).unaryExpr([t = transforms[i]](double y) { return inverse(t, y); });
  }
  return out;
}

namespace {

// Accumulates squared and absolute errors per channel.
struct ErrorSums {
  Vector se, ae, count;
  explicit ErrorSums(int C) : se(Vector::Zero(C)), ae(Vector::Zero(C)), count(Vector::Zero(C)) {}
  void add(int c, double prediction, double value) {
    const double r = prediction - value;
    se[c] += r * r;
    ae[c] += std::abs(r);
    count[c] += 1;
  }
  DataErrors finish() const {
    DataErrors e;
    const auto C = se.size();
    e.rmse = e.mae = Vector::Constant(C, kNaN);
    for (Eigen::Index c = 0; c < C; ++c)
      if (count[c] > 0) {
        e.rmse[c] = std::sqrt(se[c] / count[c]);
        e.mae[c] = ae[c] / count[c];
      }
    e.count = count;
    e.entries = static_cast<long>(count.sum());
    e.rmse_all = e.entries > 0 ? std::sqrt(se.sum() / static_cast<double>(e.entries)) : kNaN;
    return e;
  }
};

}  // namespace

ExactSum data_error_sums(const FitData& data, const std::vector<Trajectory>& series,
                         const std::vector<Matrix>& predictions, const std::vector<int>& history) {
  const int C = data.channels;
  ExactSum sums(3 * C);
  for (std::size_t s = 0; s < series.size(); ++s) {
    if (s >= predictions.size() || predictions[s].size() == 0) continue;
    const Trajectory& tr = series[s];
    const Matrix p = to_data_units(predictions[s], data.normalization, data.transforms);
    const Matrix y = to_data_units(tr.values, data.normalization, data.transforms);
    for (Eigen::Index k = s < history.size() ? history[s] : 0; k < tr.times.size(); ++k)
      for (int c = 0; c < C; ++c)
        if (tr.mask.size() == 0 || tr.mask(k, c) != 0) {
          const double r = p(k, c) - y(k, c);
          sums.add(c, r * r);
          sums.add(C + c, std::abs(r));
          sums.add(2 * C + c, 1.0);
        }
  }
  return sums;
}

DataErrors finish_data_errors(const ExactSum& sums) {
  const Eigen::Index C = sums.size() / 3;
  const Vector v = sums.values();
  ErrorSums e(static_cast<int>(C));
  e.se = v.head(C);
  e.ae = v.segment(C, C);
  e.count = v.tail(C);
  return e.finish();
}

DataErrors data_errors(const FitData& data, const std::vector<Trajectory>& series, const std::vector<Matrix>& predictions,
                       const std::vector<int>& history) {
  return finish_data_errors(data_error_sums(data, series, predictions, history));
}

namespace {

// Linear interpolation of a channel's observed values (constant outside their range); NaN when
// the channel has no observation.
double interpolate(const Trajectory& tr, int c, double x) {
  double t_prev = kNaN, v_prev = kNaN;
  for (Eigen::Index k = 0; k < tr.times.size(); ++k) {
    if (tr.mask.size() && tr.mask(k, c) == 0) continue;
    const double t = tr.times[k], v = tr.values(k, c);
    if (t >= x) {
      if (std::isnan(t_prev) || t == x) return v;
      const double w = (x - t_prev) / (t - t_prev);
      return (1 - w) * v_prev + w * v;
    }
    t_prev = t;
    v_prev = v;
  }
  return v_prev;
}

}  // namespace

double best_season(const std::vector<Trajectory>& past) {
  std::vector<double> gaps;
  double span = 0;
  for (const Trajectory& tr : past) {
    for (Eigen::Index k = 1; k < tr.times.size(); ++k) gaps.push_back(tr.times[k] - tr.times[k - 1]);
    if (tr.times.size()) span = std::max(span, tr.times[tr.times.size() - 1] - tr.times[0]);
  }
  if (gaps.empty()) return 0;
  std::nth_element(gaps.begin(), gaps.begin() + gaps.size() / 2, gaps.end());
  const double lo = 2 * gaps[gaps.size() / 2], hi = span / 2;
  if (!(hi > lo)) return 0;
  auto mse = [&](double P) {
    double se = 0;
    long n = 0;
    for (const Trajectory& tr : past)
      for (Eigen::Index k = 0; k < tr.times.size(); ++k) {
        if (tr.times[k] - P < tr.times[0]) continue;
        for (Eigen::Index c = 0; c < tr.values.cols(); ++c) {
          if (tr.mask.size() && tr.mask(k, c) == 0) continue;
          const double r = tr.values(k, c) - interpolate(tr, static_cast<int>(c), tr.times[k] - P);
          if (std::isnan(r)) continue;
          se += r * r;
          ++n;
        }
      }
    return n > 0 ? se / n : std::numeric_limits<double>::infinity();
  };
  // A coarse grid; every local minimum refined on a grid 100 times finer around it. Multiples of
  // the period fit as well as the period itself: the smallest minimum within 10% of the best
  // error is taken.
  constexpr int kCandidates = 400;
  const double step = (hi - lo) / kCandidates;
  std::vector<double> E(kCandidates + 1);
  for (int j = 0; j <= kCandidates; ++j) E[j] = mse(lo + step * j);
  std::vector<std::pair<double, double>> minima;  // (period, error)
  for (int j = 0; j <= kCandidates; ++j) {
    if ((j > 0 && E[j - 1] < E[j]) || (j < kCandidates && E[j + 1] < E[j]) || !std::isfinite(E[j])) continue;
    double best = lo + step * j, best_mse = E[j];
    for (int f = -100; f <= 100; ++f) {
      const double p = lo + step * (j + f / 100.0);
      if (p < lo || p > hi) continue;
      const double e = mse(p);
      if (e < best_mse) {
        best_mse = e;
        best = p;
      }
    }
    minima.emplace_back(best, best_mse);
  }
  if (minima.empty()) return 0;
  double least = std::numeric_limits<double>::infinity();
  for (const auto& m : minima) least = std::min(least, m.second);
  // "As well": within 10%, or within a thousandth of the data's variance (clean periodic data fit
  // every multiple to rounding).
  double sum = 0, sum2 = 0;
  long n = 0;
  for (const Trajectory& tr : past)
    for (Eigen::Index k = 0; k < tr.values.rows(); ++k)
      for (Eigen::Index c = 0; c < tr.values.cols(); ++c)
        if (tr.mask.size() == 0 || tr.mask(k, c) != 0) {
          sum += tr.values(k, c);
          sum2 += tr.values(k, c) * tr.values(k, c);
          ++n;
        }
  const double variance = n > 0 ? std::max(0.0, sum2 / n - (sum / n) * (sum / n)) : 0.0;
  for (const auto& m : minima)
    if (m.second <= 1.1 * least + 1e-3 * variance) return m.first;
  return 0;
}

DataErrors naive_forecast_errors(const FitData& data, const std::vector<Trajectory>& series,
                                 const std::vector<int>& history, const std::vector<Trajectory>& past, double period) {
  ErrorSums sums(data.channels);
  for (std::size_t s = 0; s < series.size() && s < past.size(); ++s) {
    const Trajectory& tr = series[s];
    const Matrix y = to_data_units(tr.values, data.normalization, data.transforms);
    const Matrix known = to_data_units(past[s].values, data.normalization, data.transforms);
    const Vector& kt = past[s].times;
    for (int c = 0; c < data.channels; ++c) {
      // The channel's known observations, in time order.
      std::vector<double> t, v;
      for (Eigen::Index k = 0; k < kt.size(); ++k)
        if (past[s].mask.size() == 0 || past[s].mask(k, c) != 0) {
          t.push_back(kt[k]);
          v.push_back(known(k, c));
        }
      if (t.empty()) continue;
      auto at = [&](double x) {  // linear interpolation, constant outside
        if (x <= t.front()) return v.front();
        if (x >= t.back()) return v.back();
        const auto j = static_cast<std::size_t>(std::upper_bound(t.begin(), t.end(), x) - t.begin());
        const double w = (x - t[j - 1]) / (t[j] - t[j - 1]);
        return (1 - w) * v[j - 1] + w * v[j];
      };
      for (Eigen::Index k = s < history.size() ? history[s] : 0; k < tr.times.size(); ++k) {
        if (tr.mask.size() && tr.mask(k, c) == 0) continue;
        double guess = v.back();
        if (period > 0) {
          double x = tr.times[k] - period;
          while (x > t.back()) x -= period;
          guess = at(x);
        }
        sums.add(c, guess, y(k, c));
      }
    }
  }
  return sums.finish();
}

namespace {

// The squared misfit of a series' first `rows` observations (the first `observed` state
// components) when started from z0; +inf when the solve fails. `r` gets the residuals.
double history_misfit(Solver& solver, ConstVectorRef theta, const Trajectory& past, ConstVectorRef z0, int observed,
                      Vector& r) {
  Trajectory tr = past;
  tr.z0 = z0;
  Solution sol;
  try {
    sol = solver.solve(theta, tr);
  } catch (const std::exception&) {
    return std::numeric_limits<double>::infinity();
  }
  std::vector<double> res;
  for (Eigen::Index k = 0; k < tr.times.size(); ++k)
    for (int c = 0; c < observed; ++c)
      if (tr.mask.size() == 0 || tr.mask(k, c) != 0) res.push_back(sol.states(k, c) - tr.values(k, c));
  r = Eigen::Map<const Vector>(res.data(), static_cast<Eigen::Index>(res.size()));
  return r.allFinite() ? r.squaredNorm() : std::numeric_limits<double>::infinity();
}

}  // namespace

void start_forecasts(const Dynamics& dynamics, ConstVectorRef theta, std::vector<Trajectory>& lifted,
                     const std::vector<int>& history, const SolverOptions& options, int observed) {
  // Tighter tolerances than the run's: the sensitivities are central differences of solves.
  SolverOptions tight = options;
  const double f = std::min(1.0, 1e-8 / options.rtol);
  tight.rtol = options.rtol * f;
  tight.atol = options.atol * f;
  if (tight.atol_vector.size()) tight.atol_vector = options.atol_vector * f;
  std::unique_ptr<Solver> solver;
  for (std::size_t s = 0; s < lifted.size() && s < history.size(); ++s) {
    const Eigen::Index H = history[s];
    Trajectory& tr = lifted[s];
    if (H <= 1 || tr.times.size() < H) continue;
    if (!solver) solver = std::make_unique<Solver>(dynamics, tight);
    // The past alone: its rows and the events up to its last time.
    Trajectory past = tr;
    past.times = tr.times.head(H).eval();
    past.values = tr.values.topRows(H).eval();
    if (tr.mask.size()) past.mask = tr.mask.topRows(H).eval();
    past.t_end = std::numeric_limits<double>::quiet_NaN();
    const double last = past.times[H - 1];
    past.events.erase(std::remove_if(past.events.begin(), past.events.end(), [&](const Event& e) { return e.time > last; }),
                      past.events.end());
    // Levenberg-Marquardt on z0.
    const Eigen::Index n = tr.z0.size();
    Vector z = tr.z0, r, r_try;
    double cost = history_misfit(*solver, theta, past, z, observed, r);
    double lambda = 1e-3;
    for (int it = 0; it < 50 && std::isfinite(cost); ++it) {
      Matrix J(r.size(), n);
      bool ok = true;
      for (Eigen::Index j = 0; j < n && ok; ++j) {
        const double h = 1e-4 * (1 + std::abs(z[j]));
        Vector zp = z, zm = z, rp, rm;
        zp[j] += h;
        zm[j] -= h;
        ok = std::isfinite(history_misfit(*solver, theta, past, zp, observed, rp)) &&
             std::isfinite(history_misfit(*solver, theta, past, zm, observed, rm)) && rp.size() == r.size() &&
             rm.size() == r.size();
        if (ok) J.col(j) = (rp - rm) / (2 * h);
      }
      if (!ok) break;
      const Vector g = J.transpose() * r;
      const Matrix A = J.transpose() * J;
      bool improved = false;
      Vector step;
      for (int tries = 0; tries < 12 && !improved; ++tries) {
        Matrix D = A;
        D.diagonal() += lambda * A.diagonal() + Vector::Constant(n, 1e-12 * (1 + A.diagonal().maxCoeff()));
        step = -D.ldlt().solve(g);
        const double c = history_misfit(*solver, theta, past, z + step, observed, r_try);
        if (c < cost) {
          improved = true;
          z += step;
          r = r_try;
          const double gain = cost - c;
          cost = c;
          lambda = std::max(lambda / 3, 1e-9);
          if (gain <= 1e-14 * (1 + cost)) it = 50;  // converged
        } else {
          lambda *= 4;
        }
      }
      if (!improved || step.norm() <= 1e-12 * (1 + z.norm())) break;
    }
    tr.z0 = z;
    // Only the forecast is scored: the past is what it was fitted to.
    if (tr.mask.size() == 0) tr.mask = Matrix::Ones(tr.values.rows(), tr.values.cols());
    tr.mask.topRows(H).setZero();
  }
}

}  // namespace cvnode

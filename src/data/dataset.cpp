// Dataset in memory: building, access, splits, minibatches, normalisation, trajectories.
// The file format lives in dataset_io.cpp.
#include "cvnode/dataset.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_set>

#include "cvnode/errors.h"
#include "data/series_check.h"
#include "core/random.h"

namespace cvnode {

namespace {

// Written where a value is not observed (mask 0).
constexpr double kUnobserved = std::numeric_limits<double>::quiet_NaN();

void shuffle(std::vector<std::size_t>& v, detail::Rng& rng) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.next() % i]);
}

std::vector<std::string> default_names(const std::vector<std::string>& names, int n, const char* stem) {
  if (!names.empty() || n <= 0) return names;
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(std::string(stem) + "_" + std::to_string(i));
  return out;
}

}  // namespace

Dataset::Dataset(std::vector<std::string> channel_names, std::vector<std::string> channel_units)
    : channel_names_(std::move(channel_names)), channel_units_(std::move(channel_units)) {
  if (channel_names_.empty()) throw DataError("dataset: at least one channel name is needed");
  if (channel_units_.empty()) channel_units_.assign(channel_names_.size(), "");
  if (channel_units_.size() != channel_names_.size())
    throw DataError("dataset: " + std::to_string(channel_units_.size()) + " channel units for " +
                    std::to_string(channel_names_.size()) + " channels");
  std::unordered_set<std::string> seen;
  for (const auto& n : channel_names_)
    if (!seen.insert(n).second) throw DataError("dataset: channel name '" + n + "' appears twice");
}

const char* evid_name(Evid k) {
  switch (k) {
    case Evid::Dose: return "dose";
    case Evid::Reset: return "reset";
    case Evid::ResetDose: return "reset_dose";
  }
  return "?";
}

bool is_evid(long evid) { return evid == 1 || evid == 3 || evid == 4; }

void Dataset::set_compartment_names(std::vector<std::string> names) {
  std::unordered_set<std::string> seen;
  for (const auto& n : names) {
    if (n.empty()) throw DataError("dataset: compartment names must not be empty");
    if (!seen.insert(n).second) throw DataError("dataset: compartment name '" + n + "' appears twice");
  }
  if (names.size() < compartment_names_.size())
    for (const EventRecord& e : events_)
      if (e.compartment >= static_cast<int>(names.size()))
        throw DataError("dataset: " + std::to_string(names.size()) + " compartment names, but an event already "
                        "doses compartment " + std::to_string(e.compartment));
  compartment_names_ = std::move(names);
}

void Dataset::set_control_interpolation(std::string how) {
  if (how != "piecewise_constant" && how != "linear" && how != "monotone_cubic")
    throw DataError("dataset: control interpolation '" + how + "' (expected piecewise_constant, linear or monotone_cubic)");
  control_interpolation_ = std::move(how);
}

void Dataset::set_normalization(const Normalization& n) {
  if (n.mean.size() != channels() || n.std.size() != channels())
    throw DataError("dataset: normalization has " + std::to_string(n.mean.size()) + " means and " +
                    std::to_string(n.std.size()) + " standard deviations for " + std::to_string(channels()) +
                    " channels");
  for (int c = 0; c < channels(); ++c)
    if (!std::isfinite(n.mean[c]) || !(n.std[c] > 0) || !std::isfinite(n.std[c]))
      throw DataError("dataset: normalization of channel '" + channel_names_[c] + "': mean " +
                      std::to_string(n.mean[c]) + ", std " + std::to_string(n.std[c]) +
                      " (need a finite mean and a finite positive std)");
  normalization_ = n;
}

std::vector<std::string> Dataset::covariate_names() const {
  return default_names(covariate_names_, covariate_count(), "covariate");
}
std::vector<std::string> Dataset::control_names() const {
  return default_names(control_names_, control_count(), "control");
}

void Dataset::add(const Series& s) {
  const int C = channels();
  const std::string who = "dataset: " + detail::series_label(s.id, size()) + ": ";
  if (C == 0) throw DataError(who + "the dataset has no channels (construct it with channel names)");
  if (s.id.empty()) throw DataError(who + "field 'id': empty series id");
  if (s.id.find('\0') != std::string::npos) throw DataError(who + "field 'id': contains a NUL byte");
  if (id_set_.count(s.id))
    throw DataError(who + "field 'id': the id is already used by another series");
  const auto n = static_cast<std::size_t>(s.times.size());
  if (static_cast<std::size_t>(s.values.rows()) != n || s.values.cols() != C)
    throw DataError(who + "field 'values': shape " + std::to_string(s.values.rows()) + " x " +
                    std::to_string(s.values.cols()) + ", expected " + std::to_string(n) + " x " +
                    std::to_string(C) + " (times x channels)");
  if (s.mask.size() > 0 && (s.mask.rows() != s.values.rows() || s.mask.cols() != C))
    throw DataError(who + "field 'mask': shape " + std::to_string(s.mask.rows()) + " x " +
                    std::to_string(s.mask.cols()) + ", expected " + std::to_string(n) + " x " + std::to_string(C));
  // The first series fixes the widths; they are committed only once the series is accepted.
  auto width_check = [&](int dim, Eigen::Index got, const char* field) {
    if (dim >= 0 && got != dim)
      throw DataError(who + "field '" + field + "': " + std::to_string(got) + " entries, the other series have " +
                      std::to_string(dim));
    return static_cast<int>(got);
  };
  const int D = width_check(state_dim_, s.initial_state.size(), "initial_state");
  const int K = width_check(cov_dim_, s.covariates.size(), "covariates");
  const int U = width_check(ctrl_dim_, s.control_values.cols(), "control_values");
  if (s.control_values.rows() != s.control_times.size())
    throw DataError(who + "field 'control_values': " + std::to_string(s.control_values.rows()) + " rows for " +
                    std::to_string(s.control_times.size()) + " control times");
  if (!s.initial_state.allFinite()) throw DataError(who + "field 'initial_state': not finite");
  if (!s.covariates.allFinite()) throw DataError(who + "field 'covariates': not finite");

  // Flatten to the stored layout, then check with the same rules as the reader.
  std::vector<double> vals(n * C);
  std::vector<std::uint8_t> msk(n * C);
  for (std::size_t k = 0; k < n; ++k)
    for (int c = 0; c < C; ++c) {
      const double m = s.mask.size() ? s.mask(k, c) : 1.0;
      if (m != 0 && m != 1)
        throw DataError(who + "field 'mask': mask(" + std::to_string(k) + ", " + std::to_string(c) + ") = " +
                        std::to_string(m) + " is neither 0 nor 1");
      msk[k * C + c] = m != 0;
      vals[k * C + c] = m != 0 ? s.values(k, c) : kUnobserved;
    }
  if (std::string why = detail::check_series_rows(s.t0, s.times.data(), n, vals.data(), msk.data(), C); !why.empty())
    throw DataError(who + why);
  std::vector<double> cvals(static_cast<std::size_t>(s.control_values.size()));
  for (Eigen::Index k = 0; k < s.control_values.rows(); ++k)
    for (Eigen::Index c = 0; c < s.control_values.cols(); ++c) cvals[k * s.control_values.cols() + c] = s.control_values(k, c);
  if (std::string why = detail::check_control_rows(s.control_times.data(), s.control_times.size(), cvals.data(), U);
      !why.empty())
    throw DataError(who + why);
  {
    const detail::EventColumns e(s.events.data(), s.events.size());
    if (std::string why = detail::check_event_rows(s.t0, n ? s.times[n - 1] : s.t0, e.time.data(), e.compartment.data(),
                                                   e.amount.data(), e.rate.data(), e.kind.data(), e.size(),
                                                   compartment_names_);
        !why.empty())
      throw DataError(who + why);
  }

  state_dim_ = D;
  cov_dim_ = K;
  ctrl_dim_ = U;
  ids_.push_back(s.id);
  id_set_.insert(s.id);
  t0_.push_back(s.t0);
  times_.insert(times_.end(), s.times.data(), s.times.data() + n);
  values_.insert(values_.end(), vals.begin(), vals.end());
  mask_.insert(mask_.end(), msk.begin(), msk.end());
  offsets_.push_back(times_.size());
  initial_states_.insert(initial_states_.end(), s.initial_state.data(), s.initial_state.data() + s.initial_state.size());
  covariates_.insert(covariates_.end(), s.covariates.data(), s.covariates.data() + s.covariates.size());
  control_times_.insert(control_times_.end(), s.control_times.data(), s.control_times.data() + s.control_times.size());
  control_values_.insert(control_values_.end(), cvals.begin(), cvals.end());
  control_offsets_.push_back(control_times_.size());
  events_.insert(events_.end(), s.events.begin(), s.events.end());
  event_offsets_.push_back(events_.size());
  if (!values_read_.empty()) values_read_.push_back(1);
}

Series Dataset::series(std::size_t i) const {
  if (i >= size()) throw DataError("dataset: series index " + std::to_string(i) + " out of range (" +
                                   std::to_string(size()) + " series)");
  const int C = channels();
  const std::size_t a = offsets_[i], n = offsets_[i + 1] - a;
  Series s;
  s.id = ids_[i];
  s.t0 = t0_[i];
  s.times = Eigen::Map<const Vector>(times_.data() + a, static_cast<Eigen::Index>(n));
  s.values.resize(static_cast<Eigen::Index>(n), C);
  s.mask.resize(static_cast<Eigen::Index>(n), C);
  for (std::size_t k = 0; k < n; ++k)
    for (int c = 0; c < C; ++c) {
      s.values(k, c) = values_[(a + k) * C + c];
      s.mask(k, c) = mask_[(a + k) * C + c];
    }
  const int D = initial_state_size(), K = covariate_count(), U = control_count();
  s.initial_state = Eigen::Map<const Vector>(initial_states_.data() + i * D, D);
  s.covariates = Eigen::Map<const Vector>(covariates_.data() + i * K, K);
  const std::size_t ca = control_offsets_[i], cn = control_offsets_[i + 1] - ca;
  s.control_times = Eigen::Map<const Vector>(control_times_.data() + ca, static_cast<Eigen::Index>(cn));
  s.control_values.resize(static_cast<Eigen::Index>(cn), U);
  for (std::size_t k = 0; k < cn; ++k)
    for (int c = 0; c < U; ++c) s.control_values(k, c) = control_values_[(ca + k) * U + c];
  s.events.assign(events_.begin() + event_offsets_[i], events_.begin() + event_offsets_[i + 1]);
  return s;
}

Vector Dataset::missing_fraction() const {
  const int C = channels();
  Vector missing = Vector::Zero(C);
  for (std::size_t e = 0; e < mask_.size(); ++e) missing[e % C] += mask_[e] == 0;
  if (observations() > 0) missing /= static_cast<double>(observations());
  return missing;
}

Split Dataset::split(double train_fraction, double validation_fraction, std::uint64_t seed) const {
  if (!(train_fraction >= 0 && validation_fraction >= 0 && train_fraction + validation_fraction <= 1 + 1e-12))
    throw DataError("split: fractions train = " + std::to_string(train_fraction) + " and validation = " +
                    std::to_string(validation_fraction) + " must be >= 0 and sum to at most 1");
  std::vector<std::size_t> order(size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  detail::Rng rng(seed);
  shuffle(order, rng);
  const auto n = static_cast<double>(size());
  const auto n_train = std::min(size(), static_cast<std::size_t>(std::llround(train_fraction * n)));
  const auto n_val = std::min(size() - n_train, static_cast<std::size_t>(std::llround(validation_fraction * n)));
  Split s;
  s.train.assign(order.begin(), order.begin() + n_train);
  s.validation.assign(order.begin() + n_train, order.begin() + n_train + n_val);
  s.test.assign(order.begin() + n_train + n_val, order.end());
  // Each part in file order: reading and iterating a part is then sequential in the file.
  std::sort(s.train.begin(), s.train.end());
  std::sort(s.validation.begin(), s.validation.end());
  std::sort(s.test.begin(), s.test.end());
  return s;
}

Dataset Dataset::subset(const std::vector<std::size_t>& indices) const {
  Dataset d;
  d.channel_names_ = channel_names_;
  d.channel_units_ = channel_units_;
  d.covariate_names_ = covariate_names_;
  d.control_names_ = control_names_;
  d.compartment_names_ = compartment_names_;
  d.control_interpolation_ = control_interpolation_;
  d.provenance_ = provenance_;
  d.normalization_ = normalization_;
  d.normalized_ = normalized_;
  d.state_dim_ = state_dim_;
  d.cov_dim_ = cov_dim_;
  d.ctrl_dim_ = ctrl_dim_;
  const int C = channels(), D = initial_state_size(), K = covariate_count(), U = control_count();
  std::unordered_set<std::size_t> seen;
  for (std::size_t i : indices) {
    if (i >= size()) throw DataError("subset: series index " + std::to_string(i) + " out of range (" +
                                     std::to_string(size()) + " series)");
    if (!seen.insert(i).second) throw DataError("subset: series index " + std::to_string(i) + " appears twice");
    d.ids_.push_back(ids_[i]);
    d.id_set_.insert(ids_[i]);
    d.t0_.push_back(t0_[i]);
    const std::size_t a = offsets_[i], b = offsets_[i + 1];
    d.times_.insert(d.times_.end(), times_.begin() + a, times_.begin() + b);
    d.values_.insert(d.values_.end(), values_.begin() + a * C, values_.begin() + b * C);
    d.mask_.insert(d.mask_.end(), mask_.begin() + a * C, mask_.begin() + b * C);
    d.offsets_.push_back(d.times_.size());
    d.initial_states_.insert(d.initial_states_.end(), initial_states_.begin() + i * D, initial_states_.begin() + (i + 1) * D);
    d.covariates_.insert(d.covariates_.end(), covariates_.begin() + i * K, covariates_.begin() + (i + 1) * K);
    const std::size_t ca = control_offsets_[i], cb = control_offsets_[i + 1];
    d.control_times_.insert(d.control_times_.end(), control_times_.begin() + ca, control_times_.begin() + cb);
    d.control_values_.insert(d.control_values_.end(), control_values_.begin() + ca * U, control_values_.begin() + cb * U);
    d.control_offsets_.push_back(d.control_times_.size());
    d.events_.insert(d.events_.end(), events_.begin() + event_offsets_[i], events_.begin() + event_offsets_[i + 1]);
    d.event_offsets_.push_back(d.events_.size());
    if (!values_read_.empty()) {
      d.values_read_.resize(d.ids_.size() - 1, 1);
      d.values_read_.push_back(values_read_[i]);
    }
  }
  return d;
}

std::vector<std::vector<std::size_t>> Dataset::minibatches(const std::vector<std::size_t>& indices,
                                                           std::size_t batch_size, std::uint64_t seed,
                                                           std::uint64_t epoch) {
  if (batch_size == 0) throw DataError("minibatches: batch size must be at least 1");
  std::vector<std::size_t> order = indices;
  detail::Rng rng(seed ^ (0xD1B54A32D192ED03ULL * (epoch + 1)));
  shuffle(order, rng);
  std::vector<std::vector<std::size_t>> out;
  for (std::size_t a = 0; a < order.size(); a += batch_size)
    out.emplace_back(order.begin() + a, order.begin() + std::min(order.size(), a + batch_size));
  return out;
}

Normalization Dataset::compute_normalization(const std::vector<std::size_t>& series,
                                             const std::vector<bool>& scale_only) const {
  const int C = channels();
  if (!scale_only.empty() && static_cast<int>(scale_only.size()) != C)
    throw DataError("normalization: " + std::to_string(scale_only.size()) + " scale-only flags for " +
                    std::to_string(C) + " channels");
  Vector sum = Vector::Zero(C), count = Vector::Zero(C);
  for (std::size_t i : series) {
    if (i >= size()) throw DataError("normalization: series index " + std::to_string(i) + " out of range");
    if (!has_values(i))
      throw DataError("normalization: series '" + ids_[i] + "' holds no values here (another rank's shard)");
    for (std::size_t e = offsets_[i] * C; e < offsets_[i + 1] * C; ++e)
      if (mask_[e]) { sum[e % C] += values_[e]; count[e % C] += 1; }
  }
  Normalization n;
  n.mean = Vector::Zero(C);
  n.std = Vector::Ones(C);
  for (int c = 0; c < C; ++c) {
    if (count[c] == 0)
      throw DataError("normalization: channel '" + channel_names_[c] + "' has no observed value in the chosen series");
    n.mean[c] = scale_only.empty() || !scale_only[c] ? sum[c] / count[c] : 0.0;
  }
  Vector sq = Vector::Zero(C);  // second pass: no cancellation
  for (std::size_t i : series)
    for (std::size_t e = offsets_[i] * C; e < offsets_[i + 1] * C; ++e)
      if (mask_[e]) sq[e % C] += (values_[e] - n.mean[e % C]) * (values_[e] - n.mean[e % C]);
  for (int c = 0; c < C; ++c) {
    const double s = std::sqrt(sq[c] / count[c]);
    n.std[c] = s > 0 && std::isfinite(s) ? s : 1.0;
  }
  return n;
}

bool Dataset::all_values() const {
  return std::all_of(values_read_.begin(), values_read_.end(), [](std::uint8_t f) { return f != 0; });
}

void Dataset::drop_values(std::size_t i) {
  if (i >= size()) throw DataError("drop_values: series index " + std::to_string(i) + " out of range");
  if (values_read_.empty()) values_read_.assign(size(), 1);
  values_read_[i] = 0;
  const std::size_t C = static_cast<std::size_t>(channels());
  std::fill(values_.begin() + offsets_[i] * C, values_.begin() + offsets_[i + 1] * C, 0.0);
}

void Dataset::normalize(const Normalization& n) {
  if (normalized_) throw DataError("normalize: the dataset is already normalised (denormalize() first)");
  set_normalization(n);
  const int C = channels(), D = initial_state_size();
  for (std::size_t e = 0; e < values_.size(); ++e)
    if (mask_[e]) values_[e] = (values_[e] - n.mean[e % C]) / n.std[e % C];
  for (std::size_t i = 0; i < size(); ++i)
    for (int c = 0; c < std::min(C, D); ++c)
      initial_states_[i * D + c] = (initial_states_[i * D + c] - n.mean[c]) / n.std[c];
  normalized_ = true;
}

void Dataset::denormalize() {
  if (!normalized_) return;
  const Normalization& n = normalization_;
  const int C = channels(), D = initial_state_size();
  for (std::size_t e = 0; e < values_.size(); ++e)
    if (mask_[e]) values_[e] = values_[e] * n.std[e % C] + n.mean[e % C];
  for (std::size_t i = 0; i < size(); ++i)
    for (int c = 0; c < std::min(C, D); ++c)
      initial_states_[i * D + c] = initial_states_[i * D + c] * n.std[c] + n.mean[c];
  normalized_ = false;
}

Trajectory Dataset::trajectory(std::size_t i, int state_size, const TrajectoryOptions& options) const {
  const int C = channels(), D = initial_state_size();
  if (i >= size()) throw DataError("trajectory: series index " + std::to_string(i) + " out of range");
  if (state_size < C || state_size < D)
    throw DataError("trajectory: state size " + std::to_string(state_size) + " is smaller than the " +
                    std::to_string(std::max(C, D)) + " channels or initial-state entries of the data");
  const std::size_t a = offsets_[i], n = offsets_[i + 1] - a;
  Trajectory tr;
  tr.times = Eigen::Map<const Vector>(times_.data() + a, static_cast<Eigen::Index>(n));
  tr.values.resize(static_cast<Eigen::Index>(n), C);
  tr.mask.resize(static_cast<Eigen::Index>(n), C);
  for (std::size_t k = 0; k < n; ++k)
    for (int c = 0; c < C; ++c) {
      const bool seen = mask_[(a + k) * C + c] != 0;
      tr.mask(k, c) = seen;
      tr.values(k, c) = seen ? values_[(a + k) * C + c] : 0.0;  // never NaN into the loss
    }
  tr.z0 = Vector::Zero(state_size);
  if (D > 0) {
    tr.t0 = t0_[i];
    tr.z0.head(D) = Eigen::Map<const Vector>(initial_states_.data() + i * D, D);
  } else {
    tr.t0 = tr.times[0];
    tr.z0.head(C) = tr.values.row(0).transpose();
  }
  const std::string who = "series '" + ids_[i] + "': ";
  if (event_offsets_[i + 1] > event_offsets_[i]) {
    // Events act from the series' own t0 (the first dose may precede the first observation).
    tr.t0 = t0_[i];
    const auto P = static_cast<int>(compartment_names_.size());
    if (!options.compartment_state.empty() && static_cast<int>(options.compartment_state.size()) != P)
      throw DataError(who + std::to_string(options.compartment_state.size()) + " state components given for the " +
                      std::to_string(P) + " compartments of the data");
    if (options.dose_scale.size() > 0 && options.dose_scale.size() != P)
      throw DataError(who + std::to_string(options.dose_scale.size()) + " dose scales given for the " +
                      std::to_string(P) + " compartments of the data");
    for (std::size_t e = event_offsets_[i]; e < event_offsets_[i + 1]; ++e) {
      const EventRecord& r = events_[e];
      if (r.kind == Evid::Reset || r.kind == Evid::ResetDose) tr.events.push_back(Event{r.time, 0, EventKind::Reset, 0, 0});
      if (r.kind == Evid::Reset) continue;
      const int state = options.compartment_state.empty() ? r.compartment : options.compartment_state[r.compartment];
      if (state < 0 || state >= state_size)
        throw DataError(who + "compartment '" + compartment_names_[r.compartment] + "' enters state component " +
                        std::to_string(state) + ", but the model's state has " + std::to_string(state_size) +
                        " components (data.compartment_states)");
      double scale = options.dose_scale.size() ? options.dose_scale[r.compartment] : 1.0;
      if (normalized_ && state < C) {
        if (normalization_.mean[state] != 0)
          throw DataError(who + "compartment '" + compartment_names_[r.compartment] + "' doses the channel '" +
                          channel_names_[state] + "', whose normalisation shifts it by its mean " +
                          std::to_string(normalization_.mean[state]) + ": a dosed channel is normalised by scale only");
        scale /= normalization_.std[state];
      }
      if (r.rate > 0) tr.events.push_back(Event{r.time, state, EventKind::Infusion, scale * r.amount, r.duration()});
      else tr.events.push_back(Event{r.time, state, EventKind::Bolus, scale * r.amount, 0});
    }
  }
  if (control_count() > 0) {
    const std::size_t ca = control_offsets_[i], cn = control_offsets_[i + 1] - ca;
    const int U = control_count();
    tr.controls.times = Eigen::Map<const Vector>(control_times_.data() + ca, static_cast<Eigen::Index>(cn));
    tr.controls.values.resize(static_cast<Eigen::Index>(cn), U);
    for (std::size_t k = 0; k < cn; ++k)
      for (int u = 0; u < U; ++u) tr.controls.values(k, u) = control_values_[(ca + k) * U + u];
    tr.controls.interpolation = parse_control_interpolation(control_interpolation_);
  }
  if (covariate_count() > 0) {
    const int K = covariate_count();
    tr.covariates = Eigen::Map<const Vector>(covariates_.data() + i * K, K);
  }
  return tr;
}

std::vector<Trajectory> Dataset::trajectories(const std::vector<std::size_t>& indices, int state_size,
                                              const TrajectoryOptions& options) const {
  std::vector<Trajectory> out;
  out.reserve(indices.size());
  for (std::size_t i : indices) out.push_back(trajectory(i, state_size, options));
  return out;
}

}  // namespace cvnode

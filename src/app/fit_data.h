// The data side of a fit: a configuration's files read, split (by series, by separate files or
// in time for forecasting), transformed per channel (log, log1p), normalised with the training
// part's statistics (or a checkpoint's) and turned into the solver's series; training windows;
// and errors in data units, with the naive forecasts a forecast is compared against.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "app/config.h"
#include "cvnode/dataset.h"
#include "cvnode/dynamics.h"
#include "cvnode/exact_sum.h"
#include "cvnode/observations.h"

namespace cvnode {

// A per-channel transform applied to the data before normalisation; the model works on
// T(y), predictions are reported as T^-1.
enum class ChannelTransform {
  None,
  Log,   // log y: for positive quantities spanning orders of magnitude (concentrations, counts)
  Log1p  // log(1 + y): the same for quantities that can be 0
};
ChannelTransform parse_channel_transform(const std::string& name);  // none|log|log1p (OptionsError)
const char* channel_transform_name(ChannelTransform t);
// data.transform expanded to one per channel (one entry: all channels); throws ConfigError on a
// count that is neither 1 nor `channels`.
std::vector<ChannelTransform> channel_transforms(const DataOptions& data, int channels);

// The data of a fit, in the model's units (transformed, normalised).
struct FitData {
  std::vector<Trajectory> train, val, test;  // observed series (not lifted)
  std::vector<std::string> train_ids, val_ids, test_ids;
  // With windows: the whole training series and, per window, the index of its series there.
  std::vector<Trajectory> train_whole;
  std::vector<std::string> train_whole_ids;
  std::vector<std::size_t> window_parent;
  // Forecast series (data.split = "time") start at their forecast origin, the last fully observed
  // row before the cutoff, whose observation is the initial condition and not a forecast: the
  // first `*_history[i]` rows of series i are not scored by the data-unit errors (0 otherwise).
  std::vector<int> val_history, test_history;
  // Forecast series: what was known at the origin (the series up to the cutoff), for the naive
  // forecasts a forecast is compared with.
  std::vector<Trajectory> val_past, test_past;
  Normalization normalization;                // empty when data.normalize = false
  // The model's inputs u = [controls; covariates] standardised with the training part's mean and
  // std (covariates over the training series, controls over their knots), also with
  // data.normalize = false (only the network reads them); empty without inputs.
  Normalization input_normalization;
  std::vector<ChannelTransform> transforms;   // one per channel
  std::vector<std::string> channel_names, channel_units;
  int channels = 0;
  int inputs = 0;   // controls + covariates the model reads (those not in data.ignore)
  Vector data_std;  // per-channel std of the training series in data units (for reports)
  bool forecast = false;  // a time split: val and test are forecast windows
  // A rank's shard (FitDataOptions::shard_size > 1): the rank holding each training item's values
  // (a window: its series'); the other items have their times and masks but zero values. Empty:
  // every item is held. Validation series q (and the whole training series p, which stand in for
  // them without a validation split) are held by rank q mod shard_size, as evaluate_on_ranks
  // spreads them.
  std::vector<int> train_owner;
  int shard_rank = 0, shard_size = 1;
  // Whether this rank holds the values of training item i / validation series i / test series i.
  bool holds_train(std::size_t i) const { return train_owner.empty() || train_owner[i] == shard_rank; }
  bool holds_val(std::size_t i) const { return shard_size <= 1 || static_cast<int>(i % shard_size) == shard_rank; }
  bool holds_test() const { return shard_size <= 1; }
};

struct FitDataOptions {
  // Cut the training series into windows of data.window observations (the curriculum's first
  // phase); validation and test series are always whole.
  bool windows = false;
  // Use this normalisation instead of computing one from the training part (eval and predict use
  // the checkpoint's, so that any file is scaled like the data the model was trained on).
  const Normalization* normalization = nullptr;
  const Normalization* input_normalization = nullptr;  // the same for the inputs
  // Read one MPI rank's shard (shard_size > 1; a series split only): the values of training
  // series at positions p = shard_rank mod shard_size of the training part and of validation
  // series likewise (Dataset::read_shard), no test values; `combine` (an allreduce of ExactSums
  // over the ranks, called by every rank in the same order) merges the statistics' partial sums,
  // so that the normalisation has the same bits as one process reading everything.
  int shard_rank = 0, shard_size = 1;
  std::function<void(ExactSum&)> combine;
};

// Reads data.file (and data.validation_file / data.test_file), splits, transforms and
// normalises. Throws DataError naming the file, the series, the channel and the value for data
// a transform cannot take (log of a value <= 0), ConfigError for options that do not fit the
// data (transform or compartment counts, constraints the normalisation would break).
FitData load_fit_data(const Config& config, const FitDataOptions& options = {});

// Forecast series whose first history[i] > 1 rows are their past (data.forecast_history): the
// state at the first of them is fitted to those observations (least squares over the first
// `observed` state components; Levenberg-Marquardt on z0, unobserved components included, with
// central-difference sensitivities of solves at rtol <= 1e-8), then those rows are masked, so
// the model's trajectory through its past continues as the forecast and only the forecast is
// scored. `lifted` are the series in state space (Model::lift); others are left as they are.
void start_forecasts(const Dynamics& dynamics, ConstVectorRef theta, std::vector<Trajectory>& lifted,
                     const std::vector<int>& history, const SolverOptions& options, int observed);

// Windows of `length` consecutive observations of each series, sharing their end points, each
// starting at a fully observed row (its observation is the window's initial state); events and
// controls of the window's span go with it. Ids get "[w]" suffixes.
void make_windows(const std::vector<Trajectory>& series, const std::vector<std::string>& ids, int length,
                  std::vector<Trajectory>& windows, std::vector<std::string>& window_ids,
                  std::vector<std::size_t>* parent = nullptr);

// Model-unit values (rows x channels) in data units: denormalised, then back-transformed.
Matrix to_data_units(const Matrix& values, const Normalization& n,
                     const std::vector<ChannelTransform>& transforms = {});

// Per-channel errors of predictions (model units, one matrix per series at its times; empty =
// failed, left out) against the series' observed values, both taken to data units; rows before
// `history[i]` are not scored.
struct DataErrors {
  Vector rmse, mae;      // per channel (NaN where a channel has no scored entry)
  Vector count;          // scored entries per channel
  double rmse_all = 0;   // over all scored entries (NaN when none)
  long entries = 0;
};
DataErrors data_errors(const FitData& data, const std::vector<Trajectory>& series,
                       const std::vector<Matrix>& predictions, const std::vector<int>& history = {});
// The same as sums ([squared errors | absolute errors | counts] per channel) that merge across
// MPI ranks holding different series' predictions (ExactSum: the same bits however they are
// spread), and the errors from merged sums. data_errors = finish_data_errors(data_error_sums(..)).
ExactSum data_error_sums(const FitData& data, const std::vector<Trajectory>& series,
                         const std::vector<Matrix>& predictions, const std::vector<int>& history = {});
DataErrors finish_data_errors(const ExactSum& sums);

// Naive forecasts of forecast series (data.split = "time"), scored like data_errors. period <= 0:
// the persistence forecast, the observation at the origin repeated. period P > 0: the seasonal
// naive forecast, y(t) = the past series (`past`: what was known at the origin) linearly
// interpolated at t - kP for the smallest k >= 1 that reaches back into it.
DataErrors naive_forecast_errors(const FitData& data, const std::vector<Trajectory>& series,
                                 const std::vector<int>& history, const std::vector<Trajectory>& past,
                                 double period);

// The period of the best seasonal naive forecast on what is known: the P (between twice the
// median sampling interval and half the longest span) whose seasonal naive forecast of each
// known series from itself (y(t) against y(t - P), model units, every channel) has the smallest
// mean squared error. 0 when no series is long enough.
double best_season(const std::vector<Trajectory>& past);

}  // namespace cvnode

// The configuration of a fit: one TOML file (data/demo.toml is the commented example, docs/config.md
// the reference) with sections data, model, solver, loss, optimizer, schedule and run, plus
// command-line overrides `--set section.key=value`. Every key has a documented default; unknown
// keys, wrong types and bad values are errors naming the key and the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cvnode/errors.h"
#include "cvnode/latent.h"
#include "cvnode/model.h"
#include "cvnode/trainer.h"

namespace cvnode {

// A configuration file or override that cannot be used: the message names the file and the key.
class ConfigError : public OptionsError {
 public:
  using OptionsError::OptionsError;
};

struct DataOptions {
  std::string file;              // HDF5 dataset (docs/dataset-format.md); relative to the config file
  double train_fraction = 0.8;   // split of the series: train, validation, rest = test
  double val_fraction = 0.2;
  std::uint64_t split_seed = 0;
  bool normalize = true;         // per-channel mean/std of the training series
  int max_series = 0;            // use only the first N series of the file (0 = all)
  // Train on windows of this many consecutive observations of each training series, each
  // starting from its own first observation (0 = whole series). Short windows make the early
  // gradients informative and cheap for oscillating data; validation still uses whole series.
  int window = 0;
  // With window >= 2: train on windows for this many epochs, then on whole series (a curriculum:
  // windows learn the vector field cheaply, whole series then correct the long-horizon phase).
  // 0 = windows for the whole run. Not with model.initial_state = learned (one z0 per window).
  int window_epochs = 0;
  // Growing windows: after window_epochs, train on windows of window_stages[i] observations until
  // epoch window_stage_epochs[i] (both increasing), then on whole series. Empty = straight to
  // whole series. Longer windows carry more phase information than the first short ones while
  // keeping the gradient better conditioned than whole series.
  std::vector<int> window_stages;
  std::vector<int> window_stage_epochs;
  // Separate files for validation and test (e.g. the parts `cvnode data split` writes); with
  // either, `file` is the training set whole and train_fraction / val_fraction are not used.
  std::string validation_file, test_file;
  // "series": series are split (train_fraction, val_fraction, split_seed). "time": every series
  // is split at cutoffs in time (forecasting): training on t <= c1, validation on (c1, c2],
  // test after c2; c1 = first + train_fraction (last - first) of each series' span and
  // c2 = first + (train_fraction + val_fraction) (last - first), or the absolute times_cutoffs.
  std::string split = "series";
  std::vector<double> time_cutoffs;  // [c1] or [c1, c2] (time split); empty: from the fractions
  // Per-channel transform applied before normalisation: "none", "log" or "log1p"; one entry
  // for every channel or one per channel (empty: none). Predictions, metrics and figures are
  // back-transformed to data units.
  std::vector<std::string> transform;
  // The state component each compartment of the data's events enters (one per compartment of
  // the file; empty: compartment k is state component k), and the factor from an event's amount
  // to that component's units (one per compartment; empty: ones).
  std::vector<int> compartment_states;
  std::vector<double> dose_scale;
  // Covariates and controls of the file the model does not get (by name; each must be one).
  std::vector<std::string> ignore;
  // Where a training window's unobserved state components (beyond the channels) start: "model"
  // (the model's own solution of the whole series at the window's first time, recomputed every
  // epoch with the current parameters) or "zero".
  std::string window_start = "model";
  // Forecast windows (split = "time"): the number of observations up to the forecast origin the
  // forecast starts from. 1: the origin's observation is the initial state. H > 1: the state H
  // observations before the origin is fitted to those H observations (unobserved components too)
  // and the model's trajectory through them continues as the forecast: a noisy observation at the
  // origin no longer sets the orbit.
  int forecast_history = 1;

  std::string validate() const;
};

struct PlotOptions {
  int series = 4;            // fitted trajectories drawn per figure
  double extrapolate = 0.5;  // continue predictions this fraction of the series' span past its end
  int points = 200;          // prediction points per drawn series
  bool log_time = false;     // species against a logarithmic time axis (stiff kinetics)
};

struct Config {
  DataOptions data;
  ModelOptions model;
  LatentOptions latent;  // model.kind = "latent_ode" / "rnn_baseline": [encoder], [decoder], ELBO keys
  TrainerSettings train;
  PlotOptions plot;
  // loss.scale: per-channel loss weights 1/scale^2 from the training data, "std" or "max" (max
  // |value|), or "none" (loss.weight as given). run_fit resolves it into loss.weight.
  std::string loss_scale = "none";
  std::string source = "<defaults>";  // where it came from, for messages

  // Reads a TOML file and applies overrides "key=value" in order. Throws ConfigError.
  static Config load(const std::string& path, const std::vector<std::string>& overrides = {});
  // The same from TOML text (`name` appears in messages, e.g. a checkpoint's path).
  static Config parse(const std::string& toml_text, const std::string& name,
                      const std::vector<std::string>& overrides = {});
  // Sets one key from text parsed as a TOML value ("1e-6", "[32, 32]", "true", "bdf" or "\"bdf\"").
  void set(const std::string& key, const std::string& value);
  // The resolved configuration as TOML, every key, doubles exact: parse(to_toml()) gives it back.
  std::string to_toml() const;
  // Empty when every section is valid, else the first reason (naming the key).
  std::string validate() const;
  // All keys, "section.key", in print order.
  static std::vector<std::string> keys();
};

}  // namespace cvnode

// The configuration of a fit: one TOML file (data/demo.toml is the commented example, docs/config.md
// the reference) with sections data, model, solver, loss, optimizer, schedule and run, plus
// command-line overrides `--set section.key=value`. Every key has a documented default; unknown
// keys, wrong types and bad values are errors naming the key and the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cvnode/errors.h"
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

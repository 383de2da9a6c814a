// Training, scoring and sampled predictions of the latent sequence models (model.kind =
// "latent_ode" or "rnn_baseline", include/cvnode/latent.h) from a fit configuration: the library
// side of `cvnode latent train|eval|predict`. Its own epoch loop on cvnode's Optimizer, Schedule
// and atomic Checkpoint until the Trainer drives model kinds generically.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "app/config.h"

namespace cvnode {

// Where a series is cut into what a model conditions on and what it is scored on.
struct LatentWindow {
  // Condition on observations at times <= until. NaN: `fraction`; when that is NaN too, the
  // dataset's "window_end" (provenance, e.g. of `cvnode data spirals`), else the whole series.
  double until = std::numeric_limits<double>::quiet_NaN();
  // The first `fraction` of each series' own span [first time, last time].
  double fraction = std::numeric_limits<double>::quiet_NaN();
};

struct LatentFitOptions {
  std::string out_dir;       // latest.h5, best.h5 (atomic), metrics.csv, config.toml
  std::string resume;        // a latest.h5 to continue from ("" = start fresh)
  LatentWindow window;       // training and validation see only the conditioning window
  int stop_after_epoch = 0;  // stop after this epoch as if interrupted (tests)
  bool quiet = false;
};

struct LatentFitResult {
  int epochs = 0;            // completed
  long steps = 0;
  int best_epoch = 0;
  double best_val_loss = std::numeric_limits<double>::infinity();
  double seconds = 0;
};

// Throws OptionsError/ConfigError for a configuration that is not a latent kind or invalid,
// DataError for data and checkpoint problems.
LatentFitResult run_latent_fit(const Config& config, const LatentFitOptions& options);

// Which series of a trained model to score or predict: a split of the model's own dataset, or
// every series of another file (normalised with the model's statistics).
struct LatentSeriesChoice {
  std::string split = "test";     // train | val | test | all
  std::string data_file;          // non-empty: this file instead of the split
  std::vector<std::string> ids;   // non-empty: only these series
  int max_series = 0;             // 0 = all
};

// How the latent ODE's predictions draw z0 (the RNN baseline has no posterior: "encoder" only).
// "encoder": from the encoder's q(z0 | x). "importance": the model's posterior
// p(z0 | x) ~ p(x | z0) N(z0; 0, I) by importance resampling from q widened by proposal_scale
// (`proposals` draws, 0: 10 per sample); see docs/latent-ode.md, calibration.
struct LatentPosterior {
  std::string method = "encoder";
  double proposal_scale = 2;
  int proposals = 0;
};

struct LatentEvalOptions {
  LatentSeriesChoice series;
  LatentWindow window;
  int samples = 100;              // posterior samples for the bands (latent_ode)
  LatentPosterior posterior;
  double level = 0.9;             // central predictive band whose coverage is reported
  std::uint64_t seed = 0;
  int threads = 0;                // 0: run.threads of the stored configuration
};

// Errors in data units; coverage = fraction of target entries inside the central `level` band
// of the predictive distribution (posterior samples plus observation noise).
struct LatentScores {
  std::string kind;
  int series = 0, failures = 0;
  long interpolation_points = 0, extrapolation_points = 0;
  double interpolation_rmse = 0, extrapolation_rmse = 0;
  double interpolation_coverage = 0, extrapolation_coverage = 0;
  double level = 0.9;
  int samples = 0;
  std::string posterior = "encoder";
  double mean_ess = 0;            // importance: mean effective sample size of the weights
  std::string to_json() const;
};
LatentScores latent_evaluate(const std::string& checkpoint, const LatentEvalOptions& options);

struct LatentPredictOptions {
  LatentSeriesChoice series;
  LatentWindow window;
  int samples = 100;
  std::vector<double> levels = {0.05, 0.5, 0.95};
  LatentPosterior posterior;
  int grid = 0;                   // > 0: this many equally spaced times from the series' start
  double extend = 0;              // the grid runs this fraction of the span past the last time
  std::uint64_t seed = 0;
  int threads = 0;
};

struct LatentPrediction {
  std::string id;
  std::string error;              // non-empty: the series failed
  double window_end = 0;          // conditioned on observations up to here
  Vector times;                   // query times
  Matrix mean;                    // times x channels, data units
  std::vector<Matrix> quantiles;  // one per level
  std::vector<Matrix> samples;    // decoded posterior sample means (data units)
  std::vector<Matrix> latent;     // latent trajectories per sample (latent_ode)
  double ess = 0;                 // effective sample size (importance), else the samples drawn
  // The series' own observations (data units, NaN where missing) and which of them were seen.
  Vector observed_times;
  Matrix observed, seen;
};
std::vector<LatentPrediction> latent_predict(const std::string& checkpoint, const LatentPredictOptions& options,
                                             std::vector<std::string>* channel_names = nullptr);

}  // namespace cvnode

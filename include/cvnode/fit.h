// The whole `cvnode fit` pipeline as a library call, shared by the command line and the tests:
// configuration -> dataset (split, normalised on the training series) -> model -> Trainer, with
// the latest and the best checkpoint (HDF5, atomic) and metrics.csv written after every epoch.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cvnode/checkpoint.h"
#include "cvnode/config.h"
#include "cvnode/dataset.h"
#include "cvnode/model.h"
#include "cvnode/trainer.h"

namespace cvnode {

// The data of a fit, in the model's (normalised) units.
struct FitData {
  std::vector<Trajectory> train, val, test;  // observed series (not lifted)
  std::vector<std::string> train_ids, val_ids, test_ids;
  Normalization normalization;               // empty when data.normalize = false
  std::vector<std::string> channel_names;
  int channels = 0;
  Vector data_std;  // per-channel std of the training series in data units (for reports)
};

// Reads data.file, splits it with data.split_seed and normalises with the training statistics.
FitData load_fit_data(const Config& config);

// The model's identity stored in checkpoints and compared on load (JSON).
std::string model_spec(const Model& model);

// TrainState <-> Checkpoint.
Checkpoint to_checkpoint(const TrainState& state, const Model& model, const Config& config,
                         const Normalization& normalization);
TrainState from_checkpoint(const Checkpoint& checkpoint);

struct FitOptions {
  std::string out_dir;       // created if missing: latest.h5, best.h5, metrics.csv, config.toml
  std::string resume;        // checkpoint to continue from ("" = start fresh)
  int stop_after_epoch = 0;  // stop after this epoch as if interrupted (tests, time slicing)
  bool quiet = false;        // no progress lines
  std::function<void(const std::string&)> log;  // default std::cerr
  // Called after every epoch, once its checkpoints and metrics.csv are written (progress reports,
  // e.g. the Python module's callback). An exception thrown here ends the fit and propagates.
  std::function<void(const TrainState&)> on_epoch;
};

struct FitResult {
  TrainState state;
  Evaluation best_val;      // the best parameters on the validation split (model units)
  Vector physical;          // hybrid models: the physical parameters p = T(q) of the best parameters
  double seconds = 0;
  // SIGTERM/SIGUSR1 stopped the fit (latest.h5 holds the state to resume from; best_val empty).
  int stopped_by_signal = 0;
};

// loss.scale resolved into loss.weight (a copy; unchanged when loss.scale = "none").
Config resolve_loss_scale(const Config& config);

FitResult run_fit(const Config& config, const FitOptions& options);

// A trained model restored from a checkpoint: its configuration (with overrides applied), the
// model, network parameters (best or latest, whichever file is given) and normalisation.
struct TrainedModel {
  Config config;
  std::unique_ptr<Model> model;
  Vector theta;
  Vector phi;    // the loss's parameters (a learned readout's C), else empty
  Normalization normalization;
  Checkpoint checkpoint;
  std::vector<std::string> channel_names;
  // Lifted series scored by the configured loss on the model's observation map, with phi.
  Problem problem(std::vector<Trajectory> lifted) const;
};
TrainedModel load_trained(const std::string& checkpoint_path,
                          const std::vector<std::string>& overrides = {});

// Observed channels of model-unit values back in data units (identity without normalisation).
Matrix to_data_units(const Matrix& values, const Normalization& n);

// Trajectories of a trained model for observed series (lifted by the model's initial-state rule;
// learned initial states fall back to the first observation) at `times` per series, in data
// units, each with the NFE its solve used. Failed solves have empty values and an error.
struct Prediction {
  std::string id;
  Vector times;
  Matrix values;  // times x observed channels
  long nfe = 0;
  std::string error;
};
std::vector<Prediction> predict(const TrainedModel& model, const std::vector<Trajectory>& series,
                                const std::vector<std::string>& ids,
                                const std::vector<Vector>& times, const SolverOptions& options,
                                int threads);
// The series of a split of the model's dataset ("train", "val", "test" or "all").
void split_series(const FitData& data, const std::string& split, std::vector<Trajectory>& series,
                  std::vector<std::string>& ids);

}  // namespace cvnode

// The whole `cvnode fit` pipeline as a library call, shared by the command line and the tests:
// configuration -> dataset (split, normalised on the training series) -> model -> Trainer, with
// the latest and the best checkpoint (HDF5, atomic) and metrics.csv written after every epoch.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cvnode/checkpoint.h"
#include "app/config.h"
#include "cvnode/dataset.h"
#include "app/fit_data.h"
#include "cvnode/model.h"
#include "cvnode/trainer.h"

namespace cvnode {

// The model's identity stored in checkpoints and compared on load (JSON).
std::string model_spec(const Model& model);

// TrainState <-> Checkpoint.
Checkpoint to_checkpoint(const TrainState& state, const Model& model, const Config& config,
                         const Normalization& normalization, const Normalization& input_normalization = {});
TrainState from_checkpoint(const Checkpoint& checkpoint);

struct FitOptions {
  // Created if missing: latest.h5, best.h5, metrics.csv, config.toml. The fit holds the folder's
  // lock while it runs (a second fit into it is refused), and refuses a folder that holds another
  // run unless it resumes that run (resume = a checkpoint in the folder) or overwrite is set.
  std::string out_dir;
  std::string resume;        // checkpoint to continue from ("" = start fresh)
  bool overwrite = false;    // replace an earlier run's files in out_dir
  bool allow_data_change = false;  // resume although the data file's content changed
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
  DataErrors best_val_data; // the same in data units (back-transformed, denormalised)
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
  Normalization input_normalization;         // of the inputs [controls; covariates]
  std::vector<ChannelTransform> transforms;  // data.transform of the stored configuration
  Checkpoint checkpoint;
  std::vector<std::string> channel_names;
  // Lifted series scored by the configured loss on the model's observation map, with phi.
  Problem problem(std::vector<Trajectory> lifted) const;
  // model.initial_state = learned: the training series' learned z0 by id (with the time it
  // starts at), and the mean of their unobserved components.
  std::map<std::string, std::pair<double, Vector>> learned_z0;
  Vector latent_mean;
  // The model's initial-state rule for eval and predict: first_observation and given as in
  // training (Model::lift); learned: a series the model was trained on starts from its learned
  // z0, any other series (a new subject) from its first observation with the unobserved
  // components at the mean of the learned ones.
  Trajectory lift(const Trajectory& observed, const std::string& id) const;
  // Random effects ([random_effects]): the fitted Omega (variances) and residual variance
  // sigma^2 (model units), and whether predict() gives each subject its empirical-Bayes eta
  // (true) or the typical eta = 0.
  Vector re_omega;
  double re_sigma2 = 0;
  bool individual = true;
};
TrainedModel load_trained(const std::string& checkpoint_path,
                          const std::vector<std::string>& overrides = {});

// Random effects: each lifted series' empirical-Bayes eta given the trained population (the mode
// of its posterior, from its own observations; 0 without any) and what solves every series as
// its own subject: a model with one eta row per series, its parameters, and the series each
// pointing at its row.
struct IndividualFit {
  std::shared_ptr<const RandomEffectsDynamics> dynamics;
  Vector theta;
  std::vector<Trajectory> series;
  Matrix etas;  // series x effects
  std::vector<SubjectEstimate> estimates;
};
IndividualFit empirical_bayes_fit(const TrainedModel& model, std::vector<Trajectory> lifted,
                                  const SolverOptions& options, int threads);

// Trajectories of a trained model for observed series (lifted by TrainedModel::lift) at `times` per series, in data
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
                                int threads, const std::vector<int>& history = {});
// The series of a split of the model's dataset ("train", "val", "test" or "all"), with the rows
// of each not to score (forecast origins, FitData::val_history).
void split_series(const FitData& data, const std::string& split, std::vector<Trajectory>& series,
                  std::vector<std::string>& ids, std::vector<int>* history = nullptr);
// The data of a trained model's configuration for eval, predict and plots: whole series (never
// windows), scaled with the model's own normalisation and transforms, whatever file is given.
FitData load_model_data(const TrainedModel& model);

}  // namespace cvnode

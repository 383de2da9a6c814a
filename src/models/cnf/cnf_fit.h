// Training a continuous normalizing flow from the command line (`cvnode cnf train`, and
// `cvnode fit` on a configuration with a [cnf] section; data/cnf_moons.toml is the commented
// example): a TOML configuration -> points of a dataset (split, normalised on the training
// points) -> CnfModel trained by maximum likelihood with Adam, validated with the exact trace,
// with latest.h5 and best.h5 (Checkpoint, atomic), metrics.csv and config.toml written after
// every epoch. A trained flow is loaded back for sampling and log-densities (`cvnode cnf
// sample|density`). Until the trainer drives model kinds (core's M2) this is the CNF's own loop.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "cvnode/checkpoint.h"
#include "cvnode/cnf_model.h"
#include "app/config.h"
#include "cvnode/dataset.h"
#include "cvnode/densities.h"

namespace cvnode {

// A flow's configuration: the fit configuration's [data], [solver], [optimizer], [schedule] and
// [run] sections (cvnode/config.h, the keys a flow uses; others are refused by name), plus
//   [cnf]             the flow (CnfModelOptions: field, hidden, activation, time_input, width,
//                     hyper_hidden, init, seed, trace, noise, probes, end_time, base_std) and
//                     its figures (plot_grid, plot_flow_grid, plot_samples)
//   [regularization]  kinetic_weight, jacobian_weight, steer, error_weight (dopri5)
struct CnfFitConfig {
  Config base;
  CnfModelOptions model;
  int plot_grid = 100;      // density heat maps: grid x grid points
  int plot_flow_grid = 60;  // the flow-over-time figure's densities (0: none)
  int plot_samples = 5000;

  // Reads a TOML file and applies overrides "section.key=value" in order. Throws ConfigError
  // naming the file and the key (unknown keys, wrong types, invalid values).
  static CnfFitConfig load(const std::string& path, const std::vector<std::string>& overrides = {});
  static CnfFitConfig parse(const std::string& toml_text, const std::string& name,
                            const std::vector<std::string>& overrides = {});
  // True when the TOML file has a [cnf] table (`cvnode fit` then runs run_cnf_fit). Throws
  // ConfigError when the file does not parse.
  static bool describes_cnf(const std::string& path);
  // The resolved configuration, every key, doubles exact: parse(to_toml()) gives it back.
  std::string to_toml() const;
  std::string validate() const;  // empty when valid, else the first reason naming the key
};

// The points of a fit in model units, and the map back to the data's.
struct CnfData {
  Matrix train, val, test;  // rows = points (model units)
  Vector mean, std;         // x = mean + std .* y (ones/zeros without normalisation)
  double log_scale = 0;     // sum log std: NLL in data units = model NLL + log_scale
  std::unique_ptr<Density> density;  // the true density when the dataset's provenance has it
  EntropyEstimate entropy;           // its entropy (value NaN when unknown)
  Matrix to_data(const Matrix& Y) const;
};
// Throws DataError naming the file and series when a series is not one fully observed point.
CnfData load_cnf_data(const CnfFitConfig& config);

// One row of metrics.csv. NFE are per stacked solve (the right-hand-side calls of one ODE
// holding `stack` samples: what "NFE" means for a batch in Chen et al. and FFJORD), averaged
// over the epoch's steps.
struct CnfEpoch {
  int epoch = 0;
  double lr = 0;
  double train_loss = 0;  // NLL (model units) + weighted regularisers, mean over steps
  double train_nll = 0;   // data units, nats per sample (Hutchinson's estimate when training with it)
  double val_nll = std::numeric_limits<double>::quiet_NaN();  // exact trace, data units
  double val_nll_per_dim = std::numeric_limits<double>::quiet_NaN();
  double nfe_forward = 0, nfe_backward = 0;
  double kinetic = 0, frobenius = 0;  // mean integrals (when carried)
  double solver_error = 0;            // mean sum_s E_s h_s per stacked solve (error_weight > 0)
  long failures = 0;
  double seconds = 0;  // the only non-deterministic column
  static std::vector<std::string> names();
  std::vector<double> values() const;
  static CnfEpoch from_values(const std::vector<double>& v);
};

struct CnfFitOptions {
  std::string out_dir;
  std::string resume;        // latest.h5 of a run to continue (its configuration unless given)
  int stop_after_epoch = 0;  // stop after this epoch as if interrupted (tests)
  bool quiet = false;
  std::function<void(const std::string&)> log;  // default std::cerr
};

struct CnfFitResult {
  int dim = 0;
  int epochs = 0;
  long steps = 0;
  double best_val_nll = std::numeric_limits<double>::infinity();
  int best_epoch = 0;
  CnfEvaluation test;  // the best parameters on the test split (exact trace, data units)
  EntropyEstimate entropy;
  std::vector<CnfEpoch> history;
  double seconds = 0;
};

CnfFitResult run_cnf_fit(const CnfFitConfig& config, const CnfFitOptions& options);

// The model's identity stored in checkpoints and compared on load (JSON).
std::string cnf_model_spec(const CnfModel& model);
// True when the checkpoint holds a CNF (its spec's kind).
bool is_cnf_checkpoint(const Checkpoint& checkpoint);

// A trained flow from a checkpoint (best.h5 or latest.h5), with overrides of its stored
// configuration (e.g. solver.rtol for evaluation).
struct TrainedCnf {
  CnfFitConfig config;
  std::unique_ptr<CnfModel> model;
  Vector params;
  Vector mean, std;  // the data's map (x = mean + std .* y)
  Checkpoint checkpoint;
  FlowSettings settings() const;
  Flow flow() const { return model->flow(params, settings()); }
  // Log-densities of data-unit points (exact trace); samples in data units.
  Vector log_density(const Matrix& X) const;
  FlowPoints sample(int n, std::uint64_t seed) const;
};
TrainedCnf load_trained_cnf(const std::string& checkpoint_path, const std::vector<std::string>& overrides = {});

}  // namespace cvnode

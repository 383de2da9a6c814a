// The training loop: epochs of shuffled minibatches of series, adjoint gradients summed in series
// order (bit-identical for any thread count), an optimizer step with clipping and weight decay,
// a learning-rate schedule, validation, early stopping, and a back-off that survives solver
// failures. Everything the loop needs to continue is in TrainState, which a checkpoint stores.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "cvnode/batch.h"
#include "cvnode/loss.h"
#include "cvnode/problem.h"
#include "cvnode/model.h"
#include "cvnode/regularization.h"
#include "cvnode/optimizer.h"
#include "cvnode/schedule.h"
#include "cvnode/solver_options.h"

namespace cvnode {

// Where the gradient of a minibatch is computed and reduced. The reduction must not depend on
// how the work was spread (ExactSum, cvnode/batch.h). ThreadBackend does it with OpenMP threads
// in one process; RankBackend (cvnode/rank_backend.h) over MPI ranks.
class GradientBackend {
 public:
  virtual ~GradientBackend() = default;
  // The problem's loss and gradient (BatchSolver::gradient). Failures are listed (series = index
  // in the problem) and left out of the sums, never thrown.
  virtual BatchGradient gradient(ConstVectorRef theta, const Problem& problem) = 0;
  virtual int workers() const = 0;
};

class ThreadBackend final : public GradientBackend {
 public:
  // BatchOptions (cvnode/batch.h): threads, per-series or stacked; failures are always skipped.
  ThreadBackend(const Dynamics& dynamics, const SolverOptions& options, BatchOptions batch);
  BatchGradient gradient(ConstVectorRef theta, const Problem& problem) override;
  int workers() const override { return solver_.threads(); }

 private:
  BatchSolver solver_;
};

// How MPI ranks add their parts of a gradient (cvnode/rank_backend.h).
enum class Reduction {
  Reproducible,  // ExactSum over the ranks: the same bits for any rank count (default)
  Fast           // plain MPI_Allreduce of doubles: a quarter of the bytes, NOT bit-reproducible
};
// "reproducible", "fast" (std::invalid_argument otherwise).
Reduction parse_reduction(const std::string& name);
const char* reduction_name(Reduction r);

// How MPI ranks share a minibatch's work units (cvnode/rank_backend.h). The bits are the same.
enum class Balance {
  Dynamic,  // the next free rank takes the next unit from a counter on rank 0 (default)
  Static    // unit u on rank u mod ranks: no counter (for ~1 unit per rank at large rank counts)
};
Balance parse_balance(const std::string& name);
const char* balance_name(Balance b);

struct TrainOptions {
  int epochs = 100;
  int batch_size = 16;      // series per minibatch (the last of an epoch may be smaller)
  int threads = 1;          // OpenMP threads over the series of a minibatch (0 = all cores)
  // How a minibatch is solved: per series, or stack_size series at a time as one ODE with
  // matrix-matrix network evaluations (needs a shared t0; windows of an autonomous model are
  // shifted to start at t = 0), or auto (stacked where it pays). The stack size is fixed, so the
  // work units, and the results' bits, do not depend on the thread count.
  BatchMode batch_mode = BatchMode::PerSeries;
  int stack_size = 32;
  // With several MPI ranks: ExactSum (same bits for any rank count) or a plain MPI_Allreduce.
  Reduction reduction = Reduction::Reproducible;
  Balance balance = Balance::Dynamic;
  std::uint64_t seed = 0;   // minibatch order (with the epoch number: stateless, resumable)
  int val_every = 1;        // validate every N epochs (and at the last one)
  int early_stop_patience = 0;  // validations without improvement before stopping (0 = never)
  double kinetic_weight = 0;    // kinetic-energy regulariser lambda * int ||f||^2 dt (Finlay 2020)
  // A step is "bad" when its loss or gradient is not finite or more than this fraction of its
  // series failed to solve; bad steps change nothing. Single failing series are only excluded.
  double failure_fraction = 0.5;
  int failure_patience = 3;       // consecutive bad steps before rolling back
  double failure_lr_factor = 0.5; // learning-rate factor applied at each rollback
  int max_rollbacks = 20;         // then the fit stops with an error

  std::string validate() const;
};

struct TrainerSettings {
  SolverOptions solver;
  LossSpec loss = {"mse_mean", {}, {}};  // on the model's observation map (Model::observation_map)
  OptimizerOptions optimizer;
  ScheduleOptions schedule;
  TrainOptions run;
  // [regularization]: the Jacobian norm and STEER (the kinetic energy's weight is
  // run.kinetic_weight, which the Trainer copies in).
  RegularizationOptions regularization;
};

// One row of the metrics history (metrics.csv and the checkpoint).
struct EpochMetrics {
  int epoch = 0;
  double lr = 0;
  double train_loss = 0;   // entry-weighted mean of the minibatch losses (sum for sum losses)
  double val_loss = std::numeric_limits<double>::quiet_NaN();  // NaN when not validated
  double val_rmse = std::numeric_limits<double>::quiet_NaN();  // over all observed entries
  double nfe_forward = 0;  // per series per gradient, averaged over the epoch
  double nfe_backward = 0;
  double grad_norm = 0;    // mean over the epoch's steps, before clipping
  long failures = 0;       // failed series solves in this epoch
  double seconds = 0;      // wall time of the epoch (the only non-deterministic column)

  static const char* csv_header();
  std::string csv_row() const;
  static std::vector<std::string> names();  // column names, for checkpoints
  std::vector<double> values() const;
  static EpochMetrics from_values(const std::vector<double>& v);
};

// Everything needed to continue a run exactly.
struct TrainState {
  int epoch = 0;                  // epochs completed
  long step = 0;                  // optimizer steps taken
  Vector params;                  // [network theta | loss phi | learned z0 of each training series]
  Vector opt_m, opt_v;            // optimizer moments
  long opt_steps = 0;
  Schedule::State schedule;
  double best_val = std::numeric_limits<double>::infinity();
  int best_epoch = 0;
  Vector best_params;
  int stale_validations = 0;      // early stopping counter
  Vector good_params, good_m, good_v;  // last parameters after a good step (rollback target)
  long good_opt_steps = 0;
  int bad_steps = 0, rollbacks = 0;
  long failures_total = 0;
  bool stopped_early = false;
  std::vector<EpochMetrics> history;
  // A fit stopped by a signal mid-epoch (cvnode/preemption.h): the minibatches of epoch
  // `epoch + 1` already done and that epoch's running sums, so that a resumed run ends the epoch
  // with the same bits. epoch_step = 0 at an epoch boundary.
  int epoch_step = 0;
  double partial_lr = 0, partial_loss_weighted = 0, partial_weight = 0, partial_grad_norm = 0;
  double partial_nfe_forward = 0, partial_nfe_backward = 0;
  long partial_solved = 0, partial_steps = 0, partial_failures = 0;
};

// Loss, errors and cost of a model on a set of series (validation, eval, predict).
struct Evaluation {
  double loss = 0;         // the training loss over all series (mean losses: over all entries);
                           // +inf when any series failed (never the best model)
  double loss_solved = 0;  // the same over the solved series only (NaN when none was solved)
  long mean_entries = 0;   // a Mean loss's denominator (Problem::entries()), 0 for a Sum loss
  Vector rmse, mae;        // per channel, over the observed entries of the solved series (NaN: none)
  double rmse_all = 0;     // over all those entries (NaN when there is none)
  long nfe = 0;            // right-hand-side calls of all forward solves
  std::vector<long> series_nfe;  // per series
  int series = 0, failures = 0;
  std::vector<Matrix> predictions;  // per series, observed channels (C z with a readout) at its times
  std::vector<SeriesFailure> failed;
  // [loss (each series' normalised terms) | squared errors | absolute errors | counts] per
  // channel, summed over the series: partial evaluations (MPI ranks) merge these and call
  // finish_evaluation.
  ExactSum sums;
};

// Forward solves of the problem's series (already lifted to state space) in parallel: the
// problem's loss, and the errors of the loss's predictions (Loss::predict) against the values.
Evaluation evaluate(const Dynamics& dynamics, ConstVectorRef theta, const Problem& problem,
                    const SolverOptions& options, int threads);
// loss, rmse, mae and rmse_all from ev.sums, ev.failures.
void finish_evaluation(Evaluation& ev);

class Trainer {
 public:
  // `train` and `val` are observed series (Model::lift is applied here); ids name them in reports.
  Trainer(const Model& model, const std::vector<Trajectory>& train,
          const std::vector<std::string>& train_ids, const std::vector<Trajectory>& val,
          const std::vector<std::string>& val_ids, const TrainerSettings& settings);
  ~Trainer();

  // Called after every epoch (the place to write checkpoints and metrics).
  std::function<void(const TrainState&)> on_epoch;
  // Progress lines and failure reports (default: std::cerr).
  std::function<void(const std::string&)> log;

  const TrainState& state() const { return st_; }
  const GradientBackend& backend() const { return *backend_; }
  // Continue from a checkpointed state (checked against the model's sizes).
  void restore(const TrainState& state);
  // The last epoch before the current curriculum phase (0 = none): the first
  // schedule.phase_warmup_epochs epochs after it get the linear warm-up from lr/10.
  void set_phase_start(int epoch) { phase_start_ = epoch; }
  // Trains until settings.run.epochs, early stopping, or `stop_after_epoch` (> 0) is reached, or
  // until SIGTERM/SIGUSR1 (cvnode/preemption.h): then it returns after the current optimizer
  // step, on_epoch having been called with the mid-epoch state.
  void run(int stop_after_epoch = 0);
  bool finished() const;
  // The signal that stopped the last run() (0: it was not stopped by one).
  int stopped_by_signal() const { return stopped_by_signal_; }

  int param_size() const { return static_cast<int>(st_.params.size()); }
  // The network part of a parameter vector.
  Vector network(const Vector& params) const { return params.head(model_.network_params()); }
  const std::vector<Trajectory>& train_series() const { return train_; }
  const std::vector<Trajectory>& val_series() const { return val_; }
  // Training series with the learned initial states of `params` (if any).
  std::vector<Trajectory> train_with_z0(const Vector& params) const;
  // The validation series as a problem scored with `params`' loss parameters.
  Problem val_problem(const Vector& params) const;
  // Called by val_problem on a copy of the validation series (lifted) with the network's
  // parameters, before they are scored: forecast windows fit their start to their past here
  // (data.forecast_history, start_forecasts). Unset: the series as lifted.
  std::function<void(const Vector& theta, std::vector<Trajectory>& series)> prepare_val;
  // MPI ranks that read only their shard of the data (FitData::train_owner): the rank holding
  // each training series' values, which alone solves it (RankBackend, run.balance = static).
  // Throws OptionsError without MPI ranks or with a count that is not one per series.
  void set_series_owners(std::vector<int> owners);
  // Called with each minibatch's gradient, before clipping: the training series (indices) the
  // batch solved and their entries (a mean loss's denominator). Adds a penalty's gradient to
  // `grad` (a prior on parameters: random effects' eta^T Omega^-1 eta / 2, run_fit); the reported
  // training loss stays the data's. Unset: nothing.
  std::function<void(const Vector& params, const std::vector<int>& series, long entries, Vector& grad)> add_prior;
  // Called after each epoch's steps, before validation (`validate`: this epoch validates), with
  // the parameters: a change that leaves the training predictions as they are (random effects
  // move the mean of the training subjects' etas into the typical values, and give the validation
  // subjects their empirical-Bayes etas, run_fit). Unset: nothing.
  std::function<void(bool validate, Vector& params)> after_epoch_steps;

 private:
  const Model& model_;
  std::vector<Trajectory> train_, val_;
  std::vector<std::string> train_ids_, val_ids_;
  TrainerSettings s_;
  TrainState st_;
  Vector trainable_, decay_;
  std::unique_ptr<GradientBackend> backend_;
  std::shared_ptr<const Loss> loss_;
  // The regularisers' running costs, built once when they draw no probes, else per step.
  std::vector<std::shared_ptr<const RunningCost>> running_costs_;
  Optimizer opt_;
  Schedule sched_;
  int phase_start_ = 0;
  SeriesFailure last_failure_{0, 0, 0.0, "", ""};  // the latest failed solve, named when the run gives up
  std::string last_failure_id_;
  int stopped_by_signal_ = 0;
  std::vector<int> owners_;  // set_series_owners (empty: any rank may solve any series)

  void emit(const std::string& line) const;
  // false: stopped by a signal before the epoch's end (the partial state is in st_).
  bool run_epoch(int epoch, EpochMetrics& m);
  int stop_requested() const;
  void rollback(int epoch);
};

}  // namespace cvnode

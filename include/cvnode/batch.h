// Gradients of a batch of trajectories, in parallel over OpenMP threads (and, through
// solve_units, MPI ranks), summed with ExactSum so that the result is bit-identical for every
// thread count, rank count and order in which the work units were done.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cvnode/exact_sum.h"
#include "cvnode/solver.h"

namespace cvnode {

struct SeriesFailure {
  int series;       // index in the batch
  int flag;         // CVODES flag (0 for a non-solver error)
  double time;      // time reached
  std::string message;
  std::string flag_name;  // e.g. "CV_TOO_MUCH_WORK"; "error" for a non-solver error
};

// The failure of series `series` from the exception its solve threw (SolverError or another).
SeriesFailure describe_failure(int series, const std::exception_ptr& error);

struct BatchGradient {
  double loss = 0;
  Vector theta;                // summed over the series that succeeded
  std::vector<Vector> z0;      // per series (empty vector for a failed one)
  std::vector<Matrix> states;  // per series predictions at its observation times
  Matrix readout;              // summed dLoss/dC when a readout C was given, else empty
  std::vector<double> series_loss;
  SolverStats forward, backward;
  long nfe_forward = 0, nfe_backward = 0;
  std::vector<SeriesFailure> failures;
};

// The sums of a batch gradient before they are rounded. Partial sums of threads or ranks merge in
// any order with the same bits (ExactSum): the one reduction threads and ranks share.
struct GradientSums {
  ExactSum values;  // [loss | dLoss/dtheta | dLoss/dC column-major]
  SolverStats forward, backward;
  long nfe_forward = 0, nfe_backward = 0;
  void reset(Eigen::Index theta_size, Eigen::Index readout_size);
  void merge(const GradientSums& other);
  // Rounds the sums into out.loss, out.theta, out.readout (rows x cols, 0 x 0 without readout)
  // and copies the counters.
  void finish(BatchGradient& out, Eigen::Index readout_rows, Eigen::Index readout_cols) const;
};

// A work unit of a batch: one series, or a stack of consecutive series solved as one ODE.
struct WorkUnit {
  std::size_t begin, end;
  bool stacked;
};

enum class BatchMode {
  PerSeries,  // one CVODES solve per series: its own steps and observation times (default)
  Stacked,    // stack_size series as one ODE on the union of their times: one solve, and the
              // network runs as matrix-matrix products; series must share t0
  Auto        // Stacked where it fits (shared t0, union grid at most 1.5x the longest series,
              // no running cost, Adams or GMRES or a small dense system), else PerSeries
};

struct BatchOptions {
  int threads = 1;  // <= 0: OpenMP's default
  BatchMode mode = BatchMode::PerSeries;
  // Series per stacked ODE. Fixed rather than derived from the thread count so that results do
  // not depend on the number of threads.
  int stack_size = 32;
};

class BatchSolver {
 public:
  BatchSolver(const Dynamics& dynamics, const SolverOptions& options, const BatchOptions& batch);
  // Per-series mode with `threads` threads (<= 0: OpenMP's default).
  BatchSolver(const Dynamics& dynamics, const SolverOptions& options, int threads = 1);
  ~BatchSolver();
  int threads() const { return static_cast<int>(solvers_.size()); }

  // With skip_failures false the first failing series (in series order) is rethrown; with true,
  // failures are listed and left out of the sums. A readout C makes the loss compare C z with
  // the measurements (Solver::gradient); states stay z.
  BatchGradient gradient(ConstVectorRef theta, const std::vector<Trajectory>& batch,
                         const Loss& loss, const RunningCost* running_cost = nullptr,
                         bool skip_failures = false, const Matrix* readout = nullptr);

  // The pieces of gradient(), for a caller that spreads the units further (MPI ranks):
  // The work units of a batch; fixed by the batch and the options, whatever threads or ranks.
  std::vector<WorkUnit> plan(const std::vector<Trajectory>& batch, const RunningCost* running_cost) const;
  // The factor of every loss term: 1 / (observed entries of the batch) for mean losses, else 1.
  static double loss_scale(const std::vector<Trajectory>& batch, const Loss& loss);
  // Solves the units that `next()` hands out (an index into `units`, < 0 when none is left; called
  // by one thread at a time) on this solver's threads. Adds their sums to `sums` and writes their
  // series' z0, states and series_loss into `out` (sized for the batch by the caller); a failed
  // unit's exception goes to errors[unit] (sized units.size()).
  void solve_units(ConstVectorRef theta, const std::vector<Trajectory>& batch,
                   const std::vector<WorkUnit>& units, const Loss& loss, double scale,
                   const RunningCost* running_cost, const Matrix* readout,
                   const std::function<int()>& next, GradientSums& sums, BatchGradient& out,
                   std::vector<std::exception_ptr>& errors);

  // Per-series forward solves at the series' own observation times (plus t_end if later).
  std::vector<Solution> solve(ConstVectorRef theta, const std::vector<Trajectory>& batch);

 private:
  struct StackedSolver;
  bool use_stacked(const std::vector<Trajectory>& batch, size_t begin, size_t end,
                   const RunningCost* running_cost) const;
  StackedSolver& stacked_solver(int unit, int copies);

  const Dynamics& dynamics_;
  SolverOptions options_;
  BatchOptions batch_options_;
  std::vector<std::unique_ptr<Solver>> solvers_;  // one per thread, per-series mode
  std::vector<std::unique_ptr<StackedSolver>> stacked_;  // per unit position in the batch
};

}  // namespace cvnode

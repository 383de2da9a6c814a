// Gradients of a batch of trajectories, in parallel over OpenMP threads, summed in series order
// so that the result is bit-identical for every thread count.
#pragma once

#include <memory>
#include <string>
#include <vector>

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

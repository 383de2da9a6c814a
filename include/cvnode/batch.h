// Gradients of all series of a Problem, in parallel over OpenMP threads (and, through
// solve_units, MPI ranks), summed with ExactSum so that the result is bit-identical for every
// thread count, rank count and order in which the work units were done.
#pragma once

#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cvnode/exact_sum.h"
#include "cvnode/problem.h"
#include "cvnode/solver.h"

namespace cvnode {

struct SeriesFailure {
  int series;       // index in the problem
  int flag;         // CVODES flag (0 for a non-solver error)
  double time;      // time reached
  std::string message;
  std::string flag_name;  // e.g. "CV_TOO_MUCH_WORK"; "error" for a non-solver error
};

// The failure of series `series` from the exception its solve threw: a SolverError, a non-finite
// loss (std::runtime_error and the like). Every place that skips and reports a series' failure
// goes through here. An error no other series would escape is not a series' failure and is
// rethrown: OptionsError and every other std::logic_error (a refused configuration, a bug),
// std::bad_alloc and anything not a std::exception. A fit that skipped those would "train" with
// every series failing and end with an untrained model.
SeriesFailure describe_failure(int series, const std::exception_ptr& error);

struct BatchGradient {
  double loss = 0;
  Vector theta;                // summed over the series that succeeded
  Vector phi;                  // dLoss/dphi (the loss's parameters), summed likewise
  std::vector<Vector> z0;      // per series (empty vector for a failed one)
  std::vector<Matrix> states;  // per series predictions at its observation times
  std::vector<double> series_loss;
  SolverStats forward, backward;
  long nfe_forward = 0, nfe_backward = 0;
  double solver_error = 0;     // Gradient::solver_error summed over the units (in loss, weighted)
  std::vector<SeriesFailure> failures;
};

// The sums of a batch gradient before they are rounded. Partial sums of threads or ranks merge in
// any order with the same bits (ExactSum): the one reduction threads and ranks share.
struct GradientSums {
  ExactSum values;  // [loss | dLoss/dtheta | dLoss/dphi | solver_error]
  SolverStats forward, backward;
  long nfe_forward = 0, nfe_backward = 0;
  void reset(Eigen::Index theta_size, Eigen::Index phi_size);
  void merge(const GradientSums& other);
  // Rounds the sums into out.loss, out.theta, out.phi and copies the counters.
  void finish(BatchGradient& out, Eigen::Index theta_size) const;
};

// A work unit of a batch: one series, or a stack of consecutive series solved as one ODE.
struct WorkUnit {
  std::size_t begin, end;
  bool stacked;
};

enum class BatchMode {
  PerSeries,  // one solve per series: its own steps and observation times (default)
  Stacked,    // stack_size series as one ODE on the union of their times: one solve, and the
              // network runs as matrix-matrix products; series must share t0
  Auto        // Stacked where it fits (shared t0, union grid at most 1.5x the longest series,
              // no running cost, no dense Newton system above 64 states), else PerSeries
};
const char* batch_mode_name(BatchMode mode);          // per_series | stacked | auto
BatchMode parse_batch_mode(const std::string& name);  // throws OptionsError listing the choices

struct BatchOptions {
  int threads = 1;  // <= 0: OpenMP's default
  BatchMode mode = BatchMode::PerSeries;
  // Series per stacked ODE. Fixed rather than derived from the thread count so that results do
  // not depend on the number of threads.
  int stack_size = 32;
  // false: the first failing series (in series order) is rethrown; true: failures are listed in
  // BatchGradient::failures and left out of the sums (errors that are not a series' failure,
  // describe_failure, are rethrown either way).
  bool skip_failures = false;
};

class BatchSolver {
 public:
  BatchSolver(const Dynamics& dynamics, const SolverOptions& options, const BatchOptions& batch = {});
  ~BatchSolver();
  int threads() const { return static_cast<int>(engines_.size()); }

  // The loss of every series of the problem and the summed gradient.
  BatchGradient gradient(ConstVectorRef theta, const Problem& problem);

  // The pieces of gradient(), for a caller that spreads the units further (MPI ranks):
  // The work units of a problem; fixed by its series and the options, whatever threads or ranks.
  std::vector<WorkUnit> plan(const Problem& problem) const;
  // Solves the units that `next()` hands out (an index into `units`, < 0 when none is left; called
  // by one thread at a time) on this solver's threads. Adds their sums to `sums` and writes their
  // series' z0, states and series_loss into `out` (sized for the problem by the caller); a failed
  // unit's exception goes to errors[unit] (sized units.size()). The problem is checked by the
  // caller (Problem::check).
  void solve_units(ConstVectorRef theta, const Problem& problem, const std::vector<WorkUnit>& units,
                   const std::function<int()>& next, GradientSums& sums, BatchGradient& out,
                   std::vector<std::exception_ptr>& errors);

  // Per-series forward solves at the series' own observation times (plus the horizon if later).
  std::vector<Solution> solve(ConstVectorRef theta, const std::vector<Trajectory>& series);

 private:
  struct StackedEngine;
  bool use_stacked(const Problem& problem, size_t begin, size_t end) const;
  StackedEngine& stacked_engine(int unit, int copies);

  const Dynamics& dynamics_;
  SolverOptions options_;
  BatchOptions batch_options_;
  std::vector<std::unique_ptr<GradientEngine>> engines_;  // one per thread, per-series mode
  std::vector<std::unique_ptr<StackedEngine>> stacked_;   // per unit position in the batch
};

}  // namespace cvnode

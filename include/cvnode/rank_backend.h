// Data-parallel gradients over MPI ranks: the work units of each minibatch (single series or
// stacks, BatchSolver::plan, fixed by the batch whatever the rank count) are handed out
// dynamically from a shared counter, so a rank that drew cheap series takes more of them (stiff
// series differ in cost by orders of magnitude); each rank solves its units on its OpenMP
// threads; the sums are merged with ExactSum, whose bits do not depend on which rank solved what
// or on MPI's reduction tree. A fit gives the same bits for any rank and thread count.
#pragma once

#include <memory>
#include <vector>

#include "cvnode/batch.h"
#include "cvnode/ranks.h"
#include "cvnode/trainer.h"

namespace cvnode {

// Where a step's time went on this rank (seconds, summed over the steps since the last reset).
struct StepTiming {
  double compute = 0;      // solving units
  double wait = 0;         // idle at the barrier until the slowest rank is done (imbalance)
  double communicate = 0;  // the reductions and the gather of per-series results
  long steps = 0, units = 0;  // steps taken, units this rank solved
};

class RankBackend final : public GradientBackend {
 public:
  RankBackend(const Dynamics& dynamics, const SolverOptions& options, const BatchOptions& batch,
              const Ranks& ranks, Reduction reduction = Reduction::Reproducible);
  // Collective: every rank calls it with the same batch and theta. Every rank gets loss, theta,
  // readout, z0 and series_loss of the whole batch, failures of all ranks (series order);
  // states only for the series this rank solved.
  BatchGradient gradient(ConstVectorRef theta, const std::vector<Trajectory>& batch,
                         const Loss& loss, const RunningCost* running_cost,
                         const Matrix* readout) override;
  int workers() const override { return solver_.threads() * ranks_.size(); }
  const StepTiming& timing() const { return timing_; }
  void reset_timing() { timing_ = StepTiming{}; }

 private:
  BatchSolver solver_;
  const Ranks& ranks_;
  Reduction reduction_;
  StepTiming timing_;
};

// evaluate() with the series spread over the ranks (series s on rank s mod size) and merged
// with ExactSum: the same loss and errors on every rank, the same bits for any rank count.
// Predictions and series_nfe are filled only for this rank's series.
Evaluation evaluate_on_ranks(const Ranks& ranks, const Dynamics& dynamics, ConstVectorRef theta,
                             const std::vector<Trajectory>& series, const SolverOptions& options,
                             const Loss& loss, int threads, const Matrix* readout = nullptr);

}  // namespace cvnode

// Data-parallel gradients over MPI ranks: the work units of each minibatch (single series or
// stacks, BatchSolver::plan, fixed by the batch whatever the rank count) are handed out
// dynamically from a shared counter, longest expected first (each series' last measured cost),
// so a rank that drew cheap series takes more of them (stiff series differ in cost by orders of
// magnitude) and the step ends on small units; each rank solves its units on its OpenMP
// threads; the sums are merged with ExactSum, whose bits do not depend on which rank solved what
// or on MPI's reduction tree. A fit gives the same bits for any rank and thread count.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "cvnode/batch.h"
#include "cvnode/ranks.h"
#include "cvnode/trainer.h"

namespace cvnode {

// Where a step's time went on this rank (seconds, summed over the steps since the last reset).
struct StepTiming {
  double compute = 0;      // solving units
  double wait = 0;         // idle until the slowest rank is done (imbalance); measured with a
                           // barrier only when CVNODE_RANK_TIMING is set, else part of communicate
  double communicate = 0;  // the reduction and the gather of per-series results
  double reduce = 0;       // of which inside MPI_Allreduce (the rest: packing, unpacking)
  double compute_cpu = 0;  // CPU time of this process while computing (< compute: descheduled)
  long steps = 0, units = 0;  // steps taken, units this rank solved
};

class RankBackend final : public GradientBackend {
 public:
  // exchange_series: every rank needs every series' z0 gradient (learned initial states).
  RankBackend(const Dynamics& dynamics, const SolverOptions& options, const BatchOptions& batch,
              const Ranks& ranks, Reduction reduction = Reduction::Reproducible, bool exchange_series = true,
              Balance balance = Balance::Dynamic);
  // Collective: every rank calls it with the same problem and theta. Every rank gets loss, theta,
  // phi and counters of the whole batch and the failures of all ranks (series order); z0 and
  // series_loss of every series with exchange_series, else only of this rank's; states only of
  // this rank's series.
  BatchGradient gradient(ConstVectorRef theta, const Problem& problem) override;
  int workers() const override { return solver_.threads() * ranks_.size(); }
  // For the next gradient() only: the rank that solves each series of its problem (one per
  // series; ranks that read only their shard of the data, run.balance = static). Units are then
  // solved by their series' owner, never handed out; a unit whose series have different owners
  // is an error (shards take per-series units).
  void set_owners(std::vector<int> owner_of_series) { owners_ = std::move(owner_of_series); }
  const StepTiming& timing() const { return timing_; }
  void reset_timing() { timing_ = StepTiming{}; }
  // The stop signal (cvnode/preemption.h) any rank had seen by the last gradient's reduction,
  // the same on every rank: all stop after the same step without a collective of their own.
  int agreed_stop() const { return agreed_stop_; }

 private:
  BatchSolver solver_;
  const Ranks& ranks_;
  Reduction reduction_;
  bool exchange_series_;
  Balance balance_;
  bool split_wait_;  // CVNODE_RANK_TIMING set: a barrier splits waiting from communication
  int agreed_stop_ = 0;
  StepTiming timing_;
  std::vector<int> owners_;
  // Seconds the last solve of a series took (keyed by series_key), the same on every rank: the
  // dynamic hand-out gives out the units expected to take longest first, so that the step ends
  // with the cheapest ones and the ranks finish within a small unit of each other.
  std::unordered_map<std::uint64_t, double> cost_;
};

// A key of a series for remembering its cost between epochs (its times, t0 and size; a
// collision only gives a worse hand-out order, never different results).
std::uint64_t series_key(const Trajectory& series);

// Every rank's timing (collective), as one JSON object on rank 0 ("" elsewhere): per-rank
// seconds per step of compute, wait and communication, and units solved.
std::string timing_report(const Ranks& ranks, const StepTiming& timing);

// evaluate() with the series spread over the ranks (series s on rank s mod size) and merged
// with ExactSum: the same loss and errors on every rank, the same bits for any rank count.
// Predictions and series_nfe are filled only for this rank's series.
Evaluation evaluate_on_ranks(const Ranks& ranks, const Dynamics& dynamics, ConstVectorRef theta,
                             const Problem& problem, const SolverOptions& options, int threads);

}  // namespace cvnode

// What is solved: a set of series, the loss that scores them (with its normalisation resolved
// here, once), the loss's parameters phi, and running costs integrated along each solution.
// Solver::gradient(theta, problem, s) and BatchSolver::gradient(theta, problem) take it.
//
//   cvnode::Problem problem({series}, cvnode::make_loss("mse_mean"));
//   cvnode::Gradient g = solver.gradient(theta, problem);   // g.loss is the mean squared error
#pragma once

#include <memory>
#include <vector>

#include "cvnode/loss.h"
#include "cvnode/observations.h"
#include "cvnode/running_cost.h"

namespace cvnode {

// The observation terms of one series at its predicted states, normalised.
struct ObservationTerms {
  double loss = 0;
  Matrix jumps;  // times x state: dl_k/dz(t_k), the adjoint's jump at each observation time
  Vector phi;    // dLoss/dphi of these terms (the loss's param_size())
};

class Problem {
 public:
  // Throws OptionsError for a null loss.
  Problem(std::vector<Trajectory> series, std::shared_ptr<const Loss> loss);

  // Adds g(t, z; theta) integrated over [t0, horizon] of every series (regularisers).
  Problem& add_running_cost(std::shared_ptr<const RunningCost> cost);
  // The loss's parameters (default: loss().initial_parameters()); throws OptionsError on size.
  Problem& set_loss_parameters(const Vector& phi);

  int size() const { return static_cast<int>(series_.size()); }
  const Trajectory& series(int s) const { return series_.at(static_cast<std::size_t>(s)); }
  const std::vector<Trajectory>& all_series() const { return series_; }
  const Loss& loss() const { return *loss_; }
  std::shared_ptr<const Loss> loss_ptr() const { return loss_; }
  const Vector& loss_parameters() const { return phi_; }
  const std::vector<std::shared_ptr<const RunningCost>>& running_costs() const { return costs_; }
  // Entries the Mean reduction counts (Loss::entries over all series).
  long entries() const { return entries_; }
  // The factor every observation term carries: 1 / entries() for a Mean loss (0 without
  // entries), else 1.
  double normalization() const { return normalization_; }

  // Empty when series s (all series for s = -1) fits a state of `state_size` components and the
  // loss can score it, else the reason naming the series.
  std::string validate(int state_size, int s = -1) const;
  void check(int state_size, int s = -1) const;  // validate, throwing OptionsError

  // The normalised terms of series s at its predicted states (one row per observation time).
  ObservationTerms observe(int s, const Matrix& states) const;
  // The loss's prediction of series s's channels at its predicted states (times x channels).
  Matrix predict(int s, const Matrix& states) const;

  // The given series (indices into this problem) as a problem of their own that scores them
  // exactly as this one does: the same loss, parameters, running costs and normalisation, and
  // the loss sees their indices in this problem (ObservationSite::series). For spreading one
  // problem over workers (MPI ranks). slice(begin, end) selects [begin, end).
  Problem select(const std::vector<int>& series) const;
  Problem slice(int begin, int end) const;
  // The index of series s in the problem this one was selected from (s itself if not selected).
  int original_index(int s) const { return index_.empty() ? s : index_[static_cast<std::size_t>(s)]; }

 private:
  std::vector<Trajectory> series_;
  std::shared_ptr<const Loss> loss_;
  Vector phi_;
  std::vector<std::shared_ptr<const RunningCost>> costs_;
  long entries_ = 0;
  double normalization_ = 1;
  std::vector<int> index_;  // original indices of a selection, else empty
};

}  // namespace cvnode

#include "cvnode/batch.h"

#include <exception>

#include <omp.h>

#include "cvnode/errors.h"

namespace cvnode {

BatchSolver::BatchSolver(const Dynamics& dynamics, const SolverOptions& options, int threads) {
  if (threads <= 0) threads = omp_get_max_threads();
  for (int i = 0; i < threads; ++i) solvers_.push_back(std::make_unique<Solver>(dynamics, options));
}
BatchSolver::~BatchSolver() = default;

BatchGradient BatchSolver::gradient(ConstVectorRef theta, const std::vector<Trajectory>& batch,
                                    const Loss& loss, const RunningCost* running_cost,
                                    bool skip_failures) {
  const int B = static_cast<int>(batch.size());
  // The mean losses average over every observed entry of the batch.
  double scale = 1.0;
  if (loss.is_mean()) {
    long entries = 0;
    for (const auto& tr : batch) entries += tr.observed_entries();
    scale = entries > 0 ? 1.0 / static_cast<double>(entries) : 0.0;
  }
  std::vector<Gradient> results(B);
  std::vector<std::exception_ptr> errors(B);
  const Vector theta_copy = theta;  // one stable buffer shared by all threads
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads())
  for (int b = 0; b < B; ++b) {
    Solver& solver = *solvers_[omp_get_thread_num()];
    try {
      results[b] = solver.gradient(theta_copy, batch[b], loss, scale, running_cost);
    } catch (...) {
      errors[b] = std::current_exception();
    }
  }
  // Summed in series order: the same bits for every thread count.
  BatchGradient out;
  out.theta.setZero(theta.size());
  out.z0.resize(B);
  out.states.resize(B);
  out.series_loss.assign(B, 0.0);
  for (int b = 0; b < B; ++b) {
    if (errors[b]) {
      if (!skip_failures) std::rethrow_exception(errors[b]);
      SeriesFailure f{b, 0, 0.0, ""};
      try {
        std::rethrow_exception(errors[b]);
      } catch (const SolverError& e) {
        f.flag = e.flag();
        f.time = e.time_reached();
        f.message = e.what();
      } catch (const std::exception& e) {
        f.message = e.what();
      }
      out.failures.push_back(f);
      continue;
    }
    Gradient& g = results[b];
    out.loss += g.loss;
    out.series_loss[b] = g.loss;
    out.theta += g.theta;
    out.z0[b] = std::move(g.z0);
    out.states[b] = std::move(g.states);
    out.forward += g.forward;
    out.backward += g.backward;
    out.nfe_forward += g.nfe_forward;
    out.nfe_backward += g.nfe_backward;
  }
  return out;
}

std::vector<Solution> BatchSolver::solve(ConstVectorRef theta, const std::vector<Trajectory>& batch) {
  const int B = static_cast<int>(batch.size());
  std::vector<Solution> out(B);
  std::vector<std::exception_ptr> errors(B);
  const Vector theta_copy = theta;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads())
  for (int b = 0; b < B; ++b) {
    try {
      const Trajectory& tr = batch[b];
      Vector times = tr.times;
      if (tr.horizon() > (times.size() ? times[times.size() - 1] : tr.t0)) {
        times.conservativeResize(times.size() + 1);
        times[times.size() - 1] = tr.horizon();
      }
      out[b] = solvers_[omp_get_thread_num()]->solve(theta_copy, tr.t0, tr.z0, times);
    } catch (...) {
      errors[b] = std::current_exception();
    }
  }
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return out;
}

}  // namespace cvnode

#include "cvnode/batch.h"

#include <algorithm>
#include <exception>
#include <map>

#include <omp.h>

#include "cvnode/errors.h"
#include "cvnode/stacked.h"
#include "ode/observation_terms.h"

namespace cvnode {

struct BatchSolver::StackedSolver {
  Stacked dynamics;
  Solver solver;
  StackedSolver(const Dynamics& inner, int copies, const SolverOptions& opt)
      : dynamics(inner, copies), solver(dynamics, opt) {}
};

namespace {

// Several series on the union of their observation times, as one trajectory of the stacked
// state [z_1; z_2; ...]: entry (k, b m + i) is series b's channel i at union time k (m channels
// per series), masked where that series has no observation then.
struct StackedProblem {
  Trajectory trajectory;
  std::vector<std::vector<Eigen::Index>> rows;  // rows[b][k]: union row of series b's time k
};

StackedProblem stack(const std::vector<Trajectory>& batch, size_t begin, size_t end, int n, int m) {
  StackedProblem s;
  const int B = static_cast<int>(end - begin);
  std::vector<double> times;
  for (size_t b = begin; b < end; ++b)
    times.insert(times.end(), batch[b].times.data(), batch[b].times.data() + batch[b].times.size());
  std::sort(times.begin(), times.end());
  times.erase(std::unique(times.begin(), times.end()), times.end());
  Trajectory& t = s.trajectory;
  t.t0 = batch[begin].t0;
  t.times = Eigen::Map<const Vector>(times.data(), static_cast<Eigen::Index>(times.size()));
  t.values = Matrix::Zero(t.times.size(), B * m);
  t.mask = Matrix::Zero(t.times.size(), B * m);
  t.z0.resize(B * n);
  t.t_end = t.t0;
  s.rows.resize(B);
  for (int b = 0; b < B; ++b) {
    const Trajectory& tr = batch[begin + b];
    t.z0.segment(b * n, n) = tr.z0;
    t.t_end = std::max(t.t_end, tr.horizon());
    for (Eigen::Index k = 0; k < tr.times.size(); ++k) {
      const auto row = std::lower_bound(times.begin(), times.end(), tr.times[k]) - times.begin();
      s.rows[b].push_back(row);
      for (Eigen::Index i = 0; i < tr.values.cols(); ++i) {
        const bool observed = tr.mask.size() == 0 || tr.mask(k, i) != 0;
        t.mask(row, b * m + i) = observed ? 1.0 : 0.0;
        t.values(row, b * m + i) = observed ? tr.values(k, i) : 0.0;
      }
    }
  }
  return s;
}

// The readout of B stacked series: C on each block of the stacked state.
Matrix block_diagonal(const Matrix& C, int B) {
  Matrix K = Matrix::Zero(B * C.rows(), B * C.cols());
  for (int b = 0; b < B; ++b) K.block(b * C.rows(), b * C.cols(), C.rows(), C.cols()) = C;
  return K;
}

}  // namespace

SeriesFailure describe_failure(int series, const std::exception_ptr& error) {
  SeriesFailure f{series, 0, 0.0, "", "error"};
  try {
    std::rethrow_exception(error);
  } catch (const SolverError& e) {
    f.flag = e.flag();
    f.time = e.time_reached();
    f.message = e.what();
    f.flag_name = e.flag_name();
  } catch (const std::exception& e) {
    f.message = e.what();
  }
  return f;
}

BatchSolver::BatchSolver(const Dynamics& dynamics, const SolverOptions& options, const BatchOptions& batch)
    : dynamics_(dynamics), options_(options), batch_options_(batch) {
  int threads = batch.threads <= 0 ? omp_get_max_threads() : batch.threads;
  if (batch_options_.stack_size < 1)
    throw OptionsError("batch option stack_size = " + std::to_string(batch.stack_size) + " must be >= 1");
  for (int i = 0; i < threads; ++i) solvers_.push_back(std::make_unique<Solver>(dynamics, options));
}

BatchSolver::BatchSolver(const Dynamics& dynamics, const SolverOptions& options, int threads)
    : BatchSolver(dynamics, options, BatchOptions{threads, BatchMode::PerSeries, 32}) {}

BatchSolver::~BatchSolver() = default;

// One stacked solver per unit position, not per thread: CVODES keeps some state from one solve
// to the next, so a unit always follows the same history whatever thread runs it. (The last-bit
// differences between thread counts that remained came from the alignment of CVODES' vectors;
// the solver's callbacks compute in aligned buffers for that, src/ode/solver.cpp.)
BatchSolver::StackedSolver& BatchSolver::stacked_solver(int unit, int copies) {
  auto& slot = stacked_[unit];
  if (!slot || slot->dynamics.copies() != copies) slot = std::make_unique<StackedSolver>(dynamics_, copies, options_);
  return *slot;
}

bool BatchSolver::use_stacked(const std::vector<Trajectory>& batch, size_t begin, size_t end,
                              const RunningCost* running_cost) const {
  if (batch_options_.mode == BatchMode::PerSeries || end - begin < 2) return false;
  for (size_t b = begin + 1; b < end; ++b)
    if (batch[b].t0 != batch[begin].t0) {
      if (batch_options_.mode == BatchMode::Stacked)
        throw OptionsError("stacked batch mode needs a shared t0: series " + std::to_string(begin) +
                           " starts at " + std::to_string(batch[begin].t0) + ", series " + std::to_string(b) +
                           " at " + std::to_string(batch[b].t0));
      return false;
    }
  if (running_cost) {
    if (batch_options_.mode == BatchMode::Stacked)
      throw OptionsError("stacked batch mode does not take a running cost yet; use per-series mode");
    return false;
  }
  if (batch_options_.mode == BatchMode::Stacked) return true;
  // Auto: the union grid must not multiply the observation restarts, and a dense Newton solve
  // on the stacked system must stay small (its cost grows with the cube of B n).
  std::vector<double> all;
  Eigen::Index longest = 0;
  for (size_t b = begin; b < end; ++b) {
    all.insert(all.end(), batch[b].times.data(), batch[b].times.data() + batch[b].times.size());
    longest = std::max(longest, batch[b].times.size());
  }
  std::sort(all.begin(), all.end());
  const auto unique = std::unique(all.begin(), all.end()) - all.begin();
  if (unique > 1.5 * static_cast<double>(longest)) return false;
  const bool newton_dense = options_.linear_solver == LinearSolver::Dense &&
                            (options_.method == Method::Bdf || options_.nonlinear_solver == NonlinearSolver::Newton);
  return !newton_dense || dynamics_.state_size() * static_cast<long>(end - begin) <= 64;
}

BatchGradient BatchSolver::gradient(ConstVectorRef theta, const std::vector<Trajectory>& batch,
                                    const Loss& loss, const RunningCost* running_cost,
                                    bool skip_failures, const Matrix* readout) {
  const int B = static_cast<int>(batch.size());
  const int n = dynamics_.state_size();
  // Channels per series: the readout's rows, or the first state components (each series its own).
  const int m = readout ? static_cast<int>(readout->rows()) : n;
  if (readout)
    if (std::string why = readout_mismatch(*readout, n); !why.empty()) throw OptionsError(why);
  // The mean losses average over every observed entry of the batch.
  double scale = 1.0;
  if (loss.is_mean()) {
    long entries = 0;
    for (const auto& tr : batch) entries += tr.observed_entries();
    scale = entries > 0 ? 1.0 / static_cast<double>(entries) : 0.0;
  }
  // Work units: single series, or a stack of consecutive series. Fixed for a given batch and
  // options, whatever the thread count.
  struct Unit {
    size_t begin, end;
    bool stacked;
  };
  std::vector<Unit> units;
  const size_t chunk = batch_options_.mode == BatchMode::PerSeries ? 1 : static_cast<size_t>(batch_options_.stack_size);
  for (size_t b = 0; b < batch.size(); b += chunk) {
    const size_t e = std::min(batch.size(), b + chunk);
    if (use_stacked(batch, b, e, running_cost)) {
      units.push_back({b, e, true});
    } else {
      for (size_t s = b; s < e; ++s) units.push_back({s, s + 1, false});
    }
  }
  const int U = static_cast<int>(units.size());
  if (static_cast<int>(stacked_.size()) < U) stacked_.resize(U);  // before the threads touch it
  std::vector<Gradient> results(U);
  std::vector<StackedProblem> problems(U);
  std::vector<Matrix> stacked_readout(U);
  std::vector<std::exception_ptr> errors(U);
  const Vector theta_copy = theta;  // one stable buffer shared by all threads
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads())
  for (int u = 0; u < U; ++u) {
    const int thread = omp_get_thread_num();
    const Unit& unit = units[u];
    try {
      if (unit.stacked) {
        const int copies = static_cast<int>(unit.end - unit.begin);
        problems[u] = stack(batch, unit.begin, unit.end, n, m);
        if (readout) stacked_readout[u] = block_diagonal(*readout, copies);
        results[u] = stacked_solver(u, copies)
                         .solver.gradient(theta_copy, problems[u].trajectory, loss, scale, nullptr,
                                          readout ? &stacked_readout[u] : nullptr);
      } else {
        results[u] = solvers_[thread]->gradient(theta_copy, batch[unit.begin], loss, scale, running_cost, readout);
      }
    } catch (...) {
      errors[u] = std::current_exception();
    }
  }
  // Summed in unit order: the same bits for every thread count.
  BatchGradient out;
  out.theta.setZero(theta.size());
  out.z0.resize(B);
  out.states.resize(B);
  out.series_loss.assign(B, 0.0);
  if (readout) out.readout.setZero(readout->rows(), readout->cols());
  for (int u = 0; u < U; ++u) {
    const Unit& unit = units[u];
    if (errors[u]) {
      if (!skip_failures) std::rethrow_exception(errors[u]);
      for (size_t b = unit.begin; b < unit.end; ++b) out.failures.push_back(describe_failure(static_cast<int>(b), errors[u]));
      continue;
    }
    Gradient& g = results[u];
    out.loss += g.loss;
    out.theta += g.theta;
    out.forward += g.forward;
    out.backward += g.backward;
    out.nfe_forward += g.nfe_forward;
    out.nfe_backward += g.nfe_backward;
    if (readout && !unit.stacked) out.readout += g.readout;
    if (readout && unit.stacked)  // the blocks of the stacked readout's gradient, in series order
      for (size_t b = unit.begin; b < unit.end; ++b)
        out.readout += g.readout.block((b - unit.begin) * m, (b - unit.begin) * n, m, n);
    if (!unit.stacked) {
      out.z0[unit.begin] = std::move(g.z0);
      out.states[unit.begin] = std::move(g.states);
      out.series_loss[unit.begin] = g.loss;
      continue;
    }
    for (size_t b = unit.begin; b < unit.end; ++b) {
      const int j = static_cast<int>(b - unit.begin);
      const Trajectory& tr = batch[b];
      out.z0[b] = g.z0.segment(j * n, n);
      out.states[b].resize(tr.times.size(), n);
      for (Eigen::Index k = 0; k < tr.times.size(); ++k)
        out.states[b].row(k) = g.states.row(problems[u].rows[j][k]).segment(j * n, n);
      out.series_loss[b] = detail::observation_terms(tr, loss, scale, out.states[b], readout).loss;
    }
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

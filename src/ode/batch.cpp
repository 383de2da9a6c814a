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

void GradientSums::reset(Eigen::Index theta_size, Eigen::Index readout_size) {
  values.reset(1 + theta_size + readout_size);
  forward = backward = SolverStats{};
  nfe_forward = nfe_backward = 0;
}

void GradientSums::merge(const GradientSums& other) {
  values.merge(other.values);
  forward += other.forward;
  backward += other.backward;
  nfe_forward += other.nfe_forward;
  nfe_backward += other.nfe_backward;
}

void GradientSums::finish(BatchGradient& out, Eigen::Index readout_rows, Eigen::Index readout_cols) const {
  const Eigen::Index R = readout_rows * readout_cols, P = values.size() - 1 - R;
  out.loss = values.value(0);
  out.theta.resize(P);
  values.values(out.theta.data(), P, 1);
  out.readout.resize(readout_rows, readout_cols);
  values.values(out.readout.data(), R, 1 + P);
  out.forward = forward;
  out.backward = backward;
  out.nfe_forward = nfe_forward;
  out.nfe_backward = nfe_backward;
}

double BatchSolver::loss_scale(const std::vector<Trajectory>& batch, const Loss& loss) {
  // The mean losses average over every observed entry of the batch.
  if (!loss.is_mean()) return 1.0;
  long entries = 0;
  for (const auto& tr : batch) entries += tr.observed_entries();
  return entries > 0 ? 1.0 / static_cast<double>(entries) : 0.0;
}

std::vector<WorkUnit> BatchSolver::plan(const std::vector<Trajectory>& batch, const RunningCost* running_cost) const {
  // Single series, or a stack of consecutive series. Fixed for a given batch and options,
  // whatever the thread or rank count.
  std::vector<WorkUnit> units;
  const size_t chunk = batch_options_.mode == BatchMode::PerSeries ? 1 : static_cast<size_t>(batch_options_.stack_size);
  for (size_t b = 0; b < batch.size(); b += chunk) {
    const size_t e = std::min(batch.size(), b + chunk);
    if (use_stacked(batch, b, e, running_cost)) {
      units.push_back({b, e, true});
    } else {
      for (size_t s = b; s < e; ++s) units.push_back({s, s + 1, false});
    }
  }
  return units;
}

void BatchSolver::solve_units(ConstVectorRef theta, const std::vector<Trajectory>& batch,
                              const std::vector<WorkUnit>& units, const Loss& loss, double scale,
                              const RunningCost* running_cost, const Matrix* readout,
                              const std::function<int()>& next, GradientSums& sums, BatchGradient& out,
                              std::vector<std::exception_ptr>& errors) {
  const int n = dynamics_.state_size();
  // Channels per series: the readout's rows, or the first state components (each series its own).
  const int m = readout ? static_cast<int>(readout->rows()) : n;
  const Eigen::Index R = readout ? readout->size() : 0;
  const Eigen::Index P = theta.size();
  if (stacked_.size() < units.size()) stacked_.resize(units.size());  // before the threads touch it
  const Vector theta_copy = theta;  // one stable buffer shared by all threads
#pragma omp parallel num_threads(threads())
  {
    const int thread = omp_get_thread_num();
    GradientSums local;
    local.reset(P, R);
    for (;;) {
      int u;
#pragma omp critical(cvnode_next_unit)
      u = next();
      if (u < 0) break;
      const WorkUnit& unit = units[u];
      try {
        Gradient g;
        StackedProblem problem;
        if (unit.stacked) {
          const int copies = static_cast<int>(unit.end - unit.begin);
          problem = stack(batch, unit.begin, unit.end, n, m);
          Matrix stacked_readout;
          if (readout) stacked_readout = block_diagonal(*readout, copies);
          g = stacked_solver(u, copies)
                  .solver.gradient(theta_copy, problem.trajectory, loss, scale, nullptr,
                                   readout ? &stacked_readout : nullptr);
        } else {
          g = solvers_[thread]->gradient(theta_copy, batch[unit.begin], loss, scale, running_cost, readout);
        }
        local.values.add(0, g.loss);
        local.values.add(g.theta, 1);
        local.forward += g.forward;
        local.backward += g.backward;
        local.nfe_forward += g.nfe_forward;
        local.nfe_backward += g.nfe_backward;
        if (!unit.stacked) {
          if (readout) local.values.add(g.readout.data(), R, 1 + P);
          out.z0[unit.begin] = std::move(g.z0);
          out.states[unit.begin] = std::move(g.states);
          out.series_loss[unit.begin] = g.loss;
          continue;
        }
        for (size_t b = unit.begin; b < unit.end; ++b) {
          const int j = static_cast<int>(b - unit.begin);
          const Trajectory& tr = batch[b];
          if (readout) {  // this series' block of the stacked readout's gradient
            const Matrix block = g.readout.block(j * m, j * n, m, n);
            local.values.add(block.data(), R, 1 + P);
          }
          out.z0[b] = g.z0.segment(j * n, n);
          out.states[b].resize(tr.times.size(), n);
          for (Eigen::Index k = 0; k < tr.times.size(); ++k)
            out.states[b].row(k) = g.states.row(problem.rows[j][k]).segment(j * n, n);
          out.series_loss[b] = detail::observation_terms(tr, loss, scale, out.states[b], readout).loss;
        }
      } catch (...) {
        errors[u] = std::current_exception();
      }
    }
#pragma omp critical(cvnode_merge_sums)
    sums.merge(local);
  }
}

BatchGradient BatchSolver::gradient(ConstVectorRef theta, const std::vector<Trajectory>& batch,
                                    const Loss& loss, const RunningCost* running_cost,
                                    bool skip_failures, const Matrix* readout) {
  const int B = static_cast<int>(batch.size());
  const int n = dynamics_.state_size();
  if (readout)
    if (std::string why = readout_mismatch(*readout, n); !why.empty()) throw OptionsError(why);
  const std::vector<WorkUnit> units = plan(batch, running_cost);
  const int U = static_cast<int>(units.size());
  BatchGradient out;
  out.z0.resize(B);
  out.states.resize(B);
  out.series_loss.assign(B, 0.0);
  GradientSums sums;
  sums.reset(theta.size(), readout ? readout->size() : 0);
  std::vector<std::exception_ptr> errors(U);
  int next_unit = 0;
  solve_units(theta, batch, units, loss, loss_scale(batch, loss), running_cost, readout,
              [&] { return next_unit < U ? next_unit++ : -1; }, sums, out, errors);
  // Failures in series order; the sums do not depend on the order the units were done in.
  for (int u = 0; u < U; ++u) {
    if (!errors[u]) continue;
    if (!skip_failures) std::rethrow_exception(errors[u]);
    for (size_t b = units[u].begin; b < units[u].end; ++b)
      out.failures.push_back(describe_failure(static_cast<int>(b), errors[u]));
  }
  sums.finish(out, readout ? readout->rows() : 0, readout ? readout->cols() : 0);
  if (!readout) out.readout.resize(0, 0);
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

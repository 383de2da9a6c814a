#include "cvnode/batch.h"

#include <algorithm>
#include <exception>
#include <map>
#include <new>
#include <stdexcept>

#include <omp.h>

#include "cvnode/errors.h"
#include "cvnode/stacked.h"
#include "core/names.h"
#include "ode/engine_util.h"
#include "ode/segments.h"
#include "ode/series_gradient.h"

namespace cvnode {

struct BatchSolver::StackedEngine {
  Stacked dynamics;
  std::unique_ptr<GradientEngine> engine;
  StackedEngine(const Dynamics& inner, int copies, const SolverOptions& opt)
      : dynamics(inner, copies), engine(make_engine(dynamics, opt)) {}
};

namespace {

// Several series on the union of their observation times, as one initial-value problem of the
// stacked state [z_1; z_2; ...]; rows[b][k] is the union row of series b's time k.
struct StackedIvp {
  Trajectory ivp;
  std::vector<std::vector<Eigen::Index>> rows;
};

StackedIvp stack(const Problem& problem, size_t begin, size_t end, int n) {
  StackedIvp s;
  const int B = static_cast<int>(end - begin);
  std::vector<double> times;
  for (size_t b = begin; b < end; ++b) {
    const Vector& tb = problem.series(static_cast<int>(b)).times;
    times.insert(times.end(), tb.data(), tb.data() + tb.size());
  }
  std::sort(times.begin(), times.end());
  times.erase(std::unique(times.begin(), times.end()), times.end());
  Trajectory& t = s.ivp;
  t.t0 = problem.series(static_cast<int>(begin)).t0;
  t.times = Eigen::Map<const Vector>(times.data(), static_cast<Eigen::Index>(times.size()));
  t.values.resize(t.times.size(), 0);  // the observer scores each series on its own rows
  t.z0.resize(B * n);
  t.t_end = t.t0;
  s.rows.resize(B);
  for (int b = 0; b < B; ++b) {
    const Trajectory& tr = problem.series(static_cast<int>(begin) + b);
    t.z0.segment(b * n, n) = tr.z0;
    t.t_end = std::max(t.t_end, tr.horizon());
    for (Eigen::Index k = 0; k < tr.times.size(); ++k)
      s.rows[b].push_back(std::lower_bound(times.begin(), times.end(), tr.times[k]) - times.begin());
  }
  return s;
}

// Series b's rows of the stacked states (union times x B n).
Matrix series_states(const Matrix& stacked, const std::vector<Eigen::Index>& rows, int b, int n) {
  Matrix out(static_cast<Eigen::Index>(rows.size()), n);
  for (std::size_t k = 0; k < rows.size(); ++k) out.row(static_cast<Eigen::Index>(k)) = stacked.row(rows[k]).segment(b * n, n);
  return out;
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
  } catch (const std::logic_error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    f.message = e.what();
  }
  return f;
}

namespace {
const detail::EnumName<BatchMode> kBatchModes[] = {
    {BatchMode::PerSeries, "per_series"}, {BatchMode::Stacked, "stacked"}, {BatchMode::Auto, "auto"}};
}  // namespace

const char* batch_mode_name(BatchMode mode) { return detail::enum_name(kBatchModes, mode); }
BatchMode parse_batch_mode(const std::string& name) { return detail::parse_enum(kBatchModes, name, "batch mode"); }

BatchSolver::BatchSolver(const Dynamics& dynamics, const SolverOptions& options, const BatchOptions& batch)
    : dynamics_(dynamics), options_(options), batch_options_(batch) {
  int threads = batch.threads <= 0 ? omp_get_max_threads() : batch.threads;
  if (batch_options_.stack_size < 1)
    throw OptionsError("batch option stack_size = " + std::to_string(batch.stack_size) + " must be >= 1");
  for (int i = 0; i < threads; ++i) engines_.push_back(make_engine(dynamics, options));
}

BatchSolver::~BatchSolver() = default;

// One stacked engine per unit position, not per thread: CVODES keeps some state from one solve
// to the next, so a unit always follows the same history whatever thread runs it. (The last-bit
// differences between thread counts that remained came from the alignment of CVODES' vectors;
// the engine's callbacks compute in aligned buffers for that, src/ode/cvodes_adjoint.cpp.)
BatchSolver::StackedEngine& BatchSolver::stacked_engine(int unit, int copies) {
  auto& slot = stacked_[unit];
  if (!slot || slot->dynamics.copies() != copies) slot = std::make_unique<StackedEngine>(dynamics_, copies, options_);
  return *slot;
}

bool BatchSolver::use_stacked(const Problem& problem, size_t begin, size_t end) const {
  if (batch_options_.mode == BatchMode::PerSeries || end - begin < 2) return false;
  const bool forced = batch_options_.mode == BatchMode::Stacked;
  const Trajectory& first = problem.series(static_cast<int>(begin));
  for (size_t b = begin; b < end; ++b) {
    const Trajectory& tr = problem.series(static_cast<int>(b));
    if (tr.t0 != first.t0) {
      if (forced)
        throw OptionsError("stacked batch mode needs a shared t0: series " + std::to_string(begin) + " starts at " +
                           std::to_string(first.t0) + ", series " + std::to_string(b) + " at " + std::to_string(tr.t0));
      return false;
    }
    if (detail::needs_segments(tr)) {
      if (forced)
        throw OptionsError("stacked batch mode does not take series with events, controls or covariates (series " +
                           std::to_string(b) + "); use per_series");
      return false;
    }
  }
  if (!problem.running_costs().empty()) {
    if (forced) throw OptionsError("stacked batch mode does not take a running cost yet; use per-series mode");
    return false;
  }
  if (forced) return true;
  // Auto: the union grid must not multiply the observation restarts, and a dense Newton solve
  // on the stacked system must stay small (its cost grows with the cube of B n).
  std::vector<double> all;
  Eigen::Index longest = 0;
  for (size_t b = begin; b < end; ++b) {
    const Vector& t = problem.series(static_cast<int>(b)).times;
    all.insert(all.end(), t.data(), t.data() + t.size());
    longest = std::max(longest, t.size());
  }
  std::sort(all.begin(), all.end());
  const auto unique = std::unique(all.begin(), all.end()) - all.begin();
  if (unique > 1.5 * static_cast<double>(longest)) return false;
  return !dense_newton(options_) || dynamics_.state_size() * static_cast<long>(end - begin) <= 64;
}

void GradientSums::reset(Eigen::Index theta_size, Eigen::Index phi_size) {
  values.reset(1 + theta_size + phi_size + 1);
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

void GradientSums::finish(BatchGradient& out, Eigen::Index theta_size) const {
  const Eigen::Index P = theta_size, R = values.size() - 2 - P;
  out.loss = values.value(0);
  out.theta.resize(P);
  values.values(out.theta.data(), P, 1);
  out.phi.resize(R);
  values.values(out.phi.data(), R, 1 + P);
  out.solver_error = values.value(1 + P + R);
  out.forward = forward;
  out.backward = backward;
  out.nfe_forward = nfe_forward;
  out.nfe_backward = nfe_backward;
}

std::vector<WorkUnit> BatchSolver::plan(const Problem& problem) const {
  // Single series, or a stack of consecutive series. Fixed for a given problem and options,
  // whatever the thread or rank count.
  std::vector<WorkUnit> units;
  const size_t size = static_cast<size_t>(problem.size());
  const size_t chunk = batch_options_.mode == BatchMode::PerSeries ? 1 : static_cast<size_t>(batch_options_.stack_size);
  for (size_t b = 0; b < size; b += chunk) {
    const size_t e = std::min(size, b + chunk);
    if (use_stacked(problem, b, e)) {
      units.push_back({b, e, true});
    } else {
      for (size_t s = b; s < e; ++s) units.push_back({s, s + 1, false});
    }
  }
  return units;
}

void BatchSolver::solve_units(ConstVectorRef theta, const Problem& problem, const std::vector<WorkUnit>& units,
                              const std::function<int()>& next, GradientSums& sums, BatchGradient& out,
                              std::vector<std::exception_ptr>& errors) {
  const int n = dynamics_.state_size();
  const Eigen::Index P = theta.size(), R = problem.loss().param_size();
  if (stacked_.size() < units.size()) stacked_.resize(units.size());  // before the threads touch it
  const Vector theta_copy = theta;  // one stable buffer shared by all threads
#pragma omp parallel num_threads(threads())
  {
    const int thread = omp_get_thread_num();
    GradientSums local;
    local.reset(P, R);
    auto add = [&](const Gradient& g) {
      local.values.add(0, g.loss);
      local.values.add(g.theta, 1);
      local.values.add(g.phi, 1 + P);
      local.values.add(1 + P + R, g.solver_error);
      local.forward += g.forward;
      local.backward += g.backward;
      local.nfe_forward += g.nfe_forward;
      local.nfe_backward += g.nfe_backward;
    };
    for (;;) {
      int u;
#pragma omp critical(cvnode_next_unit)
      u = next();
      if (u < 0) break;
      const WorkUnit& unit = units[u];
      try {
        if (!unit.stacked) {
          Gradient g = detail::series_gradient(*engines_[thread], theta_copy, problem, static_cast<int>(unit.begin));
          add(g);
          out.z0[unit.begin] = std::move(g.z0);
          out.states[unit.begin] = std::move(g.states);
          out.series_loss[unit.begin] = g.loss;
          continue;
        }
        const int copies = static_cast<int>(unit.end - unit.begin);
        const StackedIvp st = stack(problem, unit.begin, unit.end, n);
        std::vector<double> series_loss(copies, 0.0);
        // Each series scored on its own rows; the unit's loss is their sum in series order.
        auto observe = [&](const Matrix& states) {
          ObservationTerms all;
          all.jumps.setZero(states.rows(), states.cols());
          all.phi.setZero(R);
          for (int b = 0; b < copies; ++b) {
            const ObservationTerms tb =
                problem.observe(static_cast<int>(unit.begin) + b, series_states(states, st.rows[b], b, n));
            series_loss[b] = tb.loss;
            all.loss += tb.loss;
            all.phi += tb.phi;
            for (std::size_t k = 0; k < st.rows[b].size(); ++k)
              all.jumps.row(st.rows[b][k]).segment(b * n, n) = tb.jumps.row(static_cast<Eigen::Index>(k));
          }
          return all;
        };
        Gradient g = stacked_engine(u, copies).engine->gradient(theta_copy, st.ivp, observe, problem.running_costs());
        add(g);
        for (size_t b = unit.begin; b < unit.end; ++b) {
          const int j = static_cast<int>(b - unit.begin);
          out.z0[b] = g.z0.segment(j * n, n);
          out.states[b] = series_states(g.states, st.rows[j], j, n);
          out.series_loss[b] = series_loss[j];
        }
      } catch (...) {
        errors[u] = std::current_exception();
      }
    }
#pragma omp critical(cvnode_merge_sums)
    sums.merge(local);
  }
}

BatchGradient BatchSolver::gradient(ConstVectorRef theta, const Problem& problem) {
  const int B = problem.size();
  detail::check_theta(theta, dynamics_.param_size());
  problem.check(dynamics_.state_size());
  const std::vector<WorkUnit> units = plan(problem);
  const int U = static_cast<int>(units.size());
  BatchGradient out;
  out.z0.resize(B);
  out.states.resize(B);
  out.series_loss.assign(B, 0.0);
  GradientSums sums;
  sums.reset(theta.size(), problem.loss().param_size());
  std::vector<std::exception_ptr> errors(U);
  int next_unit = 0;
  solve_units(theta, problem, units, [&] { return next_unit < U ? next_unit++ : -1; }, sums, out, errors);
  // Failures in series order; the sums do not depend on the order the units were done in.
  for (int u = 0; u < U; ++u) {
    if (!errors[u]) continue;
    if (!batch_options_.skip_failures) std::rethrow_exception(errors[u]);
    for (size_t b = units[u].begin; b < units[u].end; ++b)
      out.failures.push_back(describe_failure(static_cast<int>(b), errors[u]));
  }
  sums.finish(out, theta.size());
  return out;
}

std::vector<Solution> BatchSolver::solve(ConstVectorRef theta, const std::vector<Trajectory>& series) {
  const int B = static_cast<int>(series.size());
  std::vector<Solution> out(B);
  std::vector<std::exception_ptr> errors(B);
  const Vector theta_copy = theta;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads())
  for (int b = 0; b < B; ++b) {
    try {
      const Trajectory& tr = series[b];
      if (std::string why = tr.validate(dynamics_.state_size()); !why.empty()) throw OptionsError(why);
      out[b] = engines_[omp_get_thread_num()]->solve(theta_copy, tr);
    } catch (...) {
      errors[b] = std::current_exception();
    }
  }
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return out;
}

}  // namespace cvnode

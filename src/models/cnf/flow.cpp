#include "cvnode/flow.h"

#include <cmath>
#include <exception>

#include <omp.h>

#include "cvnode/errors.h"
#include "cvnode/solver.h"
#include "cvnode/stacked.h"
#include "cvnode/time_reversed.h"
#include "core/random.h"

namespace cvnode {

std::string FlowSettings::validate() const {
  if (!(end_time > 0) || !std::isfinite(end_time)) return "flow end_time = " + std::to_string(end_time) + " must be > 0";
  if (!(base_std > 0) || !std::isfinite(base_std)) return "flow base_std = " + std::to_string(base_std) + " must be > 0";
  if (chunk < 1) return "flow chunk = " + std::to_string(chunk) + " must be >= 1";
  return solver.validate();
}

Flow::Flow(const ProbedField& field, Vector theta, FlowSettings settings)
    : field_(field), cnf_(field, CnfOptions{}), theta_(std::move(theta)), s_(std::move(settings)) {
  if (std::string why = s_.validate(); !why.empty()) throw OptionsError(why);
  if (theta_.size() != field_.param_size())
    throw OptionsError("flow parameters: " + std::to_string(theta_.size()) + " values for a field of " +
                       std::to_string(field_.param_size()));
}

double Flow::base_log_density(ConstVectorRef z) const {
  const double s2 = s_.base_std * s_.base_std;
  return -0.5 * z.squaredNorm() / s2 - 0.5 * z.size() * std::log(2 * M_PI * s2);
}

std::vector<Matrix> solve_stacked(const Dynamics& dynamics, ConstVectorRef theta, double t0, const Matrix& Y0,
                                  const Vector& times, const SolverOptions& options, int chunk, int threads,
                                  long& nfe) {
  const int n = dynamics.state_size();
  const Eigen::Index N = Y0.rows(), T = times.size();
  std::vector<Matrix> out(T, Matrix(N, n));
  const Eigen::Index chunks = (N + chunk - 1) / chunk;
  std::vector<std::exception_ptr> errors(chunks);
  const Vector theta_copy = theta;
  long total = 0;
  if (threads <= 0) threads = omp_get_max_threads();
#pragma omp parallel for schedule(dynamic) num_threads(threads) reduction(+ : total)
  for (Eigen::Index c = 0; c < chunks; ++c) {
    try {
      const Eigen::Index begin = c * chunk, B = std::min<Eigen::Index>(chunk, N - begin);
      Stacked stacked(dynamics, static_cast<int>(B));
      Solver solver(stacked, options);
      Vector z0(B * n);
      for (Eigen::Index b = 0; b < B; ++b) z0.segment(b * n, n) = Y0.row(begin + b).transpose();
      const Solution sol = solver.solve(theta_copy, t0, z0, times);
      total += sol.nfe;
      for (Eigen::Index k = 0; k < T; ++k)
        for (Eigen::Index b = 0; b < B; ++b) out[k].row(begin + b) = sol.states.row(k).segment(b * n, n);
    } catch (...) {
      errors[c] = std::current_exception();
    }
  }
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
  nfe += total;
  return out;
}

FlowPoints Flow::log_density(const Matrix& X, double t) const {
  const int D = dim();
  if (X.cols() != D)
    throw OptionsError("flow log_density: points have " + std::to_string(X.cols()) + " components, the flow " +
                       std::to_string(D));
  Matrix Y0 = Matrix::Zero(X.rows(), cnf_.state_size());
  Y0.leftCols(D) = X;
  FlowPoints r;
  if (!(t >= 0 && t <= s_.end_time))
    throw OptionsError("flow log_density: time " + std::to_string(t) + " lies outside [0, " +
                       std::to_string(s_.end_time) + "]");
  const Matrix YT =
      solve_stacked(cnf_, theta_, t, Y0, Vector::Constant(1, s_.end_time), s_.solver, s_.chunk, s_.threads, r.nfe)[0];
  r.points = X;
  r.base = YT.leftCols(D);
  r.log_density.resize(X.rows());
  // log p(x) = log p_base(z(T)) - l(T), l' = -tr J.
  for (Eigen::Index i = 0; i < X.rows(); ++i)
    r.log_density[i] = base_log_density(r.base.row(i).transpose()) - YT(i, cnf_.logp_index());
  return r;
}

FlowPoints Flow::sample(int n, std::uint64_t seed) const {
  const int D = dim();
  detail::Rng rng(seed);
  Matrix Y0 = Matrix::Zero(n, cnf_.state_size());
  for (int i = 0; i < n; ++i)
    for (int d = 0; d < D; ++d) Y0(i, d) = s_.base_std * rng.normal();
  const TimeReversed back(cnf_, s_.end_time);
  FlowPoints r;
  const Matrix Y = solve_stacked(back, theta_, 0.0, Y0, Vector::Constant(1, s_.end_time), s_.solver, s_.chunk, s_.threads, r.nfe)[0];
  r.base = Y0.leftCols(D);
  r.points = Y.leftCols(D);
  r.log_density.resize(n);
  // Backwards the log-density component integrates +tr J: log p(x) = log p_base(z) + l_back(T).
  for (int i = 0; i < n; ++i) r.log_density[i] = base_log_density(r.base.row(i).transpose()) + Y(i, cnf_.logp_index());
  return r;
}

std::vector<Matrix> Flow::transport(const Matrix& X, const Vector& times, bool from_base) const {
  const int D = dim();
  Matrix Y0 = Matrix::Zero(X.rows(), cnf_.state_size());
  Y0.leftCols(D) = X;
  long nfe = 0;
  std::vector<Matrix> out;
  if (!from_base) {
    out = solve_stacked(cnf_, theta_, 0.0, Y0, times, s_.solver, s_.chunk, s_.threads, nfe);
  } else {
    // The reversed clock s = T - t runs forward: ask for the times in increasing s.
    Vector s(times.size());
    for (Eigen::Index k = 0; k < times.size(); ++k) s[k] = s_.end_time - times[times.size() - 1 - k];
    const TimeReversed back(cnf_, s_.end_time);
    std::vector<Matrix> rev = solve_stacked(back, theta_, 0.0, Y0, s, s_.solver, s_.chunk, s_.threads, nfe);
    out.assign(rev.rbegin(), rev.rend());
  }
  for (Matrix& m : out) m = m.leftCols(D).eval();
  return out;
}

}  // namespace cvnode

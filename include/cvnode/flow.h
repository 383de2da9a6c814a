// A continuous normalizing flow with its parameters: the log-density of new points (from the
// data at t = 0 forward to the base distribution N(0, s^2 I) at t = T), samples (from the base
// back to t = 0 with the time-reversed dynamics, each with its log-density) and the transport
// of points over time (the figures). Always the exact trace: evaluation is not where Hutchinson's
// noise belongs. Points are solved in stacked chunks (one ODE, matrix-matrix network products),
// chunks in parallel over threads; the chunking is fixed, so results do not depend on threads.
#pragma once

#include <cstdint>
#include <vector>

#include "cvnode/cnf.h"
#include "cvnode/solver_options.h"

namespace cvnode {

struct FlowSettings {
  double end_time = 1.0;  // T
  double base_std = 1.0;  // s of the base N(0, s^2 I)
  SolverOptions solver;   // adams, bdf or dopri5; tolerances of the evaluation solves
  int chunk = 256;        // points per stacked solve
  int threads = 1;

  std::string validate() const;  // empty when valid
};

struct FlowPoints {
  Matrix points;       // rows: data-space points (for sample(): the samples)
  Vector log_density;  // log p(x) of each row under the flow
  Matrix base;         // rows: their images z(T) in the base space
  long nfe = 0;        // right-hand-side evaluations of all stacked solves
};

// Solves the rows of Y0 (initial states of `dynamics` at t0) in stacked chunks of `chunk`
// rows, chunks in parallel over `threads`: result[k] holds the states at times[k] (rows = the
// points). Adds the right-hand-side evaluations to nfe; rethrows the first chunk's failure.
std::vector<Matrix> solve_stacked(const Dynamics& dynamics, ConstVectorRef theta, double t0, const Matrix& Y0,
                                  const Vector& times, const SolverOptions& options, int chunk, int threads,
                                  long& nfe);

class Flow {
 public:
  // `field` must outlive the Flow. Throws OptionsError for invalid settings or a theta of the
  // wrong size.
  Flow(const ProbedField& field, Vector theta, FlowSettings settings);

  const FlowSettings& settings() const { return s_; }
  int dim() const { return cnf_.dim(); }
  double base_log_density(ConstVectorRef z) const;

  // log p(x) for every row of X; throws SolverError if a chunk's solve fails. With t > 0: the
  // density of z(t), the state at time t of points drawn from the flow (t = T: the base).
  FlowPoints log_density(const Matrix& X, double t = 0) const;
  // n samples drawn from the base with `seed`, carried from T back to 0.
  FlowPoints sample(int n, std::uint64_t seed) const;
  // The rows of X at each of `times` (in [0, T]): result[k] holds the points at times[k].
  // from_base = false: X are data points at t = 0 moving forward; true: X are base points at
  // t = T moving backwards (times still name the flow's own clock).
  std::vector<Matrix> transport(const Matrix& X, const Vector& times, bool from_base) const;

 private:
  const ProbedField& field_;
  Cnf cnf_;
  Vector theta_;
  FlowSettings s_;
};

}  // namespace cvnode

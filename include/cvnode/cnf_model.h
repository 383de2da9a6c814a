// The continuous normalizing flow as a trainable model: a field (time-conditioned MLP or the
// planar hypernetwork flow), the flow dynamics with the exact trace or Hutchinson's estimator,
// maximum likelihood against the base N(0, s^2 I) at t = T, and the regularisers of Finlay et
// al. 2020 (kinetic energy, Jacobian Frobenius norm, integrated as state components) and of
// Ghosh et al. 2020 (STEER: the end time drawn from U(T - b, T + b) at every step). A minibatch's
// gradient is one stacked solve per stack of samples through any engine (the CVODES adjoint or
// dopri5 backpropagation), seeded per step and sample so that a run repeats exactly.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cvnode/batch.h"
#include "cvnode/cnf.h"
#include "cvnode/flow.h"
#include "cvnode/mlp.h"

namespace cvnode {

struct CnfModelOptions {
  std::string field = "mlp";             // mlp (time-conditioned) | planar (hypernetwork of t)
  std::vector<int> hidden = {64, 64, 64};  // mlp: hidden widths
  Activation activation = Activation::Tanh;
  bool time_input = true;                // mlp: t as an input of the first layer
  int width = 64;                        // planar: units M
  int hyper_hidden = 32;                 // planar: hypernetwork hidden width
  Init init = Init::Glorot;
  std::uint64_t seed = 1;
  TraceEstimator trace = TraceEstimator::Exact;  // training; evaluation always exact
  ProbeNoise noise = ProbeNoise::Rademacher;
  int probes = 1;
  double end_time = 1.0;   // T
  double base_std = 1.0;   // s
  // Regularisers, each with its weight (0 = off): lambda int ||f||^2 dt, lambda int ||df/dz||_F^2 dt
  // (estimated with the trace's probes under Hutchinson), STEER's half-width b (< T).
  double kinetic_weight = 0;
  double jacobian_weight = 0;
  double steer = 0;
  // lambda of the solver-error penalty: lambda sum_s E_s h_s over the accepted steps of each
  // stacked solve (Dopri5Options::error_weight; summed over a minibatch's solves). dopri5 only.
  double error_weight = 0;

  std::string validate() const;  // empty when valid
};

// What one optimizer step of a model kind knows (core's StepContext; the same fields).
struct CnfStep {
  int epoch = 0;
  long step = 0;
  std::uint64_t seed = 0;
};

struct CnfMinibatch {
  double loss = 0;       // mean NLL (model units) plus the weighted regularisers
  double nll = 0;        // mean NLL in the data's units (nats per sample)
  double kinetic = 0;    // mean int ||f||^2 dt (when carried)
  double frobenius = 0;  // mean int ||df/dz||_F^2 dt (estimate; when carried)
  double solver_error = 0;  // sum_s E_s h_s per stacked solve, mean over solves (error_weight > 0)
  double end_time = 0;   // this step's T (STEER)
  Vector gradient;       // d loss / d params
  long nfe_forward = 0, nfe_backward = 0;  // per stacked solve, summed over stacks
  int solves = 0;                          // stacked solves
  std::vector<SeriesFailure> failures;
};

// The engine of a model's minibatch gradients: stacks of `stack` samples as one ODE each (the
// network in matrix-matrix products), stacks in parallel over `threads`. The stacking is fixed,
// so results do not depend on the thread count.
struct CnfEngine {
  SolverOptions solver;
  int stack = 128;
  int threads = 1;
  std::unique_ptr<BatchSolver> batch;
};

struct CnfEvaluation {
  double nll = 0;          // mean NLL in the data's units (exact trace)
  double nll_per_dim = 0;
  long nfe = 0;            // right-hand-side evaluations of the stacked solves
  Vector log_density;      // per point, data units
};

class CnfModel {
 public:
  // `dim` = D. `log_scale` = sum of log std of a normalisation applied to the points (0 if none):
  // the NLL in data units is the model's plus log_scale.
  CnfModel(const CnfModelOptions& options, int dim, double log_scale = 0);
  ~CnfModel();

  const CnfModelOptions& options() const { return o_; }
  int dim() const { return dim_; }
  const ProbedField& field() const { return *field_; }
  const Cnf& dynamics() const { return *cnf_; }
  int param_size() const { return field_->param_size(); }
  Vector initial_parameters() const { return field_->initial_parameters(o_.seed); }
  // One line, e.g. "cnf mlp 2-64-64-64-2 tanh time_input, trace exact, T 1".
  std::string describe() const;

  // An engine for gradient(); the adjoint's form defaults to restart (one observation at T:
  // nothing to gain from the transition form's extra VJPs); the solver-error penalty goes to
  // dopri5's options. Throws OptionsError (also for error_weight > 0 on adams or bdf).
  CnfEngine engine(SolverOptions solver, int stack, int threads) const;
  // The minibatch rows `rows` of `points` (N x D, model units): loss, gradient and cost.
  // Failures are listed and left out; the gradient is then over the other samples.
  CnfMinibatch gradient(const Vector& params, const Matrix& points, const std::vector<std::size_t>& rows,
                        const CnfStep& step, CnfEngine& engine) const;
  // Held-out log-likelihood with the exact trace at T (no jitter).
  CnfEvaluation evaluate(const Vector& params, const Matrix& points, const FlowSettings& settings) const;
  // A Flow of these parameters (samples, densities, transport) for settings' solver and threads.
  Flow flow(const Vector& params, FlowSettings settings) const;

 private:
  CnfModelOptions o_;
  int dim_;
  double log_scale_;
  std::unique_ptr<ProbedField> field_;
  std::unique_ptr<Cnf> cnf_;
};

// Seed of the Hutchinson probes of sample `index` at step `step` of a run seeded `seed`.
std::uint64_t probe_seed(std::uint64_t seed, long step, std::size_t index);

}  // namespace cvnode

// Per-subject random effects (nonlinear mixed effects, as NONMEM / Monolix / nlmixr2 fit them):
// subject i's dynamics use parameters theta_i that depend on the shared (population) parameters
// theta and the subject's own k-vector eta_i ~ N(0, Omega):
//
//   theta_i[j] = theta[j] * exp(sum_e scale(j, e) eta_ie)     multiplicative (log-normal) effects,
//              + sum_e shift(j, e) eta_ie                       additive effects on a parameter,
//              + (W eta_i)_r  at parameter embed_rows[r]        a learned embedding (W: R x k),
//
// which covers: eta added to a physics parameter that is stored as a logarithm (ka = ka_pop
// exp(eta)); eta scaling a network output (the rows of its last layer: a rate times exp(eta));
// and "neural mixed effects", eta entering the network's first layer through learned weights W
// (as extra inputs would: W_1 [z; u; eta] + b = W_1 [z; u] + (b + W eta)).
//
// RandomEffectsDynamics wraps any Dynamics with such a map. Its parameters are
//   [theta (base) | W (R x k, row-major) | eta table (slots x k, row-major)]
// so that the engines' d loss / d theta carries d loss / d eta of the solved subject's row (the
// other rows get 0): the random effects need no engine of their own, and their gradients are those
// of the adjoint (CVODES) or of dopri5's backpropagation. Which row a series uses is its LAST
// input u (a static covariate appended by the data side, an exact integer; out of range, e.g. -1:
// eta = 0, the typical subject); the base dynamics read the inputs before it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cvnode/dynamics.h"
#include "cvnode/problem.h"
#include "cvnode/solver_options.h"

namespace cvnode {

struct RandomEffectMap {
  int effects = 0;  // k
  struct Entry {
    int parameter;  // index into the base theta
    int effect;     // 0..k-1
    double coef;
  };
  std::vector<Entry> scale;      // theta_i[j] *= exp(coef eta_e)
  std::vector<Entry> shift;      // theta_i[j] += coef eta_e
  std::vector<int> embed_rows;   // base parameters that get (W eta)_r added (W learned)

  // Empty when consistent with a base of `base_params` parameters, else the reason.
  std::string validate(int base_params) const;
};

class Mlp;
// Entries that multiply output `output` of `mlp` (its last layer's row and bias) by
// exp(coef eta_effect): a rate the network stands for, times a subject's factor. The mlp's
// parameters start at `offset` of the base theta (a hybrid's physics come first).
void add_output_scale(RandomEffectMap& map, const Mlp& mlp, int offset, int output, int effect, double coef);
// Embedding rows on the first layer's biases of `mlp` (every eta enters each hidden unit through
// the learned W, as extra network inputs would).
void add_first_layer_embedding(RandomEffectMap& map, const Mlp& mlp, int offset);

class RandomEffectsDynamics final : public Dynamics {
 public:
  // `slots`: rows of the eta table (one per training subject). Throws OptionsError.
  RandomEffectsDynamics(std::shared_ptr<const Dynamics> base, RandomEffectMap map, int slots);

  const Dynamics& base() const { return *base_; }
  const RandomEffectMap& map() const { return map_; }
  int effects() const { return map_.effects; }
  int slots() const { return slots_; }
  int base_param_size() const { return pb_; }
  int embedding_offset() const { return pb_; }                        // W
  int eta_offset() const { return pb_ + static_cast<int>(map_.embed_rows.size()) * map_.effects; }
  // theta_i for a given eta (size k), from the wrapper's parameters (the table is not read).
  Vector subject_parameters(ConstVectorRef params, ConstVectorRef eta) const;
  // The same model for `slots` other subjects (the base and map shared), and its parameters:
  // this one's shared part with the given etas (slots x k) as the table.
  std::shared_ptr<const RandomEffectsDynamics> with_slots(int slots) const;
  Vector parameters_with(ConstVectorRef params, const Matrix& etas) const;
  // The same model with the mean of the table's rows moved into the shared parameters (every
  // row minus the mean; the typical parameters absorb it: the scaled ones times exp(coef mean),
  // the shifted ones plus coef mean, the embedded ones plus W mean), so that the typical subject
  // (eta = 0) is the centre of the subjects, as the prior N(0, Omega) says; every subject's
  // theta_i is unchanged. Effects on a parameter that is both scaled and shifted (or embedded)
  // cannot move exactly and stay where they are. The mean is over the first `rows` rows (-1: all).
  Vector recentered(ConstVectorRef params, int rows = -1) const;

  int state_size() const override { return base_->state_size(); }
  int param_size() const override { return eta_offset() + slots_ * map_.effects; }
  bool smooth() const override { return base_->smooth(); }
  int workspace_size() const override { return base_->workspace_size() + 3 * pb_ + map_.effects; }
  int input_size() const override { return base_->input_size() + 1; }

  // Without inputs: the typical subject (eta = 0) and base inputs 0.
  void rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const override;
  void vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
           VectorRef a_dfdtheta, VectorRef work) const override;
  void jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const override;
  void jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
           VectorRef work) const override;
  void rhs_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, VectorRef f,
             VectorRef work) const override;
  void vjp_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, ConstVectorRef a,
             VectorRef a_dfdz, VectorRef a_dfdtheta, VectorRef work) const override;
  void jacobian_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, MatrixRef J,
                  VectorRef work) const override;
  void jvp_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, ConstVectorRef v,
             VectorRef Jv, VectorRef work) const override;

 private:
  // The slot a series' inputs name (-1: none / out of range, i.e. eta = 0).
  int slot(const ConstVectorRef* u) const;
  // Writes eta (k) and theta_i (base size) into work; returns whether any eta is non-zero.
  void subject_theta(ConstVectorRef theta, int slot, double* eta, double* theta_i) const;
  // Each pair of forms (rhs / rhs_u, ...) is one call with u optional (null: the typical subject,
  // the base without inputs).
  struct Split;
  Split split(ConstVectorRef theta, const ConstVectorRef* u, VectorRef work) const;
  bool base_inputs(const ConstVectorRef* u) const;
  void rhs_at(double t, ConstVectorRef z, const ConstVectorRef* u, ConstVectorRef theta, VectorRef f,
              VectorRef work) const;
  void vjp_at(double t, ConstVectorRef z, const ConstVectorRef* u, ConstVectorRef theta, ConstVectorRef a,
              VectorRef a_dfdz, VectorRef a_dfdtheta, VectorRef work) const;
  void jacobian_at(double t, ConstVectorRef z, const ConstVectorRef* u, ConstVectorRef theta, MatrixRef J,
                   VectorRef work) const;
  void jvp_at(double t, ConstVectorRef z, const ConstVectorRef* u, ConstVectorRef theta, ConstVectorRef v,
              VectorRef Jv, VectorRef work) const;

  std::shared_ptr<const Dynamics> base_;
  RandomEffectMap map_;
  int slots_ = 0, pb_ = 0;
};

// Empirical Bayes: the mode of p(eta_i | y_i) for each subject given the population (the
// parameters, Omega, sigma^2), i.e. the minimum of
//     J_i(eta) = sum_k |y_ik - h(z(t_k; theta_i(eta)))|^2 / (2 sigma^2) + eta^T Omega^-1 eta / 2
// over the observed entries, by Levenberg-Marquardt on eta with the Jacobian J = d prediction /
// d eta by central differences of forward solves (step 1e-3: the solver's error stays below the
// differences' O(h^2)). Also its Laplace covariance (J^T J / sigma^2 + Omega^-1)^-1, which the
// EM update of Omega adds to eta eta^T. A subject without observations keeps eta = 0.
struct EmpiricalBayesOptions {
  Vector omega;             // the prior's variances (diagonal Omega), k entries
  double sigma2 = 1;        // residual variance, in the loss's units
  int max_iterations = 30;  // Levenberg-Marquardt iterations
  bool optimize = true;     // false: only the covariance at the given start
  int threads = 1;
};
struct SubjectEstimate {
  Vector eta;          // k
  Matrix covariance;   // k x k
  double objective = 0;
  int iterations = 0;
  std::string error;   // a solve failed: eta is the start
};
// `problem`: the subjects' series, lifted, each with a last covariate (its row: overwritten);
// `params`: `dynamics`' parameters (its table is not read); `start`: rows of starting etas (null:
// zeros). Subjects are solved in parallel, each on its own (the same bits for any thread count).
std::vector<SubjectEstimate> empirical_bayes(const RandomEffectsDynamics& dynamics, ConstVectorRef params,
                                             const Problem& problem, const SolverOptions& options,
                                             const EmpiricalBayesOptions& eb, const Matrix* start = nullptr);

}  // namespace cvnode

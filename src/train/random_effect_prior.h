// The random effects' prior during a fit (run_fit): Omega (diagonal) and the residual variance
// sigma^2 that weigh each subject's eta^T Omega^-1 eta / 2 against its data, their updates after
// each epoch (EM-style), and their place in checkpoints.
//
// The objective is the joint posterior mode (penalised likelihood) of the population parameters
// and every training subject's eta, with a Gaussian residual of variance sigma^2:
//     sum_i [ SSE_i / (2 sigma^2) + eta_i^T Omega^-1 eta_i / 2 ],
// times 2 sigma^2 / entries so that its data part is the mean squared error the trainer already
// minimises: a minibatch adds (2 sigma^2 / entries) Omega^-1 eta_i to the gradient of each of its
// subjects' eta. After every epoch sigma^2 = that epoch's training mean squared error; with
// random_effects.estimate_omega, at each validation epoch Omega_e = mean_i (eta_ie^2 + C_i,ee)
// with C_i the Laplace posterior covariance of eta_i (empirical_bayes): the EM update, which the
// posterior variance keeps from collapsing onto the shrunken modes.
#pragma once

#include <string>
#include <vector>

#include "cvnode/checkpoint.h"
#include "cvnode/model.h"
#include "cvnode/trainer.h"

namespace cvnode::detail {

struct RandomEffectPrior {
  Vector omega;       // variances, one per eta
  double sigma2 = 1;  // residual variance in the loss's units

  // Omega from the options; sigma^2 = the mean squared observed value of the training series
  // (the residual of a model predicting 0: a weak prior until the first epoch has a residual).
  static RandomEffectPrior start(const RandomEffectsOptions& options, const std::vector<Trajectory>& train);
  void add_gradient(const RandomEffectsDynamics& re, const Vector& params, const std::vector<int>& series,
                    long entries, Vector& grad) const;
  // sigma^2 = train_mse (if finite and > 0); with `train` (the lifted training series, each with
  // its row), Omega's EM update at params.
  // Rows 0..train_subjects-1 of the table are the training subjects'.
  void update(const Model& model, const Vector& params, double train_mse, const std::vector<Trajectory>* train,
              int train_subjects, const TrainerSettings& settings, int threads);
  std::string describe(const RandomEffectsOptions& options) const;
  void store(Checkpoint& c) const;
  void restore(const Checkpoint& c);  // throws DataError when the checkpoint lacks them
};

}  // namespace cvnode::detail

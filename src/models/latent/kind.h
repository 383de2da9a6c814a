// The latent models as trainable model kinds: "latent_ode" (encoder, latent neural ODE,
// decoder; negative ELBO or IWAE bound) and "rnn_baseline" (the paper's autoregressive GRU).
// Shaped like the model-kind interface the Trainer is getting (parameters, a minibatch gradient
// with the step's context, an evaluation, sample predictions, a spec for checkpoints), so that
// registering it is one line.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cvnode/batch.h"
#include "cvnode/latent.h"
#include "cvnode/model.h"
#include "cvnode/regularization.h"
#include "cvnode/solver_options.h"
#include "models/latent/bands.h"
#include "models/latent/latent_ode.h"

namespace cvnode::latent {

// What a minibatch gradient needs to know about the step (interface of core's M2).
struct StepContext {
  int epoch = 1;
  long step = 0;
  std::uint64_t seed = 0;
};

struct MinibatchGradient {
  double loss = 0;  // mean over the series that succeeded
  Vector grad;
  long nfe = 0;     // per series, forward and backward
  std::vector<SeriesFailure> failures;  // series = index into the minibatch
};

// Sampled predictions of one series in model units.
struct SampleSet {
  std::vector<Matrix> means;   // per sample, T x channels (one for a deterministic model)
  std::vector<Matrix> latent;  // per sample, T x latent (latent_ode only)
  Vector noise_std;            // per channel, model units
  double ess = 0;              // importance posterior: effective sample size, else samples
  std::string error;           // non-empty: the series failed
};

class SequenceKind {
 public:
  // `data_std`: per-channel std the data were divided by (noise_std is given in data units);
  // ones without normalisation. `model` gives the latent dynamics' hidden widths, activation and
  // the seed. Throws OptionsError for inconsistent options.
  SequenceKind(const std::string& kind, const LatentOptions& latent, const ModelOptions& model, int channels,
               const Vector& data_std, const SolverOptions& solver, int threads);
  ~SequenceKind();

  const std::string& kind() const { return kind_; }
  // The [regularization] of training gradients (issue 16, docs/regularization.md), latent_ode
  // only: kinetic energy and Jacobian norm of the latent dynamics per sample's solve, STEER's
  // jittered observation times, the solver-error penalty of the latent path (dopri5). Per series
  // like the loss (each of the K samples weighs 1/K). Throws OptionsError naming the key a model
  // cannot take (rnn_baseline: all; Poisson times: the running costs; adams/bdf: error_weight).
  void set_regularization(const RegularizationOptions& options);
  int param_size() const;
  Vector initial_parameters() const;
  std::string spec() const;  // JSON: what the parameter vector means
  std::string describe() const;

  // The training series the minibatch indices refer to (observed series, model units; t0 is the
  // series' start).
  void set_training_series(std::vector<Trajectory> series);
  // Mean loss over the minibatch and its gradient. The noise of series i at a step comes from
  // (ctx.seed, ctx.step, i): the same for any thread count and batch composition. KL weight:
  // min(1, epoch / kl_warmup_epochs).
  MinibatchGradient gradient(const Vector& params, const std::vector<std::size_t>& series, const StepContext& ctx);
  double kl_weight(int epoch) const;

  // Validation: the mean loss per series (full KL weight, `eval_seed` draws) and the RMSE of the
  // mean prediction (z0 = mu) at the observed entries, model units.
  struct Score {
    double loss = 0, rmse = 0;
    int failures = 0;
  };
  Score evaluate(const Vector& params, const std::vector<Trajectory>& series, std::uint64_t eval_seed);

  // Posterior samples (samples = 0: one trajectory from z0 = mu) for each conditioning series at
  // its query times.
  // `posterior.importance` needs a latent_ode (OptionsError otherwise).
  std::vector<SampleSet> predict(const Vector& params, const std::vector<Trajectory>& conditioning,
                                 const std::vector<Vector>& times, int samples, std::uint64_t seed,
                                 const PosteriorOptions& posterior = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string kind_;
};

}  // namespace cvnode::latent

// The latent ODE (Chen et al. 2018, section 5; Rubanova et al. 2019): an encoder gives
// q(z0 | x) = N(mu, diag sigma^2) from a series' observations, z0 = mu + sigma .* eps is the
// reparameterised sample, z(t) solves dz/dt = f(z; theta) in the latent space through cvnode's
// engines, a decoder maps z(t) to the means of the observed channels, and the loss is the
// negative ELBO (or the IWAE bound with K samples):
//   ELBO = E_q[log p(x | z0)] - beta KL(q || N(0, I))      (K samples, analytic KL)
//   IWAE = log 1/K sum_k p(x | z0_k) p(z0_k)^beta / q(z0_k | x)^beta
// with log p(x | z0) the masked Gaussian log-likelihood (noise fixed or learned per channel),
// plus optionally the Poisson-process log-likelihood of the observation times.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cvnode/mlp.h"
#include "models/latent/dense.h"
#include "models/latent/encoder.h"
#include "models/latent/intensity.h"

namespace cvnode::latent {

struct LatentOdeSpec {
  int channels = 1;
  int latent = 4;
  EncoderSpec encoder;                      // its channels/latent are set from the above
  std::vector<int> dynamics_hidden = {20, 20};
  Activation dynamics_activation = Activation::Elu;
  std::vector<int> decoder_hidden = {20};
  Activation decoder_activation = Activation::Relu;
  bool learn_noise = false;                 // learned log sigma per channel, else fixed
  Vector noise_std;                         // per channel (model units): fixed value or start
  bool poisson = false;                     // Poisson-process likelihood of observation times
  std::vector<int> intensity_hidden = {20};
};

struct ElboSettings {
  int samples = 1;        // K
  bool iwae = false;      // IWAE bound (else ELBO with analytic KL, averaged over K samples)
  double kl_weight = 1;   // beta (KL annealing)
  // Training regularisers of the latent dynamics (issue 16): running costs integrated over each
  // sample's solve, their weights already divided by K (SequenceKind builds them per step). They
  // enter loss_gradient() only, with the solver-error penalty of the Context's path; loss() and
  // validation score the model without them.
  const std::vector<std::shared_ptr<const RunningCost>>* costs = nullptr;
};

// How predictions draw z0. Encoder: from the amortised q(z0 | x) the encoder gives (fast; its
// spread is whatever the ELBO left it, typically narrower than the model's posterior).
// Importance: the model's own posterior p(z0 | x) ~ p(x | z0) N(z0; 0, I) by importance
// resampling: `proposals` draws from q widened by `proposal_scale` (a heavier proposal keeps the
// weights finite where q is too narrow), weighted by p(x | z0) p(z0) / q'(z0), and the samples
// resampled from them (systematic resampling); exact as the number of proposals grows.
struct PosteriorOptions {
  bool importance = false;
  double proposal_scale = 2;
  int proposals = 0;            // 0: 10 per sample
  std::string validate() const;  // "" or the reason naming the option
};

// Sampled trajectories of the model for one series.
struct PosteriorSamples {
  std::vector<Matrix> means;  // per sample: T x channels decoder means at the query times
  std::vector<Matrix> latent; // per sample: T x latent states
  Vector mu, logvar;          // q(z0 | conditioning observations)
  Vector noise_std;           // per channel (model units)
  double ess = 0;             // importance: effective sample size of the weights (else samples)
};

class LatentOde {
 public:
  explicit LatentOde(LatentOdeSpec spec);
  const LatentOdeSpec& spec() const { return spec_; }

  // Parameter layout: [dynamics | intensity | encoder | decoder | log sigma]; the dynamics (and
  // with `poisson` the intensity network) first, so that the ODE's theta is one contiguous head.
  int param_size() const { return off_sigma_ + n_sigma_; }
  int ode_params() const { return n_dyn_ + n_int_; }
  Vector initial_parameters(std::uint64_t seed) const;
  // The observation noise per channel (model units): learned or fixed.
  Vector noise_std(ConstVectorRef params) const;
  const Dynamics& ode() const { return *ode_; }
  const Encoder& encoder() const { return encoder_; }

  // One thread's state: the encoder's run and the latent ODE's path.
  class Context {
   public:
    Context(const LatentOde& model, const SolverOptions& options);
    // The latent path's gradients with other options than the encoder's (a training context
    // under the solver-error penalty: the encoder's own ODE is not penalised).
    Context(const LatentOde& model, const SolverOptions& options, const SolverOptions& path_options);
    long nfe = 0;

   private:
    friend class LatentOde;
    Encoder::Run enc;
    OdePath path;
  };

  // The loss of one series (negative ELBO or IWAE bound, in nats) times `scale`, and its
  // gradient times `scale` added to `grad`. The K standard normal draws come from `noise_seed`
  // alone (LatentOde::noise_seed), so the result does not depend on threads or batch order.
  double loss_gradient(ConstVectorRef params, const Trajectory& series, const ElboSettings& settings,
                       std::uint64_t noise_seed, double scale, Context& ctx, VectorRef grad) const;
  // The same loss without its gradient (validation).
  double loss(ConstVectorRef params, const Trajectory& series, const ElboSettings& settings,
              std::uint64_t noise_seed, Context& ctx) const;

  // Posterior samples conditioned on `conditioning` (its observed entries), decoded at `times`
  // (>= the conditioning series' t0). samples = 0: one trajectory from z0 = mu.
  PosteriorSamples sample(ConstVectorRef params, const Trajectory& conditioning, ConstVectorRef times, int samples,
                          std::uint64_t seed, Context& ctx, const PosteriorOptions& posterior = {}) const;

  // The stream of draws for (run seed, optimizer step or evaluation pass, series index).
  static std::uint64_t noise_seed(std::uint64_t seed, std::uint64_t pass, std::uint64_t series);

 private:
  double evaluate(ConstVectorRef params, const Trajectory& series, const ElboSettings& settings,
                  std::uint64_t noise_seed, double scale, Context& ctx, Vector* grad) const;
  PosteriorSamples importance_sample(ConstVectorRef params, const Observed& obs, ConstVectorRef times, int samples,
                                     std::uint64_t seed, Context& ctx, const PosteriorOptions& posterior) const;
  LatentOdeSpec spec_;
  Mlp dynamics_;
  std::unique_ptr<Dense> intensity_;
  std::unique_ptr<WithIntensity> with_intensity_;
  const Dynamics* ode_;
  Encoder encoder_;
  Dense decoder_;
  int n_dyn_, n_int_, n_enc_, n_dec_, n_sigma_;
  int off_enc_, off_dec_, off_sigma_;
};

}  // namespace cvnode::latent

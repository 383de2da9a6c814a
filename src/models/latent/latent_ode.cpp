#include "models/latent/latent_ode.h"

#include <algorithm>
#include <cmath>

#include "cvnode/errors.h"
#include "models/latent/elbo.h"
#include "core/random.h"

namespace cvnode::latent {

namespace {
MlpSpec dynamics_spec(const LatentOdeSpec& s) {
  MlpSpec m;
  m.layers = layer_widths(s.latent, s.dynamics_hidden, s.latent);
  m.activation = s.dynamics_activation;
  return m;
}
EncoderSpec encoder_spec(const LatentOdeSpec& s) {
  EncoderSpec e = s.encoder;
  e.channels = s.channels;
  e.latent = s.latent;
  return e;
}
}  // namespace

LatentOde::LatentOde(LatentOdeSpec spec)
    : spec_(std::move(spec)),
      dynamics_(dynamics_spec(spec_)),
      encoder_(encoder_spec(spec_)),
      decoder_(DenseSpec{layer_widths(spec_.latent, spec_.decoder_hidden, spec_.channels), spec_.decoder_activation}) {
  if (spec_.noise_std.size() != spec_.channels || !(spec_.noise_std.array() > 0).all() || !spec_.noise_std.allFinite())
    throw OptionsError("the latent ODE needs one finite noise standard deviation > 0 per channel");
  ode_ = &dynamics_;
  if (spec_.poisson) {
    intensity_ = std::make_unique<Dense>(DenseSpec{layer_widths(spec_.latent, spec_.intensity_hidden, spec_.channels),
                                                   Activation::Tanh});
    with_intensity_ = std::make_unique<WithIntensity>(dynamics_, *intensity_);
    ode_ = with_intensity_.get();
  }
  n_dyn_ = dynamics_.param_size();
  n_int_ = intensity_ ? intensity_->param_size() : 0;
  n_enc_ = encoder_.param_size();
  n_dec_ = decoder_.param_size();
  n_sigma_ = spec_.learn_noise ? spec_.channels : 0;
  off_enc_ = n_dyn_ + n_int_;
  off_dec_ = off_enc_ + n_enc_;
  off_sigma_ = off_dec_ + n_dec_;
}

Vector LatentOde::initial_parameters(std::uint64_t seed) const {
  Vector p = Vector::Zero(param_size());
  p.head(n_dyn_) = dynamics_.initial_parameters(Init::Glorot, seed);
  if (intensity_) intensity_->initialize(Init::SmallOutput, seed + 10, p.segment(n_dyn_, n_int_));
  encoder_.initialize(seed + 20, p.segment(off_enc_, n_enc_));
  decoder_.initialize(Init::Glorot, seed + 30, p.segment(off_dec_, n_dec_));
  if (n_sigma_) p.tail(n_sigma_) = spec_.noise_std.array().log().matrix();
  return p;
}

Vector LatentOde::noise_std(ConstVectorRef params) const {
  return n_sigma_ ? Vector(params.segment(off_sigma_, n_sigma_).array().exp()) : spec_.noise_std;
}

std::uint64_t LatentOde::noise_seed(std::uint64_t seed, std::uint64_t pass, std::uint64_t series) {
  detail::Rng r(seed ^ (0x9E3779B97F4A7C15ULL * (pass + 1)));
  r.set_state(r.next() ^ (0xD1B54A32D192ED03ULL * (series + 1)));
  return r.next();
}

LatentOde::Context::Context(const LatentOde& model, const SolverOptions& options)
    : enc(model.encoder_, options), path(*model.ode_, options) {}

LatentOde::Context::Context(const LatentOde& model, const SolverOptions& options, const SolverOptions& path_options)
    : enc(model.encoder_, options), path(*model.ode_, path_options) {}

double LatentOde::loss_gradient(ConstVectorRef params, const Trajectory& series, const ElboSettings& settings,
                                std::uint64_t noise_seed, double scale, Context& ctx, VectorRef grad) const {
  Vector g = Vector::Zero(param_size());
  const double l = evaluate(params, series, settings, noise_seed, scale, ctx, &g);
  grad += g;
  return l;
}

double LatentOde::loss(ConstVectorRef params, const Trajectory& series, const ElboSettings& settings,
                       std::uint64_t noise_seed, Context& ctx) const {
  return evaluate(params, series, settings, noise_seed, 1.0, ctx, nullptr);
}

double LatentOde::evaluate(ConstVectorRef params, const Trajectory& series, const ElboSettings& s,
                           std::uint64_t noise_seed, double scale, Context& ctx, Vector* grad) const {
  const int L = spec_.latent, D = spec_.channels, n = ode_->state_size(), K = s.samples;
  if (K < 1) throw OptionsError("the ELBO needs at least one sample (got " + std::to_string(K) + ")");
  const Observed obs = observed_rows(series);
  const int T = obs.rows();
  const auto theta_ode = params.head(ode_params());
  const auto theta_dec = params.segment(off_dec_, n_dec_);
  const Vector log_sigma = noise_std(params).array().log().matrix();
  Vector mu, lv;
  ctx.enc.encode(params.segment(off_enc_, n_enc_), obs, mu, lv);
  const Vector sigma = (0.5 * lv.array()).exp().matrix();
  const double beta = s.kl_weight;

  detail::Rng rng(noise_seed);
  struct Sample {
    Vector eps, z0;
    Matrix states, dpred;
    Dense::Tape dec_tape, int_tape;
    Matrix int_u;
    Vector dlog_sigma;
  };
  std::vector<Sample> smp(K);
  std::vector<double> logp(K), logw(K);
  for (int k = 0; k < K; ++k) {
    Sample& q = smp[k];
    q.eps.resize(L);
    for (int i = 0; i < L; ++i) q.eps[i] = rng.normal();
    q.z0 = Vector::Zero(n);
    q.z0.head(L) = mu + sigma.cwiseProduct(q.eps);
    q.states = ctx.path.solve(theta_ode, obs.t0, q.z0, obs.times, &ctx.nfe);
    const Matrix Z = q.states.leftCols(L).transpose();
    Matrix pred;
    decoder_.forward(theta_dec, Z, q.dec_tape, pred);
    q.dlog_sigma = Vector::Zero(D);
    logp[k] = gaussian_loglik(pred.transpose(), obs.values, obs.mask, log_sigma, q.dpred, &q.dlog_sigma);
    if (spec_.poisson) {
      // sum over observed entries of log lambda_c(t_k), minus the compensators Lambda_c(t_last).
      intensity_->forward(params.segment(n_dyn_, n_int_), Z, q.int_tape, q.int_u);
      for (int k2 = 0; k2 < T; ++k2)
        for (int c = 0; c < D; ++c)
          if (obs.mask(k2, c) != 0) logp[k] += std::log(softplus(q.int_u(c, k2)));
      logp[k] -= q.states.row(T - 1).tail(D).sum();
    }
    logw[k] = logp[k];
    if (s.iwae) logw[k] += beta * (log_normal(q.z0.head(L), Vector::Zero(L), Vector::Zero(L)) - log_normal(q.z0.head(L), mu, lv));
  }
  std::vector<double> w(K, 1.0 / K);
  Vector dmu = Vector::Zero(L), dlv = Vector::Zero(L);
  double loss = 0;
  if (s.iwae) {
    loss = -log_mean_exp(logw, w);
  } else {
    for (int k = 0; k < K; ++k) loss -= logp[k] / K;
    loss += beta * kl_standard_normal(mu, lv, dmu, dlv);
    dmu *= beta;
    dlv *= beta;
  }
  if (!grad) return scale * loss;

  Vector& gr = *grad;
  for (int k = 0; k < K; ++k) {
    Sample& q = smp[k];
    // dLoss/dpred = -w_k dlogp_k/dpred, through the decoder onto z(t_k).
    Matrix dZ;
    decoder_.backward(theta_dec, q.dec_tape, -w[k] * q.dpred.transpose(), gr.segment(off_dec_, n_dec_), &dZ);
    Matrix C = Matrix::Zero(T, n);
    C.leftCols(L) = dZ.transpose();
    if (spec_.poisson) {
      Matrix G = Matrix::Zero(D, T), dZi;
      for (int k2 = 0; k2 < T; ++k2)
        for (int c = 0; c < D; ++c)
          if (obs.mask(k2, c) != 0) {
            const double u = q.int_u(c, k2);
            G(c, k2) = -w[k] * softplus_derivative(u) / softplus(u);
          }
      intensity_->backward(params.segment(n_dyn_, n_int_), q.int_tape, G, gr.segment(n_dyn_, n_int_), &dZi);
      C.leftCols(L) += dZi.transpose();
      C.row(T - 1).tail(D).array() += w[k];
    }
    // With regularisers the pullback also integrates their running costs (and the path's
    // solver-error penalty): their terms join the loss, their gradient dz0 and dtheta.
    double extra = 0;
    Vector dz0 = ctx.path.pullback(theta_ode, obs.t0, q.z0, obs.times, q.states, C, gr.head(ode_params()), &ctx.nfe,
                                   s.costs, &extra)
                     .head(L);
    loss += extra;
    if (s.iwae) {
      // log p(z0) = log N(z0; 0, I) depends on z0; log q(z0 | x) at z0 = mu + sigma eps has
      // derivative 0 in mu and -1/2 in each logvar.
      dz0 += w[k] * beta * q.z0.head(L);
      dlv.array() -= 0.5 * beta * w[k];
    }
    if (n_sigma_) gr.segment(off_sigma_, n_sigma_) -= w[k] * q.dlog_sigma;
    dmu += dz0;
    dlv += (dz0.array() * q.eps.array() * 0.5 * sigma.array()).matrix();
  }
  ctx.enc.backward(params.segment(off_enc_, n_enc_), dmu, dlv, gr.segment(off_enc_, n_enc_));
  gr *= scale;
  return scale * loss;
}

std::string PosteriorOptions::validate() const {
  if (!(proposal_scale >= 1) || !std::isfinite(proposal_scale))
    return "proposal_scale = " + std::to_string(proposal_scale) + " must be finite and >= 1";
  if (proposals < 0) return "proposals = " + std::to_string(proposals) + " must be >= 0 (0: 10 per sample)";
  return "";
}

PosteriorSamples LatentOde::sample(ConstVectorRef params, const Trajectory& conditioning, ConstVectorRef times,
                                   int samples, std::uint64_t seed, Context& ctx, const PosteriorOptions& post) const {
  if (std::string why = post.validate(); !why.empty()) throw OptionsError("posterior: " + why);
  const int L = spec_.latent, n = ode_->state_size();
  const Observed obs = observed_rows(conditioning);
  if (post.importance && samples > 0) return importance_sample(params, obs, times, samples, seed, ctx, post);
  PosteriorSamples out;
  ctx.enc.encode(params.segment(off_enc_, n_enc_), obs, out.mu, out.logvar);
  out.noise_std = noise_std(params);
  const Vector sigma = (0.5 * out.logvar.array()).exp().matrix();
  detail::Rng rng(seed);
  const int S = std::max(1, samples);
  for (int s = 0; s < S; ++s) {
    Vector z0 = Vector::Zero(n);
    z0.head(L) = out.mu;
    if (samples > 0)
      for (int i = 0; i < L; ++i) z0[i] += sigma[i] * rng.normal();
    const Matrix states = ctx.path.solve(params.head(ode_params()), obs.t0, z0, times, &ctx.nfe);
    Dense::Tape tape;
    Matrix pred;
    decoder_.forward(params.segment(off_dec_, n_dec_), states.leftCols(L).transpose(), tape, pred);
    out.means.push_back(pred.transpose());
    out.latent.push_back(states.leftCols(L));
  }
  out.ess = S;
  return out;
}

PosteriorSamples LatentOde::importance_sample(ConstVectorRef params, const Observed& obs, ConstVectorRef times,
                                              int samples, std::uint64_t seed, Context& ctx,
                                              const PosteriorOptions& post) const {
  const int L = spec_.latent, D = spec_.channels, n = ode_->state_size(), T = obs.rows();
  const int M = post.proposals > 0 ? post.proposals : 10 * samples;
  PosteriorSamples out;
  ctx.enc.encode(params.segment(off_enc_, n_enc_), obs, out.mu, out.logvar);
  out.noise_std = noise_std(params);
  // The proposal N(mu, (c sigma)^2): log-variance shifted by 2 log c.
  const Vector lv = (out.logvar.array() + 2 * std::log(post.proposal_scale)).matrix();
  const Vector sd = (0.5 * lv.array()).exp().matrix();
  const Vector log_sigma = out.noise_std.array().log().matrix();
  const auto theta_ode = params.head(ode_params());
  const auto theta_dec = params.segment(off_dec_, n_dec_);
  // One solve per proposal through the conditioning rows and the query times together.
  Vector all(T + times.size());
  all << obs.times, times;
  std::sort(all.data(), all.data() + all.size());
  auto row_of = [&](double t) { return std::lower_bound(all.data(), all.data() + all.size(), t) - all.data(); };
  std::vector<Eigen::Index> obs_row(T), query_row(times.size());
  for (int k = 0; k < T; ++k) obs_row[k] = row_of(obs.times[k]);
  for (Eigen::Index k = 0; k < times.size(); ++k) query_row[k] = row_of(times[k]);
  detail::Rng rng(seed);
  std::vector<Matrix> states(M);
  std::vector<double> logw(M), w;
  for (int m = 0; m < M; ++m) {
    Vector z0 = Vector::Zero(n);
    for (int i = 0; i < L; ++i) z0[i] = out.mu[i] + sd[i] * rng.normal();
    states[m] = ctx.path.solve(theta_ode, obs.t0, z0, all, &ctx.nfe);
    Matrix at_obs(L, T), dpred, u;
    for (int k = 0; k < T; ++k) at_obs.col(k) = states[m].row(obs_row[k]).head(L).transpose();
    Dense::Tape tape;
    Matrix pred;
    decoder_.forward(theta_dec, at_obs, tape, pred);
    double lw = gaussian_loglik(pred.transpose(), obs.values, obs.mask, log_sigma, dpred, nullptr);
    if (spec_.poisson) {
      intensity_->forward(params.segment(n_dyn_, n_int_), at_obs, tape, u);
      for (int k = 0; k < T; ++k)
        for (int c = 0; c < D; ++c)
          if (obs.mask(k, c) != 0) lw += std::log(softplus(u(c, k)));
      lw -= states[m].row(obs_row[T - 1]).segment(L, D).sum();
    }
    logw[m] = lw + log_normal(z0.head(L), Vector::Zero(L), Vector::Zero(L)) - log_normal(z0.head(L), out.mu, lv);
  }
  log_mean_exp(logw, w);
  double w2 = 0;
  for (double x : w) w2 += x * x;
  out.ess = 1 / w2;
  // Systematic resampling: one uniform, `samples` equally spaced points through the cumulative weights.
  const double u0 = rng.uniform() / samples;
  double cum = w[0];
  int m = 0;
  for (int s = 0; s < samples; ++s) {
    const double u = u0 + static_cast<double>(s) / samples;
    while (u > cum && m + 1 < M) cum += w[++m];
    Matrix z(L, times.size());
    for (Eigen::Index k = 0; k < times.size(); ++k) z.col(k) = states[m].row(query_row[k]).head(L).transpose();
    Dense::Tape tape;
    Matrix pred;
    decoder_.forward(theta_dec, z, tape, pred);
    out.means.push_back(pred.transpose());
    out.latent.push_back(z.transpose());
  }
  return out;
}

}  // namespace cvnode::latent

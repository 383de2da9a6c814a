#include "train/random_effect_prior.h"

#include <cmath>
#include <cstdio>

#include "cvnode/errors.h"

namespace cvnode::detail {

RandomEffectPrior RandomEffectPrior::start(const RandomEffectsOptions& o, const std::vector<Trajectory>& train) {
  RandomEffectPrior p;
  p.omega.resize(o.size());
  for (int e = 0; e < o.size(); ++e) p.omega[e] = o.omega_of(e);
  double ss = 0;
  long n = 0;
  for (const Trajectory& t : train)
    for (Eigen::Index k = 0; k < t.values.rows(); ++k)
      for (Eigen::Index c = 0; c < t.values.cols(); ++c)
        if (t.mask.size() == 0 || t.mask(k, c) != 0) ss += t.values(k, c) * t.values(k, c), ++n;
  p.sigma2 = n > 0 && ss > 0 ? ss / static_cast<double>(n) : 1.0;
  return p;
}

void RandomEffectPrior::add_gradient(const RandomEffectsDynamics& re, const Vector& params,
                                     const std::vector<int>& series, long entries, Vector& grad) const {
  const int k = re.effects(), off = re.eta_offset();
  const double c = 2 * sigma2 / static_cast<double>(std::max(1L, entries));
  for (int s : series) {
    if (s < 0 || s >= re.slots()) continue;
    grad.segment(off + s * k, k) += c * params.segment(off + s * k, k).cwiseQuotient(omega);
  }
}

void RandomEffectPrior::update(const Model& model, const Vector& params, double train_mse,
                               const std::vector<Trajectory>* train, int train_subjects, const TrainerSettings& settings,
                               int threads) {
  if (std::isfinite(train_mse) && train_mse > 0) sigma2 = train_mse;
  const RandomEffectsDynamics* re = model.random_effects();
  if (!train || !re || train_subjects == 0) return;
  const int k = re->effects(), S = train_subjects, P = model.network_params();
  Matrix etas(S, k);
  for (int i = 0; i < S; ++i) etas.row(i) = params.segment(re->eta_offset() + i * k, k).transpose();
  Problem problem(*train, make_loss(settings.loss, model.observation_map()));
  problem.set_loss_parameters(params.segment(P, model.readout_params()));
  EmpiricalBayesOptions eb;
  eb.omega = omega;
  eb.sigma2 = sigma2;
  eb.optimize = false;
  eb.threads = threads;
  const auto est = empirical_bayes(*re, params.head(P), problem, settings.solver, eb, &etas);
  Vector next = Vector::Zero(k);
  int used = 0;
  for (int i = 0; i < S; ++i) {
    if (!est[static_cast<std::size_t>(i)].error.empty()) continue;
    next += etas.row(i).transpose().cwiseAbs2() + est[static_cast<std::size_t>(i)].covariance.diagonal();
    ++used;
  }
  if (used > 0) omega = (next / used).cwiseMax(1e-8);
}

std::string RandomEffectPrior::describe(const RandomEffectsOptions& o) const {
  std::string s = "random effects: omega (sd)";
  char buf[64];
  for (int e = 0; e < o.size(); ++e) {
    std::snprintf(buf, sizeof buf, " %s %.4g", o.names[static_cast<std::size_t>(e)].c_str(), std::sqrt(omega[e]));
    s += buf;
  }
  std::snprintf(buf, sizeof buf, ", residual sd %.4g", std::sqrt(sigma2));
  return s + buf;
}

void RandomEffectPrior::store(Checkpoint& c) const {
  c.optimizer_vectors["re_omega"] = omega;
  c.optimizer_vectors["re_sigma2"] = Vector::Constant(1, sigma2);
}

void RandomEffectPrior::restore(const Checkpoint& c) {
  const auto w = c.optimizer_vectors.find("re_omega");
  const auto s = c.optimizer_vectors.find("re_sigma2");
  if (w == c.optimizer_vectors.end() || s == c.optimizer_vectors.end() || s->second.size() != 1)
    throw DataError("checkpoint: the random effects' Omega and sigma^2 (re_omega, re_sigma2) are missing");
  omega = w->second;
  sigma2 = s->second[0];
}

}  // namespace cvnode::detail

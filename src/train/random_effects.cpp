#include "cvnode/random_effects.h"

#include <omp.h>

#include <Eigen/Cholesky>
#include <cmath>
#include <exception>
#include <limits>

#include "cvnode/errors.h"
#include "cvnode/mlp.h"
#include "cvnode/solver.h"

namespace cvnode {

std::string RandomEffectMap::validate(int base_params) const {
  if (effects < 0) return "random effects: " + std::to_string(effects) + " effects (need >= 0)";
  for (const auto* list : {&scale, &shift})
    for (const Entry& e : *list) {
      if (e.parameter < 0 || e.parameter >= base_params)
        return "random effects: parameter " + std::to_string(e.parameter) + " is not one of the model's " +
               std::to_string(base_params);
      if (e.effect < 0 || e.effect >= effects)
        return "random effects: effect " + std::to_string(e.effect) + " is not one of the " + std::to_string(effects);
      if (!std::isfinite(e.coef)) return "random effects: a loading is not finite";
    }
  for (int r : embed_rows)
    if (r < 0 || r >= base_params)
      return "random effects: embedding row " + std::to_string(r) + " is not one of the model's " +
             std::to_string(base_params) + " parameters";
  return {};
}

void add_output_scale(RandomEffectMap& map, const Mlp& mlp, int offset, int output, int effect, double coef) {
  const auto& layers = mlp.spec().layers;
  const int L = static_cast<int>(layers.size()) - 1, out = layers.back();
  if (output < 0 || output >= out)
    throw OptionsError("random effects: the network has " + std::to_string(out) + " outputs, not output " +
                       std::to_string(output));
  // The last layer's input width (the first layer also reads t and u): W_l (out x in, row-major)
  // is followed by b_l.
  const int in = (mlp.bias_offset(L - 1) - mlp.weight_offset(L - 1)) / out;
  const int w = offset + mlp.weight_offset(L - 1) + output * in;
  for (int c = 0; c < in; ++c) map.scale.push_back({w + c, effect, coef});
  map.scale.push_back({offset + mlp.bias_offset(L - 1) + output, effect, coef});
}

void add_first_layer_embedding(RandomEffectMap& map, const Mlp& mlp, int offset) {
  const int h = mlp.spec().layers[1];
  for (int r = 0; r < h; ++r) map.embed_rows.push_back(offset + mlp.bias_offset(0) + r);
}

RandomEffectsDynamics::RandomEffectsDynamics(std::shared_ptr<const Dynamics> base, RandomEffectMap map, int slots)
    : base_(std::move(base)), map_(std::move(map)), slots_(slots) {
  if (!base_) throw OptionsError("random effects: no base dynamics");
  pb_ = base_->param_size();
  if (std::string why = map_.validate(pb_); !why.empty()) throw OptionsError(why);
  if (slots_ < 0) throw OptionsError("random effects: " + std::to_string(slots_) + " subjects (need >= 0)");
}

int RandomEffectsDynamics::slot(const ConstVectorRef* u) const {
  if (!u || u->size() == 0) return -1;
  const double s = (*u)[u->size() - 1];
  if (!(s >= 0) || s >= slots_) return -1;
  return static_cast<int>(std::lround(s));
}

// work = [eta (k) | theta_i (pb) | m (pb): the multiplicative factors | gb (pb) | base's work]
void RandomEffectsDynamics::subject_theta(ConstVectorRef theta, int s, double* eta, double* theta_i) const {
  const int k = map_.effects, R = static_cast<int>(map_.embed_rows.size());
  double* m = theta_i + pb_;
  for (int e = 0; e < k; ++e) eta[e] = s >= 0 ? theta[eta_offset() + s * k + e] : 0.0;
  for (int j = 0; j < pb_; ++j) m[j] = 1.0;
  for (const auto& en : map_.scale) m[en.parameter] *= std::exp(en.coef * eta[en.effect]);
  for (int j = 0; j < pb_; ++j) theta_i[j] = theta[j] * m[j];
  for (const auto& en : map_.shift) theta_i[en.parameter] += en.coef * eta[en.effect];
  for (int r = 0; r < R; ++r) {
    double v = 0;
    for (int e = 0; e < k; ++e) v += theta[pb_ + r * k + e] * eta[e];
    theta_i[map_.embed_rows[static_cast<std::size_t>(r)]] += v;
  }
}

Vector RandomEffectsDynamics::subject_parameters(ConstVectorRef params, ConstVectorRef eta) const {
  if (params.size() < eta_offset() || eta.size() != map_.effects)
    throw OptionsError("random effects: " + std::to_string(params.size()) + " parameters and " +
                       std::to_string(eta.size()) + " effects given, need >= " + std::to_string(eta_offset()) +
                       " and " + std::to_string(map_.effects));
  // One temporary slot holding eta: the table of `params` is not read.
  Vector p(eta_offset() + map_.effects);
  p.head(eta_offset()) = params.head(eta_offset());
  p.tail(map_.effects) = eta;
  Vector e(map_.effects), out(2 * pb_);
  RandomEffectsDynamics one(base_, map_, 1);
  one.subject_theta(p, 0, e.data(), out.data());
  return out.head(pb_);
}

// The wrapper's workspace for one call, with eta and theta_i of the subject that u names (none:
// the typical subject): work = [eta (k) | theta_i (pb) | m (pb) | gb (pb) | the base's work].
struct RandomEffectsDynamics::Split {
  double* eta;
  double* th;  // theta_i, then m
  double* gb;  // the base's a^T df/dtheta_i
  Eigen::Map<const Vector> theta_i;
  VectorRef sub;
  int slot;
};

RandomEffectsDynamics::Split RandomEffectsDynamics::split(ConstVectorRef theta, const ConstVectorRef* u,
                                                          VectorRef work) const {
  const int k = map_.effects;
  double* eta = work.data();
  double* th = eta + k;
  const int s = slot(u);
  subject_theta(theta, s, eta, th);
  return {eta, th, th + 2 * pb_, Eigen::Map<const Vector>(th, pb_), work.segment(k + 3 * pb_, work.size() - k - 3 * pb_),
          s};
}

// The base's inputs: u without its last entry (the subject's row); none when the base takes none.
bool RandomEffectsDynamics::base_inputs(const ConstVectorRef* u) const { return u && base_->input_size() > 0; }

void RandomEffectsDynamics::rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const {
  rhs_at(t, z, nullptr, theta, f, work);
}

void RandomEffectsDynamics::rhs_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, VectorRef f,
                                  VectorRef work) const {
  rhs_at(t, z, &u, theta, f, work);
}

void RandomEffectsDynamics::rhs_at(double t, ConstVectorRef z, const ConstVectorRef* u, ConstVectorRef theta,
                                   VectorRef f, VectorRef work) const {
  Split w = split(theta, u, work);
  if (base_inputs(u)) base_->rhs_u(t, z, u->head(u->size() - 1), w.theta_i, f, w.sub);
  else base_->rhs(t, z, w.theta_i, f, w.sub);
}

void RandomEffectsDynamics::vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                                VectorRef a_dfdtheta, VectorRef work) const {
  vjp_at(t, z, nullptr, theta, a, a_dfdz, a_dfdtheta, work);
}

void RandomEffectsDynamics::vjp_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, ConstVectorRef a,
                                  VectorRef a_dfdz, VectorRef a_dfdtheta, VectorRef work) const {
  vjp_at(t, z, &u, theta, a, a_dfdz, a_dfdtheta, work);
}

void RandomEffectsDynamics::vjp_at(double t, ConstVectorRef z, const ConstVectorRef* u, ConstVectorRef theta,
                                   ConstVectorRef a, VectorRef a_dfdz, VectorRef a_dfdtheta, VectorRef work) const {
  Split w = split(theta, u, work);
  const int k = map_.effects, s = w.slot;
  const double* eta = w.eta;
  double* gb = w.gb;
  const bool params = a_dfdtheta.size() > 0;
  Eigen::Map<Vector> g(gb, params ? pb_ : 0);
  if (base_inputs(u)) base_->vjp_u(t, z, u->head(u->size() - 1), w.theta_i, a, a_dfdz, g, w.sub);
  else base_->vjp(t, z, w.theta_i, a, a_dfdz, g, w.sub);
  if (!params) return;
  // Chain rule through theta_i = theta .* m + shifts + W eta.
  const double* m = w.th + pb_;
  a_dfdtheta.setZero();
  for (int j = 0; j < pb_; ++j) a_dfdtheta[j] = gb[j] * m[j];
  const int R = static_cast<int>(map_.embed_rows.size());
  for (int r = 0; r < R; ++r)
    for (int e = 0; e < k; ++e) a_dfdtheta[pb_ + r * k + e] = gb[map_.embed_rows[static_cast<std::size_t>(r)]] * eta[e];
  if (s < 0) return;  // the typical subject: no eta to move
  double* d_eta = a_dfdtheta.data() + eta_offset() + s * k;
  for (const auto& en : map_.scale) d_eta[en.effect] += gb[en.parameter] * theta[en.parameter] * m[en.parameter] * en.coef;
  for (const auto& en : map_.shift) d_eta[en.effect] += gb[en.parameter] * en.coef;
  for (int r = 0; r < R; ++r)
    for (int e = 0; e < k; ++e) d_eta[e] += gb[map_.embed_rows[static_cast<std::size_t>(r)]] * theta[pb_ + r * k + e];
}

void RandomEffectsDynamics::jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const {
  jacobian_at(t, z, nullptr, theta, J, work);
}

void RandomEffectsDynamics::jacobian_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, MatrixRef J,
                                       VectorRef work) const {
  jacobian_at(t, z, &u, theta, J, work);
}

void RandomEffectsDynamics::jacobian_at(double t, ConstVectorRef z, const ConstVectorRef* u, ConstVectorRef theta,
                                        MatrixRef J, VectorRef work) const {
  Split w = split(theta, u, work);
  if (base_inputs(u)) base_->jacobian_u(t, z, u->head(u->size() - 1), w.theta_i, J, w.sub);
  else base_->jacobian(t, z, w.theta_i, J, w.sub);
}

void RandomEffectsDynamics::jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
                                VectorRef work) const {
  jvp_at(t, z, nullptr, theta, v, Jv, work);
}

void RandomEffectsDynamics::jvp_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, ConstVectorRef v,
                                  VectorRef Jv, VectorRef work) const {
  jvp_at(t, z, &u, theta, v, Jv, work);
}

void RandomEffectsDynamics::jvp_at(double t, ConstVectorRef z, const ConstVectorRef* u, ConstVectorRef theta,
                                   ConstVectorRef v, VectorRef Jv, VectorRef work) const {
  Split w = split(theta, u, work);
  if (base_inputs(u)) base_->jvp_u(t, z, u->head(u->size() - 1), w.theta_i, v, Jv, w.sub);
  else base_->jvp(t, z, w.theta_i, v, Jv, w.sub);
}

std::shared_ptr<const RandomEffectsDynamics> RandomEffectsDynamics::with_slots(int slots) const {
  return std::make_shared<RandomEffectsDynamics>(base_, map_, slots);
}

Vector RandomEffectsDynamics::parameters_with(ConstVectorRef params, const Matrix& etas) const {
  if (params.size() < eta_offset() || (etas.size() > 0 && etas.cols() != map_.effects))
    throw OptionsError("random effects: parameters_with needs >= " + std::to_string(eta_offset()) +
                       " parameters and " + std::to_string(map_.effects) + " columns of etas");
  Vector p(eta_offset() + etas.rows() * map_.effects);
  p.head(eta_offset()) = params.head(eta_offset());
  for (Eigen::Index i = 0; i < etas.rows(); ++i) p.segment(eta_offset() + i * map_.effects, map_.effects) = etas.row(i).transpose();
  return p;
}

Vector RandomEffectsDynamics::recentered(ConstVectorRef params, int rows) const {
  Vector p = params;
  const int k = map_.effects;
  if (rows < 0 || rows > slots_) rows = slots_;
  if (rows == 0 || k == 0) return p;
  Vector mean = Vector::Zero(k);
  for (int s = 0; s < rows; ++s) mean += params.segment(eta_offset() + s * k, k);
  mean /= rows;
  // An effect moves only if every parameter it acts on takes it exactly.
  std::vector<bool> scaled(static_cast<std::size_t>(pb_), false), added(static_cast<std::size_t>(pb_), false);
  for (const auto& en : map_.scale) scaled[static_cast<std::size_t>(en.parameter)] = true;
  for (const auto& en : map_.shift) added[static_cast<std::size_t>(en.parameter)] = true;
  for (int r : map_.embed_rows) added[static_cast<std::size_t>(r)] = true;
  std::vector<bool> movable(static_cast<std::size_t>(k), true);
  auto block = [&](const RandomEffectMap::Entry& en) {
    if (scaled[static_cast<std::size_t>(en.parameter)] && added[static_cast<std::size_t>(en.parameter)])
      movable[static_cast<std::size_t>(en.effect)] = false;
  };
  for (const auto& en : map_.scale) block(en);
  for (const auto& en : map_.shift) block(en);
  for (std::size_t r = 0; r < map_.embed_rows.size(); ++r)
    if (scaled[static_cast<std::size_t>(map_.embed_rows[r])]) std::fill(movable.begin(), movable.end(), false);
  for (int e = 0; e < k; ++e)
    if (!movable[static_cast<std::size_t>(e)]) mean[e] = 0;
  for (const auto& en : map_.scale) p[en.parameter] *= std::exp(en.coef * mean[en.effect]);
  for (const auto& en : map_.shift) p[en.parameter] += en.coef * mean[en.effect];
  for (std::size_t r = 0; r < map_.embed_rows.size(); ++r)
    for (int e = 0; e < k; ++e)
      p[map_.embed_rows[r]] += params[pb_ + static_cast<int>(r) * k + e] * mean[e];
  for (int s = 0; s < slots_; ++s) p.segment(eta_offset() + s * k, k) -= mean;
  return p;
}

namespace {

// One subject's residuals (observed entries, in the problem's order) at eta; false when the
// solve failed or is not finite.
bool residuals(Solver& solver, const RandomEffectsDynamics& one, Vector& p, const Problem& problem, int s,
               const Trajectory& tr, ConstVectorRef eta, Vector& r) {
  p.tail(one.effects()) = eta;
  try {
    Solution sol = solver.solve(p, tr);
    sol.states.conservativeResize(tr.times.size(), Eigen::NoChange);
    const Matrix pred = problem.predict(s, sol.states);
    Eigen::Index n = 0;
    for (Eigen::Index k = 0; k < tr.times.size(); ++k)
      for (Eigen::Index c = 0; c < tr.values.cols(); ++c)
        if (tr.mask.size() == 0 || tr.mask(k, c) != 0) r[n++] = pred(k, c) - tr.values(k, c);
    return r.allFinite();
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

std::vector<SubjectEstimate> empirical_bayes(const RandomEffectsDynamics& dynamics, ConstVectorRef params,
                                             const Problem& problem, const SolverOptions& options,
                                             const EmpiricalBayesOptions& eb, const Matrix* start) {
  const int k = dynamics.effects(), S = problem.size();
  if (eb.omega.size() != k || !(eb.omega.array() > 0).all())
    throw OptionsError("empirical Bayes: Omega needs " + std::to_string(k) + " variances > 0");
  if (!(eb.sigma2 > 0) || !std::isfinite(eb.sigma2))
    throw OptionsError("empirical Bayes: sigma^2 = " + std::to_string(eb.sigma2) + " must be > 0");
  const auto one = dynamics.with_slots(1);
  const Vector omega_inv = eb.omega.cwiseInverse();
  const int threads = std::max(1, std::min(eb.threads > 0 ? eb.threads : omp_get_max_threads(), std::max(1, S)));
  std::vector<std::unique_ptr<Solver>> solvers;
  for (int i = 0; i < threads; ++i) solvers.push_back(std::make_unique<Solver>(*one, options));
  std::vector<SubjectEstimate> out(static_cast<std::size_t>(S));
  const Vector shared = params.head(dynamics.eta_offset());
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int s = 0; s < S; ++s) {
    SubjectEstimate& est = out[static_cast<std::size_t>(s)];
    Solver& solver = *solvers[static_cast<std::size_t>(omp_get_thread_num())];
    Trajectory tr = problem.series(s);
    if (tr.covariates.size() == 0) {
      est.error = "the series has no subject row (its last covariate)";
      est.eta = Vector::Zero(k);
      est.covariance = eb.omega.asDiagonal();
      continue;
    }
    tr.covariates[tr.covariates.size() - 1] = 0;
    Vector p(dynamics.eta_offset() + k);
    p.head(dynamics.eta_offset()) = shared;
    const Eigen::Index n = tr.observed_entries();
    Vector eta = start ? Vector(start->row(s).transpose()) : Vector::Zero(k);
    Vector r(n), rp(n), rm(n);
    Matrix J(n, k);
    auto objective = [&](const Vector& e, const Vector& res) {
      return res.squaredNorm() / (2 * eb.sigma2) + 0.5 * e.dot(omega_inv.cwiseProduct(e));
    };
    // J by central differences; false when a solve failed.
    auto jacobian = [&](const Vector& e) {
      constexpr double h = 1e-3;
      for (int j = 0; j < k; ++j) {
        Vector ep = e, em = e;
        ep[j] += h;
        em[j] -= h;
        if (!residuals(solver, *one, p, problem, s, tr, ep, rp) || !residuals(solver, *one, p, problem, s, tr, em, rm))
          return false;
        J.col(j) = (rp - rm) / (2 * h);
      }
      return true;
    };
    est.eta = eta;
    est.covariance = eb.omega.asDiagonal();
    if (n == 0) continue;
    if (!residuals(solver, *one, p, problem, s, tr, eta, r) || !jacobian(eta)) {
      est.error = "the solve at the start failed";
      continue;
    }
    double f = objective(eta, r), lambda = 1e-3;
    int it = 0;
    for (; eb.optimize && it < eb.max_iterations; ++it) {
      const Matrix H = J.transpose() * J / eb.sigma2 + Matrix(omega_inv.asDiagonal());
      const Vector g = J.transpose() * r / eb.sigma2 + omega_inv.cwiseProduct(eta);
      bool moved = false;
      double step = 0;
      for (int tries = 0; tries < 12 && !moved; ++tries) {
        Matrix A = H;
        A.diagonal() *= 1 + lambda;
        const Vector d = -A.ldlt().solve(g);
        const Vector trial = eta + d;
        Vector rt(n);
        if (residuals(solver, *one, p, problem, s, tr, trial, rt) && objective(trial, rt) < f) {
          step = d.lpNorm<Eigen::Infinity>();
          f = objective(trial, rt);
          eta = trial;
          r = rt;
          lambda = std::max(lambda / 10, 1e-9);
          moved = true;
        } else {
          lambda *= 10;
        }
      }
      if (!moved) break;                       // no descent left along any damped step
      if (!jacobian(eta)) {
        est.error = "a solve near the mode failed";
        break;
      }
      if (step < 1e-6) break;
    }
    est.eta = eta;
    est.iterations = it;
    est.objective = f;
    const Matrix H = J.transpose() * J / eb.sigma2 + Matrix(omega_inv.asDiagonal());
    est.covariance = H.ldlt().solve(Matrix::Identity(k, k));
  }
  return out;
}

}  // namespace cvnode

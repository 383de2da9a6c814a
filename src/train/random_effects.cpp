#include "cvnode/random_effects.h"

#include <cmath>

#include "cvnode/errors.h"
#include "cvnode/mlp.h"

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

#define CVNODE_RE_SPLIT                                                         \
  const int k = map_.effects;                                                   \
  double* eta = work.data();                                                    \
  double* th = eta + k;                                                         \
  double* gb = th + 2 * pb_;                                                    \
  Eigen::Map<const Vector> theta_i(th, pb_);                                    \
  auto sub = work.segment(k + 3 * pb_, work.size() - k - 3 * pb_);

void RandomEffectsDynamics::rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const {
  CVNODE_RE_SPLIT
  (void)gb;
  subject_theta(theta, -1, eta, th);
  base_->rhs(t, z, theta_i, f, sub);
}

void RandomEffectsDynamics::rhs_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, VectorRef f,
                                  VectorRef work) const {
  CVNODE_RE_SPLIT
  (void)gb;
  subject_theta(theta, slot(&u), eta, th);
  if (base_->input_size() > 0) base_->rhs_u(t, z, u.head(u.size() - 1), theta_i, f, sub);
  else base_->rhs(t, z, theta_i, f, sub);
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
  CVNODE_RE_SPLIT
  const int s = slot(u);
  subject_theta(theta, s, eta, th);
  const bool params = a_dfdtheta.size() > 0;
  Eigen::Map<Vector> g(gb, params ? pb_ : 0);
  if (u && base_->input_size() > 0) base_->vjp_u(t, z, u->head(u->size() - 1), theta_i, a, a_dfdz, g, sub);
  else base_->vjp(t, z, theta_i, a, a_dfdz, g, sub);
  if (!params) return;
  // Chain rule through theta_i = theta .* m + shifts + W eta.
  const double* m = th + pb_;
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
  CVNODE_RE_SPLIT
  (void)gb;
  subject_theta(theta, -1, eta, th);
  base_->jacobian(t, z, theta_i, J, sub);
}

void RandomEffectsDynamics::jacobian_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, MatrixRef J,
                                       VectorRef work) const {
  CVNODE_RE_SPLIT
  (void)gb;
  subject_theta(theta, slot(&u), eta, th);
  if (base_->input_size() > 0) base_->jacobian_u(t, z, u.head(u.size() - 1), theta_i, J, sub);
  else base_->jacobian(t, z, theta_i, J, sub);
}

void RandomEffectsDynamics::jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
                                VectorRef work) const {
  CVNODE_RE_SPLIT
  (void)gb;
  subject_theta(theta, -1, eta, th);
  base_->jvp(t, z, theta_i, v, Jv, sub);
}

void RandomEffectsDynamics::jvp_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, ConstVectorRef v,
                                  VectorRef Jv, VectorRef work) const {
  CVNODE_RE_SPLIT
  (void)gb;
  subject_theta(theta, slot(&u), eta, th);
  if (base_->input_size() > 0) base_->jvp_u(t, z, u.head(u.size() - 1), theta_i, v, Jv, sub);
  else base_->jvp(t, z, theta_i, v, Jv, sub);
}

#undef CVNODE_RE_SPLIT

}  // namespace cvnode

#include "cvnode/optimizer.h"

#include <cmath>
#include <sstream>

#include "core/names.h"
#include "cvnode/errors.h"

namespace cvnode {

namespace {
const detail::EnumName<OptimizerKind> kOptimizerKindNames[] = {
    {OptimizerKind::Adam, "adam"},
    {OptimizerKind::AdamW, "adamw"},
    {OptimizerKind::Sgd, "sgd"}};
}  // namespace

OptimizerKind parse_optimizer(const std::string& name) {
  return detail::parse_enum(kOptimizerKindNames, name, "optimizer");
}

const char* optimizer_name(OptimizerKind k) { return detail::enum_name(kOptimizerKindNames, k); }

std::string OptimizerOptions::validate() const {
  std::ostringstream o;
  o.precision(17);
  if (!(lr > 0) || !std::isfinite(lr)) o << "optimizer.lr = " << lr << " must be finite and > 0";
  else if (!(beta1 >= 0 && beta1 < 1)) o << "optimizer.beta1 = " << beta1 << " must lie in [0, 1)";
  else if (!(beta2 >= 0 && beta2 < 1)) o << "optimizer.beta2 = " << beta2 << " must lie in [0, 1)";
  else if (!(eps > 0)) o << "optimizer.eps = " << eps << " must be > 0";
  else if (!(momentum >= 0 && momentum < 1)) o << "optimizer.momentum = " << momentum << " must lie in [0, 1)";
  else if (!(weight_decay >= 0) || !std::isfinite(weight_decay)) o << "optimizer.weight_decay = " << weight_decay << " must be finite and >= 0";
  else if (!(clip_norm >= 0) || !std::isfinite(clip_norm)) o << "optimizer.clip_norm = " << clip_norm << " must be finite and >= 0 (0 = off)";
  return o.str();
}

Optimizer::Optimizer(const OptimizerOptions& options, int size) : o_(options) {
  const std::string why = o_.validate();
  if (!why.empty()) throw OptionsError(why);
  m_.setZero(size);
  v_.setZero(o_.kind == OptimizerKind::Sgd ? 0 : size);
}

void Optimizer::set_state(const Vector& m, const Vector& v, long steps) {
  if (m.size() != m_.size() || v.size() != v_.size())
    throw OptionsError("optimizer state has " + std::to_string(m.size()) + "/" +
                       std::to_string(v.size()) + " entries, expected " + std::to_string(m_.size()) +
                       "/" + std::to_string(v_.size()));
  m_ = m;
  v_ = v;
  t_ = steps;
}

void Optimizer::step(VectorRef x, const Vector& g, double lr, const Vector& trainable,
                     const Vector& decay) {
  ++t_;
  const Eigen::Index n = x.size();
  const double wd = o_.weight_decay;
  if (o_.kind == OptimizerKind::Sgd) {
    for (Eigen::Index i = 0; i < n; ++i) {
      if (trainable[i] == 0) continue;
      const double gi = g[i] + wd * decay[i] * x[i];
      m_[i] = o_.momentum * m_[i] + gi;
      const double d = o_.nesterov ? gi + o_.momentum * m_[i] : m_[i];
      x[i] -= lr * d;
    }
    return;
  }
  // Bias corrections as in Kingma & Ba (2015), computed once per step.
  const double c1 = 1.0 - std::pow(o_.beta1, static_cast<double>(t_));
  const double c2 = 1.0 - std::pow(o_.beta2, static_cast<double>(t_));
  const bool decoupled = o_.kind == OptimizerKind::AdamW;
  for (Eigen::Index i = 0; i < n; ++i) {
    if (trainable[i] == 0) continue;
    const double gi = decoupled ? g[i] : g[i] + wd * decay[i] * x[i];
    m_[i] = o_.beta1 * m_[i] + (1 - o_.beta1) * gi;
    v_[i] = o_.beta2 * v_[i] + (1 - o_.beta2) * gi * gi;
    const double mh = m_[i] / c1, vh = v_[i] / c2;
    if (decoupled) x[i] -= lr * wd * decay[i] * x[i];
    x[i] -= lr * mh / (std::sqrt(vh) + o_.eps);
  }
}

double clip_gradient(Vector& g, double max_norm) {
  const double norm = g.norm();
  if (max_norm > 0 && norm > max_norm) g *= max_norm / norm;
  return norm;
}

}  // namespace cvnode

#include "cvnode/hybrid.h"

#include <algorithm>

#include "cvnode/errors.h"

namespace cvnode {

namespace {
using VecMap = Eigen::Map<Vector>;

std::vector<int> iota(int n) {
  std::vector<int> v(n);
  for (int i = 0; i < n; ++i) v[i] = i;
  return v;
}

void check_indices(const std::vector<int>& idx, int n, const char* name) {
  for (int i : idx)
    if (i < 0 || i >= n)
      throw OptionsError(std::string("Hybrid: ") + name + " has index " + std::to_string(i) + " outside the state [0, " +
                         std::to_string(n) + ")");
}
}  // namespace

Hybrid::Hybrid(std::shared_ptr<const Dynamics> physics, std::shared_ptr<const Dynamics> network, HybridCoupling c)
    : physics_(std::move(physics)), network_(std::move(network)) {
  if (!physics_ && !network_) throw OptionsError("Hybrid needs a physics term, a network, or both");
  n_ = physics_ ? physics_->state_size() : network_->state_size();
  pg_ = physics_ ? physics_->param_size() : 0;
  pn_ = network_ ? network_->param_size() : 0;
  int sub = physics_ ? physics_->workspace_size() : 0;
  if (network_) {
    m_ = network_->state_size();
    in_ = c.input_indices.empty() ? iota(n_) : c.input_indices;
    if (c.output_matrix.size() > 0) {
      if (!c.output_indices.empty() || c.output_mask.size() > 0)
        throw OptionsError("Hybrid: give either output_matrix or output_indices/output_mask, not both");
      if (c.output_matrix.rows() != n_ || c.output_matrix.cols() != m_)
        throw OptionsError("Hybrid: output_matrix is " + std::to_string(c.output_matrix.rows()) + "x" +
                           std::to_string(c.output_matrix.cols()) + ", expected state x network = " +
                           std::to_string(n_) + "x" + std::to_string(m_));
      if (!c.output_matrix.allFinite()) throw OptionsError("Hybrid: output_matrix is not finite");
      S_ = c.output_matrix;
    }
    if (S_.size() == 0) out_ = c.output_indices.empty() ? in_ : c.output_indices;
    if (static_cast<int>(in_.size()) != m_)
      throw OptionsError("Hybrid: the network has state size " + std::to_string(m_) + " but reads " +
                         std::to_string(in_.size()) + " components (input_indices)");
    if (S_.size() == 0 && static_cast<int>(out_.size()) != m_)
      throw OptionsError("Hybrid: the network has " + std::to_string(m_) + " outputs but output_indices has " +
                         std::to_string(out_.size()));
    check_indices(in_, n_, "input_indices");
    if (S_.size() == 0) check_indices(out_, n_, "output_indices");
    mask_ = c.output_mask.size() ? c.output_mask : Vector::Ones(m_);
    scale_ = c.input_scale.size() ? c.input_scale : Vector::Ones(m_);
    if (mask_.size() != m_)
      throw OptionsError("Hybrid: output_mask has " + std::to_string(mask_.size()) + " entries for " +
                         std::to_string(m_) + " network outputs");
    if (scale_.size() != m_)
      throw OptionsError("Hybrid: input_scale has " + std::to_string(scale_.size()) + " entries for " +
                         std::to_string(m_) + " network inputs");
    if (!mask_.allFinite() || !scale_.allFinite()) throw OptionsError("Hybrid: output_mask or input_scale is not finite");
    sub = std::max(sub, network_->workspace_size());
  } else if (!c.input_indices.empty() || !c.output_indices.empty() || c.output_mask.size() || c.input_scale.size() ||
             c.output_matrix.size()) {
    throw OptionsError("Hybrid: a coupling was given but there is no network");
  }
  x_off_ = 0;
  y_off_ = m_;
  jn_off_ = 2 * m_;
  sub_off_ = jn_off_ + m_ * m_;
  sub_size_ = sub;
  n_work_ = sub_off_ + sub_size_;
}

void Hybrid::gather_input(ConstVectorRef z, double* zin) const {
  for (int j = 0; j < m_; ++j) zin[j] = scale_[j] * z[in_[j]];
}

void Hybrid::scatter(const double* y, VectorRef f) const {
  if (S_.size()) {
    f.noalias() += S_ * Eigen::Map<const Vector>(y, m_);
    return;
  }
  for (int i = 0; i < m_; ++i) f[out_[i]] += mask_[i] * y[i];
}

void Hybrid::rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const {
  rhs_at(t, z, nullptr, theta, f, work);
}
void Hybrid::rhs_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, VectorRef f, VectorRef work) const {
  rhs_at(t, z, &u, theta, f, work);
}
void Hybrid::rhs_at(double t, ConstVectorRef z, const ConstVectorRef* u, ConstVectorRef theta, VectorRef f,
                    VectorRef work) const {
  auto sub = work.segment(sub_off_, sub_size_);
  if (physics_) physics_->rhs(t, z, theta.head(pg_), f, sub);
  else f.setZero();
  if (!network_) return;
  double* x = work.data() + x_off_;
  double* y = work.data() + y_off_;
  gather_input(z, x);
  if (u) network_->rhs_u(t, VecMap(x, m_), *u, theta.tail(pn_), VecMap(y, m_), sub);
  else network_->rhs(t, VecMap(x, m_), theta.tail(pn_), VecMap(y, m_), sub);
  scatter(y, f);
}

void Hybrid::vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                 VectorRef a_dfdtheta, VectorRef work) const {
  vjp_at(t, z, nullptr, theta, a, a_dfdz, a_dfdtheta, work);
}
void Hybrid::vjp_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, ConstVectorRef a,
                   VectorRef a_dfdz, VectorRef a_dfdtheta, VectorRef work) const {
  vjp_at(t, z, &u, theta, a, a_dfdz, a_dfdtheta, work);
}
void Hybrid::vjp_at(double t, ConstVectorRef z, const ConstVectorRef* u, ConstVectorRef theta, ConstVectorRef a,
                    VectorRef a_dfdz, VectorRef a_dfdtheta, VectorRef work) const {
  const bool want_theta = a_dfdtheta.size() > 0;
  auto sub = work.segment(sub_off_, sub_size_);
  if (physics_) physics_->vjp(t, z, theta.head(pg_), a, a_dfdz, a_dfdtheta.head(want_theta ? pg_ : 0), sub);
  else a_dfdz.setZero();
  if (!network_) return;
  // The network term is S N(D z[in]): its adjoint is a_N = mask .* a[out], pulled back through
  // N, then scaled by D and scattered to the input components.
  double* x = work.data() + x_off_;
  double* y = work.data() + y_off_;
  double* aN = work.data() + jn_off_;  // the Jacobian buffer is free during a VJP (m*m >= m)
  gather_input(z, x);
  if (S_.size()) VecMap(aN, m_).noalias() = S_.transpose() * a;
  else
    for (int i = 0; i < m_; ++i) aN[i] = mask_[i] * a[out_[i]];
  if (u)
    network_->vjp_u(t, VecMap(x, m_), *u, theta.tail(pn_), VecMap(aN, m_), VecMap(y, m_),
                    a_dfdtheta.tail(want_theta ? pn_ : 0), sub);
  else
    network_->vjp(t, VecMap(x, m_), theta.tail(pn_), VecMap(aN, m_), VecMap(y, m_),
                  a_dfdtheta.tail(want_theta ? pn_ : 0), sub);
  for (int j = 0; j < m_; ++j) a_dfdz[in_[j]] += scale_[j] * y[j];
}

void Hybrid::jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const {
  jacobian_at(t, z, nullptr, theta, J, work);
}
void Hybrid::jacobian_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, MatrixRef J,
                        VectorRef work) const {
  jacobian_at(t, z, &u, theta, J, work);
}
void Hybrid::jacobian_at(double t, ConstVectorRef z, const ConstVectorRef* u, ConstVectorRef theta, MatrixRef J,
                         VectorRef work) const {
  auto sub = work.segment(sub_off_, sub_size_);
  if (physics_) physics_->jacobian(t, z, theta.head(pg_), J, sub);
  else J.setZero();
  if (!network_) return;
  double* x = work.data() + x_off_;
  gather_input(z, x);
  Eigen::Map<Matrix> Jn(work.data() + jn_off_, m_, m_);
  if (u) network_->jacobian_u(t, VecMap(x, m_), *u, theta.tail(pn_), Jn, sub);
  else network_->jacobian(t, VecMap(x, m_), theta.tail(pn_), Jn, sub);
  if (S_.size()) {
    // Column in_[j] of J gains S Jn(:, j) scale_j; y (m) holds one column at a time.
    double* y = work.data() + y_off_;
    for (int j = 0; j < m_; ++j) {
      for (int i = 0; i < m_; ++i) y[i] = Jn(i, j) * scale_[j];
      J.col(in_[j]).noalias() += S_ * VecMap(y, m_);
    }
  } else {
    for (int j = 0; j < m_; ++j)
      for (int i = 0; i < m_; ++i) J(out_[i], in_[j]) += mask_[i] * Jn(i, j) * scale_[j];
  }
}

void Hybrid::jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
                 VectorRef work) const {
  jvp_at(t, z, nullptr, theta, v, Jv, work);
}
void Hybrid::jvp_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
                   VectorRef work) const {
  jvp_at(t, z, &u, theta, v, Jv, work);
}
void Hybrid::jvp_at(double t, ConstVectorRef z, const ConstVectorRef* u, ConstVectorRef theta, ConstVectorRef v,
                    VectorRef Jv, VectorRef work) const {
  auto sub = work.segment(sub_off_, sub_size_);
  if (physics_) physics_->jvp(t, z, theta.head(pg_), v, Jv, sub);
  else Jv.setZero();
  if (!network_) return;
  double* x = work.data() + x_off_;
  double* y = work.data() + y_off_;
  double* vin = work.data() + jn_off_;
  gather_input(z, x);
  for (int j = 0; j < m_; ++j) vin[j] = scale_[j] * v[in_[j]];
  if (u) network_->jvp_u(t, VecMap(x, m_), *u, theta.tail(pn_), VecMap(vin, m_), VecMap(y, m_), sub);
  else network_->jvp(t, VecMap(x, m_), theta.tail(pn_), VecMap(vin, m_), VecMap(y, m_), sub);
  scatter(y, Jv);
}

}  // namespace cvnode

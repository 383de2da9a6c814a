#include "cvnode/linear_decay.h"

#include "cvnode/errors.h"

namespace cvnode {

LinearDecay::LinearDecay(int n) : n_(n) {
  if (n < 1) throw OptionsError("LinearDecay needs a state size >= 1, got " + std::to_string(n));
}

LinearDecay::LinearDecay(Vector fixed_rates) : n_(static_cast<int>(fixed_rates.size())), fixed_(std::move(fixed_rates)) {
  if (n_ < 1) throw OptionsError("LinearDecay needs at least one fixed rate");
  if (!fixed_.allFinite()) throw OptionsError("LinearDecay's fixed rates are not finite");
}

Eigen::Map<const Vector> LinearDecay::rates(ConstVectorRef theta) const {
  return Eigen::Map<const Vector>(learnable() ? theta.data() : fixed_.data(), n_);
}

void LinearDecay::rhs(double, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef) const {
  f.array() = -rates(theta).array() * z.array();
}

void LinearDecay::vjp(double, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                      VectorRef a_dfdtheta, VectorRef) const {
  a_dfdz.array() = -rates(theta).array() * a.array();
  // df_i/dk_i = -z_i: the parameter Jacobian is diagonal too.
  if (learnable() && a_dfdtheta.size() > 0) a_dfdtheta.array() = -z.array() * a.array();
}

void LinearDecay::jacobian(double, ConstVectorRef, ConstVectorRef theta, MatrixRef J, VectorRef) const {
  J.setZero();
  J.diagonal() = -rates(theta);
}

void LinearDecay::jvp(double, ConstVectorRef, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv, VectorRef) const {
  Jv.array() = -rates(theta).array() * v.array();
}

}  // namespace cvnode

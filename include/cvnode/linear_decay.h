// Linear decay f(t, z) = -k .* z: first-order loss of every component at its own rate, the
// stiff part of ../shared/bench's B3 (its k_diag). The rates are either learnable parameters
// (theta = k) or fixed constants (no parameters).
#pragma once

#include "cvnode/dynamics.h"

namespace cvnode {

class LinearDecay final : public Dynamics {
 public:
  // Learnable rates: param_size() = n, theta = k (wrap in TransformedParameters to keep k > 0).
  explicit LinearDecay(int n);
  // Fixed rates k (size n): param_size() = 0.
  explicit LinearDecay(Vector fixed_rates);

  bool learnable() const { return fixed_.size() == 0; }
  const Vector& fixed_rates() const { return fixed_; }

  int state_size() const override { return n_; }
  bool smooth() const override { return true; }
  int param_size() const override { return learnable() ? n_ : 0; }
  int workspace_size() const override { return 0; }

  void rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const override;
  void vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
           VectorRef a_dfdtheta, VectorRef work) const override;
  void jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const override;
  void jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
           VectorRef work) const override;

 private:
  // The rates in use: theta when learnable, else the fixed ones.
  Eigen::Map<const Vector> rates(ConstVectorRef theta) const;
  int n_;
  Vector fixed_;
};

}  // namespace cvnode

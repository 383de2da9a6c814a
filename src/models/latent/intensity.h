// The latent dynamics with the event intensities integrated alongside (Chen et al. 2018,
// section 5.1; Rubanova et al. 2019, section 3.4): state [z; Lambda], dz/dt = f(z) and
// dLambda_c/dt = lambda_c(z) = softplus(net(z))_c, so Lambda_c(t) = int_t0^t lambda_c dt is the
// compensator of channel c's inhomogeneous Poisson process of observation times. A Dynamics, so
// either engine integrates it and its gradient.
#pragma once

#include "cvnode/mlp.h"
#include "models/latent/dense.h"

namespace cvnode::latent {

// log(1 + exp(u)) and its derivative, stable for large |u|.
double softplus(double u);
double softplus_derivative(double u);

class WithIntensity final : public Dynamics {
 public:
  // theta = [f's parameters | the intensity network's]; the network maps z to one value per channel.
  WithIntensity(const Mlp& f, const Dense& intensity);
  int state_size() const override { return L_ + D_; }
  int param_size() const override { return f_.param_size() + net_.param_size(); }
  int workspace_size() const override { return f_.workspace_size(); }
  bool smooth() const override { return f_.smooth(); }

  // lambda(z) for the columns of Z (L x T): D x T.
  Matrix intensity(ConstVectorRef theta_net, ConstMatrixRef Z) const;

  void rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const override;
  void vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
           VectorRef a_dfdtheta, VectorRef work) const override;
  void jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const override;
  void jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
           VectorRef work) const override;

 private:
  // d lambda / dz (D x L) at z, and lambda.
  Matrix intensity_jacobian(ConstVectorRef theta_net, ConstVectorRef z) const;
  const Mlp& f_;
  const Dense& net_;
  int L_, D_;
};

}  // namespace cvnode::latent

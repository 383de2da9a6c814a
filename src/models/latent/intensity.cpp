#include "models/latent/intensity.h"

#include <cmath>

#include "cvnode/errors.h"

namespace cvnode::latent {

double softplus(double u) { return u > 30 ? u : std::log1p(std::exp(u)); }
double softplus_derivative(double u) { return 1.0 / (1.0 + std::exp(-u)); }

WithIntensity::WithIntensity(const Mlp& f, const Dense& intensity)
    : f_(f), net_(intensity), L_(f.state_size()), D_(intensity.out()) {
  if (intensity.in() != L_)
    throw OptionsError("the intensity network reads " + std::to_string(intensity.in()) +
                       " values, the latent state has " + std::to_string(L_));
}

Matrix WithIntensity::intensity(ConstVectorRef theta_net, ConstMatrixRef Z) const {
  Dense::Tape tape;
  Matrix U;
  net_.forward(theta_net, Z, tape, U);
  return U.unaryExpr([](double u) { return softplus(u); });
}

void WithIntensity::rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const {
  const int P = f_.param_size();
  f_.rhs(t, z.head(L_), theta.head(P), f.head(L_), work);
  f.tail(D_) = intensity(theta.tail(net_.param_size()), z.head(L_)).col(0);
}

Matrix WithIntensity::intensity_jacobian(ConstVectorRef theta_net, ConstVectorRef z) const {
  // One backward pass per channel (D is the number of observed channels: small).
  Dense::Tape tape;
  Matrix U, J(D_, L_), dz;
  net_.forward(theta_net, z, tape, U);
  Vector scratch = Vector::Zero(net_.param_size());
  for (int c = 0; c < D_; ++c) {
    Matrix G = Matrix::Zero(D_, 1);
    G(c, 0) = softplus_derivative(U(c, 0));
    net_.backward(theta_net, tape, G, scratch, &dz);
    J.row(c) = dz.col(0).transpose();
  }
  return J;
}

void WithIntensity::vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                        VectorRef a_dfdtheta, VectorRef work) const {
  const int P = f_.param_size(), Q = net_.param_size();
  const bool want_theta = a_dfdtheta.size() > 0;
  if (want_theta) {
    f_.vjp(t, z.head(L_), theta.head(P), a.head(L_), a_dfdz.head(L_), a_dfdtheta.head(P), work);
  } else {
    Eigen::Matrix<double, Eigen::Dynamic, 1> none(0);
    f_.vjp(t, z.head(L_), theta.head(P), a.head(L_), a_dfdz.head(L_), none, work);
  }
  a_dfdz.tail(D_).setZero();  // nothing depends on Lambda
  Dense::Tape tape;
  Matrix U, dz;
  net_.forward(theta.tail(Q), z.head(L_), tape, U);
  Matrix G(D_, 1);
  for (int c = 0; c < D_; ++c) G(c, 0) = a[L_ + c] * softplus_derivative(U(c, 0));
  Vector dnet = Vector::Zero(Q);
  net_.backward(theta.tail(Q), tape, G, dnet, &dz);
  a_dfdz.head(L_) += dz.col(0);
  if (want_theta) a_dfdtheta.tail(Q) = dnet;
}

void WithIntensity::jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const {
  const int P = f_.param_size();
  J.setZero();
  f_.jacobian(t, z.head(L_), theta.head(P), J.topLeftCorner(L_, L_), work);
  J.bottomLeftCorner(D_, L_) = intensity_jacobian(theta.tail(net_.param_size()), z.head(L_));
}

void WithIntensity::jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
                        VectorRef work) const {
  const int P = f_.param_size();
  f_.jvp(t, z.head(L_), theta.head(P), v.head(L_), Jv.head(L_), work);
  Jv.tail(D_) = intensity_jacobian(theta.tail(net_.param_size()), z.head(L_)) * v.head(L_);
}

}  // namespace cvnode::latent

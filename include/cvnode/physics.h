// Known dynamics with their exact derivatives: the systems cvnode generates synthetic data from,
// usable as physics terms of hybrid models or as references in tests. Parameters are theta, as
// for every Dynamics, so they can be learned too; default_parameters() gives the usual values.
#pragma once

#include "cvnode/dynamics.h"

namespace cvnode {

// Base for small dynamics whose Jacobians are cheap to form: jvp and the state part of vjp come
// from jacobian(), so an implementation writes f, df/dz and (df/dtheta)^T a only.
class SmallDynamics : public Dynamics {
 public:
  int workspace_size() const override { return 0; }
  void jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
           VectorRef work) const override;
  void vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
           VectorRef a_dfdtheta, VectorRef work) const override;

 protected:
  // a_dfdtheta = (df/dtheta)^T a.
  virtual void vjp_theta(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a,
                         VectorRef a_dfdtheta) const = 0;
};

// torchdiffeq's ode_demo spiral (../shared/bench B1): dz/dt = A^T (z^3 elementwise), i.e. the row
// vector z^3 times A. theta = A row-major, default [[-0.1, 2.0], [-2.0, -0.1]].
class CubicSpiral final : public SmallDynamics {
 public:
  int state_size() const override { return 2; }
  bool smooth() const override { return true; }  // polynomial
  int param_size() const override { return 4; }
  static Vector default_parameters();
  void rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const override;
  void jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const override;

 protected:
  void vjp_theta(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef g) const override;
};

// Lotka-Volterra predator-prey: dx/dt = alpha x - beta x y, dy/dt = delta x y - gamma y.
// theta = (alpha, beta, delta, gamma), default (1.5, 1.0, 1.0, 3.0).
class LotkaVolterra final : public SmallDynamics {
 public:
  int state_size() const override { return 2; }
  bool smooth() const override { return true; }  // polynomial
  int param_size() const override { return 4; }
  static Vector default_parameters();
  void rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const override;
  void jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const override;

 protected:
  void vjp_theta(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef g) const override;
};

// Damped harmonic oscillator x'' + 2 zeta omega x' + omega^2 x = 0 as z = (x, v).
// theta = (omega, zeta), default (1.0, 0.1).
class DampedOscillator final : public SmallDynamics {
 public:
  int state_size() const override { return 2; }
  bool smooth() const override { return true; }  // polynomial
  int param_size() const override { return 2; }
  static Vector default_parameters();
  void rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const override;
  void jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const override;

 protected:
  void vjp_theta(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef g) const override;
};

// Robertson's stiff chemical kinetics (SUNDIALS' cvsRoberts examples):
//   dy1/dt = -p1 y1 + p2 y2 y3,  dy2/dt = p1 y1 - p2 y2 y3 - p3 y2^2,  dy3/dt = p3 y2^2.
// theta = (p1, p2, p3), default (0.04, 1e4, 3e7). Needs BDF.
class Robertson final : public SmallDynamics {
 public:
  int state_size() const override { return 3; }
  bool smooth() const override { return true; }  // polynomial
  int param_size() const override { return 3; }
  static Vector default_parameters();
  void rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const override;
  void jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const override;

 protected:
  void vjp_theta(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef g) const override;
};

}  // namespace cvnode

#include "cvnode/physics.h"

#include <Eigen/Dense>

namespace cvnode {

// The systems here have at most 3 states: a fixed 3 x 3 buffer keeps jvp/vjp allocation-free.

void SmallDynamics::jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
                        VectorRef work) const {
  Eigen::Matrix3d buf;
  const int n = state_size();
  jacobian(t, z, theta, buf.topLeftCorner(n, n), work);
  for (int i = 0; i < n; ++i) {
    double sum = 0;
    for (int j = 0; j < n; ++j) sum += buf(i, j) * v[j];
    Jv[i] = sum;
  }
}

void SmallDynamics::vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                        VectorRef a_dfdtheta, VectorRef work) const {
  Eigen::Matrix3d buf;
  const int n = state_size();
  jacobian(t, z, theta, buf.topLeftCorner(n, n), work);
  for (int j = 0; j < n; ++j) {
    double sum = 0;
    for (int i = 0; i < n; ++i) sum += buf(i, j) * a[i];
    a_dfdz[j] = sum;
  }
  if (a_dfdtheta.size() > 0) vjp_theta(t, z, theta, a, a_dfdtheta);
}

// --- spiral: f_j = sum_i z_i^3 A(i, j), A(i, j) = theta[2 i + j] ------------------------------
Vector CubicSpiral::default_parameters() { return (Vector(4) << -0.1, 2.0, -2.0, -0.1).finished(); }

void CubicSpiral::rhs(double, ConstVectorRef z, ConstVectorRef p, VectorRef f, VectorRef) const {
  const double c0 = z[0] * z[0] * z[0], c1 = z[1] * z[1] * z[1];
  f[0] = c0 * p[0] + c1 * p[2];
  f[1] = c0 * p[1] + c1 * p[3];
}

void CubicSpiral::jacobian(double, ConstVectorRef z, ConstVectorRef p, MatrixRef J, VectorRef) const {
  const double d0 = 3 * z[0] * z[0], d1 = 3 * z[1] * z[1];
  J(0, 0) = d0 * p[0];
  J(0, 1) = d1 * p[2];
  J(1, 0) = d0 * p[1];
  J(1, 1) = d1 * p[3];
}

void CubicSpiral::vjp_theta(double, ConstVectorRef z, ConstVectorRef, ConstVectorRef a, VectorRef g) const {
  const double c0 = z[0] * z[0] * z[0], c1 = z[1] * z[1] * z[1];
  g[0] = c0 * a[0];
  g[1] = c0 * a[1];
  g[2] = c1 * a[0];
  g[3] = c1 * a[1];
}

// --- Lotka-Volterra ---------------------------------------------------------------------------
Vector LotkaVolterra::default_parameters() { return (Vector(4) << 1.5, 1.0, 1.0, 3.0).finished(); }

void LotkaVolterra::rhs(double, ConstVectorRef z, ConstVectorRef p, VectorRef f, VectorRef) const {
  f[0] = p[0] * z[0] - p[1] * z[0] * z[1];
  f[1] = p[2] * z[0] * z[1] - p[3] * z[1];
}

void LotkaVolterra::jacobian(double, ConstVectorRef z, ConstVectorRef p, MatrixRef J, VectorRef) const {
  J(0, 0) = p[0] - p[1] * z[1];
  J(0, 1) = -p[1] * z[0];
  J(1, 0) = p[2] * z[1];
  J(1, 1) = p[2] * z[0] - p[3];
}

void LotkaVolterra::vjp_theta(double, ConstVectorRef z, ConstVectorRef, ConstVectorRef a, VectorRef g) const {
  g[0] = z[0] * a[0];
  g[1] = -z[0] * z[1] * a[0];
  g[2] = z[0] * z[1] * a[1];
  g[3] = -z[1] * a[1];
}

// --- damped oscillator: x' = v, v' = -omega^2 x - 2 zeta omega v ------------------------------
Vector DampedOscillator::default_parameters() { return (Vector(2) << 1.0, 0.1).finished(); }

void DampedOscillator::rhs(double, ConstVectorRef z, ConstVectorRef p, VectorRef f, VectorRef) const {
  f[0] = z[1];
  f[1] = -p[0] * p[0] * z[0] - 2 * p[1] * p[0] * z[1];
}

void DampedOscillator::jacobian(double, ConstVectorRef, ConstVectorRef p, MatrixRef J, VectorRef) const {
  J(0, 0) = 0;
  J(0, 1) = 1;
  J(1, 0) = -p[0] * p[0];
  J(1, 1) = -2 * p[1] * p[0];
}

void DampedOscillator::vjp_theta(double, ConstVectorRef z, ConstVectorRef p, ConstVectorRef a, VectorRef g) const {
  g[0] = a[1] * (-2 * p[0] * z[0] - 2 * p[1] * z[1]);
  g[1] = a[1] * (-2 * p[0] * z[1]);
}

// --- Robertson ----------------------------------------------------------------------------------
Vector Robertson::default_parameters() { return (Vector(3) << 0.04, 1.0e4, 3.0e7).finished(); }

void Robertson::rhs(double, ConstVectorRef y, ConstVectorRef p, VectorRef f, VectorRef) const {
  const double r1 = p[0] * y[0], r2 = p[1] * y[1] * y[2], r3 = p[2] * y[1] * y[1];
  f[0] = -r1 + r2;
  f[1] = r1 - r2 - r3;
  f[2] = r3;
}

void Robertson::jacobian(double, ConstVectorRef y, ConstVectorRef p, MatrixRef J, VectorRef) const {
  J << -p[0], p[1] * y[2], p[1] * y[1],
        p[0], -p[1] * y[2] - 2 * p[2] * y[1], -p[1] * y[1],
        0, 2 * p[2] * y[1], 0;
}

void Robertson::vjp_theta(double, ConstVectorRef y, ConstVectorRef, ConstVectorRef a, VectorRef g) const {
  // df/dp columns: y1 (-1, 1, 0), y2 y3 (1, -1, 0), y2^2 (0, -1, 1)
  g[0] = y[0] * (a[1] - a[0]);
  g[1] = y[1] * y[2] * (a[0] - a[1]);
  g[2] = y[1] * y[1] * (a[2] - a[1]);
}

}  // namespace cvnode

#include "cvnode/robertson.h"

namespace cvnode {

Vector Robertson::classic_rates() { return (Vector(3) << 0.04, 1.0e4, 3.0e7).finished(); }

void Robertson::rhs(double, ConstVectorRef y, ConstVectorRef p, VectorRef f, VectorRef) const {
  const double r1 = p[0] * y[0], r2 = p[1] * y[1] * y[2], r3 = p[2] * y[1] * y[1];
  f[0] = -r1 + r2;
  f[1] = r1 - r2 - r3;
  f[2] = r3;
}

void Robertson::jacobian(double, ConstVectorRef y, ConstVectorRef p, MatrixRef J, VectorRef) const {
  J(0, 0) = -p[0], J(0, 1) = p[1] * y[2], J(0, 2) = p[1] * y[1];
  J(1, 0) = p[0], J(1, 1) = -p[1] * y[2] - 2 * p[2] * y[1], J(1, 2) = -p[1] * y[1];
  J(2, 0) = 0, J(2, 1) = 2 * p[2] * y[1], J(2, 2) = 0;
}

void Robertson::jvp(double, ConstVectorRef y, ConstVectorRef p, ConstVectorRef v, VectorRef Jv, VectorRef) const {
  // Reaction-rate differentials, then the stoichiometry.
  const double d1 = p[0] * v[0], d2 = p[1] * (v[1] * y[2] + y[1] * v[2]), d3 = 2 * p[2] * y[1] * v[1];
  Jv[0] = -d1 + d2;
  Jv[1] = d1 - d2 - d3;
  Jv[2] = d3;
}

void Robertson::vjp(double, ConstVectorRef y, ConstVectorRef p, ConstVectorRef a, VectorRef a_dfdy, VectorRef a_dfdp,
                    VectorRef) const {
  // w_r = (N a)_r: the adjoint weight of each reaction (net stoichiometry N).
  const double w1 = a[1] - a[0], w2 = a[0] - a[1], w3 = a[2] - a[1];
  a_dfdy[0] = w1 * p[0];
  a_dfdy[1] = w2 * p[1] * y[2] + w3 * 2 * p[2] * y[1];
  a_dfdy[2] = w2 * p[1] * y[1];
  if (a_dfdp.size() == 0) return;
  a_dfdp[0] = w1 * y[0];
  a_dfdp[1] = w2 * y[1] * y[2];
  a_dfdp[2] = w3 * y[1] * y[1];
}

MassActionSpec robertson_mass_action() {
  return MassActionSpec::parse({"y1", "y2", "y3"}, {"y1 -> y2", "y2 + y3 -> y1 + y3", "2 y2 -> y2 + y3"});
}

}  // namespace cvnode

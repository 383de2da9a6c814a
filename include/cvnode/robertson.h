// Robertson's stiff chemical kinetics (the problem of SUNDIALS' cvsRoberts examples), with
// hand-written derivatives:
//   dy1/dt = -p1 y1 + p2 y2 y3
//   dy2/dt =  p1 y1 - p2 y2 y3 - p3 y2^2
//   dy3/dt =  p3 y2^2
// theta = p = (p1, p2, p3), classically (0.04, 1e4, 3e7): the parameter order of cvsRoberts.
// The same model as a mass-action network is robertson_mass_action().
#pragma once

#include "cvnode/dynamics.h"
#include "cvnode/mass_action.h"

namespace cvnode {

class Robertson final : public Dynamics {
 public:
  int state_size() const override { return 3; }
  int param_size() const override { return 3; }
  int workspace_size() const override { return 0; }

  // (0.04, 1e4, 3e7).
  static Vector classic_rates();

  void rhs(double t, ConstVectorRef y, ConstVectorRef p, VectorRef f, VectorRef work) const override;
  void vjp(double t, ConstVectorRef y, ConstVectorRef p, ConstVectorRef a, VectorRef a_dfdy,
           VectorRef a_dfdp, VectorRef work) const override;
  void jacobian(double t, ConstVectorRef y, ConstVectorRef p, MatrixRef J, VectorRef work) const override;
  void jvp(double t, ConstVectorRef y, ConstVectorRef p, ConstVectorRef v, VectorRef Jv,
           VectorRef work) const override;
};

// Robertson as three mass-action reactions over species (y1, y2, y3), rates in the order above:
//   y1 -> y2 (p1),  y2 + y3 -> y1 + y3 (p2),  2 y2 -> y2 + y3 (p3).
MassActionSpec robertson_mass_action();

}  // namespace cvnode

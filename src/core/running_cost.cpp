#include "cvnode/running_cost.h"

namespace cvnode {

KineticEnergy::KineticEnergy(const Dynamics& dynamics, double weight) : f_(dynamics), weight_(weight) {}

// Workspace: f (state_size), then the dynamics' own workspace.
int KineticEnergy::workspace_size() const { return f_.state_size() + f_.workspace_size(); }

double KineticEnergy::value(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef work) const {
  const int n = f_.state_size();
  auto f = work.head(n);
  f_.rhs(t, z, theta, f, work.tail(work.size() - n));
  return weight_ * f.squaredNorm();
}

void KineticEnergy::gradient(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef dg_dz,
                             VectorRef dg_dtheta, VectorRef work) const {
  const int n = f_.state_size();
  auto f = work.head(n);
  auto inner = work.tail(work.size() - n);
  f_.rhs(t, z, theta, f, inner);
  f *= 2 * weight_;  // d(w |f|^2) = 2 w f^T df
  f_.vjp(t, z, theta, f, dg_dz, dg_dtheta, inner);
}

}  // namespace cvnode

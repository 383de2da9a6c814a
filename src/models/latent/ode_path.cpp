#include "models/latent/ode_path.h"

namespace cvnode::latent {

OdePath::OdePath(const Dynamics& dynamics, const SolverOptions& options)
    : solver_(dynamics, options), n_(dynamics.state_size()) {}

Matrix OdePath::solve(ConstVectorRef theta, double t0, ConstVectorRef z0, ConstVectorRef times, long* nfe) {
  Solution s = solver_.solve(theta, t0, z0, times);
  if (nfe) *nfe += s.nfe;
  return std::move(s.states);
}

Vector OdePath::pullback(ConstVectorRef theta, double t0, ConstVectorRef z0, ConstVectorRef times,
                         const Matrix& states, const Matrix& C, VectorRef dtheta, long* nfe) {
  // The engines take the observation terms of a Loss. Half sums of squares against the targets
  // z(t_k) - c_k have the jumps dl_k/dz = z(t_k) - (z(t_k) - c_k) = c_k: the given cotangents,
  // exactly, since the gradient's forward pass repeats solve()'s steps.
  Trajectory tr;
  tr.t0 = t0;
  tr.z0 = z0;
  tr.times = times;
  tr.values = states - C;
  Loss loss;
  loss.kind = LossKind::HalfSumSquares;
  const Gradient g = solver_.gradient(theta, tr, loss);
  dtheta += g.theta;
  if (nfe) *nfe += g.nfe_forward + g.nfe_backward;
  return g.z0;
}

}  // namespace cvnode::latent

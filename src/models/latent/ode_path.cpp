#include "models/latent/ode_path.h"

#include "cvnode/loss.h"
#include "cvnode/problem.h"

namespace cvnode::latent {

OdePath::OdePath(const Dynamics& dynamics, const SolverOptions& options)
    : solver_(dynamics, options), n_(dynamics.state_size()) {}

Matrix OdePath::solve(ConstVectorRef theta, double t0, ConstVectorRef z0, ConstVectorRef times, long* nfe) {
  Solution s = solver_.solve(theta, t0, z0, times);
  if (nfe) *nfe += s.nfe;
  return std::move(s.states);
}

Vector OdePath::pullback(ConstVectorRef theta, double t0, ConstVectorRef z0, ConstVectorRef times, const Matrix&,
                         const Matrix& C, VectorRef dtheta, long* nfe,
                         const std::vector<std::shared_ptr<const RunningCost>>* costs, double* extra) {
  // The engines' loss with the given cotangents c_k = dLoss/dz(t_k) (l_k = c_k^T z(t_k)): one
  // backward pass carries them to dLoss/dz0 and dLoss/dtheta. The gradient's forward pass
  // repeats solve()'s steps, so the states the cotangents were computed at are the same.
  Trajectory tr;
  tr.t0 = t0;
  tr.z0 = z0;
  tr.times = times;
  tr.values = Matrix::Zero(times.size(), n_);
  Problem problem({std::move(tr)}, std::make_shared<GivenCotangent>(std::vector<Matrix>{C}));
  if (costs)
    for (const auto& c : *costs) problem.add_running_cost(c);
  const Gradient g = solver_.gradient(theta, problem, 0);
  // The cotangents' terms are sum_k c_k . z(t_k) at the gradient's own states.
  if (extra) *extra = g.loss - (C.array() * g.states.array()).sum();
  dtheta += g.theta;
  if (nfe) *nfe += g.nfe_forward + g.nfe_backward;
  return g.z0;
}

}  // namespace cvnode::latent

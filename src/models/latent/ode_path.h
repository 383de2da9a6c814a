// The latent models' one door to the ODE: solutions z(t_k) from z(t0), and their pullbacks (the
// cotangents dLoss/dz(t_k) carried back to dLoss/dz0 and dLoss/dtheta), both through cvnode's own
// engines (the CVODES adjoint or dopri5 backpropagation, SolverOptions::method). One OdePath per
// thread, like a Solver.
#pragma once

#include <memory>

#include "cvnode/solver.h"

namespace cvnode::latent {

class OdePath {
 public:
  OdePath(const Dynamics& dynamics, const SolverOptions& options);

  // Rows z(times[k]); times non-decreasing and >= t0 (a time equal to t0 gives z0).
  Matrix solve(ConstVectorRef theta, double t0, ConstVectorRef z0, ConstVectorRef times, long* nfe = nullptr);

  // Given the cotangents C (rows dLoss/dz(times[k]); times strictly increasing) of the solution
  // `states` that solve() returned for the same arguments: returns dLoss/dz0 and adds
  // dLoss/dtheta to dtheta. With `costs` (may be null) their integrals over [t0, times.back()]
  // join the gradient, and `extra` (may be null) receives what the gradient's objective holds
  // beyond the cotangents' terms: those integrals plus the options' solver-error penalty.
  Vector pullback(ConstVectorRef theta, double t0, ConstVectorRef z0, ConstVectorRef times, const Matrix& states,
                  const Matrix& C, VectorRef dtheta, long* nfe = nullptr,
                  const std::vector<std::shared_ptr<const RunningCost>>* costs = nullptr, double* extra = nullptr);

 private:
  Solver solver_;
  int n_;
};

}  // namespace cvnode::latent

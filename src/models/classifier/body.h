// The classifier's feature block between stem and head, for a minibatch of B images (n x B):
// the ODE block through one of cvnode's engines (odenet, rknet), or discrete residual layers
// (resnet).
#pragma once

#include <functional>
#include <memory>

#include "cvnode/conv_dynamics.h"
#include "cvnode/solver_options.h"
#include "cvnode/solver_stats.h"

namespace cvnode::detail {

struct BodyStats {
  long nfe_forward = 0, nfe_backward = 0;
  SolverStats forward, backward;
};

// Given the block's output Z1, the head's loss and its cotangent dLoss/dZ1.
using Cotangent = std::function<double(const Matrix& Z1, Matrix& dZ1)>;

class Body {
 public:
  virtual ~Body() = default;
  virtual int param_size() const = 0;
  virtual Vector initial_parameters(std::uint64_t seed) const = 0;
  // Z1 from Z0; `solver` (may be null) overrides the engine's options for this call.
  virtual void forward(const double* theta, const Matrix& Z0, Matrix& Z1, BodyStats& stats,
                       const SolverOptions* solver) = 0;
  // Forward, the head's cotangent at Z1, backward: dZ0 and dtheta (param_size, overwritten).
  virtual void gradient(const double* theta, const Matrix& Z0, const Cotangent& head, Matrix& dZ0, double* dtheta,
                        BodyStats& stats) = 0;
};

// dz/dt = f(t, z) over [0, horizon], the minibatch stacked into one ODE, through the engine of
// `options` (adams/bdf: the CVODES adjoint; dopri5: backpropagation through its steps).
std::unique_ptr<Body> make_ode_body(const ConvDynamics& f, const SolverOptions& options, double horizon);
// z <- z + f_k(z) for k = 1..blocks, f_k the dynamics with parameters theta_k, by backprop.
std::unique_ptr<Body> make_residual_body(const ConvDynamics& f, int blocks);

}  // namespace cvnode::detail

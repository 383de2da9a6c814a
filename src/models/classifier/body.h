// The classifier's feature block between stem and head, for a minibatch of B images (n x B):
// the ODE block through one of cvnode's engines (odenet, rknet), or discrete residual layers
// (resnet).
#pragma once

#include <functional>
#include <memory>

#include "cvnode/conv_dynamics.h"
#include "cvnode/regularization.h"
#include "cvnode/solver_options.h"
#include "cvnode/solver_stats.h"

namespace cvnode::detail {

struct BodyStats {
  long nfe_forward = 0, nfe_backward = 0;
  SolverStats forward, backward;
  double objective = 0;     // gradient(): the head's loss plus the regularisers' terms
  double solver_error = 0;  // gradient(): sum_s E_s h_s of dopri5's steps (0 for the adjoint)
  double end_time = 0;      // gradient(): where the block stopped (the horizon, or STEER's draw)
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
  // `step_seed` draws the step's STEER end time and Hutchinson probes.
  virtual void gradient(const double* theta, const Matrix& Z0, const Cotangent& head, Matrix& dZ0, double* dtheta,
                        BodyStats& stats, std::uint64_t step_seed = 0) = 0;
  // The regularisers of later gradient() calls (forward() never applies them). Throws
  // OptionsError naming the key the block cannot take.
  virtual void set_regularization(const RegularizationOptions& options) = 0;
};

// dz/dt = f(t, z) over [0, horizon], the minibatch stacked into one ODE, through the engine of
// `options` (adams/bdf: the CVODES adjoint; dopri5: backpropagation through its steps).
std::unique_ptr<Body> make_ode_body(const ConvDynamics& f, const SolverOptions& options, double horizon);
// z <- z + f_k(z) for k = 1..blocks, f_k the dynamics with parameters theta_k, by backprop.
std::unique_ptr<Body> make_residual_body(const ConvDynamics& f, int blocks);

}  // namespace cvnode::detail

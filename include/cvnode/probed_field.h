// A vector field f(t, z; theta) whose Jacobian J = df/dz can be probed, with the second
// derivatives that the gradients of probe quantities need. The continuous normalizing flow's
// log-density, d log p/dt = -tr J (exactly with the probes E = I, or by Hutchinson's estimator
// with random probes), and the Jacobian-norm regulariser ||J E||^2 are built from two calls:
//
//   forward:  F = f(t, Z), and the probe products JE = J E (forward-mode tangents);
//   reverse:  for the scalar S = sum_b Fbar_b . f(t, Z_b) + <G, J E>, the derivatives dS/dZ,
//             dS/dtheta and dS/dE through J E (= J^T G), by reverse mode over both passes.
//
// Batched: B states are the columns of Z (D x B); each has K probe columns, E is D x (B K) and
// its columns [b K, (b + 1) K) belong to state b. K may be 0 (then only f and its VJP).
// Same contract as Dynamics: const, thread-safe, theta passed in, scratch memory the caller's,
// no heap allocation, outputs overwritten.
#pragma once

#include <cstdint>

#include "cvnode/dynamics.h"

namespace cvnode {

class ProbedField {
 public:
  virtual ~ProbedField() = default;

  virtual int input_size() const = 0;   // D, the dimension of z
  virtual int output_size() const = 0;  // of f: D for a vector field
  virtual int param_size() const = 0;
  // True when f is twice continuously differentiable in z (no relu, no elu).
  virtual bool smooth() const = 0;
  // Doubles of scratch memory for `batch` states with `probes` probe columns each.
  virtual int workspace_size(int batch, int probes) const = 0;
  // Parameters from an init scheme name of cvnode/mlp.h; deterministic for a seed.
  virtual Vector initial_parameters(std::uint64_t seed) const = 0;

  // F (output x B) = f(t, Z), JE (output x B K) = J E at each probe's state. Leaves what
  // reverse() needs in `work`.
  virtual void forward(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef E, MatrixRef F,
                       MatrixRef JE, VectorRef work) const = 0;
  // Called right after forward() with the same work, t, Z, theta and E. Fbar: output x B,
  // G: output x B K. Zbar (D x B) = dS/dZ; theta_bar = dS/dtheta summed over the batch (size 0:
  // skipped); Ebar (D x B K) = J^T G, the part of dS/dE that passes through J E (a caller whose
  // G itself depends on E adds that part).
  virtual void reverse(double t, ConstVectorRef theta, ConstMatrixRef E, ConstMatrixRef Fbar, ConstMatrixRef G,
                       MatrixRef Zbar, VectorRef theta_bar, MatrixRef Ebar, VectorRef work) const = 0;
};

}  // namespace cvnode

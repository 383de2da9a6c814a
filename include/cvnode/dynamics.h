// The one interface every right-hand side implements: neural networks, known physics, hybrids
// and a user's own C++ models alike. The solver layer sees nothing else of a model.
#pragma once

#include <Eigen/Core>

namespace cvnode {

using Vector = Eigen::VectorXd;
using Matrix = Eigen::MatrixXd;
using VectorRef = Eigen::Ref<Eigen::VectorXd>;
using ConstVectorRef = Eigen::Ref<const Eigen::VectorXd>;
using MatrixRef = Eigen::Ref<Eigen::MatrixXd>;
using ConstMatrixRef = Eigen::Ref<const Eigen::MatrixXd>;

// dz/dt = f(t, z; theta) with its first derivatives.
//
// Contract for implementations:
//  * Every method is const and thread-safe: one Dynamics is shared by all threads, and the
//    parameters theta are passed in, never stored, so an optimizer can update them between calls.
//  * Scratch memory belongs to the caller: `work` holds at least workspace_size() doubles and is
//    never shared between concurrent calls. No method allocates on the heap.
//  * Outputs are overwritten, never accumulated into.
class Dynamics {
 public:
  virtual ~Dynamics() = default;

  virtual int state_size() const = 0;
  virtual int param_size() const = 0;
  // Size of the independent blocks of the state: df/dz is block diagonal with blocks of this
  // size (a stacked batch: one block per series). The adjoint's transition form integrates one
  // block x block matrix per block (SolverOptions::adjoint_form). Default: the whole state.
  virtual int block_size() const { return state_size(); }
  // True when f is infinitely differentiable in t and z (tanh, softplus, polynomial kinetics;
  // not ReLU's kink). The adjoint's gradient rule may then integrate over the forward solver's
  // steps, which follow how fast the solution changes; at a kink only the backward steps, which
  // shrink there, resolve it. Default false: the safe answer for a model cvnode cannot inspect.
  virtual bool smooth() const { return false; }
  // Doubles of scratch memory each call needs.
  virtual int workspace_size() const = 0;

  // f = f(t, z; theta).
  virtual void rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f,
                   VectorRef work) const = 0;

  // Vector-Jacobian products: a_dfdz = (df/dz)^T a and a_dfdtheta = (df/dtheta)^T a.
  // An a_dfdtheta of size 0 asks for the state part only (the Krylov and Jacobian-free paths
  // of the backward problem need no parameter part).
  virtual void vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a,
                   VectorRef a_dfdz, VectorRef a_dfdtheta, VectorRef work) const = 0;

  // The same product, called only when the previous call with this `work` was rhs, vjp or
  // vjp_again (or their batched forms) at the same t, z and theta: a network whose forward pass
  // is still in `work` skips it. The solver knows when that holds: the adjoint's corrector
  // iterations and its quadrature all evaluate at one interpolated forward state, so one forward
  // pass serves them all. Default: vjp.
  virtual void vjp_again(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a,
                         VectorRef a_dfdz, VectorRef a_dfdtheta, VectorRef work) const {
    vjp(t, z, theta, a, a_dfdz, a_dfdtheta, work);
  }

  // Dense Jacobian J = df/dz (state_size x state_size), for Newton's method in BDF.
  virtual void jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J,
                        VectorRef work) const = 0;

  // Jacobian-vector product Jv = (df/dz) v, for matrix-free Krylov solvers.
  virtual void jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v,
                   VectorRef Jv, VectorRef work) const = 0;

  // ---- Exogenous inputs: f(t, z, u(t); theta) ----
  // u(t) = [controls at t; covariates] of the series being solved (Trajectory::controls,
  // ::covariates), input_size() entries, standardised by the data side. The solver evaluates u
  // itself and calls the _u forms below; a series whose input count differs from input_size() is
  // refused. The defaults are for dynamics without inputs (input_size() = 0): they ignore u. u is
  // data, so no derivative with respect to it is asked for.
  virtual int input_size() const { return 0; }
  virtual void rhs_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, VectorRef f,
                     VectorRef work) const {
    rhs(t, z, theta, f, work);
  }
  virtual void vjp_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, ConstVectorRef a,
                     VectorRef a_dfdz, VectorRef a_dfdtheta, VectorRef work) const {
    vjp(t, z, theta, a, a_dfdz, a_dfdtheta, work);
  }
  virtual void jacobian_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, MatrixRef J,
                          VectorRef work) const {
    jacobian(t, z, theta, J, work);
  }
  virtual void jvp_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, ConstVectorRef v,
                     VectorRef Jv, VectorRef work) const {
    jvp(t, z, theta, v, Jv, work);
  }

  // ---- Batched evaluation: B states side by side as the columns of an n x B matrix ----
  // Used by the stacked-batch mode (one ODE for B series). The defaults loop over columns;
  // networks override them with matrix-matrix products, which is where stacking pays off.

  // Doubles of scratch memory a batched call over `batch` columns needs.
  virtual int batch_workspace_size(int batch) const { return workspace_size() + param_size(); }
  // F.col(b) = f(t, Z.col(b); theta).
  virtual void rhs_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, MatrixRef F,
                         VectorRef work) const;
  // A_dfdz.col(b) = (df/dz)^T A.col(b) at Z.col(b); a_dfdtheta = sum over b of (df/dtheta)^T
  // A.col(b) (size 0: skipped).
  virtual void vjp_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef A,
                         MatrixRef A_dfdz, VectorRef a_dfdtheta, VectorRef work) const;
  // vjp_again for the batched form (same precondition with rhs_batch / vjp_batch).
  virtual void vjp_batch_again(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef A,
                               MatrixRef A_dfdz, VectorRef a_dfdtheta, VectorRef work) const {
    vjp_batch(t, Z, theta, A, A_dfdz, a_dfdtheta, work);
  }
  // JV.col(b) = (df/dz at Z.col(b)) V.col(b).
  virtual void jvp_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef V,
                         MatrixRef JV, VectorRef work) const;
};

}  // namespace cvnode

// Options of the CVODES adjoint engine (methods adams and bdf): the nonlinear and linear
// solvers of the implicit steps, the adjoint's form and tolerances, the theta-gradient's
// quadrature, checkpointing. Every field has a documented default; validate() says in words
// what is wrong. The tolerances and step limits all engines share are in SolverOptions.
#pragma once

#include <string>

#include "cvnode/dynamics.h"

namespace cvnode {

enum class NonlinearSolver {
  Auto,        // fixed point for Adams, Newton for BDF: the textbook pairing
  Newton,      // Newton iteration with the linear solver below
  FixedPoint   // functional iteration, no Jacobian: only for non-stiff problems
};
const char* nonlinear_solver_name(NonlinearSolver s);         // auto | newton | fixed_point
NonlinearSolver parse_nonlinear_solver(const std::string& name);  // throws OptionsError

enum class LinearSolver {
  Dense,  // dense LU of I - gamma J with the analytic Jacobian of the Dynamics
  Band,   // banded LU (band_upper / band_lower): O(n w^2) instead of O(n^3) for banded J
  Gmres   // matrix-free GMRES with exact Jacobian-vector products: large states
};
const char* linear_solver_name(LinearSolver s);         // dense | band | gmres
LinearSolver parse_linear_solver(const std::string& name);  // throws OptionsError

enum class Preconditioner {
  None,
  // GMRES only: left preconditioning with the block-diagonal part of I - gamma J, blocks of
  // preconditioner_block components. Exact for stacked batches (their Jacobian is block
  // diagonal), so GMRES converges in one iteration without ever forming the full matrix. The
  // blocks are found with preconditioner_block Jacobian-vector products (one per column
  // position, all blocks at once), so any Dynamics qualifies.
  BlockJacobi
};
const char* preconditioner_name(Preconditioner p);          // none | block_jacobi
Preconditioner parse_preconditioner(const std::string& name);  // throws OptionsError

enum class Quadrature {
  Auto,          // GaussLegendre with Adams, Cvodes with BDF
  Cvodes,        // CVODES' backward quadrature (CVodeQuadInitB)
  GaussLegendre  // outside CVODES, on the forward steps (Adams only; see CvodesOptions::quadrature)
};
const char* quadrature_name(Quadrature q);             // auto | cvodes | gauss_legendre
Quadrature parse_quadrature(const std::string& name);  // throws OptionsError

// How the adjoint carries the observation jumps a(t_k-) = a(t_k+) + dl_k/dz (each restart of
// the multistep method at order 1 cost B1L about six times the forward evaluations).
enum class AdjointForm {
  Auto,        // Transition where it applies (Adams with the Gauss-Legendre quadrature, no
               // running cost, blocks of df/dz of at most kMaxTransitionBlock), else Restart
  Restart,     // integrate a itself, restarting CVODES' backward problem at every observation
  // Integrate Psi(t) = Phi(t_last, t)^T, the adjoint's state-transition matrix, one n_b x n_b
  // block per independent block of df/dz (Dynamics::block_size), as one smooth backward problem:
  // a(t) = Psi(t) c(t) with c += Psi(t_k)^{-1} dl_k/dz at each observation, so nothing restarts.
  // Costs n_b vector-Jacobian products per right-hand side (all but the first reuse the forward
  // pass), which pays off for small blocks with many observations per forward step. When a block
  // of Psi grows ill-conditioned (condition number above 1e4) it is re-anchored: Psi = I from
  // that observation on, one ordinary restart.
  Transition
};
inline constexpr int kMaxTransitionBlock = 4;
const char* adjoint_form_name(AdjointForm f);             // auto | restart | transition
AdjointForm parse_adjoint_form(const std::string& name);  // throws OptionsError

enum class Interpolation {
  Hermite,    // cubic Hermite between checkpointed steps: cheap, the SUNDIALS default
  Polynomial  // the forward method's own polynomial: more memory, no better (docs/performance.md)
};
const char* interpolation_name(Interpolation i);             // hermite | polynomial
Interpolation parse_interpolation(const std::string& name);  // throws OptionsError

struct CvodesOptions {
  NonlinearSolver nonlinear_solver = NonlinearSolver::Auto;
  LinearSolver linear_solver = LinearSolver::Dense;
  int gmres_max_krylov = 0;  // Krylov dimension; 0 = SUNDIALS' default (5)
  int band_upper = -1, band_lower = -1;  // half-bandwidths of df/dz, for LinearSolver::Band
  Preconditioner preconditioner = Preconditioner::None;
  int preconditioner_block = 0;  // block size; 0 = the whole state (one dense block)

  // Per-component sign constraints on the forward solution (state_size), CVODES' convention:
  // 0 free, 1 >= 0, 2 > 0, -1 <= 0, -2 < 0. CVODES rejects and retries a step that would break
  // one, so species concentrations stay non-negative instead of undershooting below zero (where
  // mass-action kinetics can blow up). Empty: none.
  Vector constraints;
  // Absolute tolerance of the backward problem. 0 (default): atol on the adjoint's own scale,
  // atol times the largest observation jump |dl_k/dz| over the largest |z(t_k)|, per trajectory
  // (the adjoint a = dLoss/dz is in loss per unit of state). < 0: the same as atol. > 0: this
  // value. The transition form's Psi is dimensionless and starts at I: there 0 and < 0 mean
  // 1e-3 rtol (AdjointForm::Transition). Scaled because a mean loss over N entries makes a ~1/N
  // in size, and with atol taken as is the adjoint is effectively uncontrolled
  // (docs/performance.md).
  double adjoint_atol = 0;
  // Whether the theta-gradient quadrature enters the backward error test. Off is cheaper per
  // step but then the gradient's accuracy is not controlled at all (docs/performance.md).
  bool quadrature_error_control = true;
  // How dLoss/dtheta = int a^T df/dtheta dt is integrated. Cvodes: as CVODES' backward quadrature,
  // a P-long vector carried through every step with its own Nordsieck history (and error test
  // when quadrature_error_control). GaussLegendre: outside CVODES, by the two-point
  // Gauss-Legendre rule on panels (the forward steps, split at observations; for a non-smooth f
  // the backward steps), each node evaluated once a backward step covers it, with a(t) from
  // that step's interpolant and z(t) from the forward interpolation: the parameters never enter
  // CVODES' vector work. Its error is not controlled by its own test but follows the solution's:
  // with Adams the steps resolve every mode of a and z. With BDF on a stiff problem the steps
  // stride over the fast modes of a after each observation jump, which the per-step rule misses,
  // so GaussLegendre is refused with BDF.
  Quadrature quadrature = Quadrature::Auto;
  AdjointForm adjoint_form = AdjointForm::Auto;
  double quadrature_rtol = -1;  // < 0 means "same as rtol"
  double quadrature_atol = -1;  // < 0 means "same as atol" (scalar)
  int max_order = 0;            // 0 = the method's maximum (Adams 12, BDF 5)
  // Steps between two checkpoints of the forward solution, for the adjoint pass. More saves
  // memory (each checkpoint is a few KiB); fewer saves recomputation.
  int checkpoint_steps = 100;
  Interpolation interpolation = Interpolation::Hermite;

  // The iteration actually used: fixed point when asked, or for Auto with Adams; else Newton.
  bool uses_fixed_point(bool bdf) const {
    return nonlinear_solver == NonlinearSolver::FixedPoint || (nonlinear_solver == NonlinearSolver::Auto && !bdf);
  }
  bool uses_gauss_legendre(bool bdf) const {
    return quadrature == Quadrature::GaussLegendre || (quadrature == Quadrature::Auto && !bdf);
  }
  // Empty when valid for the method (adams or bdf) and a state of `state_size` (0: unknown),
  // else one sentence naming the option and its value.
  std::string validate(const std::string& method, int state_size) const;
  // "name = value" of the first field that differs from its default (empty: none), for the
  // engines that do not take these options and refuse them by name.
  std::string changed() const;
};

}  // namespace cvnode

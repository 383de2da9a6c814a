// The CVODES adjoint engine (methods adams and bdf): the forward problem with checkpoints and
// the adjoint (backward) problem of one initial-value problem.
//
// Sign conventions (checked against torchdiffeq and finite differences, ../shared/FACTS.md):
//   backward state      da/dt = -(df/dz)^T a - (dg/dz)^T
//   backward quadrature dq/dt = -(df/dtheta)^T a - (dg/dtheta)^T,  q(t_last) = 0
// Integrated from the last time back to t0, q(t0) = dLoss/dtheta and a(t0) = dLoss/dz0, with
// dl_k/dz(t_k) added to a at every observation time t_k.
#include "cvnode/engine.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <stdexcept>
#include <limits>
#include <string>
#include <vector>

#include <sundials/sundials_nvector.h>
#include <sunlinsol/sunlinsol_band.h>
#include <sunlinsol/sunlinsol_dense.h>
#include <sunmatrix/sunmatrix_band.h>
#include <sunlinsol/sunlinsol_spgmr.h>
#include <sunmatrix/sunmatrix_dense.h>
#include <sunnonlinsol/sunnonlinsol_fixedpoint.h>

#include <Eigen/LU>

#include "cvnode/errors.h"
#include "ode/block_jacobi.h"
#include "ode/engine_util.h"
#include "ode/sundials_raii.h"

namespace cvnode {

using detail::view;

using detail::same_instant;

namespace {

struct CvodesAdjoint final : GradientEngine {
  const Dynamics& dyn;
  SolverOptions opt;
  bool bdf;  // method bdf, else adams
  int n, P;

  detail::Context ctx;
  detail::NVectorPtr y, yB, qB, q, atolv, cons;
  detail::NVectorPtr a_node, y_node;  // Gauss-Legendre quadrature: a(tau) and z(tau) at a node
  detail::MatrixPtr A, AB;
  detail::LinSolPtr LS, LSB;
  detail::NonlinSolPtr NLS, NLSB;
  detail::CvodeMemPtr mem;

  // Per-call state read by the callbacks.
  const double* theta = nullptr;
  const RunningCosts* costs = nullptr;  // non-empty or null
  Vector work, rc_work, scratch_n, scratch_p, scratch_n2, scratch_p2;
  Vector empty;  // size 0: "no parameter part" for vjp
  Matrix dense_J;  // the Jacobian before it (dense) or its band (band) is copied out
  detail::BlockJacobi pre, preB;  // block-Jacobi preconditioners, forward and backward

  // The point (t, y) whose forward pass the dynamics left in `work`, for vjp_again: set by the
  // backward callbacks, cleared by every other use of `work` and at every call (theta changes).
  double point_t = NAN;
  Vector point_y;
  // Aligned staging buffers. CVODES' vectors and matrices come from malloc: 16-byte aligned, at
  // addresses that depend on the heap of the thread that built the solver. Eigen's vectorized
  // kernels take different paths (FMA packets or a scalar peel) by an operand's alignment, so
  // computing in place changed the last bits of a stacked gradient with the thread count. Every
  // callback copies its inputs into, and computes its outputs in, these fixed-alignment buffers.
  Vector in_y, in_v, out_n, out_p;
  bool point_valid = false;

  // The adjoint's transition form (SolverOptions::adjoint_form): the backward state is Psi,
  // n x nb column-major (column j holds column j of every block), and a = blockdiag(Psi_b) c.
  bool transition = false;          // this call's form
  bool transition_applies = false;  // the options' form resolved for these dynamics
  int nb = 0;
  Vector c, jump_dc;
  detail::NVectorPtr psi_k;  // Psi at an observation time

  bool adjoint_ready = false, backward_ready = false, fquad_ready = false, bquad_ready = false;
  int which = -1;
  long n_rhs = 0, n_vjp = 0, n_quad = 0;
  double nonfinite_t = NAN;   // time of the last non-finite right-hand side, for messages
  std::string last_message;   // last message of CVODES' error handler

  CvodesAdjoint(const Dynamics& d, const SolverOptions& o)
      : dyn(d), opt(o), bdf(o.method == "bdf"), n(d.state_size()), P(d.param_size()) {
    transition = transition_applies = resolved_adjoint_form(opt, dyn) == AdjointForm::Transition;
    if (transition) {
      nb = dyn.block_size();
      c.setZero(n);
    }
    work.setZero(dyn.workspace_size());
    point_y.setZero(n);
    in_y.setZero(n);
    in_v.setZero(n);
    out_n.setZero(n);
    out_p.setZero(P);
    scratch_n.setZero(n);
    scratch_p.setZero(P);
    scratch_n2.setZero(n);
    scratch_p2.setZero(P);
    y = detail::make_vector(n, ctx);
    mem.reset(CVodeCreate(bdf ? CV_BDF : CV_ADAMS, ctx));
    if (!mem) throw std::bad_alloc();
    // Before anything else, and before CVodeCreateB copies it: SUNDIALS prints nothing.
    CVodeSetErrHandlerFn(mem.get(), &CvodesAdjoint::on_error, this);
    check(CVodeInit(mem.get(), &CvodesAdjoint::f, 0.0, y.get()), "CVodeInit");
    check(CVodeSetUserData(mem.get(), this), "CVodeSetUserData");
    if (opt.atol_vector.size() > 0) {
      atolv = detail::make_vector(n, ctx);
      view(atolv.get()) = opt.atol_vector;
      check(CVodeSVtolerances(mem.get(), opt.rtol, atolv.get()), "CVodeSVtolerances");
    } else {
      check(CVodeSStolerances(mem.get(), opt.rtol, opt.atol), "CVodeSStolerances");
    }
    check(CVodeSetMaxNumSteps(mem.get(), opt.max_steps), "CVodeSetMaxNumSteps");
    if (opt.cvodes.constraints.size() > 0) {
      cons = detail::make_vector(n, ctx);
      view(cons.get()) = opt.cvodes.constraints;
      check(CVodeSetConstraints(mem.get(), cons.get()), "CVodeSetConstraints");
    }
    if (opt.initial_step > 0) check(CVodeSetInitStep(mem.get(), opt.initial_step), "CVodeSetInitStep");
    if (opt.max_step > 0) check(CVodeSetMaxStep(mem.get(), opt.max_step), "CVodeSetMaxStep");
    if (opt.min_step > 0) check(CVodeSetMinStep(mem.get(), opt.min_step), "CVodeSetMinStep");
    if (opt.cvodes.max_order > 0) check(CVodeSetMaxOrd(mem.get(), opt.cvodes.max_order), "CVodeSetMaxOrd");
    if (fixed_point()) {
      NLS.reset(SUNNonlinSol_FixedPoint(y.get(), 0, ctx));
      check(CVodeSetNonlinearSolver(mem.get(), NLS.get()), "CVodeSetNonlinearSolver");
    } else if (opt.cvodes.linear_solver == LinearSolver::Dense) {
      dense_J.setZero(n, n);
      A.reset(SUNDenseMatrix(n, n, ctx));
      LS.reset(SUNLinSol_Dense(y.get(), A.get(), ctx));
      check(CVodeSetLinearSolver(mem.get(), LS.get(), A.get()), "CVodeSetLinearSolver");
      check(CVodeSetJacFn(mem.get(), &CvodesAdjoint::jac), "CVodeSetJacFn");
    } else if (opt.cvodes.linear_solver == LinearSolver::Band) {
      dense_J.setZero(n, n);
      A.reset(SUNBandMatrix(n, opt.cvodes.band_upper, opt.cvodes.band_lower, ctx));
      LS.reset(SUNLinSol_Band(y.get(), A.get(), ctx));
      check(CVodeSetLinearSolver(mem.get(), LS.get(), A.get()), "CVodeSetLinearSolver");
      check(CVodeSetJacFn(mem.get(), &CvodesAdjoint::jac_band), "CVodeSetJacFn");
    } else {
      const bool precond = opt.cvodes.preconditioner == Preconditioner::BlockJacobi;
      LS.reset(SUNLinSol_SPGMR(y.get(), precond ? SUN_PREC_LEFT : SUN_PREC_NONE, opt.cvodes.gmres_max_krylov, ctx));
      check(CVodeSetLinearSolver(mem.get(), LS.get(), nullptr), "CVodeSetLinearSolver");
      check(CVodeSetJacTimes(mem.get(), nullptr, &CvodesAdjoint::jtv), "CVodeSetJacTimes");
      if (precond) {
        pre.resize(n, opt.cvodes.preconditioner_block);
        check(CVodeSetPreconditioner(mem.get(), &CvodesAdjoint::psetup, &CvodesAdjoint::psolve), "CVodeSetPreconditioner");
      }
    }
  }

  bool fixed_point() const { return opt.cvodes.uses_fixed_point(bdf); }
  Eigen::Map<const Vector> th() const { return {theta, P}; }

  // ---- callbacks: no allocation, errors become return codes ----
  static void on_error(int code, const char* module, const char* function, char* msg, void* data) {
    auto* s = static_cast<CvodesAdjoint*>(data);
    s->last_message = std::string(function ? function : "") + ": " + (msg ? msg : "");
  }
  // A non-finite value stops the solve at once (an unrecoverable flag): treated as recoverable,
  // CVODES would shrink the step towards the singularity until max_steps ran out, spending the
  // whole step budget to report a less telling CV_TOO_MUCH_WORK.
  // The failure is also sticky for the rest of the call: CVODES' fixed-point iteration treats a
  // failed evaluation as a convergence failure and would otherwise creep up to the singularity.
  int nonfinite(double t) {
    nonfinite_t = t;
    return -1;
  }
  bool poisoned() const { return !std::isnan(nonfinite_t); }
  // Inputs are copied into, and outputs computed in, the aligned staging buffers (see in_y).
  ConstVectorRef stage_y(N_Vector y) {
    in_y = view(y);
    return in_y;
  }
  static int f(realtype t, N_Vector y, N_Vector ydot, void* data) {
    auto* s = static_cast<CvodesAdjoint*>(data);
    if (s->poisoned()) return -1;
    ++s->n_rhs;
    s->point_valid = false;
    s->dyn.rhs(t, s->stage_y(y), s->th(), s->out_n, s->work);
    view(ydot) = s->out_n;
    return s->out_n.allFinite() ? 0 : s->nonfinite(t);
  }
  // df/dz at (t, y) into dense_J, for every Jacobian callback (forward and backward, dense or band).
  void jacobian_at(double t, N_Vector y) {
    point_valid = false;
    dyn.jacobian(t, stage_y(y), th(), dense_J, work);
  }
  static int jac(realtype t, N_Vector y, N_Vector, SUNMatrix J, void* data, N_Vector, N_Vector,
                 N_Vector) {
    auto* s = static_cast<CvodesAdjoint*>(data);
    s->jacobian_at(t, y);
    view(J) = s->dense_J;
    return s->dense_J.allFinite() ? 0 : s->nonfinite(t);
  }
  static int jtv(N_Vector v, N_Vector Jv, realtype t, N_Vector y, N_Vector, void* data, N_Vector) {
    auto* s = static_cast<CvodesAdjoint*>(data);
    s->point_valid = false;
    s->in_v = view(v);
    s->dyn.jvp(t, s->stage_y(y), s->th(), s->in_v, s->out_n, s->work);
    view(Jv) = s->out_n;
    return 0;
  }
  static int jac_band(realtype t, N_Vector y, N_Vector, SUNMatrix J, void* data, N_Vector, N_Vector,
                      N_Vector) {
    auto* s = static_cast<CvodesAdjoint*>(data);
    s->jacobian_at(t, y);
    return s->copy_band(J, false) ? 0 : s->nonfinite(t);
  }
  // Copies the band of dense_J (or of -dense_J^T for the backward problem) into J.
  bool copy_band(SUNMatrix J, bool backward_transpose) {
    const sunindextype mu = SM_UBAND_B(J), ml = SM_LBAND_B(J);
    for (sunindextype j = 0; j < n; ++j)
      for (sunindextype i = std::max<sunindextype>(0, j - mu); i <= std::min<sunindextype>(n - 1, j + ml); ++i)
        SM_ELEMENT_B(J, i, j) = backward_transpose ? -dense_J(j, i) : dense_J(i, j);
    return dense_J.allFinite();
  }
  static int psetup(realtype t, N_Vector y, N_Vector, booleantype jok, booleantype* jcur, realtype gamma,
                    void* data) {
    auto* s = static_cast<CvodesAdjoint*>(data);
    s->point_valid = false;
    if (!jok) {
      auto z = s->stage_y(y);
      s->pre.sample([&](const Vector& v, Vector& out) { s->dyn.jvp(t, z, s->th(), v, out, s->work); });
    }
    *jcur = jok ? SUNFALSE : SUNTRUE;
    return s->pre.factor(gamma, -1.0) ? 0 : 1;  // singular block: recoverable, CVODES retries
  }
  // z = P^{-1} r through the staging buffers, for either preconditioner.
  int precondition(detail::BlockJacobi& p, N_Vector r, N_Vector z) {
    in_v = view(r);
    p.solve(in_v.data(), out_n.data());
    view(z) = out_n;
    return 0;
  }
  static int psolve(realtype, N_Vector, N_Vector, N_Vector r, N_Vector z, realtype, realtype, int, void* data) {
    auto* s = static_cast<CvodesAdjoint*>(data);
    return s->precondition(s->pre, r, z);
  }
  // Backward: the Jacobian of the adjoint is -J^T, so P_B = I + gamma_B J^T (blocks of J^T
  // sampled with vector-Jacobian products).
  static int psetupB(realtype t, N_Vector y, N_Vector, N_Vector, booleantype jok, booleantype* jcur,
                     realtype gamma, void* data) {
    auto* s = static_cast<CvodesAdjoint*>(data);
    s->point_valid = false;
    if (!jok) {
      auto z = s->stage_y(y);
      s->preB.sample([&](const Vector& v, Vector& out) { s->dyn.vjp(t, z, s->th(), v, out, s->empty, s->work); });
    }
    *jcur = jok ? SUNFALSE : SUNTRUE;
    return s->preB.factor(gamma, +1.0) ? 0 : 1;
  }
  static int psolveB(realtype, N_Vector, N_Vector, N_Vector, N_Vector r, N_Vector z, realtype, realtype, int,
                     void* data) {
    auto* s = static_cast<CvodesAdjoint*>(data);
    return s->precondition(s->preB, r, z);
  }
  static int jac_bandB(realtype t, N_Vector y, N_Vector, N_Vector, SUNMatrix JB, void* data, N_Vector,
                       N_Vector, N_Vector) {
    auto* s = static_cast<CvodesAdjoint*>(data);
    s->jacobian_at(t, y);
    return s->copy_band(JB, true) ? 0 : s->nonfinite(t);
  }
  static int fq(realtype t, N_Vector y, N_Vector qdot, void* data) {
    auto* s = static_cast<CvodesAdjoint*>(data);
    s->stage_y(y);
    double g = 0;
    for (const auto& cost : *s->costs) g += cost->value(t, s->in_y, s->th(), s->rc_work);
    NV_Ith_S(qdot, 0) = g;
    return std::isfinite(NV_Ith_S(qdot, 0)) ? 0 : s->nonfinite(t);
  }
  // A VJP at (t, y) with a = `a` into out_n (and out_p when want_theta), reusing the forward pass
  // of the previous one when it was at the same point. Leaves y staged in in_y.
  void vjp_at(double t, N_Vector y, N_Vector a, bool want_theta) { vjp_at(t, y, view(a), want_theta); }
  void vjp_at(double t, N_Vector y, ConstVectorRef a, bool want_theta) {
    stage_y(y);
    in_v = a;
    VectorRef dtheta = want_theta ? VectorRef(out_p) : VectorRef(empty);
    if (point_valid && t == point_t && in_y == point_y) {
      dyn.vjp_again(t, in_y, th(), in_v, out_n, dtheta, work);
      return;
    }
    dyn.vjp(t, in_y, th(), in_v, out_n, dtheta, work);
    point_t = t;
    point_y = in_y;
    point_valid = true;
  }
  // dg/dz and dg/dtheta of the running costs' sum at (t, in_y) into scratch_n, scratch_p.
  void cost_gradient(double t) {
    bool first = true;
    for (const auto& cost : *costs) {
      if (first) {
        cost->gradient(t, in_y, th(), scratch_n, scratch_p, rc_work);
        first = false;
        continue;
      }
      cost->gradient(t, in_y, th(), scratch_n2, scratch_p2, rc_work);
      scratch_n += scratch_n2;
      scratch_p += scratch_p2;
    }
  }
  static int fB(realtype t, N_Vector y, N_Vector yB, N_Vector yBdot, void* data) {
    auto* s = static_cast<CvodesAdjoint*>(data);
    ++s->n_vjp;
    s->vjp_at(t, y, yB, false);
    if (s->costs) {
      s->cost_gradient(t);
      s->out_n += s->scratch_n;
    }
    view(yBdot) = -s->out_n;
    return s->out_n.allFinite() ? 0 : s->nonfinite(t);
  }
  // Transition form: dPsi/dt = -(df/dz)^T Psi, one VJP per column; the forward pass at (t, y)
  // is shared by all of them (vjp_again).
  static int fBT(realtype t, N_Vector y, N_Vector yB, N_Vector yBdot, void* data) {
    auto* s = static_cast<CvodesAdjoint*>(data);
    const double* psi = N_VGetArrayPointer(yB);
    double* out = N_VGetArrayPointer(yBdot);
    for (int j = 0; j < s->nb; ++j) {
      ++s->n_vjp;
      s->vjp_at(t, y, Eigen::Map<const Vector>(psi + static_cast<Eigen::Index>(j) * s->n, s->n), false);
      if (!s->out_n.allFinite()) return s->nonfinite(t);
      Eigen::Map<Vector>(out + static_cast<Eigen::Index>(j) * s->n, s->n) = -s->out_n;
    }
    return 0;
  }
  // a = blockdiag(Psi_b) c for Psi in the backward layout (see `transition`).
  void psi_times_c(const double* psi, Vector& a) const {
    a.setZero();
    for (int j = 0; j < nb; ++j) {
      const double* col = psi + static_cast<Eigen::Index>(j) * n;
      for (int b = 0; b < n; b += nb)
        for (int i = 0; i < nb; ++i) a[b + i] += col[b + i] * c[b + j];
    }
  }
  static int fQB(realtype t, N_Vector y, N_Vector yB, N_Vector qBdot, void* data) {
    auto* s = static_cast<CvodesAdjoint*>(data);
    ++s->n_vjp;
    s->vjp_at(t, y, yB, true);
    if (s->costs) {
      s->cost_gradient(t);
      s->out_p += s->scratch_p;
    }
    view(qBdot).head(s->P) = -s->out_p;
    return s->out_p.allFinite() ? 0 : s->nonfinite(t);
  }
  static int jacB(realtype t, N_Vector y, N_Vector, N_Vector, SUNMatrix JB, void* data, N_Vector,
                  N_Vector, N_Vector) {
    auto* s = static_cast<CvodesAdjoint*>(data);
    s->jacobian_at(t, y);
    view(JB) = -s->dense_J.transpose();
    return s->dense_J.allFinite() ? 0 : s->nonfinite(t);
  }
  static int jtvB(N_Vector v, N_Vector Jv, realtype t, N_Vector y, N_Vector, N_Vector, void* data,
                  N_Vector) {
    auto* s = static_cast<CvodesAdjoint*>(data);
    ++s->n_vjp;
    s->vjp_at(t, y, v, false);
    view(Jv) = -s->out_n;
    return 0;
  }

  // ---- the theta-gradient outside CVODES (Quadrature::GaussLegendre) ----
  // int (a^T df/dtheta + dg/dtheta) dt by the two-point Gauss-Legendre rule (exact for cubics)
  // on panels: the forward solver's steps, split at the observation times (where a jumps). The
  // forward steps follow how fast z, and with it the adjoint's Jacobian, changes; the backward
  // steps are much shorter wherever the multistep method restarts at order 1 after a jump,
  // which says nothing about the integrand. A node is evaluated once the backward step that
  // covers it is taken, with a(tau) from that step's interpolant and z(tau) from the forward
  // interpolation. Measured (docs/performance.md): per backward step, the same rule took B2
  // 214 VJPs and B1L (restart form) 2,452 for the gradient; per panel 60 and 574, with the
  // same gradient errors; three nodes per panel changed no error either. Only for a smooth f
  // (Dynamics::smooth): at a kink (ReLU) the forward steps do not shrink enough and the error
  // was 1.5e-5 at rtol 1e-10; there each backward step is its own panel (the midpoint rule
  // after a first-order step, else two points).
  bool forward_panels = false;
  std::vector<double> panel_grid;  // panel ends, descending from t_last to t0
  size_t panel = 0;                // current panel: [panel_grid[panel + 1], panel_grid[panel]]
  int panel_node = 0;              // its next node: 0 the upper, 1 the lower
  std::vector<double> forward_steps;

  void build_panels(const Trajectory& tr, double t0, double t_last) {
    panel_grid.clear();
    for (double t : forward_steps)
      if (t > t0 && t < t_last) panel_grid.push_back(t);
    for (Eigen::Index k = 0; k < tr.times.size(); ++k)
      if (tr.times[k] > t0 && tr.times[k] < t_last) panel_grid.push_back(tr.times[k]);
    panel_grid.push_back(t0);
    panel_grid.push_back(t_last);
    std::sort(panel_grid.begin(), panel_grid.end(), std::greater<>());
    panel_grid.erase(std::unique(panel_grid.begin(), panel_grid.end(), same_instant), panel_grid.end());
    panel = 0;
    panel_node = 0;
  }
  bool panels_done() const { return panel + 1 >= panel_grid.size(); }
  // Every node must have been met by a backward step, or the gradient would silently miss it.
  void check_panels_done() const {
    if (forward_panels && !panels_done())
      throw std::logic_error("cvnode: Gauss-Legendre panels left at t = " + std::to_string(panel_grid[panel]) +
                             " after the backward pass (a bug: please report it)");
  }
  // Adds the nodes in [lo, hi], the part of the backward step just taken that a (or c) covers.
  void quadrature_nodes(void* bmem, double lo, double hi, Vector& acc) {
    static constexpr double kNode = 0.5773502691896257645;  // 1 / sqrt(3)
    if (!forward_panels) {
      int order = 1;
      CVodeGetLastOrder(bmem, &order);
      const double mid = 0.5 * (lo + hi), half = 0.5 * (hi - lo);
      if (order <= 1) {
        add_node(bmem, mid, 2 * half, acc);
      } else {
        add_node(bmem, mid + half * kNode, half, acc);
        add_node(bmem, mid - half * kNode, half, acc);
      }
      return;
    }
    while (!panels_done()) {
      const double up = panel_grid[panel], down = panel_grid[panel + 1];
      const double mid = 0.5 * (up + down), half = 0.5 * (up - down);
      const double tau = panel_node == 0 ? mid + half * kNode : mid - half * kNode;
      if (tau < lo) return;
      if (tau <= hi) add_node(bmem, tau, half, acc);
      if (++panel_node == 2) {
        panel_node = 0;
        ++panel;
      }
    }
  }
  void add_node(void* bmem, double tau, double weight, Vector& acc) {
    backward_check(CVodeGetDky(bmem, tau, 0, a_node.get()), "CVodeGetDky");
    check(CVodeGetAdjY(mem.get(), tau, y_node.get()), "CVodeGetAdjY");
    stage_y(y_node.get());
    if (transition) {
      psi_times_c(N_VGetArrayPointer(a_node.get()), in_v);
    } else {
      in_v = view(a_node.get());
    }
    ++n_vjp;
    ++n_quad;
    dyn.vjp(tau, in_y, th(), in_v, out_n, out_p, work);
    if (costs) {
      cost_gradient(tau);
      out_p += scratch_p;
    }
    acc += weight * out_p;
    point_valid = false;  // work holds the node's forward pass now
  }

  // The backward pass from tb to target one step at a time, each step followed by its piece of
  // the theta-gradient (into acc); leaves a(target) in yB. A step that passes the target counts
  // up to the target only, and a(target) comes from the step's interpolant (what CV_NORMAL does
  // inside CVodeB).
  void backward_gauss_legendre(double tb, double target, Vector& acc) {
    void* bmem = CVodeGetAdjCVodeBmem(mem.get(), which);
    double t_prev = tb;
    while (true) {
      int flag = CVodeB(mem.get(), target, CV_ONE_STEP);
      if (flag < 0) backward_check(flag, "CVodeB");
      double tret = t_prev;
      backward_check(CVodeGetB(mem.get(), which, &tret, yB.get()), "CVodeGetB");
      const bool reached = tret <= target || same_instant(tret, target);
      const double lo = std::max(tret, target);
      if (lo < t_prev) quadrature_nodes(bmem, lo, t_prev, acc);
      if (reached) {
        if (tret < target) backward_check(CVodeGetDky(bmem, target, 0, yB.get()), "CVodeGetDky");
        return;
      }
      // The step budget per interval, as CVodeB(CV_NORMAL) enforces it.
      long steps = 0;
      CVodeGetNumSteps(bmem, &steps);
      if (steps >= opt.max_steps) {
        last_message = "CVodeB: " + std::to_string(steps) + " backward steps without reaching t = " +
                       std::to_string(target) + " (solver.max_steps)";
        fail("CVodeB", CV_TOO_MUCH_WORK, tret);
      }
      t_prev = tret;
    }
  }

  // ---- the restart form's backward pass ----
  // a itself from t_last to t0, restarted at every observation with the jump added; the
  // theta-gradient goes into acc (Gauss-Legendre) or CVODES' quadrature qB. Returns a(t0),
  // observations at t0 included.
  Vector backward_restart(const Trajectory& tr, const Matrix& jumps, const Matrix& states, double t0,
                          double t_last, bool gauss_legendre, Vector& acc, SolverStats& stats) {
    Eigen::Index k = tr.times.size() - 1;
    auto a = view(yB.get());
    // Observations at t_last start the adjoint; later ones are added as CVodeB passes them.
    a.setZero();
    if (k >= 0 && tr.times[k] == t_last) a = jumps.row(k--).transpose();
    setup_backward(t_last);
    if (opt.cvodes.adjoint_atol == 0) scale_adjoint_tolerance(jumps, states);
    if (bquad_ready) {
      N_VConst(0.0, qB.get());
      backward_check(CVodeQuadReInitB(mem.get(), which, qB.get()), "CVodeQuadReInitB");
    }
    double tb = t_last;
    while (true) {
      // Next stop: the next observation time strictly after t0, else t0 itself.
      const bool at_obs = k >= 0 && tr.times[k] > t0;
      const double target = at_obs ? tr.times[k] : t0;
      // Times within round-off of each other (say a union grid of several series) are one instant:
      // CVodeB would refuse the interval (CV_TOO_CLOSE), and there is nothing to integrate.
      if (!same_instant(tb, target)) {
        if (gauss_legendre) {
          backward_gauss_legendre(tb, target, acc);
        } else {
          int flag = CVodeB(mem.get(), target, CV_NORMAL);
          if (flag < 0) backward_check(flag, "CVodeB");
          double tret = target;
          backward_check(CVodeGetB(mem.get(), which, &tret, yB.get()), "CVodeGetB");
          if (bquad_ready) backward_check(CVodeGetQuadB(mem.get(), which, &tret, qB.get()), "CVodeGetQuadB");
        }
        stats += backward_segment_stats();  // ReInitB resets the counters
        tb = target;
      }
      if (!at_obs) break;
      a += jumps.row(k--).transpose();
      backward_check(CVodeReInitB(mem.get(), which, tb, yB.get()), "CVodeReInitB");
      ++stats.restarts;
      if (bquad_ready) backward_check(CVodeQuadReInitB(mem.get(), which, qB.get()), "CVodeQuadReInitB");
    }
    Vector a0 = a;
    for (; k >= 0; --k) a0 += jumps.row(k).transpose();  // observations at t0
    return a0;
  }

  // ---- the transition form's backward pass (see `transition`) ----
  // From t_last to t0 as one backward problem in Psi; the observation jumps only update c, so
  // the multistep method keeps its order and step size across them. Adds the theta-gradient into
  // acc and returns a(t0), observations at t0 included.
  Vector backward_transition(const Trajectory& tr, const Matrix& jumps, double t0, double t_last,
                             Vector& acc, SolverStats& stats) {
    Eigen::Index k = tr.times.size() - 1;
    set_identity(yB.get());  // Psi(t_last) = I
    c.setZero();
    if (k >= 0 && tr.times[k] == t_last) c = jumps.row(k--).transpose();
    setup_backward(t_last);
    if (!psi_k) psi_k = detail::make_vector(n * nb, ctx);
    void* bmem = CVodeGetAdjCVodeBmem(mem.get(), which);
    double t_prev = t_last;
    long steps_at_obs = 0;
    while (!same_instant(t_prev, t0)) {
      int flag = CVodeB(mem.get(), t0, CV_ONE_STEP);
      if (flag < 0) backward_check(flag, "CVodeB");
      double tret = t_prev;
      backward_check(CVodeGetB(mem.get(), which, &tret, yB.get()), "CVodeGetB");
      const double lo = std::max(tret, t0);
      double upper = t_prev;
      bool anchored = false;
      long steps = 0;
      CVodeGetNumSteps(bmem, &steps);
      // Observations this step passed (lo <= t_k < upper), latest first: the rule runs on the
      // pieces between them, each with its own c.
      while (k >= 0 && tr.times[k] > t0 && !same_instant(tr.times[k], t0) && tr.times[k] >= lo &&
             tr.times[k] < upper) {
        const double tk = tr.times[k];
        quadrature_nodes(bmem, tk, upper, acc);
        backward_check(CVodeGetDky(bmem, tk, 0, psi_k.get()), "CVodeGetDky");
        anchored = !add_jump(N_VGetArrayPointer(psi_k.get()), jumps.row(k).transpose());
        --k;
        upper = tk;
        steps_at_obs = steps;
        if (anchored) {  // Psi = I from t_k on: one ordinary restart
          stats += backward_segment_stats();
          ++stats.restarts;
          set_identity(yB.get());
          backward_check(CVodeReInitB(mem.get(), which, tk, yB.get()), "CVodeReInitB");
          steps_at_obs = 0;
          break;
        }
      }
      if (!anchored && lo < upper) quadrature_nodes(bmem, lo, upper, acc);
      t_prev = anchored ? upper : lo;
      if (anchored || same_instant(t_prev, t0)) continue;
      // The step budget between two observations, as CVodeB(CV_NORMAL) enforces it per interval.
      if (steps - steps_at_obs >= opt.max_steps) {
        last_message = "CVodeB: " + std::to_string(steps - steps_at_obs) +
                       " backward steps without reaching the next observation (solver.max_steps)";
        fail("CVodeB", CV_TOO_MUCH_WORK, tret);
      }
    }
    stats += backward_segment_stats();
    // CVodeB stops on t0 exactly (it is the first checkpoint's time); yB holds Psi(t0).
    Vector a0(n);
    psi_times_c(N_VGetArrayPointer(yB.get()), a0);
    for (; k >= 0; --k) a0 += jumps.row(k).transpose();  // observations at t0
    return a0;
  }
  // SolverOptions::adjoint_atol = 0: atol converted into the adjoint's units (loss per unit of
  // state) by the ratio of the largest jump to the largest state of this trajectory.
  void scale_adjoint_tolerance(const Matrix& jumps, const Matrix& states) {
    const double atol = opt.atol_vector.size() > 0 ? opt.atol_vector.maxCoeff() : opt.atol;
    const double g = jumps.size() > 0 ? jumps.cwiseAbs().maxCoeff() : 0.0;
    const double z = states.size() > 0 ? states.cwiseAbs().maxCoeff() : 0.0;
    const double atolB = g > 0 && z > 0 && std::isfinite(g / z) ? atol * g / z : atol;
    backward_check(CVodeSStolerancesB(mem.get(), which, opt.rtol, atolB), "CVodeSStolerancesB");
  }
  // The form of this call: a running cost makes the adjoint inhomogeneous, outside the transition
  // form, so a call with one runs in the restart form and the next call without one returns to
  // the transition form (switching drops the adjoint memory, whose backward state has another
  // size). Each call's form depends on that call alone: a per-thread engine's results must not
  // depend on which series the thread solved before (dynamic scheduling).
  void choose_form(bool has_costs) {
    if (has_costs && opt.cvodes.adjoint_form == AdjointForm::Transition)
      throw OptionsError("solver option adjoint_form = transition does not take a running cost (use auto or restart)");
    const bool want = transition_applies && !has_costs;
    if (want == transition) return;
    if (adjoint_ready) CVodeAdjFree(mem.get());
    adjoint_ready = backward_ready = bquad_ready = false;
    transition = want;
    yB.reset();
    a_node.reset();
    y_node.reset();
    NLSB.reset();
  }
  void set_identity(N_Vector psi) {
    double* p = N_VGetArrayPointer(psi);
    std::fill(p, p + static_cast<Eigen::Index>(n) * nb, 0.0);
    for (int j = 0; j < nb; ++j)
      for (int b = 0; b < n; b += nb) p[static_cast<Eigen::Index>(j) * n + b + j] = 1.0;
  }
  // The jump dl_k/dz at an observation where Psi = psi: c += Psi_b^{-1} g_b per block. Returns
  // false, and instead sets c = a(t_k-) = Psi c + g (the caller re-anchors Psi = I), when a block
  // is too ill-conditioned for its inverse to carry the jump accurately.
  bool add_jump(const double* psi, const Vector& g) {
    using Small = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, 0, kMaxTransitionBlock, kMaxTransitionBlock>;
    constexpr double kMaxCondition = 1e4;
    jump_dc.resize(n);
    for (int b = 0; b < n; b += nb) {
      Small M(nb, nb);
      for (int j = 0; j < nb; ++j)
        for (int i = 0; i < nb; ++i) M(i, j) = psi[static_cast<Eigen::Index>(j) * n + b + i];
      const Small inv = Eigen::PartialPivLU<Small>(M).inverse();
      const double kappa = M.cwiseAbs().colwise().sum().maxCoeff() * inv.cwiseAbs().colwise().sum().maxCoeff();
      if (!(kappa <= kMaxCondition)) {
        psi_times_c(psi, jump_dc);
        c = jump_dc + g;
        return false;
      }
      jump_dc.segment(b, nb).noalias() = inv * g.segment(b, nb);
    }
    c += jump_dc;
    return true;
  }

  // ---- errors ----
  void check(int flag, const char* where) {
    if (flag >= 0) return;
    double t = NAN;
    CVodeGetCurrentTime(mem.get(), &t);
    fail(where, flag, t);
  }
  [[noreturn]] void fail(const char* where, int flag, double t) {
    std::string detail = last_message;
    if (std::isfinite(nonfinite_t)) {
      detail += (detail.empty() ? "" : "; ") + std::string("the right-hand side was not finite at t = ") +
                std::to_string(nonfinite_t);
    }
    throw SolverError(where, flag, detail::flag_name(flag), t, detail);
  }
  void backward_check(int flag, const char* where) {
    if (flag >= 0) return;
    double t = NAN;
    void* bmem = CVodeGetAdjCVodeBmem(mem.get(), which);
    if (bmem) CVodeGetCurrentTime(bmem, &t);
    fail(where, flag, t);
  }

  void reset_call(ConstVectorRef theta_in, const RunningCosts* running_costs) {
    detail::check_theta(theta_in, P);
    theta = theta_in.data();
    costs = running_costs && !running_costs->empty() ? running_costs : nullptr;
    if (costs) {
      for (const auto& cost : *costs)
        if (rc_work.size() < cost->workspace_size()) rc_work.setZero(cost->workspace_size());
    } else if (fquad_ready) {
      // The forward quadrature of an earlier call's running costs stays active in CVODES and
      // would call fq (and its costs) again: switch it off (set up anew when costs return).
      CVodeQuadFree(mem.get());
      fquad_ready = false;
    }
    nonfinite_t = NAN;
    point_valid = false;  // theta may have changed in place
    last_message.clear();
    n_rhs = n_vjp = n_quad = 0;
  }

  // z0 was checked by the caller (detail::check_solve_inputs, Trajectory::validate).
  void restart(double t0, ConstVectorRef z0) {
    view(y.get()) = z0;
    // CVODES' adjoint module sets the initial step (CVodeSetInitStep) when it recomputes from a
    // checkpoint, and that survives CVodeReInit: without this reset a series' result would
    // depend on the series this Solver solved before it (and so on the thread schedule).
    check(CVodeSetInitStep(mem.get(), opt.initial_step), "CVodeSetInitStep");
    check(CVodeReInit(mem.get(), t0, y.get()), "CVodeReInit");
  }

  SolverStats forward_stats(void* m) {
    SolverStats s;
    CVodeGetNumSteps(m, &s.steps);
    CVodeGetNumRhsEvals(m, &s.rhs_evals);
    CVodeGetNumErrTestFails(m, &s.err_test_fails);
    CVodeGetNumNonlinSolvIters(m, &s.nonlin_iters);
    CVodeGetNumNonlinSolvConvFails(m, &s.nonlin_conv_fails);
    if (!fixed_point()) {
      CVodeGetNumLinSolvSetups(m, &s.lin_setups);
      if (opt.cvodes.linear_solver != LinearSolver::Gmres) {
        CVodeGetNumJacEvals(m, &s.jac_evals);
      } else {
        CVodeGetNumLinIters(m, &s.lin_iters);
        CVodeGetNumJtimesEvals(m, &s.jtimes_evals);
      }
    }
    return s;
  }

  void setup_backward(double tB) {
    void* m = mem.get();
    if (backward_ready) {
      backward_check(CVodeReInitB(m, which, tB, yB.get()), "CVodeReInitB");
      return;
    }
    qB = detail::make_vector(std::max(P, 1), ctx);
    check(CVodeCreateB(m, bdf ? CV_BDF : CV_ADAMS, &which), "CVodeCreateB");
    backward_check(CVodeInitB(m, which, transition ? &CvodesAdjoint::fBT : &CvodesAdjoint::fB, tB, yB.get()), "CVodeInitB");
    // Psi is dimensionless and starts at I: its absolute tolerance is relative to that unit
    // scale, not to the adjoint's (atol = rtol would leave entries near zero uncontrolled).
    const double atolB = opt.cvodes.adjoint_atol > 0 ? opt.cvodes.adjoint_atol : transition ? 1e-3 * opt.rtol : opt.atol;
    backward_check(CVodeSStolerancesB(m, which, opt.rtol, atolB), "CVodeSStolerancesB");
    backward_check(CVodeSetUserDataB(m, which, this), "CVodeSetUserDataB");
    backward_check(CVodeSetMaxNumStepsB(m, which, opt.max_steps), "CVodeSetMaxNumStepsB");
    if (opt.max_step > 0) backward_check(CVodeSetMaxStepB(m, which, opt.max_step), "CVodeSetMaxStepB");
    if (opt.min_step > 0) backward_check(CVodeSetMinStepB(m, which, opt.min_step), "CVodeSetMinStepB");
    if (opt.cvodes.max_order > 0) backward_check(CVodeSetMaxOrdB(m, which, opt.cvodes.max_order), "CVodeSetMaxOrdB");
    if (fixed_point()) {
      NLSB.reset(SUNNonlinSol_FixedPoint(yB.get(), 0, ctx));
      backward_check(CVodeSetNonlinearSolverB(m, which, NLSB.get()), "CVodeSetNonlinearSolverB");
    } else if (opt.cvodes.linear_solver == LinearSolver::Dense) {
      AB.reset(SUNDenseMatrix(n, n, ctx));
      LSB.reset(SUNLinSol_Dense(yB.get(), AB.get(), ctx));
      backward_check(CVodeSetLinearSolverB(m, which, LSB.get(), AB.get()), "CVodeSetLinearSolverB");
      backward_check(CVodeSetJacFnB(m, which, &CvodesAdjoint::jacB), "CVodeSetJacFnB");
    } else if (opt.cvodes.linear_solver == LinearSolver::Band) {
      // -J^T has the bandwidths of J swapped.
      AB.reset(SUNBandMatrix(n, opt.cvodes.band_lower, opt.cvodes.band_upper, ctx));
      LSB.reset(SUNLinSol_Band(yB.get(), AB.get(), ctx));
      backward_check(CVodeSetLinearSolverB(m, which, LSB.get(), AB.get()), "CVodeSetLinearSolverB");
      backward_check(CVodeSetJacFnB(m, which, &CvodesAdjoint::jac_bandB), "CVodeSetJacFnB");
    } else {
      const bool precond = opt.cvodes.preconditioner == Preconditioner::BlockJacobi;
      LSB.reset(SUNLinSol_SPGMR(yB.get(), precond ? SUN_PREC_LEFT : SUN_PREC_NONE, opt.cvodes.gmres_max_krylov, ctx));
      backward_check(CVodeSetLinearSolverB(m, which, LSB.get(), nullptr), "CVodeSetLinearSolverB");
      backward_check(CVodeSetJacTimesB(m, which, nullptr, &CvodesAdjoint::jtvB), "CVodeSetJacTimesB");
      if (precond) {
        preB.resize(n, opt.cvodes.preconditioner_block);
        backward_check(CVodeSetPreconditionerB(m, which, &CvodesAdjoint::psetupB, &CvodesAdjoint::psolveB), "CVodeSetPreconditionerB");
      }
    }
    if (P > 0 && !opt.cvodes.uses_gauss_legendre(bdf)) {
      N_VConst(0.0, qB.get());
      backward_check(CVodeQuadInitB(m, which, &CvodesAdjoint::fQB, qB.get()), "CVodeQuadInitB");
      if (opt.cvodes.quadrature_error_control) {
        backward_check(CVodeSetQuadErrConB(m, which, SUNTRUE), "CVodeSetQuadErrConB");
        backward_check(CVodeQuadSStolerancesB(m, which, quad_rtol(), quad_atol()),
                       "CVodeQuadSStolerancesB");
      }
      bquad_ready = true;
    }
    backward_ready = true;
  }
  double quad_rtol() const { return opt.cvodes.quadrature_rtol > 0 ? opt.cvodes.quadrature_rtol : opt.rtol; }
  double quad_atol() const { return opt.cvodes.quadrature_atol > 0 ? opt.cvodes.quadrature_atol : opt.atol; }

  void setup_forward_quadrature() {
    if (!q) q = detail::make_vector(1, ctx);
    N_VConst(0.0, q.get());
    if (fquad_ready) {
      check(CVodeQuadReInit(mem.get(), q.get()), "CVodeQuadReInit");
      return;
    }
    check(CVodeQuadInit(mem.get(), &CvodesAdjoint::fq, q.get()), "CVodeQuadInit");
    check(CVodeSetQuadErrCon(mem.get(), SUNTRUE), "CVodeSetQuadErrCon");
    check(CVodeQuadSStolerances(mem.get(), quad_rtol(), quad_atol()), "CVodeQuadSStolerances");
    fquad_ready = true;
  }

  SolverStats backward_segment_stats() {
    void* bmem = CVodeGetAdjCVodeBmem(mem.get(), which);
    SolverStats s = forward_stats(bmem);
    if (bquad_ready) CVodeGetQuadNumRhsEvals(bmem, &s.quad_evals);
    return s;
  }

  Solution solve(ConstVectorRef theta, double t0, ConstVectorRef z0, ConstVectorRef times) override;
  Gradient gradient(ConstVectorRef theta, const Trajectory& tr, const Observer& observe,
                    const RunningCosts& running_costs) override;
};


Solution CvodesAdjoint::solve(ConstVectorRef theta, double t0, ConstVectorRef z0, ConstVectorRef times) {
  reset_call(theta, nullptr);
  detail::check_solve_inputs(t0, z0, times, n);
  restart(t0, z0);
  Solution out;
  out.times = times;
  out.states.resize(times.size(), n);
  double t = t0;
  for (Eigen::Index k = 0; k < times.size(); ++k) {
    if (times[k] > t) {
      double tret = t;
      int flag = CVode(mem.get(), times[k], y.get(), &tret, CV_NORMAL);
      if (flag < 0) fail("CVode", flag, tret);
      t = times[k];
    }
    out.states.row(k) = view(y.get()).transpose();
  }
  if (times.size() > 0 && times[times.size() - 1] > t0) out.stats = forward_stats(mem.get());
  out.nfe = n_rhs;
  return out;
}

Gradient CvodesAdjoint::gradient(ConstVectorRef theta, const Trajectory& tr, const Observer& observe,
                                 const RunningCosts& running_costs) {
  detail::check_ivp(tr, n);
  const bool has_costs = !running_costs.empty();
  reset_call(theta, &running_costs);
  choose_form(has_costs);
  CvodesAdjoint& s = *this;

  const auto T = tr.times.size();
  const double t0 = tr.t0, t_last = tr.horizon();
  Gradient g;
  g.theta.setZero(s.P);
  g.z0.setZero(n);
  g.states.resize(T, n);

  // ---- forward, with checkpoints ----
  s.restart(t0, tr.z0);
  const bool integrate = t_last > t0;
  if (integrate) {
    if (has_costs) s.setup_forward_quadrature();
    if (!s.adjoint_ready) {
      s.check(CVodeAdjInit(s.mem.get(), s.opt.cvodes.checkpoint_steps,
                           s.opt.cvodes.interpolation == Interpolation::Hermite ? CV_HERMITE : CV_POLYNOMIAL),
              "CVodeAdjInit");
      s.adjoint_ready = true;
    } else {
      s.check(CVodeAdjReInit(s.mem.get()), "CVodeAdjReInit");
    }
  }
  int ncheck = 0;
  double t = t0;
  const bool gauss_legendre = s.P > 0 && s.opt.cvodes.uses_gauss_legendre(bdf);
  // With the Gauss-Legendre gradient the forward pass goes one step at a time to record the
  // steps (the panels of the rule); CVODES' own CV_NORMAL loop does exactly this, including its
  // step budget per output interval and the interpolation at the target.
  s.forward_steps.clear();
  auto advance = [&](double target) {
    if (same_instant(t, target)) return;  // see the backward pass
    double tret = t;
    if (!gauss_legendre) {
      int flag = CVodeF(s.mem.get(), target, s.y.get(), &tret, CV_NORMAL, &ncheck);
      if (flag < 0) s.fail("CVodeF", flag, tret);
      t = target;
      return;
    }
    double reached = t;
    s.check(CVodeGetCurrentTime(s.mem.get(), &reached), "CVodeGetCurrentTime");
    for (long steps = 0; reached < target; ++steps) {
      if (steps >= s.opt.max_steps) {
        s.last_message = "CVodeF: " + std::to_string(steps) + " forward steps without reaching t = " +
                         std::to_string(target) + " (solver.max_steps)";
        s.fail("CVodeF", CV_TOO_MUCH_WORK, reached);
      }
      int flag = CVodeF(s.mem.get(), target, s.y.get(), &reached, CV_ONE_STEP, &ncheck);
      if (flag < 0) s.fail("CVodeF", flag, reached);
      s.forward_steps.push_back(reached);
    }
    s.check(CVodeGetDky(s.mem.get(), target, 0, s.y.get()), "CVodeGetDky");
    t = target;
  };
  for (Eigen::Index k = 0; k < T; ++k) {
    if (tr.times[k] > t) advance(tr.times[k]);
    g.states.row(k) = view(s.y.get()).transpose();
  }
  if (t_last > t) advance(t_last);

  // ---- loss and its jumps dl_k/dz(t_k) ----
  ObservationTerms terms = observe(g.states);
  detail::check_terms(terms, T, n);
  g.loss = terms.loss;
  g.phi = std::move(terms.phi);
  const Matrix& jumps = terms.jumps;
  if (!integrate) {  // only observations at t0: no dynamics involved
    for (Eigen::Index k = 0; k < T; ++k) g.z0 += jumps.row(k).transpose();
    return g;
  }
  if (has_costs) {
    // At t itself: after one-step forward stepping, CVodeGetQuad would give the last step's end.
    s.check(CVodeGetQuadDky(s.mem.get(), t, 0, s.q.get()), "CVodeGetQuadDky");
    g.loss += NV_Ith_S(s.q.get(), 0);
  }
  g.forward = s.forward_stats(s.mem.get());
  g.forward.checkpoints = ncheck;

  s.forward_panels = gauss_legendre && s.dyn.smooth();
  if (s.forward_panels) s.build_panels(tr, t0, t_last);
  // ---- backward, from t_last to t0 through every observation time ----
  const Eigen::Index backward_size = s.transition ? static_cast<Eigen::Index>(n) * s.nb : n;
  if (!s.yB) s.yB = detail::make_vector(backward_size, s.ctx);
  if (gauss_legendre && !s.a_node) {
    s.a_node = detail::make_vector(backward_size, s.ctx);
    s.y_node = detail::make_vector(n, s.ctx);
  }
  Vector theta_acc = Vector::Zero(gauss_legendre ? s.P : 0);
  g.z0 = s.transition ? s.backward_transition(tr, jumps, t0, t_last, theta_acc, g.backward)
                      : s.backward_restart(tr, jumps, g.states, t0, t_last, gauss_legendre, theta_acc, g.backward);
  if (gauss_legendre) {
    s.check_panels_done();
    g.theta = theta_acc;
    g.backward.quad_evals = s.n_quad;
  } else if (s.P > 0) {
    g.theta = view(s.qB.get()).head(s.P);
  }
  g.nfe_forward = s.n_rhs;
  g.nfe_backward = s.n_vjp;
  return g;
}

}  // namespace

std::unique_ptr<GradientEngine> make_cvodes_adjoint_engine(const Dynamics& dynamics, const SolverOptions& options) {
  return std::make_unique<CvodesAdjoint>(dynamics, options);
}

std::string validate_cvodes_adjoint_options(const SolverOptions& options, int state_size) {
  if (std::string c = options.dopri5.changed(); !c.empty())
    return "solver option " + c + " applies to method dopri5, not to " + options.method;
  return options.cvodes.validate(options.method, state_size);
}

}  // namespace cvnode

// SolverOptions' shared checks, the CVODES and dopri5 option structs' own, and the spellings of
// the CVODES enums.
#include "cvnode/solver_options.h"

#include <cmath>
#include <sstream>

#include "core/names.h"
#include "cvnode/engine.h"
#include "cvnode/errors.h"

namespace cvnode {

namespace {
std::string num(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}
std::string bad(const char* name, const std::string& value, const std::string& why) {
  return std::string("solver option ") + name + " = " + value + " " + why;
}

const detail::EnumName<NonlinearSolver> kNonlinearSolvers[] = {
    {NonlinearSolver::Auto, "auto"}, {NonlinearSolver::Newton, "newton"}, {NonlinearSolver::FixedPoint, "fixed_point"}};
const detail::EnumName<LinearSolver> kLinearSolvers[] = {
    {LinearSolver::Dense, "dense"}, {LinearSolver::Band, "band"}, {LinearSolver::Gmres, "gmres"}};
const detail::EnumName<Preconditioner> kPreconditioners[] = {{Preconditioner::None, "none"},
                                                             {Preconditioner::BlockJacobi, "block_jacobi"}};
const detail::EnumName<Quadrature> kQuadratures[] = {
    {Quadrature::Auto, "auto"}, {Quadrature::Cvodes, "cvodes"}, {Quadrature::GaussLegendre, "gauss_legendre"}};
const detail::EnumName<AdjointForm> kAdjointForms[] = {
    {AdjointForm::Auto, "auto"}, {AdjointForm::Restart, "restart"}, {AdjointForm::Transition, "transition"}};
const detail::EnumName<Interpolation> kInterpolations[] = {{Interpolation::Hermite, "hermite"},
                                                           {Interpolation::Polynomial, "polynomial"}};
}  // namespace

const char* nonlinear_solver_name(NonlinearSolver s) { return detail::enum_name(kNonlinearSolvers, s); }
NonlinearSolver parse_nonlinear_solver(const std::string& n) { return detail::parse_enum(kNonlinearSolvers, n, "nonlinear_solver"); }
const char* linear_solver_name(LinearSolver s) { return detail::enum_name(kLinearSolvers, s); }
LinearSolver parse_linear_solver(const std::string& n) { return detail::parse_enum(kLinearSolvers, n, "linear_solver"); }
const char* preconditioner_name(Preconditioner p) { return detail::enum_name(kPreconditioners, p); }
Preconditioner parse_preconditioner(const std::string& n) { return detail::parse_enum(kPreconditioners, n, "preconditioner"); }
const char* quadrature_name(Quadrature q) { return detail::enum_name(kQuadratures, q); }
Quadrature parse_quadrature(const std::string& n) { return detail::parse_enum(kQuadratures, n, "quadrature"); }
const char* adjoint_form_name(AdjointForm f) { return detail::enum_name(kAdjointForms, f); }
AdjointForm parse_adjoint_form(const std::string& n) { return detail::parse_enum(kAdjointForms, n, "adjoint_form"); }
const char* interpolation_name(Interpolation i) { return detail::enum_name(kInterpolations, i); }
Interpolation parse_interpolation(const std::string& n) { return detail::parse_enum(kInterpolations, n, "interpolation"); }

// ---- the options every engine shares ----
std::string SolverOptions::validate(int state_size) const {
  if (!(rtol > 0) || !std::isfinite(rtol) || rtol >= 1) return bad("rtol", num(rtol), "must lie in (0, 1)");
  if (rtol < 1e-15) return bad("rtol", num(rtol), "is below double precision (>= 1e-15)");
  if (!(atol >= 0) || !std::isfinite(atol)) return bad("atol", num(atol), "must be finite and >= 0");
  if (atol_vector.size() > 0) {
    if (state_size > 0 && atol_vector.size() != state_size)
      return "solver option atol_vector has " + std::to_string(atol_vector.size()) + " entries but the state has " +
             std::to_string(state_size);
    for (Eigen::Index i = 0; i < atol_vector.size(); ++i)
      if (!(atol_vector[i] >= 0) || !std::isfinite(atol_vector[i]))
        return bad("atol_vector", "[" + std::to_string(i) + "] = " + num(atol_vector[i]), "must be finite and >= 0");
  }
  if (atol == 0 && atol_vector.size() == 0)
    return bad("atol", "0", "leaves components near zero without any tolerance; give atol > 0");
  if (max_steps < 1) return bad("max_steps", std::to_string(max_steps), "must be >= 1");
  if (!(initial_step >= 0) || !std::isfinite(initial_step))
    return bad("initial_step", num(initial_step), "must be >= 0 (0 = automatic)");
  if (!(max_step >= 0) || !std::isfinite(max_step)) return bad("max_step", num(max_step), "must be >= 0 (0 = unbounded)");
  if (!(min_step >= 0) || !std::isfinite(min_step)) return bad("min_step", num(min_step), "must be >= 0");
  if (max_step > 0 && min_step > max_step) return bad("min_step", num(min_step), "exceeds max_step");
  return validate_engine_options(*this, state_size);
}

void SolverOptions::check(int state_size) const {
  if (std::string why = validate(state_size); !why.empty()) throw OptionsError(why);
}

// ---- CVODES (adams, bdf) ----
std::string CvodesOptions::validate(const std::string& method, int state_size) const {
  const bool bdf = method == "bdf";
  if (constraints.size() > 0) {
    if (state_size > 0 && constraints.size() != state_size)
      return "solver option constraints has " + std::to_string(constraints.size()) + " entries but the state has " +
             std::to_string(state_size);
    for (Eigen::Index i = 0; i < constraints.size(); ++i) {
      const double c = constraints[i];
      if (c != 0 && c != 1 && c != 2 && c != -1 && c != -2)
        return bad("constraints", "[" + std::to_string(i) + "] = " + num(c),
                   "must be 0 (free), 1 (>= 0), 2 (> 0), -1 (<= 0) or -2 (< 0)");
    }
  }
  if (quadrature == Quadrature::GaussLegendre && bdf)
    return "solver option quadrature = gauss_legendre needs method = adams: with BDF on a stiff problem the "
           "backward steps stride over fast adjoint modes that the per-step rule cannot see (use auto or cvodes)";
  if (adjoint_form == AdjointForm::Transition && (!uses_gauss_legendre(bdf) || !uses_fixed_point(bdf)))
    return "solver option adjoint_form = transition needs method = adams with the fixed-point iteration and "
           "quadrature gauss_legendre (or auto)";
  if (std::isnan(adjoint_atol) || std::isinf(adjoint_atol))
    return bad("adjoint_atol", num(adjoint_atol), "must be > 0, 0 for 'scaled to the adjoint' or < 0 for 'same as atol'");
  if (std::isnan(quadrature_atol) || quadrature_atol == 0)
    return bad("quadrature_atol", num(quadrature_atol), "must be > 0, or < 0 for 'same as atol'");
  if (std::isnan(quadrature_rtol) || quadrature_rtol == 0 || quadrature_rtol >= 1)
    return bad("quadrature_rtol", num(quadrature_rtol), "must lie in (0, 1), or < 0 for 'same as rtol'");
  const int order_cap = bdf ? 5 : 12;
  if (max_order < 0 || max_order > order_cap)
    return bad("max_order", std::to_string(max_order),
               "must lie in [1, " + std::to_string(order_cap) + "] for " + method + " (0 = maximum)");
  if (gmres_max_krylov < 0) return bad("gmres_max_krylov", std::to_string(gmres_max_krylov), "must be >= 0 (0 = default 5)");
  if (linear_solver == LinearSolver::Band) {
    if (band_upper < 0 || band_lower < 0)
      return bad("band_upper/band_lower", std::to_string(band_upper) + "/" + std::to_string(band_lower),
                 "must both be >= 0 for the band linear solver");
    if (state_size > 0 && (band_upper >= state_size || band_lower >= state_size))
      return bad("band_upper/band_lower", std::to_string(band_upper) + "/" + std::to_string(band_lower),
                 "must be below the state size");
  }
  if (preconditioner != Preconditioner::None && linear_solver != LinearSolver::Gmres)
    return bad("preconditioner", "block_jacobi", "needs linear_solver = gmres");
  if (preconditioner_block < 0 || (state_size > 0 && preconditioner_block > 0 && state_size % preconditioner_block != 0))
    return bad("preconditioner_block", std::to_string(preconditioner_block),
               "must divide the state size " + std::to_string(state_size));
  if (checkpoint_steps < 1) return bad("checkpoint_steps", std::to_string(checkpoint_steps), "must be >= 1");
  if (bdf && nonlinear_solver == NonlinearSolver::FixedPoint)
    return bad("nonlinear_solver", "fixed_point", "with BDF defeats its purpose: stiff problems need Newton");
  return {};
}

std::string CvodesOptions::changed() const {
  const CvodesOptions d;
  auto is = [](const char* name, const std::string& value) { return std::string(name) + " = " + value; };
  if (nonlinear_solver != d.nonlinear_solver) return is("nonlinear_solver", nonlinear_solver_name(nonlinear_solver));
  if (linear_solver != d.linear_solver) return is("linear_solver", linear_solver_name(linear_solver));
  if (gmres_max_krylov != d.gmres_max_krylov) return is("gmres_max_krylov", std::to_string(gmres_max_krylov));
  if (band_upper != d.band_upper) return is("band_upper", std::to_string(band_upper));
  if (band_lower != d.band_lower) return is("band_lower", std::to_string(band_lower));
  if (preconditioner != d.preconditioner) return is("preconditioner", preconditioner_name(preconditioner));
  if (preconditioner_block != d.preconditioner_block) return is("preconditioner_block", std::to_string(preconditioner_block));
  if (constraints.size() > 0) return is("constraints", "[...]");
  if (adjoint_atol != d.adjoint_atol) return is("adjoint_atol", num(adjoint_atol));
  if (quadrature_error_control != d.quadrature_error_control)
    return is("quadrature_error_control", quadrature_error_control ? "true" : "false");
  if (quadrature != d.quadrature) return is("quadrature", quadrature_name(quadrature));
  if (adjoint_form != d.adjoint_form) return is("adjoint_form", adjoint_form_name(adjoint_form));
  if (quadrature_rtol != d.quadrature_rtol) return is("quadrature_rtol", num(quadrature_rtol));
  if (quadrature_atol != d.quadrature_atol) return is("quadrature_atol", num(quadrature_atol));
  if (max_order != d.max_order) return is("max_order", std::to_string(max_order));
  if (checkpoint_steps != d.checkpoint_steps) return is("checkpoint_steps", std::to_string(checkpoint_steps));
  if (interpolation != d.interpolation) return is("interpolation", interpolation_name(interpolation));
  return {};
}

// ---- dopri5 ----
std::string Dopri5Options::validate() const {
  if (!(keep_mib >= 0) || !std::isfinite(keep_mib))
    return bad("dopri5_keep_mib", num(keep_mib), "must be finite and >= 0 (0 = keep nothing, recompute)");
  if (!(fixed_step >= 0) || !std::isfinite(fixed_step))
    return bad("dopri5_fixed_step", num(fixed_step), "must be finite and >= 0 (0 = adaptive steps)");
  if (!(error_weight >= 0) || !std::isfinite(error_weight))
    return bad("dopri5_error_weight", num(error_weight), "must be finite and >= 0 (0 = no solver-error penalty)");
  return {};
}

std::string Dopri5Options::changed() const {
  if (fixed_step != Dopri5Options{}.fixed_step) return "dopri5_fixed_step = " + num(fixed_step);
  if (keep_mib != Dopri5Options{}.keep_mib) return "dopri5_keep_mib = " + num(keep_mib);
  if (error_weight != Dopri5Options{}.error_weight) return "dopri5_error_weight = " + num(error_weight);
  return {};
}

AdjointForm resolved_adjoint_form(const SolverOptions& opt, const Dynamics& dyn) {
  if (opt.method != "adams" && opt.method != "bdf") return AdjointForm::Restart;
  const bool bdf = opt.is_bdf();
  const int n = dyn.state_size(), block = dyn.block_size();
  const bool fits = block >= 1 && block <= kMaxTransitionBlock && n % block == 0 && dyn.param_size() > 0;
  const bool applies = opt.cvodes.uses_gauss_legendre(bdf) && opt.cvodes.uses_fixed_point(bdf) && fits;
  switch (opt.cvodes.adjoint_form) {
    case AdjointForm::Restart: return AdjointForm::Restart;
    case AdjointForm::Auto: return applies ? AdjointForm::Transition : AdjointForm::Restart;
    case AdjointForm::Transition:
      if (!fits)
        throw OptionsError("solver option adjoint_form = transition needs blocks of df/dz of at most " +
                           std::to_string(kMaxTransitionBlock) + " states (these dynamics have " +
                           std::to_string(block) + ") and a model with parameters");
      return AdjointForm::Transition;  // the method pairing was checked by CvodesOptions::validate
  }
  return AdjointForm::Restart;
}

bool dense_newton(const SolverOptions& o) {
  const bool cvodes = o.method == "adams" || o.method == "bdf";
  return cvodes && !o.cvodes.uses_fixed_point(o.is_bdf()) && o.cvodes.linear_solver == LinearSolver::Dense;
}

std::string error_penalty_refusal(const SolverOptions& solver, double error_weight) {
  if (!(error_weight > 0) || solver.method == "dopri5") return {};
  std::ostringstream o;
  o << "regularization.error_weight = " << error_weight << " penalises the local error estimates of dopri5's steps; "
    << "solver.method = \"" << solver.method << "\" (the CVODES adjoint) cannot differentiate its error test: "
    << "use solver.method = \"dopri5\" or error_weight = 0";
  return o.str();
}

SolverOptions with_error_penalty(SolverOptions solver, double error_weight) {
  if (std::string why = error_penalty_refusal(solver, error_weight); !why.empty()) throw OptionsError(why);
  if (solver.method == "dopri5") solver.dopri5.error_weight = error_weight;
  return solver;
}

}  // namespace cvnode

#include "cvnode/solver_options.h"

#include <cmath>
#include <sstream>

#include "cvnode/errors.h"

namespace cvnode {

namespace {
std::string num(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}
}  // namespace

std::string SolverOptions::validate(int state_size) const {
  auto bad = [](const char* name, const std::string& value, const char* why) {
    return std::string("solver option ") + name + " = " + value + " " + why;
  };
  if (!(rtol > 0) || !std::isfinite(rtol) || rtol >= 1) return bad("rtol", num(rtol), "must lie in (0, 1)");
  if (rtol < 1e-15) return bad("rtol", num(rtol), "is below double precision (>= 1e-15)");
  if (!(atol >= 0) || !std::isfinite(atol)) return bad("atol", num(atol), "must be finite and >= 0");
  if (atol_vector.size() > 0) {
    if (state_size > 0 && atol_vector.size() != state_size)
      return "solver option atol_vector has " + std::to_string(atol_vector.size()) +
             " entries but the state has " + std::to_string(state_size);
    for (Eigen::Index i = 0; i < atol_vector.size(); ++i)
      if (!(atol_vector[i] >= 0) || !std::isfinite(atol_vector[i]))
        return bad("atol_vector", "[" + std::to_string(i) + "] = " + num(atol_vector[i]), "must be finite and >= 0");
  }
  if (constraints.size() > 0) {
    if (state_size > 0 && constraints.size() != state_size)
      return "solver option constraints has " + std::to_string(constraints.size()) +
             " entries but the state has " + std::to_string(state_size);
    for (Eigen::Index i = 0; i < constraints.size(); ++i) {
      const double c = constraints[i];
      if (c != 0 && c != 1 && c != 2 && c != -1 && c != -2)
        return bad("constraints", "[" + std::to_string(i) + "] = " + num(c),
                   "must be 0 (free), 1 (>= 0), 2 (> 0), -1 (<= 0) or -2 (< 0)");
    }
  }
  if (method == Method::Dopri5) {
    // Options of the CVODES adjoint that an explicit method with backpropagation has no use
    // for: refused rather than ignored, so a configuration says what it does.
    if (quadrature != Quadrature::Auto)
      return bad("quadrature", quadrature_name(quadrature), "applies to the adjoint methods (adams, bdf), not to dopri5");
    if (adjoint_form != AdjointForm::Auto)
      return bad("adjoint_form", adjoint_form_name(adjoint_form), "applies to the adjoint methods (adams, bdf), not to dopri5");
    if (nonlinear_solver != NonlinearSolver::Auto)
      return bad("nonlinear_solver", nonlinear_solver == NonlinearSolver::Newton ? "newton" : "fixed_point",
                 "does not apply to the explicit method dopri5");
    if (max_order != 0) return bad("max_order", std::to_string(max_order), "does not apply to dopri5 (fixed order 5)");
    if (constraints.size() > 0) return bad("constraints", "set", "are not supported by dopri5 (use adams or bdf)");
  }
  if (quadrature == Quadrature::GaussLegendre && method == Method::Bdf)
    return "solver option quadrature = gauss_legendre needs method = adams: with BDF on a stiff problem the "
           "backward steps stride over fast adjoint modes that the per-step rule cannot see (use auto or cvodes)";
  if (adjoint_form == AdjointForm::Transition && (!uses_gauss_legendre() || !uses_fixed_point()))
    return "solver option adjoint_form = transition needs method = adams with the fixed-point iteration and "
           "quadrature gauss_legendre (or auto)";
  if (atol == 0 && atol_vector.size() == 0)
    return bad("atol", "0", "leaves components near zero without any tolerance; give atol > 0");
  if (std::isnan(adjoint_atol) || std::isinf(adjoint_atol))
    return bad("adjoint_atol", num(adjoint_atol), "must be > 0, 0 for 'scaled to the adjoint' or < 0 for 'same as atol'");
  if (std::isnan(quadrature_atol) || quadrature_atol == 0)
    return bad("quadrature_atol", num(quadrature_atol), "must be > 0, or < 0 for 'same as atol'");
  if (std::isnan(quadrature_rtol) || quadrature_rtol == 0 || quadrature_rtol >= 1)
    return bad("quadrature_rtol", num(quadrature_rtol), "must lie in (0, 1), or < 0 for 'same as rtol'");
  if (max_steps < 1) return bad("max_steps", std::to_string(max_steps), "must be >= 1");
  if (!(initial_step >= 0) || !std::isfinite(initial_step)) return bad("initial_step", num(initial_step), "must be >= 0 (0 = automatic)");
  if (!(max_step >= 0) || !std::isfinite(max_step)) return bad("max_step", num(max_step), "must be >= 0 (0 = unbounded)");
  if (!(min_step >= 0) || !std::isfinite(min_step)) return bad("min_step", num(min_step), "must be >= 0");
  if (max_step > 0 && min_step > max_step) return bad("min_step", num(min_step), "exceeds max_step");
  const int order_cap = method == Method::Bdf ? 5 : 12;
  if (max_order < 0 || max_order > order_cap)
    return bad("max_order", std::to_string(max_order),
               (std::string("must lie in [1, ") + std::to_string(order_cap) + "] for " + method_name(method) + " (0 = maximum)").c_str());
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
               ("must divide the state size " + std::to_string(state_size)).c_str());
  if (checkpoint_steps < 1) return bad("checkpoint_steps", std::to_string(checkpoint_steps), "must be >= 1");
  if (method == Method::Bdf && nonlinear_solver == NonlinearSolver::FixedPoint)
    return bad("nonlinear_solver", "fixed_point", "with BDF defeats its purpose: stiff problems need Newton");
  return {};
}

void SolverOptions::check(int state_size) const {
  if (std::string why = validate(state_size); !why.empty()) throw OptionsError(why);
}

const char* method_name(Method m) {
  switch (m) {
    case Method::Adams: return "adams";
    case Method::Bdf: return "bdf";
    case Method::Dopri5: return "dopri5";
  }
  return "?";
}

const char* quadrature_name(Quadrature q) {
  switch (q) {
    case Quadrature::Auto: return "auto";
    case Quadrature::Cvodes: return "cvodes";
    case Quadrature::GaussLegendre: return "gauss_legendre";
  }
  return "?";
}

Quadrature parse_quadrature(const std::string& name) {
  if (name == "auto") return Quadrature::Auto;
  if (name == "cvodes") return Quadrature::Cvodes;
  if (name == "gauss_legendre") return Quadrature::GaussLegendre;
  throw OptionsError("unknown quadrature '" + name + "' (expected auto, cvodes or gauss_legendre)");
}

const char* adjoint_form_name(AdjointForm f) {
  switch (f) {
    case AdjointForm::Auto: return "auto";
    case AdjointForm::Restart: return "restart";
    case AdjointForm::Transition: return "transition";
  }
  return "?";
}

AdjointForm parse_adjoint_form(const std::string& name) {
  if (name == "auto") return AdjointForm::Auto;
  if (name == "restart") return AdjointForm::Restart;
  if (name == "transition") return AdjointForm::Transition;
  throw OptionsError("unknown adjoint_form '" + name + "' (expected auto, restart or transition)");
}

Method parse_method(const std::string& name) {
  if (name == "adams") return Method::Adams;
  if (name == "bdf") return Method::Bdf;
  if (name == "dopri5") return Method::Dopri5;
  throw OptionsError("unknown method '" + name + "' (expected adams, bdf or dopri5)");
}

}  // namespace cvnode

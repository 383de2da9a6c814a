#include "ode/engine_util.h"

#include <string>

#include "cvnode/errors.h"

namespace cvnode::detail {

void check_theta(ConstVectorRef theta, int P) {
  if (theta.size() != P)
    throw OptionsError("theta has " + std::to_string(theta.size()) + " entries but the dynamics have " +
                       std::to_string(P) + " parameters");
}

void check_solve_inputs(double t0, ConstVectorRef z0, ConstVectorRef times, int n) {
  if (z0.size() != n)
    throw OptionsError("z0 has " + std::to_string(z0.size()) + " entries but the state has " + std::to_string(n));
  if (!z0.allFinite()) throw OptionsError("z0 is not finite");
  for (Eigen::Index k = 0; k < times.size(); ++k) {
    if (!std::isfinite(times[k]) || times[k] < t0 || (k > 0 && times[k] < times[k - 1]))
      throw OptionsError("output times must be finite, >= t0 = " + std::to_string(t0) +
                         " and non-decreasing; times[" + std::to_string(k) + "] = " + std::to_string(times[k]));
  }
}

void check_ivp(const Trajectory& ivp, int n) {
  if (std::string why = ivp.validate(n); !why.empty()) throw OptionsError(why);
  if (!ivp.events.empty() || !ivp.controls.empty() || ivp.covariates.size() > 0)
    throw OptionsError("this series has events, controls or covariates, which only the engine from make_engine "
                       "applies (segment by segment): refused rather than ignored");
}

void check_terms(const ObservationTerms& terms, Eigen::Index times, int n) {
  if (terms.jumps.rows() != times || terms.jumps.cols() != n)
    throw OptionsError("the observation terms have " + std::to_string(terms.jumps.rows()) + " x " +
                       std::to_string(terms.jumps.cols()) + " jumps for " + std::to_string(times) +
                       " observation times of a state of " + std::to_string(n));
}

}  // namespace cvnode::detail

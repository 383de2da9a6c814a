// What the gradient engines share: the checks of a call's inputs and of the observation terms,
// and what counts as one instant.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>

#include "cvnode/observations.h"
#include "cvnode/problem.h"

namespace cvnode::detail {

// Two times closer than CVODES can resolve (its CV_TOO_CLOSE test uses 2 unit round-offs): one
// instant for every engine (a union grid of several series puts such times side by side).
inline bool same_instant(double a, double b) {
  return std::abs(a - b) <= 4 * std::numeric_limits<double>::epsilon() * std::max(std::abs(a), std::abs(b));
}

// Throws OptionsError when theta does not have the dynamics' P entries.
void check_theta(ConstVectorRef theta, int P);
// Throws OptionsError when z0 does not fit a state of n or is not finite, or the output times
// are not finite, >= t0 and non-decreasing (GradientEngine::solve).
void check_solve_inputs(double t0, ConstVectorRef z0, ConstVectorRef times, int n);
// Throws OptionsError when an engine's initial-value problem does not fit a state of n
// (Trajectory::validate) or carries events or inputs, which reach a registered engine only
// through the segments of src/ode/segments.h.
void check_ivp(const Trajectory& ivp, int n);
// Throws OptionsError unless an observer's terms have one jump row per observation time and one
// column per state component.
void check_terms(const ObservationTerms& terms, Eigen::Index times, int n);

}  // namespace cvnode::detail

// What the two engines, the CVODES adjoint (solver.cpp) and backpropagation through
// Dormand-Prince (dopri5.cpp), share: the checks of a call's inputs, and the loss's observation
// terms with their jumps dl_k/dz(t_k).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>

#include "cvnode/loss.h"
#include "cvnode/observations.h"

namespace cvnode::detail {

// Two times closer than CVODES can resolve (its CV_TOO_CLOSE test uses 2 unit round-offs): one
// instant for both engines (a union grid of several series puts such times side by side).
inline bool same_instant(double a, double b) {
  return std::abs(a - b) <= 4 * std::numeric_limits<double>::epsilon() * std::max(std::abs(a), std::abs(b));
}

// Throws OptionsError when theta does not have the dynamics' P entries.
void check_theta(ConstVectorRef theta, int P);
// Throws OptionsError when z0 does not fit a state of n or is not finite, or the output times
// are not finite, >= t0 and non-decreasing (Solver::solve).
void check_solve_inputs(double t0, ConstVectorRef z0, ConstVectorRef times, int n);
// Throws OptionsError when the trajectory, the loss or the readout do not fit a state of n.
void check_gradient_inputs(const Trajectory& tr, const Loss& loss, const Matrix* readout, int n);

struct ObservationTerms {
  double loss = 0;
  Matrix jumps;    // T x n: dl_k/dz at each observation time
  Matrix readout;  // dLoss/dC (channels x n) with a readout C, else empty
};

// The observation terms at the predicted states (T x n); see Solver::gradient for scale and C.
ObservationTerms observation_terms(const Trajectory& tr, const Loss& loss, double scale,
                                   const Matrix& states, const Matrix* readout);

}  // namespace cvnode::detail

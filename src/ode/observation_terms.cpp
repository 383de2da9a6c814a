#include "ode/observation_terms.h"

#include <cmath>
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

void check_gradient_inputs(const Trajectory& tr, const Loss& loss, const Matrix* readout, int n) {
  if (readout)
    if (std::string why = readout_mismatch(*readout, n); !why.empty()) throw OptionsError(why);
  if (readout && !readout->allFinite()) throw OptionsError("the readout is not finite");
  const int channels = readout ? static_cast<int>(readout->rows()) : -1;
  if (std::string why = tr.validate(n, channels); !why.empty()) throw OptionsError(why);
  if (!tr.events.empty() || !tr.controls.empty() || tr.covariates.size() > 0)
    throw OptionsError("this series has events, controls or covariates, which the solver does not apply yet "
                       "(issue 12): refused rather than ignored");
  if (std::string why = loss.validate(static_cast<int>(tr.values.cols())); !why.empty())
    throw OptionsError(why);
}

ObservationTerms observation_terms(const Trajectory& tr, const Loss& loss, double scale,
                                   const Matrix& states, const Matrix* readout) {
  // The loss sees the channels y = C z (readout) or the first components of z; dy holds dl_k/dy.
  const Eigen::Index T = states.rows();
  const Matrix y_pred = observed_channels(states, readout, tr.values.cols());
  Matrix dy = Matrix::Zero(T, tr.values.cols());
  ObservationTerms out;
  const bool masked = tr.mask.size() > 0;
  for (Eigen::Index k = 0; k < T; ++k) {
    for (Eigen::Index i = 0; i < tr.values.cols(); ++i) {
      if (masked && tr.mask(k, i) == 0) continue;
      double d = 0;
      out.loss += loss.term(y_pred(k, i), tr.values(k, i), static_cast<int>(i), scale, &d);
      dy(k, i) = d;
    }
  }
  out.jumps = Matrix::Zero(T, states.cols());
  if (readout) {
    out.jumps = dy * *readout;
    out.readout = dy.transpose() * states;
  } else {
    out.jumps.leftCols(dy.cols()) = dy;
  }
  return out;
}

}  // namespace cvnode::detail

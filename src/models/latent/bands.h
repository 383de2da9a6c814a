// Predictive summaries from posterior samples: at each time and channel the mean and quantiles
// of the mixture (1/S) sum_s N(mu_s(t), sigma^2) of the decoded sample means mu_s and the
// observation noise sigma (the distribution of a new measurement), or of the sample means
// alone (sigma = 0: the spread of the fitted curve). Also how a series is cut into what a model
// conditions on and what it is scored on.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "cvnode/observations.h"

namespace cvnode::latent {

struct Band {
  Matrix mean;           // T x channels
  std::vector<Matrix> quantiles;  // one T x channels matrix per requested level
};

// levels in (0, 1), e.g. {0.05, 0.5, 0.95}. noise_std: per channel, or empty for sigma = 0.
Band summarize(const std::vector<Matrix>& sample_means, ConstVectorRef noise_std, const std::vector<double>& levels);

// Which observed entries of a series a model sees and which it is scored on.
struct Condition {
  // Condition on observations at times <= until (NaN: see fraction).
  double until = std::numeric_limits<double>::quiet_NaN();
  // Else on the first `fraction` of each series' time span [t0, last time] (NaN: everything).
  double fraction = std::numeric_limits<double>::quiet_NaN();
  // Within the conditioning window, hold out this fraction of the observed rows (seeded per
  // series) as interpolation targets; 0 scores the conditioning rows themselves.
  double holdout = 0;
  std::uint64_t seed = 0;
};

struct Cut {
  Trajectory seen;     // the series with everything not conditioned on masked
  Matrix interpolate;  // mask (rows x channels) of the interpolation targets
  Matrix extrapolate;  // mask of the extrapolation targets (times after the window)
  double window_end = 0;
};
// `index` selects the holdout draw of this series. Throws DataError naming `id` when nothing
// is left to condition on.
Cut cut(const Trajectory& series, const Condition& condition, std::uint64_t index, const std::string& id);

}  // namespace cvnode::latent

#include "cvnode/regularization.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "cvnode/errors.h"

#include "core/random.h"

namespace cvnode {

std::string RegularizationOptions::validate() const {
  auto bad = [](double v) { return !(v >= 0) || !std::isfinite(v); };
  if (bad(kinetic_weight)) return "regularization.kinetic_weight = " + std::to_string(kinetic_weight) + " must be >= 0";
  if (bad(jacobian_weight))
    return "regularization.jacobian_weight = " + std::to_string(jacobian_weight) + " must be >= 0";
  if (jacobian_probes < 1)
    return "regularization.jacobian_probes = " + std::to_string(jacobian_probes) + " must be >= 1";
  if (bad(steer)) return "regularization.steer = " + std::to_string(steer) + " must be >= 0";
  if (bad(error_weight))
    return "regularization.error_weight = " + std::to_string(error_weight) + " must be >= 0";
  return {};
}

std::vector<std::shared_ptr<const RunningCost>> regularizer_costs(const Dynamics& dynamics,
                                                                   const RegularizationOptions& o,
                                                                   std::uint64_t step_seed) {
  std::vector<std::shared_ptr<const RunningCost>> costs;
  if (o.kinetic_weight > 0) costs.push_back(std::make_shared<KineticEnergy>(dynamics, o.kinetic_weight));
  if (o.jacobian_weight > 0) {
    JacobianFrobenius::Options j;
    j.weight = o.jacobian_weight;
    j.estimator = o.jacobian_estimator;
    j.probes = o.jacobian_probes;
    j.seed = step_seed;
    costs.push_back(std::make_shared<JacobianFrobenius>(dynamics, j));
  }
  return costs;
}

Trajectory steer_times(const Trajectory& series, double b, std::uint64_t seed) {
  Trajectory out = series;
  const Eigen::Index K = series.times.size();
  if (b <= 0 || K < 2) return out;
  double gap = std::numeric_limits<double>::infinity();
  for (Eigen::Index k = 1; k < K; ++k) gap = std::min(gap, series.times[k] - series.times[k - 1]);
  // The first observation may sit at t0; the others keep a margin from it too.
  if (series.times[0] > series.t0) gap = std::min(gap, series.times[0] - series.t0);
  const double h = std::min(b, 0.45 * gap);
  detail::Rng rng(seed);
  for (Eigen::Index k = 1; k < K; ++k) out.times[k] = series.times[k] + h * (2 * rng.uniform() - 1);
  return out;
}

}  // namespace cvnode

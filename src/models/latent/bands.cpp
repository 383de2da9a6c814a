#include "models/latent/bands.h"

#include <algorithm>
#include <cmath>

#include "cvnode/errors.h"
#include "core/random.h"

namespace cvnode::latent {

namespace {

// The q-quantile of (1/S) sum_s N(m_s, s^2) by bisection on the mixture's distribution function
// (monotone), to 1e-12 of the samples' spread.
double mixture_quantile(const std::vector<double>& m, double s, double q) {
  const auto [lo_it, hi_it] = std::minmax_element(m.begin(), m.end());
  double lo = *lo_it - 9 * s, hi = *hi_it + 9 * s;
  const double tol = 1e-12 * std::max(1.0, hi - lo);
  auto cdf = [&](double x) {
    double c = 0;
    for (double mu : m) c += 0.5 * std::erfc(-(x - mu) / (s * std::sqrt(2.0)));
    return c / m.size();
  };
  while (hi - lo > tol) {
    const double mid = 0.5 * (lo + hi);
    (cdf(mid) < q ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

// The q-quantile of the samples (linear interpolation between order statistics).
double sample_quantile(std::vector<double> m, double q) {
  std::sort(m.begin(), m.end());
  const double pos = q * (m.size() - 1);
  const std::size_t i = static_cast<std::size_t>(std::floor(pos));
  if (i + 1 >= m.size()) return m.back();
  return m[i] + (pos - i) * (m[i + 1] - m[i]);
}

}  // namespace

Band summarize(const std::vector<Matrix>& samples, ConstVectorRef noise_std, const std::vector<double>& levels) {
  if (samples.empty()) throw OptionsError("bands need at least one sample");
  const Eigen::Index T = samples[0].rows(), C = samples[0].cols();
  Band b;
  b.mean = Matrix::Zero(T, C);
  for (const auto& s : samples) b.mean += s / static_cast<double>(samples.size());
  b.quantiles.assign(levels.size(), Matrix(T, C));
  std::vector<double> v(samples.size());
  for (Eigen::Index k = 0; k < T; ++k)
    for (Eigen::Index c = 0; c < C; ++c) {
      for (std::size_t s = 0; s < samples.size(); ++s) v[s] = samples[s](k, c);
      const double sd = noise_std.size() ? noise_std[c] : 0.0;
      for (std::size_t l = 0; l < levels.size(); ++l)
        b.quantiles[l](k, c) = sd > 0 ? mixture_quantile(v, sd, levels[l]) : sample_quantile(v, levels[l]);
    }
  return b;
}

Cut cut(const Trajectory& tr, const Condition& c, std::uint64_t index, const std::string& id) {
  const Eigen::Index T = tr.times.size(), C = tr.values.cols();
  Cut out;
  out.seen = tr;
  if (out.seen.mask.size() == 0) out.seen.mask = Matrix::Ones(T, C);
  const Matrix observed = out.seen.mask;
  double end = tr.times.size() ? tr.times[T - 1] : tr.t0;
  if (!std::isnan(c.until)) end = c.until;
  else if (!std::isnan(c.fraction)) end = tr.t0 + c.fraction * ((T ? tr.times[T - 1] : tr.t0) - tr.t0);
  out.window_end = end;
  out.interpolate = Matrix::Zero(T, C);
  out.extrapolate = Matrix::Zero(T, C);
  detail::Rng rng(c.seed ^ (0x9E3779B97F4A7C15ULL * (index + 1)));
  for (Eigen::Index k = 0; k < T; ++k) {
    const bool inside = tr.times[k] <= end;
    const bool held = inside && c.holdout > 0 && rng.uniform() < c.holdout;
    for (Eigen::Index i = 0; i < C; ++i) {
      if (observed(k, i) == 0) continue;
      if (!inside) out.extrapolate(k, i) = 1;
      else if (held || c.holdout == 0) out.interpolate(k, i) = 1;
      if (!inside || held) out.seen.mask(k, i) = 0;
    }
  }
  if (out.seen.mask.sum() == 0)
    throw DataError("series '" + id + "': nothing observed to condition on (window ends at " + std::to_string(end) + ")");
  return out;
}

}  // namespace cvnode::latent

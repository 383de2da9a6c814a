#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cvnode/errors.h"
#include "cvnode/latent.h"
#include "core/random.h"

namespace cvnode {

std::string SpiralOptions::validate() const {
  std::ostringstream o;
  if (spirals < 1) o << "spirals = " << spirals << " must be >= 1";
  else if (window < 2) o << "window = " << window << " must be >= 2";
  else if (observed < 1 || observed > window) o << "observed = " << observed << " must lie in [1, window = " << window << "]";
  else if (extrapolate < 0 || extrapolate > window)
    o << "extrapolate = " << extrapolate << " must lie in [0, window = " << window << "]";
  else if (total < 3 * window) o << "total = " << total << " must be at least 3 window = " << 3 * window;
  else if (!(stop > 0) || !std::isfinite(stop)) o << "stop = " << stop << " must be finite and > 0";
  else if (!(noise >= 0) || !std::isfinite(noise)) o << "noise = " << noise << " must be finite and >= 0";
  else if (!(missing >= 0 && missing < 1)) o << "missing = " << missing << " must lie in [0, 1)";
  else if (!std::isfinite(a) || !std::isfinite(b)) o << "a and b must be finite";
  return o.str();
}

Dataset generate_spirals(const SpiralOptions& o) {
  if (std::string why = o.validate(); !why.empty()) throw OptionsError("spirals: " + why);
  const double dt = o.stop / (o.total - 1);
  // A point of either curve at index j of the full theta grid.
  auto point = [&](bool clockwise, int j, double& x, double& y) {
    const double th = j * dt;
    if (clockwise) {
      const double s = o.stop + 1 - th, r = o.a + 50 * o.b / s;
      x = r * std::cos(s) - 5;
      y = r * std::sin(s);
    } else {
      const double r = o.a + o.b * th;
      x = r * std::cos(th) + 5;
      y = r * std::sin(th);
    }
  };
  Dataset d({"x", "y"}, {"1", "1"});
  std::vector<int> dirs, starts;
  const int span = o.window + o.extrapolate;
  for (int i = 0; i < o.spirals; ++i) {
    // One stream per spiral for its start, direction and the noise of every grid point of its
    // window and targets, another for which points are observed: the same seed gives the same
    // spirals and noise for every `observed` and `extrapolate`.
    detail::Rng rng(o.seed ^ (0x9E3779B97F4A7C15ULL * (2 * static_cast<std::uint64_t>(i) + 1)));
    detail::Rng pick(rng.next() ^ 0xD1B54A32D192ED03ULL);
    // Start away from the curve's beginning (as the reference generator does) and early enough
    // for the window and up to `window` targets, whatever `extrapolate` is.
    const int first = o.window, last = o.total - 2 * o.window;
    const int start = first + std::min(last - first, static_cast<int>(rng.uniform() * (last - first + 1)));
    const bool cw = rng.uniform() > 0.5;
    Matrix noise(span, 2);
    for (int j = 0; j < span; ++j) {
      noise(j, 0) = rng.normal();
      noise(j, 1) = rng.normal();
    }
    std::vector<int> idx(o.window);
    std::iota(idx.begin(), idx.end(), 0);
    for (int k = 0; k < o.observed; ++k)
      std::swap(idx[k], idx[k + std::min(o.window - k - 1, static_cast<int>(pick.uniform() * (o.window - k)))]);
    idx.resize(o.observed);
    std::sort(idx.begin(), idx.end());
    for (int k = 0; k < o.extrapolate; ++k) idx.push_back(o.window + k);
    Series s;
    s.id = "spiral_" + std::to_string(i);
    s.t0 = 0;
    s.times.resize(idx.size());
    s.values.resize(idx.size(), 2);
    if (o.missing > 0) s.mask = Matrix::Ones(static_cast<Eigen::Index>(idx.size()), 2);
    // Its own stream: the same seed gives the same points and noise with or without missing entries.
    detail::Rng drop(rng.next() ^ 0x8CB92BA72F3D8DD7ULL);
    for (std::size_t r = 0; r < idx.size(); ++r) {
      const int j = idx[r];
      if (o.missing > 0 && j < o.window) {
        const bool x_gone = drop.uniform() < o.missing, y_gone = drop.uniform() < o.missing;
        // Both gone: keep the one a further draw picks, so every point observes a channel.
        const bool keep_x = drop.uniform() < 0.5;
        s.mask(r, 0) = !x_gone || (y_gone && keep_x);
        s.mask(r, 1) = !y_gone || (x_gone && !keep_x);
      }
      double x, y;
      point(cw, start + j, x, y);
      s.times[r] = j * dt;
      const double e = j < o.window || o.noisy_targets ? o.noise : 0.0;
      s.values(r, 0) = x + e * noise(j, 0);
      s.values(r, 1) = y + e * noise(j, 1);
      for (int c = 0; c < 2; ++c)
        if (s.mask.size() && s.mask(r, c) == 0) s.values(r, c) = std::numeric_limits<double>::quiet_NaN();
    }
    d.add(s);
    dirs.push_back(cw ? 1 : 0);
    starts.push_back(start);
  }
  nlohmann::json p;
  p["generator"] = "bidirectional_spirals";
  p["spirals"] = o.spirals;
  p["total"] = o.total;
  p["stop"] = o.stop;
  p["a"] = o.a;
  p["b"] = o.b;
  p["window"] = o.window;
  p["observed"] = o.observed;
  p["extrapolate"] = o.extrapolate;
  p["noise"] = o.noise;
  p["noisy_targets"] = o.noisy_targets;
  p["missing"] = o.missing;
  p["seed"] = o.seed;
  p["window_end"] = (o.window - 1) * dt;
  p["clockwise"] = dirs;
  p["start_index"] = starts;
  d.set_provenance(p.dump());
  return d;
}

}  // namespace cvnode

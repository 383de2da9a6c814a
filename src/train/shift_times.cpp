#include "train/shift_times.h"

#include <algorithm>
#include <cmath>

namespace cvnode::detail {

namespace {
// Every instant of a series: start, observations, events, control knots and t_end.
std::vector<double> instants(const Trajectory& tr) {
  std::vector<double> t(tr.times.data(), tr.times.data() + tr.times.size());
  t.push_back(tr.t0);
  if (std::isfinite(tr.t_end)) t.push_back(tr.t_end);
  for (const Event& e : tr.events) t.push_back(e.time);
  t.insert(t.end(), tr.controls.times.data(), tr.controls.times.data() + tr.controls.times.size());
  return t;
}
}  // namespace

void shift_to_common_start(std::vector<Trajectory>& series) {
  if (std::all_of(series.begin(), series.end(), [](const Trajectory& tr) { return tr.t0 == 0; })) return;
  double largest = 0, gap = HUGE_VAL;
  for (const Trajectory& tr : series) {
    std::vector<double> t = instants(tr);
    std::sort(t.begin(), t.end());
    for (std::size_t k = 0; k < t.size(); ++k) {
      largest = std::max(largest, std::abs(t[k]));
      if (k > 0 && t[k] > t[k - 1]) gap = std::min(gap, t[k] - t[k - 1]);
    }
  }
  if (!(largest > 0)) return;
  int q = std::ilogb(largest) + 1 - 40;  // 2^(ilogb + 1) > largest
  if (std::isfinite(gap)) q = std::min(q, std::ilogb(gap / 64));
  for (Trajectory& tr : series) {
    const double t0 = tr.t0;
    auto snap = [q, t0](double t) { return std::ldexp(std::nearbyint(std::ldexp(t - t0, -q)), q); };
    for (Eigen::Index k = 0; k < tr.times.size(); ++k) tr.times[k] = snap(tr.times[k]);
    if (std::isfinite(tr.t_end)) tr.t_end = snap(tr.t_end);
    for (Event& e : tr.events) e.time = snap(e.time);
    for (Eigen::Index k = 0; k < tr.controls.times.size(); ++k) tr.controls.times[k] = snap(tr.controls.times[k]);
    tr.t0 = 0;
  }
}

}  // namespace cvnode::detail

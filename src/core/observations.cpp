#include "cvnode/observations.h"

#include <cmath>
#include <sstream>

#include "core/names.h"

namespace cvnode {

int Trajectory::observed_entries() const {
  if (mask.size() == 0) return static_cast<int>(values.size());
  return static_cast<int>((mask.array() != 0).count());
}

double Trajectory::horizon() const {
  double last = times.size() > 0 ? times[times.size() - 1] : t0;
  return std::isnan(t_end) ? last : std::max(last, t_end);
}

std::string Trajectory::validate(int n) const {
  std::ostringstream o;
  o.precision(17);
  if (!std::isfinite(t0)) {
    o << "t0 = " << t0 << " is not finite";
    return o.str();
  }
  if (z0.size() != n) {
    o << "z0 has " << z0.size() << " entries, the state has " << n;
    return o.str();
  }
  if (!z0.allFinite()) return "z0 is not finite";
  if (values.rows() != times.size()) {
    o << "values has " << values.rows() << " rows but there are " << times.size() << " times";
    return o.str();
  }
  if (mask.size() > 0 && (mask.rows() != values.rows() || mask.cols() != values.cols())) {
    o << "mask is " << mask.rows() << " x " << mask.cols() << " but values is " << values.rows()
      << " x " << values.cols();
    return o.str();
  }
  for (Eigen::Index k = 0; k < times.size(); ++k) {
    if (!std::isfinite(times[k])) {
      o << "times[" << k << "] = " << times[k] << " is not finite";
      return o.str();
    }
    if (times[k] < t0) {
      o << "times[" << k << "] = " << times[k] << " lies before t0 = " << t0;
      return o.str();
    }
    if (k > 0 && !(times[k] > times[k - 1])) {
      o << "times must be strictly increasing: times[" << k - 1 << "] = " << times[k - 1]
        << ", times[" << k << "] = " << times[k];
      return o.str();
    }
    for (Eigen::Index i = 0; i < values.cols(); ++i) {
      const bool observed = mask.size() == 0 || mask(k, i) != 0;
      if (observed && !std::isfinite(values(k, i))) {
        o << "values(" << k << ", " << i << ") = " << values(k, i)
          << " is not finite and not masked";
        return o.str();
      }
    }
  }
  if (!std::isnan(t_end) && !std::isfinite(t_end)) return "t_end is not finite";
  const double end = horizon();
  for (std::size_t e = 0; e < events.size(); ++e) {
    const Event& ev = events[e];
    const std::string at = "events[" + std::to_string(e) + "]";
    if (!std::isfinite(ev.time) || ev.time < t0) {
      o << at << ".time = " << ev.time << " lies before t0 = " << t0;
      return o.str();
    }
    if (ev.time > end) {
      o << at << ".time = " << ev.time << " lies after the series' end " << end
        << " (its last observation or t_end)";
      return o.str();
    }
    if (e > 0 && ev.time < events[e - 1].time) {
      o << "events must be in time order: " << at << ".time = " << ev.time << " comes after events["
        << e - 1 << "].time = " << events[e - 1].time;
      return o.str();
    }
    if (ev.kind != EventKind::Reset && (ev.compartment < 0 || ev.compartment >= n)) {
      o << at << ".compartment = " << ev.compartment << " is not a state component (the state has " << n
        << ": 0 to " << n - 1 << ")";
      return o.str();
    }
    if (!std::isfinite(ev.amount) || ev.amount < 0) {
      o << at << ".amount = " << ev.amount << " must be finite and >= 0";
      return o.str();
    }
    if (ev.kind == EventKind::Remove && ev.amount > 1) {
      o << at << ".amount = " << ev.amount << " is the fraction a remove event takes: it must lie in [0, 1]";
      return o.str();
    }
    if (ev.kind == EventKind::Infusion && (!(ev.duration > 0) || !std::isfinite(ev.duration))) {
      o << at << ".duration = " << ev.duration << " must be finite and > 0 for an infusion";
      return o.str();
    }
  }
  if (controls.values.rows() != controls.times.size()) {
    o << "controls.values has " << controls.values.rows() << " rows but there are " << controls.times.size()
      << " control times";
    return o.str();
  }
  for (Eigen::Index k = 0; k < controls.times.size(); ++k) {
    if (!std::isfinite(controls.times[k]) || (k > 0 && !(controls.times[k] > controls.times[k - 1]))) {
      o << "controls.times must be finite and strictly increasing: controls.times[" << k
        << "] = " << controls.times[k];
      return o.str();
    }
  }
  if (!controls.values.allFinite()) return "controls.values is not finite";
  if (!covariates.allFinite()) return "covariates is not finite";
  return {};
}

namespace {
const detail::EnumName<EventKind> kEventKinds[] = {{EventKind::Bolus, "bolus"},
                                                   {EventKind::Infusion, "infusion"},
                                                   {EventKind::Remove, "remove"},
                                                   {EventKind::Reset, "reset"}};
const detail::EnumName<ControlInterpolation> kControlInterpolations[] = {
    {ControlInterpolation::PiecewiseConstant, "piecewise_constant"},
    {ControlInterpolation::Linear, "linear"},
    {ControlInterpolation::MonotoneCubic, "monotone_cubic"}};
}  // namespace

const char* event_kind_name(EventKind k) { return detail::enum_name(kEventKinds, k); }
EventKind parse_event_kind(const std::string& name) { return detail::parse_enum(kEventKinds, name, "event kind"); }
const char* control_interpolation_name(ControlInterpolation c) { return detail::enum_name(kControlInterpolations, c); }
ControlInterpolation parse_control_interpolation(const std::string& name) {
  return detail::parse_enum(kControlInterpolations, name, "control interpolation");
}

}  // namespace cvnode

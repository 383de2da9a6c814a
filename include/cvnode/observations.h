// One series to fit: its initial condition and its measurements at irregular times.
#pragma once

#include <limits>
#include <string>
#include <vector>

#include "cvnode/dynamics.h"

namespace cvnode {

// A discontinuity of one series at one instant: a dose, an infusion, a removal (NONMEM's dose
// records: AMT, RATE, CMT, EVID). Amounts are in the state's units.
enum class EventKind {
  Bolus,     // z[compartment] += amount (an instantaneous dose; EVID 1 with RATE 0)
  Infusion,  // amount / duration added to dz[compartment]/dt on [time, time + duration): a
             // zero-order input (EVID 1 with RATE > 0: duration = AMT / RATE)
  Remove,    // z[compartment] *= 1 - amount: the fraction 0 <= amount <= 1 removed (a jump
             // that depends on the state: dialysis, a harvest, a dilution)
  Reset      // z = 0 in every component (EVID 3; EVID 4 is a Reset then a Bolus at one time)
};
const char* event_kind_name(EventKind k);       // "bolus" | "infusion" | "remove" | "reset"
EventKind parse_event_kind(const std::string& name);  // throws OptionsError listing the choices

struct Event {
  double time = 0;
  int compartment = 0;  // state component (0-based); not used by Reset
  EventKind kind = EventKind::Bolus;
  double amount = 0;    // Bolus, Infusion: the amount (>= 0); Remove: the fraction in [0, 1]
  double duration = 0;  // Infusion: > 0
};

// Time-varying exogenous inputs u(t) of one series, given at knots.
enum class ControlInterpolation {
  PiecewiseConstant,  // u(t) = the row of the last knot <= t; the knots are solver stops
  Linear,             // linear between knots
  MonotoneCubic       // Fritsch-Carlson cubic: smooth, no overshoot between knots
};
const char* control_interpolation_name(ControlInterpolation c);  // piecewise_constant|linear|monotone_cubic
ControlInterpolation parse_control_interpolation(const std::string& name);  // throws OptionsError

struct Controls {
  Vector times;  // knots, strictly increasing, finite (may start before t0)
  Matrix values; // knots x inputs, finite
  ControlInterpolation interpolation = ControlInterpolation::PiecewiseConstant;
  // Before the first knot u(t) is the first row, after the last the last row.
  int inputs() const { return static_cast<int>(values.cols()); }
  bool empty() const { return times.size() == 0; }
};

struct Trajectory {
  double t0 = 0;
  Vector z0;
  // Strictly increasing observation times, each >= t0. An observation at t0 compares z0 itself.
  Vector times;
  // values(k, i): measurement of channel i at times[k]. What a channel measures is the loss's
  // observation map (cvnode/loss.h): the first values.cols() state components by default (the
  // others, e.g. augmented dimensions or an unobserved gut compartment, are unobserved).
  Matrix values;
  // Optional, same shape as values: 1 = observed, 0 = missing. Empty means all observed.
  Matrix mask;
  // End of the running-cost integral; NaN means the last observation time (or t0 if none).
  double t_end = std::numeric_limits<double>::quiet_NaN();
  // Events in time order (several at one time apply in the order given), each within
  // [t0, horizon()]. An observation at an event's time sees the state before the event.
  std::vector<Event> events;
  // Controls and static covariates: the dynamics' input is u(t) = [controls at t; covariates]
  // (Dynamics::input_size() = controls.inputs() + covariates.size()).
  Controls controls;
  Vector covariates;

  int observed_entries() const;  // entries that enter the loss
  double horizon() const;        // max(t_end, last time)
  // Empty when consistent with a state of n components, else a readable reason naming the field
  // and its value. Whether the values' channels fit the state is the loss's question
  // (Loss::validate).
  std::string validate(int state_size) const;
};

}  // namespace cvnode

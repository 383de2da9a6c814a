#include "data/series_check.h"

#include <charconv>
#include <cmath>
#include <sstream>

namespace cvnode::detail {

namespace {
// Losses sum squared residuals over up to ~1e8 entries: |value| below 1e150 keeps that finite.
constexpr double kMaxValue = 1e150;
}  // namespace

std::string check_series_rows(double t0, const double* times, std::size_t n, const double* values,
                              const std::uint8_t* mask, int channels) {
  std::ostringstream o;
  o.precision(17);
  if (n == 0) return "field 'times': the series is empty (no observation times)";
  if (!std::isfinite(t0)) {
    o << "field 't0': t0 = " << t0 << " is not finite";
    return o.str();
  }
  for (std::size_t k = 0; k < n; ++k) {
    if (!std::isfinite(times[k])) {
      o << "field 'times': times[" << k << "] = " << times[k] << " is not finite";
      return o.str();
    }
    if (k == 0 && times[0] < t0) {
      o << "field 'times': times[0] = " << times[0] << " lies before t0 = " << t0;
      return o.str();
    }
    if (k > 0 && !(times[k] > times[k - 1])) {
      o << "field 'times': times must be strictly increasing, but times[" << k - 1 << "] = " << times[k - 1]
        << " and times[" << k << "] = " << times[k];
      return o.str();
    }
    for (int c = 0; c < channels; ++c) {
      const std::size_t e = k * static_cast<std::size_t>(channels) + c;
      if (mask[e] > 1) {
        o << "field 'mask': mask(" << k << ", " << c << ") = " << int(mask[e]) << " is neither 0 nor 1";
        return o.str();
      }
      if (mask[e] == 1 && !std::isfinite(values[e])) {
        o << "field 'values': values(" << k << ", " << c << ") = " << values[e]
          << " at time " << times[k] << " is not finite and not masked";
        return o.str();
      }
      if (mask[e] == 1 && std::abs(values[e]) > kMaxValue) {
        char v[32];
        *std::to_chars(v, v + sizeof v - 1, values[e]).ptr = '\0';  // shortest exact text: 1e+300
        o << "field 'values': values(" << k << ", " << c << ") = " << v << " at time " << times[k]
          << " is too large: its square overflows double precision in a loss (|value| must stay below 1e150); "
             "rescale the channel (a larger unit)";
        return o.str();
      }
    }
  }
  return {};
}

std::string check_control_rows(const double* times, std::size_t n, const double* values, int width) {
  std::ostringstream o;
  o.precision(17);
  for (std::size_t k = 0; k < n; ++k) {
    if (!std::isfinite(times[k])) {
      o << "field 'control_times': control_times[" << k << "] = " << times[k] << " is not finite";
      return o.str();
    }
    if (k > 0 && !(times[k] > times[k - 1])) {
      o << "field 'control_times': times must be strictly increasing, but control_times[" << k - 1
        << "] = " << times[k - 1] << " and control_times[" << k << "] = " << times[k];
      return o.str();
    }
    for (int c = 0; c < width; ++c)
      if (!std::isfinite(values[k * width + c])) {
        o << "field 'control_values': control_values(" << k << ", " << c << ") = " << values[k * width + c]
          << " is not finite";
        return o.str();
      }
  }
  return {};
}

EventColumns::EventColumns(const EventRecord* records, std::size_t n)
    : time(n), amount(n), rate(n), compartment(n), kind(n) {
  for (std::size_t k = 0; k < n; ++k) {
    time[k] = records[k].time;
    compartment[k] = records[k].compartment;
    amount[k] = records[k].amount;
    rate[k] = records[k].rate;
    kind[k] = static_cast<std::uint8_t>(records[k].kind);
  }
}

std::string check_event_rows(double t0, double last_time, const double* times, const std::int64_t* compartment,
                             const double* amount, const double* rate, const std::uint8_t* kind, std::size_t n,
                             const std::vector<std::string>& names) {
  std::ostringstream o;
  o.precision(17);
  for (std::size_t k = 0; k < n; ++k) {
    const std::string at = "[" + std::to_string(k) + "]";
    if (kind[k] != 1 && kind[k] != 3 && kind[k] != 4) {
      o << "field 'event_kind': event_kind" << at << " = " << int(kind[k])
        << " is not an event code this cvnode knows (1 dose, 3 reset, 4 reset and dose)";
      return o.str();
    }
    if (!std::isfinite(times[k])) {
      o << "field 'event_times': event_times" << at << " = " << times[k] << " is not finite";
      return o.str();
    }
    if (times[k] < t0) {
      o << "field 'event_times': event_times" << at << " = " << times[k] << " lies before t0 = " << t0;
      return o.str();
    }
    if (times[k] > last_time) {
      o << "field 'event_times': event_times" << at << " = " << times[k]
        << " lies after the series' last observation time " << last_time << " (it cannot affect any observation)";
      return o.str();
    }
    if (k > 0 && times[k] < times[k - 1]) {
      o << "field 'event_times': events must be in time order, but event_times[" << k - 1 << "] = " << times[k - 1]
        << " and event_times" << at << " = " << times[k];
      return o.str();
    }
    if (compartment[k] < 0 || compartment[k] >= static_cast<std::int64_t>(names.size())) {
      o << "field 'event_compartment': event_compartment" << at << " = " << compartment[k]
        << " is not a compartment (";
      if (names.empty()) o << "the data name no compartments";
      else {
        o << "0.." << names.size() - 1 << ":";
        for (const auto& nm : names) o << " " << nm;
      }
      o << ")";
      return o.str();
    }
    if (!std::isfinite(amount[k]) || amount[k] < 0) {
      o << "field 'event_amount': event_amount" << at << " = " << amount[k]
        << " at time " << times[k] << " must be finite and >= 0";
      return o.str();
    }
    if (kind[k] == 3 && amount[k] != 0) {
      o << "field 'event_amount': event_amount" << at << " = " << amount[k]
        << " on a reset (kind 3) must be 0 (a reset with a dose is kind 4)";
      return o.str();
    }
    if (!std::isfinite(rate[k]) || rate[k] < 0) {
      o << "field 'event_rate': event_rate" << at << " = " << rate[k]
        << " at time " << times[k] << " must be finite and >= 0 (0: bolus, > 0: infusion rate)";
      return o.str();
    }
  }
  return {};
}

std::string series_label(const std::string& id, std::size_t index) {
  return "series '" + id + "' (index " + std::to_string(index) + ")";
}

}  // namespace cvnode::detail

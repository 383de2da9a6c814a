#include "data/series_check.h"

#include <cmath>
#include <sstream>

namespace cvnode::detail {

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

std::string series_label(const std::string& id, std::size_t index) {
  return "series '" + id + "' (index " + std::to_string(index) + ")";
}

}  // namespace cvnode::detail

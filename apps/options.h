// Validators for the numeric options of the `cvnode` commands: a value outside its range is
// refused before the command runs, with the accepted range in the message ("--rtol: -1 is not a
// number in (0, 1)"), instead of being replaced by a default or ending in a failed solve.
#pragma once

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#include <CLI/CLI.hpp>

namespace cvnode::app {

namespace detail {

inline std::string bound_text(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// The whole text as a double (strtod: also "1e-400", which rounds to 0 or a subnormal);
// false for anything else or for a value beyond double's range.
inline bool parse_real(const std::string& s, double* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return false;
  if (errno == ERANGE && std::isinf(v)) return false;
  *out = v;
  return true;
}

inline std::string clip(const std::string& s) { return s.size() <= 40 ? s : s.substr(0, 37) + "..."; }

}  // namespace detail

// A finite number in the interval [lo, hi], with open ends where asked (lo = -inf / hi = inf:
// unbounded on that side; NaN and infinities are always refused).
inline CLI::Validator real_range(double lo, double hi, bool lo_open = false, bool hi_open = false) {
  const std::string range = std::string(lo_open ? "(" : "[") + detail::bound_text(lo) + ", " +
                            detail::bound_text(hi) + (hi_open ? ")" : "]");
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        double v = 0;
        const bool ok = detail::parse_real(s, &v) && std::isfinite(v) && (lo_open ? v > lo : v >= lo) &&
                        (hi_open ? v < hi : v <= hi);
        return ok ? std::string() : "'" + detail::clip(s) + "' is not a finite number in " + range;
      },
      "NUMBER in " + range);
}

// A positive finite number (tolerances, times).
inline CLI::Validator positive_real() {
  return real_range(0, std::numeric_limits<double>::infinity(), true, true);
}

// An integer in [lo, hi].
inline CLI::Validator int_range(long long lo, long long hi) {
  const std::string range = "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        long long v = 0;
        const char* b = s.data() + (!s.empty() && s[0] == '+' ? 1 : 0);
        const auto r = std::from_chars(b, s.data() + s.size(), v);
        const bool ok = !s.empty() && r.ec == std::errc() && r.ptr == s.data() + s.size() && v >= lo && v <= hi;
        return ok ? std::string() : "'" + detail::clip(s) + "' is not an integer in " + range;
      },
      "INTEGER in " + range);
}

// OpenMP threads: 0 (all cores) to 1024.
inline CLI::Validator thread_count() { return int_range(0, 1024); }

}  // namespace cvnode::app

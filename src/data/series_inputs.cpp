#include "data/series_inputs.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "cvnode/errors.h"

namespace cvnode::detail {

namespace {

std::string exact(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

}  // namespace

void fill_inputs(const std::vector<InputCells>& records, const std::vector<std::string>& covariate_names,
                 const std::vector<std::string>& control_names, const std::string& path, const std::string& who,
                 Series& s) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  auto at = [&](long line, const std::string& what) {
    return DataError(path + ":" + std::to_string(line) + ": " + who + ": " + what);
  };
  const std::size_t K = covariate_names.size(), U = control_names.size();
  if (K > 0) {
    s.covariates = Vector(static_cast<Eigen::Index>(K));
    for (std::size_t k = 0; k < K; ++k) {
      double v = kNaN;
      long line = 0;
      for (const InputCells& r : records) {
        const double x = r.covariates[k];
        if (std::isnan(x)) continue;
        if (std::isnan(v)) {
          v = x;
          line = r.line;
        } else if (x != v) {
          throw at(r.line, "covariate '" + covariate_names[k] + "' is " + exact(x) + " here and " + exact(v) +
                               " on line " + std::to_string(line) +
                               ": a covariate is constant per series (give a time-varying input as --controls)");
        }
      }
      if (std::isnan(v))
        throw at(records.empty() ? 0 : records.front().line, "covariate '" + covariate_names[k] + "' has no value");
      s.covariates[static_cast<Eigen::Index>(k)] = v;
    }
  }
  if (U == 0) return;
  std::vector<double> kt;
  std::vector<std::vector<double>> kv;
  std::vector<long> kline;
  for (const InputCells& r : records) {
    if (std::all_of(r.controls.begin(), r.controls.end(), [](double v) { return std::isnan(v); })) continue;
    if (kt.empty() || kt.back() != r.time) {
      kt.push_back(r.time);
      kv.emplace_back(U, kNaN);
      kline.push_back(r.line);
    }
    for (std::size_t u = 0; u < U; ++u) {
      if (std::isnan(r.controls[u])) continue;
      if (!std::isnan(kv.back()[u]) && kv.back()[u] != r.controls[u])
        throw at(r.line, "control '" + control_names[u] + "' is " + exact(r.controls[u]) + " here and " +
                             exact(kv.back()[u]) + " on line " + std::to_string(kline.back()) + " at the same time " +
                             exact(r.time));
      kv.back()[u] = r.controls[u];
    }
  }
  for (std::size_t k = 0; k < kt.size(); ++k)
    for (std::size_t u = 0; u < U; ++u)
      if (std::isnan(kv[k][u])) {
        if (k == 0)
          throw at(kline[k], "control '" + control_names[u] + "' has no value at or before time " + exact(kt[k]) +
                                 " (the other controls start there)");
        kv[k][u] = kv[k - 1][u];
      }
  s.control_times = Eigen::Map<const Vector>(kt.data(), static_cast<Eigen::Index>(kt.size()));
  s.control_values = Matrix(static_cast<Eigen::Index>(kt.size()), static_cast<Eigen::Index>(U));
  for (std::size_t k = 0; k < kt.size(); ++k)
    for (std::size_t u = 0; u < U; ++u) s.control_values(static_cast<Eigen::Index>(k), static_cast<Eigen::Index>(u)) = kv[k][u];
}

}  // namespace cvnode::detail

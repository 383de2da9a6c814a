#include "cvnode/loss.h"

#include <cmath>

#include "cvnode/errors.h"

namespace cvnode {

Loss Loss::parse(const std::string& name) {
  Loss l;
  if (name == "half_sse") l.kind = LossKind::HalfSumSquares;
  else if (name == "mse_mean" || name == "mse") l.kind = LossKind::MeanSquared;
  else if (name == "l1_mean" || name == "mae") l.kind = LossKind::MeanAbsolute;
  else if (name == "gaussian_nll") l.kind = LossKind::GaussianNll;
  else
    throw OptionsError("unknown loss '" + name +
                       "' (expected half_sse, mse_mean, l1_mean or gaussian_nll)");
  return l;
}

double Loss::term(double z, double y, int channel, double scale, double* dterm) const {
  if (weight.size() > 0) scale *= weight[channel];
  const double r = z - y;
  switch (kind) {
    case LossKind::HalfSumSquares:
      *dterm = scale * r;
      return scale * 0.5 * r * r;
    case LossKind::MeanSquared:
      *dterm = scale * 2 * r;
      return scale * r * r;
    case LossKind::MeanAbsolute:
      *dterm = scale * static_cast<double>((r > 0) - (r < 0));
      return scale * std::abs(r);
    case LossKind::GaussianNll: {
      const double s = sigma[channel];
      *dterm = scale * r / (s * s);
      return scale * (0.5 * (r / s) * (r / s) + std::log(s) + 0.5 * std::log(2 * M_PI));
    }
  }
  *dterm = 0;
  return 0;
}

std::string Loss::validate(int channels) const {
  if (weight.size() > 0) {
    if (weight.size() != channels)
      return "loss weight needs one entry per observed channel: got " + std::to_string(weight.size()) + " for " +
             std::to_string(channels) + " channels";
    for (Eigen::Index i = 0; i < weight.size(); ++i)
      if (!(weight[i] >= 0) || !std::isfinite(weight[i]))
        return "loss weight[" + std::to_string(i) + "] = " + std::to_string(weight[i]) + " must be finite and >= 0";
  }
  if (kind != LossKind::GaussianNll) return {};
  if (sigma.size() != channels)
    return "gaussian_nll needs one sigma per observed channel: got " + std::to_string(sigma.size()) +
           " for " + std::to_string(channels) + " channels";
  for (Eigen::Index i = 0; i < sigma.size(); ++i)
    if (!(sigma[i] > 0) || !std::isfinite(sigma[i]))
      return "gaussian_nll sigma[" + std::to_string(i) + "] = " + std::to_string(sigma[i]) +
             " must be finite and > 0";
  return {};
}

}  // namespace cvnode

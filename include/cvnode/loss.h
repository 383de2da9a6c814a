// Losses on the observed state at the observation times, with masks of missing entries.
#pragma once

#include <string>

#include "cvnode/dynamics.h"

namespace cvnode {

enum class LossKind {
  HalfSumSquares,  // 0.5 * sum (z - y)^2
  MeanSquared,     // mean (z - y)^2 over all observed entries of the batch
  MeanAbsolute,    // mean |z - y| (derivative 0 at z == y)
  GaussianNll      // sum 0.5 ((z - y) / sigma_i)^2 + log sigma_i + 0.5 log(2 pi)
};

struct Loss {
  LossKind kind = LossKind::HalfSumSquares;
  Vector sigma;  // per channel, GaussianNll only
  // Optional per-channel weights (empty: all 1). Species spanning many orders of magnitude
  // (Robertson's y2 ~ 1e-5 beside y1 ~ 1) need them, or the small channels never enter the fit
  // (Kim et al., "Stiff neural ordinary differential equations", 2021): weight_i = 1 / scale_i^2
  // for the squared losses makes every channel count relative to its own scale.
  Vector weight;

  static Loss parse(const std::string& name);  // half_sse, mse_mean, l1_mean, gaussian_nll
  bool is_mean() const { return kind == LossKind::MeanSquared || kind == LossKind::MeanAbsolute; }
  // The term of one entry (channel i) and its derivative d/dz; `scale` and weight[i] multiply both
  // (1 / number of observed entries of the batch for the mean losses, 1 otherwise).
  double term(double z, double y, int channel, double scale, double* dterm) const;
  std::string validate(int channels) const;
};

}  // namespace cvnode

#include "nn/activation_kernels.h"

namespace cvnode::detail {

// Eigen 3.4 evaluates tanh on doubles with scalar code (~21 ns an element here); this form
// uses only operations Eigen vectorises (exp, min/max, +, *, /). Below |u| = 0.625, where
// 1 - 2 / (e^2|u| + 1) would cancel, Cephes' rational approximation u + u^3 P(u^2) / Q(u^2)
// (evaluated on u clamped to that range, so it stays finite); above, the exp form, whose value
// is >= 0.55 so nothing cancels. The branches are blended with an exact 0/1 weight instead of
// select(), which Eigen 3.4 does not vectorise. test_mlp checks a few ulps against std::tanh.
void fast_tanh(const ArrayMap& u, ArrayMap x) {
  constexpr double kSwitch = 0.625, kHuge = 1e300;
  const auto a = u.abs();
  // Exactly 1 below the switch (the gap is then >= 1e-16, times 1e300 saturates), 0 above.
  const auto w = ((kSwitch - a) * kHuge).max(0.0).min(1.0);
  const auto sign = (u * kHuge).max(-1.0).min(1.0);  // +-1 except where w = 1 anyway
  const auto us = u.max(-kSwitch).min(kSwitch);
  const auto z = us.square();
  const auto p = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z - 1.61468768441708447952e3;
  const auto q = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z + 4.84406305325125486048e3;
  const auto small = us + us * z * (p / q);
  const auto large = (1.0 - 2.0 / ((2.0 * a).exp() + 1.0)) * sign;
  x = w * small + (1.0 - w) * large;
}

void activate(Activation a, const ArrayMap& u, ArrayMap x) {
  switch (a) {
    case Activation::Identity: x = u; break;
    case Activation::Tanh: fast_tanh(u, x); break;
    case Activation::Relu: x = u.max(0.0); break;
    // log(1 + e^u) without overflow for large u or cancellation for very negative u.
    case Activation::Softplus: x = u.max(0.0) + (-u.abs()).exp().log1p(); break;
    case Activation::Sigmoid: x = 1.0 / (1.0 + (-u).exp()); break;
    case Activation::Silu: x = u / (1.0 + (-u).exp()); break;
    case Activation::Elu: x = (u > 0).select(u, u.min(0.0).expm1()); break;
  }
}

void activate_derivative(Activation a, const ArrayMap& u, const ArrayMap& x, ArrayMap d) {
  switch (a) {
    case Activation::Identity: d.setOnes(); break;
    case Activation::Tanh: d = 1.0 - x.square(); break;
    case Activation::Relu: d = (u > 0).cast<double>(); break;
    case Activation::Softplus: d = 1.0 / (1.0 + (-u).exp()); break;
    case Activation::Sigmoid: d = x * (1.0 - x); break;
    case Activation::Silu: {
      // s(u) = x / u is unsafe at u = 0; recompute the sigmoid instead.
      d = 1.0 / (1.0 + (-u).exp());
      d = d * (1.0 + u * (1.0 - d));
      break;
    }
    case Activation::Elu: d = (u > 0).select(Eigen::ArrayXd::Ones(u.size()), x + 1.0); break;
  }
}

}  // namespace cvnode::detail

#include "nn/activation_kernels.h"

namespace cvnode::detail {

void activate(Activation a, const ArrayMap& u, ArrayMap x) {
  switch (a) {
    case Activation::Identity: x = u; break;
    case Activation::Tanh: x = u.tanh(); break;
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

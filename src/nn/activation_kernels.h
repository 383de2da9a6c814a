// Elementwise activation kernels over Eigen arrays: values and derivatives, no allocation.
#pragma once

#include <Eigen/Core>

#include "cvnode/activation.h"

namespace cvnode::detail {

using ArrayMap = Eigen::Map<Eigen::ArrayXd>;

// x = tanh(u), vectorised (see the .cpp for the method and its accuracy).
void fast_tanh(const ArrayMap& u, ArrayMap x);

// x = s(u).
void activate(Activation a, const ArrayMap& u, ArrayMap x);
// d = s'(u), given u and x = s(u).
void activate_derivative(Activation a, const ArrayMap& u, const ArrayMap& x, ArrayMap d);
// d2 = s''(u), given u and x = s(u): the second-order terms of the trace and Jacobian-norm
// derivatives (continuous normalizing flows, src/nn/probed_mlp.cpp). Relu's is 0 (and its kink
// ignored); elu's jumps at 0.
void activate_second_derivative(Activation a, const ArrayMap& u, const ArrayMap& x, ArrayMap d2);

}  // namespace cvnode::detail

// Elementwise activation functions of the networks, with their derivatives.
#pragma once

#include <string>

namespace cvnode {

enum class Activation { Identity, Tanh, Relu, Softplus, Sigmoid, Silu, Elu };

// "identity", "tanh", "relu", "softplus", "sigmoid", "silu" (also "swish"), "elu".
// Throws std::invalid_argument naming the value and the accepted names.
Activation parse_activation(const std::string& name);
const char* activation_name(Activation a);

}  // namespace cvnode

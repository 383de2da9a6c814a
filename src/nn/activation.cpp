#include "cvnode/activation.h"

#include <stdexcept>

namespace cvnode {

Activation parse_activation(const std::string& name) {
  if (name == "identity" || name == "linear" || name == "none") return Activation::Identity;
  if (name == "tanh") return Activation::Tanh;
  if (name == "relu") return Activation::Relu;
  if (name == "softplus") return Activation::Softplus;
  if (name == "sigmoid") return Activation::Sigmoid;
  if (name == "silu" || name == "swish") return Activation::Silu;
  if (name == "elu") return Activation::Elu;
  throw std::invalid_argument("unknown activation '" + name +
                              "' (expected identity, tanh, relu, softplus, sigmoid, silu, elu)");
}

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::Identity: return "identity";
    case Activation::Tanh: return "tanh";
    case Activation::Relu: return "relu";
    case Activation::Softplus: return "softplus";
    case Activation::Sigmoid: return "sigmoid";
    case Activation::Silu: return "silu";
    case Activation::Elu: return "elu";
  }
  return "?";
}

}  // namespace cvnode

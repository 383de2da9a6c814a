#include "cvnode/activation.h"

#include "core/names.h"

namespace cvnode {

namespace {
const detail::EnumName<Activation> kActivationNames[] = {
    {Activation::Identity, "identity"},
    {Activation::Tanh, "tanh"},
    {Activation::Relu, "relu"},
    {Activation::Softplus, "softplus"},
    {Activation::Sigmoid, "sigmoid"},
    {Activation::Silu, "silu"},
    {Activation::Elu, "elu"},
    {Activation::Identity, "linear", true},
    {Activation::Identity, "none", true},
    {Activation::Silu, "swish", true}};
}  // namespace

Activation parse_activation(const std::string& name) {
  return detail::parse_enum(kActivationNames, name, "activation");
}

const char* activation_name(Activation a) { return detail::enum_name(kActivationNames, a); }

}  // namespace cvnode

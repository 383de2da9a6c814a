#include "cvnode/observation_map.h"

namespace cvnode {

LinearReadout::LinearReadout(int channels, int state_size) : channels_(channels), state_(state_size) {}

Vector LinearReadout::initial_parameters() const { return Matrix::Identity(channels_, state_).reshaped(); }

std::string LinearReadout::validate(int state_size) const {
  if (state_ == state_size) return {};
  return "the readout has " + std::to_string(state_) + " columns but the state has " + std::to_string(state_size) +
         " components";
}

Matrix LinearReadout::matrix(ConstVectorRef phi) const { return phi.reshaped(channels_, state_); }

void LinearReadout::apply(ConstVectorRef z, ConstVectorRef phi, VectorRef y) const {
  y.noalias() = phi.reshaped(channels_, state_) * z;
}

void LinearReadout::pullback(ConstVectorRef z, ConstVectorRef phi, ConstVectorRef dy, VectorRef dz,
                             VectorRef dphi) const {
  dz.noalias() = phi.reshaped(channels_, state_).transpose() * dy;
  dphi.reshaped(channels_, state_).noalias() += dy * z.transpose();
}

}  // namespace cvnode

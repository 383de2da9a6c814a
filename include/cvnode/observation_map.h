// Observation maps y = h(z; phi): what a channel loss compares with a series' measured channels
// when they are not simply the first state components (a latent state seen through learned
// combinations, a sum of compartments, a concentration = amount / volume ...). The map's
// parameters phi are the loss's parameters (Loss::param_size): one mechanism for everything an
// observation term learns, reported as Gradient::phi.
#pragma once

#include <string>

#include "cvnode/dynamics.h"

namespace cvnode {

class ObservationMap {
 public:
  virtual ~ObservationMap() = default;
  virtual int channels() const = 0;  // entries of y
  virtual int param_size() const { return 0; }
  virtual Vector initial_parameters() const { return Vector::Zero(param_size()); }
  // Empty when the map fits a state of `state_size` components, else the reason.
  virtual std::string validate(int state_size) const = 0;
  // y = h(z; phi), y of channels() entries (overwritten).
  virtual void apply(ConstVectorRef z, ConstVectorRef phi, VectorRef y) const = 0;
  // The pullback of dy = dl/dy: dz = (dh/dz)^T dy (overwritten), dphi += (dh/dphi)^T dy.
  virtual void pullback(ConstVectorRef z, ConstVectorRef phi, ConstVectorRef dy, VectorRef dz,
                        VectorRef dphi) const = 0;
};

// y = C z with C (channels x state) learned: phi = C column-major, started at [I 0], so that at
// the start it measures the first components as the plain map does.
class LinearReadout final : public ObservationMap {
 public:
  LinearReadout(int channels, int state_size);
  int channels() const override { return channels_; }
  int param_size() const override { return channels_ * state_; }
  Vector initial_parameters() const override;
  std::string validate(int state_size) const override;
  void apply(ConstVectorRef z, ConstVectorRef phi, VectorRef y) const override;
  void pullback(ConstVectorRef z, ConstVectorRef phi, ConstVectorRef dy, VectorRef dz,
                VectorRef dphi) const override;
  // C from phi.
  Matrix matrix(ConstVectorRef phi) const;

 private:
  int channels_, state_;
};

}  // namespace cvnode

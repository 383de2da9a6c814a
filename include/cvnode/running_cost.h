// A running cost g(t, z; theta) whose integral over [t0, t_end] is added to the loss: regularisers
// such as the kinetic energy of the dynamics, or functionals like SUNDIALS' Robertson example.
#pragma once

#include "cvnode/dynamics.h"

namespace cvnode {

class RunningCost {
 public:
  virtual ~RunningCost() = default;
  virtual int workspace_size() const { return 0; }
  virtual double value(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef work) const = 0;
  // dg/dz and dg/dtheta (overwritten). No heap allocation.
  virtual void gradient(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef dg_dz,
                        VectorRef dg_dtheta, VectorRef work) const = 0;
};

// lambda * ||f(t, z; theta)||^2: the kinetic-energy regulariser of Finlay et al. (2020), which
// keeps learned dynamics smooth and cheap to integrate.
class KineticEnergy final : public RunningCost {
 public:
  KineticEnergy(const Dynamics& dynamics, double weight);
  int workspace_size() const override;
  double value(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef work) const override;
  void gradient(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef dg_dz,
                VectorRef dg_dtheta, VectorRef work) const override;

 private:
  const Dynamics& f_;
  double weight_;
};

}  // namespace cvnode

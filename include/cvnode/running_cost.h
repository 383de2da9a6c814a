// A running cost g(t, z; theta) whose integral over [t0, t_end] is added to the loss: regularisers
// such as the kinetic energy of the dynamics, or functionals like SUNDIALS' Robertson example.
#pragma once

#include <cstdint>
#include <memory>

#include "cvnode/trace_estimator.h"
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
  // An explicit Runge-Kutta engine that integrates these very dynamics has f at its stages
  // already: it reads the cost off them (src/ode/dopri5.cpp).
  const Dynamics& dynamics() const { return f_; }
  double weight() const { return weight_; }

 private:
  const Dynamics& f_;
  double weight_;
};

// lambda * ||df/dz||_F^2, the Jacobian-norm regulariser of Finlay et al. (2020): exactly, as the
// sum over the n columns of J (n Jacobian-vector products and, for its gradient, their second
// derivatives), or by Hutchinson's unbiased estimate (lambda / K) sum_k |J eps_k|^2 with K probe
// vectors eps_k drawn from `seed` when the cost is built, fixed for its life: build one per
// optimizer step so every solve of that step sees the same probes and the next step new ones.
// For an Mlp (with its k_diag: J = J_net - diag(k)), and for a Hybrid whose network term is an
// Mlp, whose own Jacobian (in its input space) is penalised: the known physics is not a thing
// to regularise, and its second derivatives are not available. Throws OptionsError otherwise.
class JacobianFrobenius final : public RunningCost {
 public:
  struct Options {
    double weight = 0;
    TraceEstimator estimator = TraceEstimator::Exact;
    ProbeNoise noise = ProbeNoise::Rademacher;
    int probes = 1;
    std::uint64_t seed = 0;
  };
  JacobianFrobenius(const Dynamics& dynamics, Options options);
  ~JacobianFrobenius() override;
  int workspace_size() const override;
  double value(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef work) const override;
  void gradient(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef dg_dz, VectorRef dg_dtheta,
                VectorRef work) const override;

 private:
  // The network's probe products at z: fills E, JE (minus the decay) and the network's pass.
  double evaluate(double t, ConstVectorRef z, ConstVectorRef theta, double* work) const;
  struct Impl;
  std::unique_ptr<const Impl> impl_;
};

}  // namespace cvnode

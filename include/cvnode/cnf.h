// Continuous normalizing flow dynamics (Chen et al. 2018, section 4; FFJORD, Grathwohl et al.
// 2019): a ProbedField f(t, z) on R^D carried together with the change of log-density,
//
//   dz/dt = f(t, z),   dl/dt = -tr(df/dz),
//
// so that a point x at t = 0 flows to z(T) and log p(x) = log p_base(z(T)) - l(T) with l(0) = 0.
// The trace is exact (D probe columns E = I: for small D) or Hutchinson's estimate
// -(1/K) sum_k eps_k^T (df/dz) eps_k with K Rademacher or Gaussian probes per sample; the probes
// are constant state components, so they stay fixed for a whole solve and every engine (the
// CVODES adjoint, dopri5, stacked batches) sees an ordinary ODE. Optionally two running
// regularisers ride along as state components (RNODE, Finlay et al. 2020), sharing the field's
// evaluation: int ||f||^2 dt (kinetic energy) and int ||df/dz||_F^2 dt (exactly with the exact
// trace, else the unbiased (1/K) sum ||J eps_k||^2 with the same probes).
//
// State of one sample: [z (D) | l | kinetic (if on) | frobenius (if on) | eps (D K, Hutchinson)].
// A Dynamics like any other; its VJP holds the second derivatives of f (ProbedField::reverse),
// its Jacobian and JVP are formed from n VJPs (n = state size: for BDF on small flows only).
#pragma once

#include <cstdint>
#include <string>

#include "cvnode/dynamics.h"
#include "cvnode/probed_field.h"
#include "cvnode/trace_estimator.h"

namespace cvnode {

struct CnfOptions {
  TraceEstimator trace = TraceEstimator::Exact;
  ProbeNoise noise = ProbeNoise::Rademacher;  // Hutchinson only
  int probes = 1;                             // Hutchinson: probe vectors per sample
  bool kinetic = false;                       // carry int ||f||^2 dt
  bool frobenius = false;                     // carry int ||df/dz||_F^2 dt (estimated with Hutchinson)

  std::string validate() const;  // empty when valid
};

class Cnf final : public Dynamics {
 public:
  // `field` must outlive the Cnf and map R^D to R^D. Throws std::invalid_argument otherwise or
  // for invalid options.
  Cnf(const ProbedField& field, CnfOptions options);

  const ProbedField& field() const { return field_; }
  const CnfOptions& options() const { return o_; }
  int dim() const { return D_; }
  // Probe columns per sample: D for the exact trace, options().probes for Hutchinson.
  int probe_columns() const { return K_; }
  int logp_index() const { return D_; }
  int kinetic_index() const { return kin_; }      // -1 when not carried
  int frobenius_index() const { return frob_; }   // -1 when not carried
  int noise_offset() const { return noise_; }     // first probe component (= state_size() if none)

  // Draws the D K probe components (Rademacher +-1 or standard normal) from `seed`.
  void draw_probes(std::uint64_t seed, VectorRef eps) const;
  // [x, 0, 0 ..., eps(seed)]: a sample's initial state at the data end of the flow.
  Vector initial_state(ConstVectorRef x, std::uint64_t seed) const;

  int state_size() const override { return n_; }
  int param_size() const override { return field_.param_size(); }
  bool smooth() const override { return field_.smooth(); }
  int workspace_size() const override { return batch_workspace_size(1) + 2 * n_; }

  void rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const override;
  void vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
           VectorRef a_dfdtheta, VectorRef work) const override;
  void vjp_again(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                 VectorRef a_dfdtheta, VectorRef work) const override;
  void jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const override;
  void jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
           VectorRef work) const override;

  int batch_workspace_size(int batch) const override;
  void rhs_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, MatrixRef F, VectorRef work) const override;
  void vjp_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef A, MatrixRef A_dfdz,
                 VectorRef a_dfdtheta, VectorRef work) const override;
  void vjp_batch_again(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef A, MatrixRef A_dfdz,
                       VectorRef a_dfdtheta, VectorRef work) const override;

 private:
  // Field evaluation at the B states of Y: probes E, F and J E into the workspace.
  void evaluate(double t, ConstMatrixRef Y, ConstVectorRef theta, double* work) const;
  // The rates of the augmented state from an evaluation.
  void rates(MatrixRef out, Eigen::Index B, const double* work) const;
  // The VJP over an evaluation still in the workspace.
  void pullback(double t, ConstVectorRef theta, ConstMatrixRef A, MatrixRef A_dfdz, VectorRef a_dfdtheta,
                double* work) const;
  // Rows of the augmented Jacobian one by one (n VJPs over one evaluation): row(i, work) is
  // d(rate i)/dy at the evaluated point.
  template <class RowFn>
  void for_each_row(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef work, RowFn&& fn) const;

  const ProbedField& field_;
  CnfOptions o_;
  int D_, K_, n_;
  int kin_ = -1, frob_ = -1, noise_;
  double c_;  // trace estimate = c sum_k E_k . J E_k: 1 (exact) or 1/K (Hutchinson)
};

}  // namespace cvnode

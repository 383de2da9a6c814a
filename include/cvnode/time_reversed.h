// A Dynamics run backwards in time: g(s, z) = -f(T - s, z). Solving it from s = 0 to s = T
// takes a state from f's time T back to time 0 with cvnode's forward-only solvers; a flow
// samples this way (from the base distribution at T to the data at 0).
#pragma once

#include "cvnode/dynamics.h"

namespace cvnode {

class TimeReversed final : public Dynamics {
 public:
  // `inner` must outlive this object; `end` is T.
  TimeReversed(const Dynamics& inner, double end) : inner_(inner), end_(end) {}

  const Dynamics& inner() const { return inner_; }
  double end() const { return end_; }
  int state_size() const override { return inner_.state_size(); }
  int param_size() const override { return inner_.param_size(); }
  int block_size() const override { return inner_.block_size(); }
  bool smooth() const override { return inner_.smooth(); }
  int workspace_size() const override { return inner_.workspace_size(); }
  int batch_workspace_size(int batch) const override { return inner_.batch_workspace_size(batch); }

  void rhs(double s, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const override;
  void vjp(double s, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
           VectorRef a_dfdtheta, VectorRef work) const override;
  void vjp_again(double s, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                 VectorRef a_dfdtheta, VectorRef work) const override;
  void jacobian(double s, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const override;
  void jvp(double s, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
           VectorRef work) const override;
  void rhs_batch(double s, ConstMatrixRef Z, ConstVectorRef theta, MatrixRef F, VectorRef work) const override;
  void vjp_batch(double s, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef A, MatrixRef A_dfdz,
                 VectorRef a_dfdtheta, VectorRef work) const override;
  void vjp_batch_again(double s, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef A, MatrixRef A_dfdz,
                       VectorRef a_dfdtheta, VectorRef work) const override;
  void jvp_batch(double s, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef V, MatrixRef JV,
                 VectorRef work) const override;

 private:
  const Dynamics& inner_;
  double end_;
};

}  // namespace cvnode

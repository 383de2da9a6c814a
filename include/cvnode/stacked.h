// B copies of one Dynamics stacked into a single ODE of size B * n: the stacked-batch mode.
// Series that share a time grid are solved as one system, so per-solve overhead is paid once
// and a network evaluates all B states with matrix-matrix products. The Jacobian is block
// diagonal; the theta-gradient is summed over the copies.
#pragma once

#include "cvnode/dynamics.h"

namespace cvnode {

class Stacked final : public Dynamics {
 public:
  // `inner` must outlive this object.
  Stacked(const Dynamics& inner, int copies);

  int copies() const { return copies_; }
  const Dynamics& inner() const { return inner_; }
  int state_size() const override { return copies_ * inner_.state_size(); }
  int param_size() const override { return inner_.param_size(); }
  int block_size() const override { return inner_.block_size(); }
  bool smooth() const override { return inner_.smooth(); }
  int workspace_size() const override;

  void rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const override;
  void vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
           VectorRef a_dfdtheta, VectorRef work) const override;
  void vjp_again(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                 VectorRef a_dfdtheta, VectorRef work) const override;
  // Block diagonal, written in full (B n x B n): for dense Newton on small stacks only; larger
  // stacks should use GMRES.
  void jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const override;
  void jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
           VectorRef work) const override;

 private:
  const Dynamics& inner_;
  int copies_;
};

}  // namespace cvnode

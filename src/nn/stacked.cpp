#include "cvnode/stacked.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace cvnode {

namespace {
using CMap = Eigen::Map<const Eigen::MatrixXd>;
using MMap = Eigen::Map<Eigen::MatrixXd>;
}  // namespace

Stacked::Stacked(const Dynamics& inner, int copies) : inner_(inner), copies_(copies) {
  if (copies < 1) throw std::invalid_argument("Stacked needs at least one copy, got " + std::to_string(copies));
}

int Stacked::workspace_size() const {
  return std::max(inner_.batch_workspace_size(copies_), inner_.workspace_size());
}

void Stacked::rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const {
  const int n = inner_.state_size();
  MMap F(f.data(), n, copies_);
  inner_.rhs_batch(t, CMap(z.data(), n, copies_), theta, F, work);
}

void Stacked::vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                  VectorRef a_dfdtheta, VectorRef work) const {
  const int n = inner_.state_size();
  MMap AZ(a_dfdz.data(), n, copies_);
  inner_.vjp_batch(t, CMap(z.data(), n, copies_), theta, CMap(a.data(), n, copies_), AZ, a_dfdtheta, work);
}

void Stacked::vjp_again(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                        VectorRef a_dfdtheta, VectorRef work) const {
  const int n = inner_.state_size();
  MMap AZ(a_dfdz.data(), n, copies_);
  inner_.vjp_batch_again(t, CMap(z.data(), n, copies_), theta, CMap(a.data(), n, copies_), AZ, a_dfdtheta, work);
}

void Stacked::jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const {
  const int n = inner_.state_size();
  J.setZero();
  auto w = work.head(inner_.workspace_size());
  for (int b = 0; b < copies_; ++b) inner_.jacobian(t, z.segment(b * n, n), theta, J.block(b * n, b * n, n, n), w);
}

void Stacked::jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
                  VectorRef work) const {
  const int n = inner_.state_size();
  MMap JV(Jv.data(), n, copies_);
  inner_.jvp_batch(t, CMap(z.data(), n, copies_), theta, CMap(v.data(), n, copies_), JV, work);
}

}  // namespace cvnode

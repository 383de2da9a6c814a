#include "cvnode/time_reversed.h"

namespace cvnode {

// Every product of g = -f(T - s, .) is the negated product of f at time T - s.

void TimeReversed::rhs(double s, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const {
  inner_.rhs(end_ - s, z, theta, f, work);
  f = -f;
}

void TimeReversed::vjp(double s, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                       VectorRef a_dfdtheta, VectorRef work) const {
  inner_.vjp(end_ - s, z, theta, a, a_dfdz, a_dfdtheta, work);
  a_dfdz = -a_dfdz;
  a_dfdtheta = -a_dfdtheta;
}

void TimeReversed::vjp_again(double s, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                             VectorRef a_dfdtheta, VectorRef work) const {
  inner_.vjp_again(end_ - s, z, theta, a, a_dfdz, a_dfdtheta, work);
  a_dfdz = -a_dfdz;
  a_dfdtheta = -a_dfdtheta;
}

void TimeReversed::jacobian(double s, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const {
  inner_.jacobian(end_ - s, z, theta, J, work);
  J = -J;
}

void TimeReversed::jvp(double s, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
                       VectorRef work) const {
  inner_.jvp(end_ - s, z, theta, v, Jv, work);
  Jv = -Jv;
}

void TimeReversed::rhs_batch(double s, ConstMatrixRef Z, ConstVectorRef theta, MatrixRef F, VectorRef work) const {
  inner_.rhs_batch(end_ - s, Z, theta, F, work);
  F = -F;
}

void TimeReversed::vjp_batch(double s, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef A, MatrixRef A_dfdz,
                             VectorRef a_dfdtheta, VectorRef work) const {
  inner_.vjp_batch(end_ - s, Z, theta, A, A_dfdz, a_dfdtheta, work);
  A_dfdz = -A_dfdz;
  a_dfdtheta = -a_dfdtheta;
}

void TimeReversed::vjp_batch_again(double s, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef A,
                                   MatrixRef A_dfdz, VectorRef a_dfdtheta, VectorRef work) const {
  inner_.vjp_batch_again(end_ - s, Z, theta, A, A_dfdz, a_dfdtheta, work);
  A_dfdz = -A_dfdz;
  a_dfdtheta = -a_dfdtheta;
}

void TimeReversed::jvp_batch(double s, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef V, MatrixRef JV,
                             VectorRef work) const {
  inner_.jvp_batch(end_ - s, Z, theta, V, JV, work);
  JV = -JV;
}

}  // namespace cvnode

#include "cvnode/dynamics.h"

namespace cvnode {

// Column-by-column defaults. Workspace: the single-state workspace, then one parameter-sized
// buffer for each column's theta part before it is summed.

void Dynamics::rhs_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, MatrixRef F,
                         VectorRef work) const {
  auto w = work.head(workspace_size());
  for (Eigen::Index b = 0; b < Z.cols(); ++b) rhs(t, Z.col(b), theta, F.col(b), w);
}

void Dynamics::vjp_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef A,
                         MatrixRef A_dfdz, VectorRef a_dfdtheta, VectorRef work) const {
  auto w = work.head(workspace_size());
  const bool want_theta = a_dfdtheta.size() > 0;
  auto column_theta = work.segment(workspace_size(), want_theta ? param_size() : 0);
  if (want_theta) a_dfdtheta.setZero();
  for (Eigen::Index b = 0; b < Z.cols(); ++b) {
    vjp(t, Z.col(b), theta, A.col(b), A_dfdz.col(b), column_theta, w);
    if (want_theta) a_dfdtheta += column_theta;
  }
}

void Dynamics::jvp_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef V,
                         MatrixRef JV, VectorRef work) const {
  auto w = work.head(workspace_size());
  for (Eigen::Index b = 0; b < Z.cols(); ++b) jvp(t, Z.col(b), theta, V.col(b), JV.col(b), w);
}

}  // namespace cvnode

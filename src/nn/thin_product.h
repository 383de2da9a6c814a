// C = A B for the thin matrices of small networks. A 2-state ODE with a 2-50-2 MLP multiplies
// 50x2, 2x50 and 20-column blocks; Eigen's general GEMM and GEMV spend more time packing and
// dispatching on such shapes than multiplying (measured on the B1 shapes: the six products of a
// batched VJP 4.1 us through GEMM, 2.9 us here; a 50x2 matrix-vector product 144 ns against
// 63 ns). Wide shapes go to Eigen's product unchanged.
#pragma once

#include <Eigen/Core>

namespace cvnode::detail {

// Up to this many rows, columns or inner products count as thin.
inline constexpr Eigen::Index kThin = 4;

// C = A * B. C must not alias A or B.
template <class DA, class DB, class DC>
void thin_product(const Eigen::MatrixBase<DA>& A, const Eigen::MatrixBase<DB>& B,
                  const Eigen::MatrixBase<DC>& C_out) {
  auto& C = const_cast<Eigen::MatrixBase<DC>&>(C_out);
  const Eigen::Index k = A.cols();
  // A sum of k outer products: contiguous axpys when A's columns are contiguous (or B is a
  // single column, where a strided axpy still beats GEMV's setup).
  if (k <= kThin && (!DA::IsRowMajor || B.cols() == 1)) {
    C.noalias() = A.col(0) * B.row(0);
    for (Eigen::Index j = 1; j < k; ++j) C.noalias() += A.col(j) * B.row(j);
  } else if (A.rows() <= kThin && (DA::IsRowMajor || B.cols() > 1)) {
    // Few outputs: one row-times-matrix product (a dot product when B is a column) per row;
    // not for a strided row against a single column, where GEMV was faster.
    for (Eigen::Index i = 0; i < A.rows(); ++i) C.row(i).noalias() = A.row(i) * B;
  } else if (B.cols() <= kThin && B.cols() > 1) {
    for (Eigen::Index j = 0; j < B.cols(); ++j) C.col(j).noalias() = A * B.col(j);
  } else {
    C.noalias() = A * B;
  }
}

}  // namespace cvnode::detail

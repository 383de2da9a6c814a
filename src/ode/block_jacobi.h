// The block-diagonal part of I - gamma J, found with one Jacobian-vector product per column
// position (all blocks at once: exact when J is block diagonal, as for stacked batches), kept
// LU-factorised for GMRES's preconditioner solves. Storage is allocated once; setup and solve
// do not allocate.
#pragma once

#include <vector>

#include <Eigen/Core>

namespace cvnode::detail {

class BlockJacobi {
 public:
  void resize(int n, int block);
  int block() const { return bs_; }

  // Fills the saved blocks of M (J, or J^T for the backward problem) by products with the
  // "coloured" vectors sum_b e_{b bs + j}: product(v, out) must set out = M v.
  // A template rather than std::function, whose captures would be heap-allocated per call.
  template <class Product>
  void sample(Product&& product) {
    const int blocks = n_ / bs_;
    for (int j = 0; j < bs_; ++j) {
      v_.setZero();
      for (int b = 0; b < blocks; ++b) v_[b * bs_ + j] = 1.0;
      product(v_, out_);
      for (int b = 0; b < blocks; ++b) saved_.col(b * bs_ + j) = out_.segment(b * bs_, bs_);
    }
  }
  // LU-factorises I + sign * gamma * M_bb for every block (sign -1 forward, +1 backward).
  // Returns false if a block is singular.
  bool factor(double gamma, double sign);
  // z = P^{-1} r.
  void solve(const double* r, double* z) const;

 private:
  int n_ = 0, bs_ = 0;
  Eigen::MatrixXd saved_;   // bs x n: block b in columns [b bs, (b + 1) bs)
  Eigen::MatrixXd lu_;      // same layout, factorised
  std::vector<int> piv_;
  Eigen::VectorXd v_, out_;
};

}  // namespace cvnode::detail

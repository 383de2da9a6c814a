#include "ode/block_jacobi.h"

#include <cmath>
#include <utility>

namespace cvnode::detail {

void BlockJacobi::resize(int n, int block) {
  n_ = n;
  bs_ = block > 0 ? block : n;
  saved_.setZero(bs_, n);
  lu_.setZero(bs_, n);
  piv_.assign(static_cast<size_t>(n), 0);
  v_.setZero(n);
  out_.setZero(n);
}

bool BlockJacobi::factor(double gamma, double sign) {
  const int blocks = n_ / bs_;
  lu_ = sign * gamma * saved_;
  for (int b = 0; b < blocks; ++b) {
    auto A = lu_.middleCols(b * bs_, bs_);
    A.diagonal().array() += 1.0;
    int* piv = piv_.data() + b * bs_;
    // Doolittle LU with partial pivoting, in place.
    for (int k = 0; k < bs_; ++k) {
      int p = k;
      for (int i = k + 1; i < bs_; ++i)
        if (std::abs(A(i, k)) > std::abs(A(p, k))) p = i;
      piv[k] = p;
      if (A(p, k) == 0.0) return false;
      if (p != k) A.row(p).swap(A.row(k));
      for (int i = k + 1; i < bs_; ++i) {
        A(i, k) /= A(k, k);
        for (int j = k + 1; j < bs_; ++j) A(i, j) -= A(i, k) * A(k, j);
      }
    }
  }
  return true;
}

void BlockJacobi::solve(const double* r, double* z) const {
  const int blocks = n_ / bs_;
  for (int b = 0; b < blocks; ++b) {
    auto A = lu_.middleCols(b * bs_, bs_);
    const int* piv = piv_.data() + b * bs_;
    double* x = z + b * bs_;
    for (int i = 0; i < bs_; ++i) x[i] = r[b * bs_ + i];
    for (int k = 0; k < bs_; ++k) std::swap(x[k], x[piv[k]]);
    for (int i = 0; i < bs_; ++i)
      for (int j = 0; j < i; ++j) x[i] -= A(i, j) * x[j];
    for (int i = bs_ - 1; i >= 0; --i) {
      for (int j = i + 1; j < bs_; ++j) x[i] -= A(i, j) * x[j];
      x[i] /= A(i, i);
    }
  }
}

}  // namespace cvnode::detail

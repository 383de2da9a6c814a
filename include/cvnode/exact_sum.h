// Sums of doubles whose bits do not depend on the order of the terms or on how they were grouped:
// the one reduction that OpenMP threads and MPI ranks share, so that a fit gives the same bits
// for any thread count and any rank count, and work can be handed out dynamically.
//
// Each element keeps three 64-bit integer words holding the terms' bits in three adjacent
// 32-bit-wide bins of a fixed binary grid (the bins of the largest term so far; words never
// carry into each other). A term's contribution is its bits in the final three bins, truncated
// below: a function of the term and of the largest term only, so any order, any grouping and
// any merge tree give identical words (integer sums are associative), and the words round to a
// double once. Every term keeps at least 64 bits below the leading bit of the largest term, so
// the result is within n * 2^-64 * max|term| of the exact sum (a plain left-to-right sum of n
// terms is within n * 2^-53 * sum|term|), and exact when the terms are exact on that grid.
// Limits: up to 2^30 terms per element; non-finite terms make the element NaN or +-inf as IEEE
// addition would (ExactSum::value). Not a naive sum: results differ in the last bits from one.
#pragma once

#include <cstdint>
#include <vector>

#include "cvnode/dynamics.h"

namespace cvnode {

class ExactSum {
 public:
  // One element's accumulator as a value: 32 bytes, trivially copyable (what MPI ships).
  struct Cell {
    std::int64_t w[3] = {0, 0, 0};  // bins top, top-1, top-2
    std::int32_t top = kEmpty;      // bin index of w[0]; kEmpty: no finite non-zero term yet
    std::uint32_t special = 0;      // 1: +inf seen, 2: -inf seen, 4: NaN seen
    static constexpr std::int32_t kEmpty = -1;
  };

  ExactSum() = default;
  explicit ExactSum(Eigen::Index n) { reset(n); }
  Eigen::Index size() const { return static_cast<Eigen::Index>(top_.size()); }
  void reset(Eigen::Index n);

  void add(Eigen::Index i, double x);
  // Element-wise: x.size() + offset <= size(). Vectorised where the instruction set allows
  // (AVX2), with the same bits as one add(i, x) per element.
  void add(ConstVectorRef x, Eigen::Index offset = 0);
  void add(const double* x, Eigen::Index n, Eigen::Index offset = 0);
  // Adds another sum's terms (any order of merges gives the same bits).
  void merge(const ExactSum& other);
  // Adds another sum's elements to elements [offset, offset + other.size()).
  void merge_range(const ExactSum& other, Eigen::Index offset);

  double value(Eigen::Index i) const { return cell_value(cell(i)); }
  Vector values() const;
  void values(double* out, Eigen::Index n, Eigen::Index offset = 0) const;

  // The elements as cells (MPI's reduction works on these) and back.
  Cell cell(Eigen::Index i) const;
  std::vector<Cell> cells() const;
  void assign(const std::vector<Cell>& cells);

  static void add_cell(Cell& c, double x);
  static void merge_cell(Cell& into, const Cell& from);
  static double cell_value(const Cell& c);

 private:
  void store(Eigen::Index i, const Cell& c);
  void merge_elements(const ExactSum& other, Eigen::Index n, Eigen::Index offset);
  // Stored by field (structure of arrays), so that add() streams through contiguous words.
  std::vector<std::int64_t> w0_, w1_, w2_;
  std::vector<std::int32_t> top_;
  std::vector<std::uint32_t> special_;
  bool fresh_ = true;  // nothing added or merged since reset(): merge() copies
};

// The order-independent sum of a few numbers (tests, small reductions).
double exact_sum(const std::vector<double>& terms);

}  // namespace cvnode

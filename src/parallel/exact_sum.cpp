#include "cvnode/exact_sum.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace cvnode {

namespace {

constexpr int kWidth = 32;                       // bits per bin
constexpr std::uint64_t kMask = 0xffffffffULL;
// Bit positions are shifted by this multiple of kWidth so that every finite double's bits sit at
// positions >= 14 (the least significant bit of the smallest subnormal is 2^-1074).
constexpr int kBias = 34 * kWidth;

// Bits [b*32, b*32+32) of |x| = M * 2^(lsb - kBias), as an unsigned 32-bit chunk.
inline std::uint64_t chunk(std::uint64_t M, int lsb, int b) {
  const int s = lsb - b * kWidth;
  if (s >= 0) return s >= kWidth ? 0 : (M << s) & kMask;
  return -s >= 64 ? 0 : (M >> -s) & kMask;
}

// Moves the cell's bins up to `top`, dropping what falls below the lowest kept bin.
inline void raise(ExactSum::Cell& c, int top) {
  if (c.top == ExactSum::Cell::kEmpty) {
    c.w[0] = c.w[1] = c.w[2] = 0;
    c.top = top;
    return;
  }
  const int d = top - c.top;
  for (int k = 2; k >= 0; --k) c.w[k] = k - d >= 0 ? c.w[k - d] : 0;
  c.top = top;
}

}  // namespace

void ExactSum::add_cell(Cell& c, double x) {
  std::uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  const bool negative = (bits >> 63) != 0;
  const int field = static_cast<int>((bits >> 52) & 0x7ff);
  std::uint64_t M = bits & ((1ULL << 52) - 1);
  if (field == 0x7ff) {
    c.special |= M != 0 ? 4u : negative ? 2u : 1u;
    return;
  }
  int lsb;
  if (field == 0) {
    if (M == 0) return;  // +-0
    lsb = -1074 + kBias;
  } else {
    M |= 1ULL << 52;
    lsb = field - 1075 + kBias;
  }
  const int lead = lsb + 63 - __builtin_clzll(M);
  const int top = lead / kWidth;
  if (c.top == Cell::kEmpty || top > c.top) raise(c, top);
  for (int k = 0; k < 3; ++k) {
    const int b = c.top - k;
    if (b < 0) break;
    const auto v = static_cast<std::int64_t>(chunk(M, lsb, b));
    c.w[k] += negative ? -v : v;
  }
}

void ExactSum::merge_cell(Cell& into, const Cell& from) {
  into.special |= from.special;
  if (from.top == Cell::kEmpty) return;
  if (into.top == Cell::kEmpty || from.top > into.top) raise(into, from.top);
  for (int j = 0; j < 3; ++j) {
    const int k = into.top - from.top + j;
    if (k <= 2) into.w[k] += from.w[j];
  }
}

double ExactSum::cell_value(const Cell& c) {
  if (c.special) {
    if ((c.special & 4u) || (c.special & 3u) == 3u) return std::numeric_limits<double>::quiet_NaN();
    return (c.special & 1u) ? std::numeric_limits<double>::infinity()
                            : -std::numeric_limits<double>::infinity();
  }
  if (c.top == Cell::kEmpty) return 0.0;
  // w0 2^64 + w1 2^32 + w2 is exact in 128 bits for up to 2^30 terms; one rounding to double.
  const __int128 v = static_cast<__int128>(c.w[0]) * (static_cast<__int128>(1) << 64) +
                     static_cast<__int128>(c.w[1]) * (static_cast<__int128>(1) << 32) +
                     static_cast<__int128>(c.w[2]);
  return std::ldexp(static_cast<double>(v), (c.top - 2) * kWidth - kBias);
}

void ExactSum::add(const double* x, Eigen::Index n, Eigen::Index offset) {
  Cell* c = cells_.data() + offset;
  for (Eigen::Index i = 0; i < n; ++i) add_cell(c[i], x[i]);
}

void ExactSum::add(ConstVectorRef x, Eigen::Index offset) {
  if (x.innerStride() == 1) {
    add(x.data(), x.size(), offset);
    return;
  }
  for (Eigen::Index i = 0; i < x.size(); ++i) add_cell(cells_[static_cast<std::size_t>(offset + i)], x[i]);
}

void ExactSum::merge(const ExactSum& other) {
  if (cells_.empty()) cells_.resize(other.cells_.size());
  for (std::size_t i = 0; i < other.cells_.size() && i < cells_.size(); ++i) merge_cell(cells_[i], other.cells_[i]);
}

void ExactSum::merge_range(const ExactSum& other, Eigen::Index offset) {
  for (std::size_t i = 0; i < other.cells_.size(); ++i) merge_cell(cells_[static_cast<std::size_t>(offset) + i], other.cells_[i]);
}

void ExactSum::values(double* out, Eigen::Index n, Eigen::Index offset) const {
  for (Eigen::Index i = 0; i < n; ++i) out[i] = cell_value(cells_[static_cast<std::size_t>(offset + i)]);
}

Vector ExactSum::values() const {
  Vector v(size());
  values(v.data(), size());
  return v;
}

double exact_sum(const std::vector<double>& terms) {
  ExactSum::Cell c;
  for (double t : terms) ExactSum::add_cell(c, t);
  return ExactSum::cell_value(c);
}

}  // namespace cvnode

#include "cvnode/exact_sum.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#ifdef __AVX2__
#include <immintrin.h>
#endif

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

namespace {

// w0 2^64 + w1 2^32 + w2 (exact in 128 bits for up to 2^30 terms) times the grid's 2^e0, rounded
// to double once: its leading 64 bits with every bit below folded into the last (sticky),
// converted, so the conversion rounds as the 128-bit value would; then scaled by a power of two
// (exact unless the result is subnormal or overflows: std::ldexp rounds those once more, as
// before). A few times faster than GCC's __int128 conversion plus ldexp: values() runs over every
// parameter at every step.
inline double round_words(std::int64_t w0, std::int64_t w1, std::int64_t w2, int e0) {
  const __int128 v = static_cast<__int128>(w0) * (static_cast<__int128>(1) << 64) +
                     static_cast<__int128>(w1) * (static_cast<__int128>(1) << 32) + static_cast<__int128>(w2);
  const unsigned __int128 a = v < 0 ? -static_cast<unsigned __int128>(v) : static_cast<unsigned __int128>(v);
  const auto hi = static_cast<std::uint64_t>(a >> 64), lo = static_cast<std::uint64_t>(a);
  int e = e0;
  std::uint64_t lead = lo;
  if (hi != 0) {  // |v| < 2^127: 1 <= shift <= 63
    const int shift = 64 - __builtin_clzll(hi);
    lead = (hi << (64 - shift)) | (lo >> shift) | static_cast<std::uint64_t>((lo << (64 - shift)) != 0);
    e += shift;
  }
  const double d = v < 0 ? -static_cast<double>(lead) : static_cast<double>(lead);
  // |d| <= 2^64: d 2^e is exact (no overflow, no subnormal) for e in [-1022, 959].
  if (e >= -1022 && e <= 959) {
    const std::uint64_t pow2_bits = static_cast<std::uint64_t>(e + 1023) << 52;
    double pow2;
    std::memcpy(&pow2, &pow2_bits, sizeof pow2);
    return d * pow2;
  }
  return std::ldexp(d, e);
}

double special_value(std::uint32_t special) {
  if ((special & 4u) || (special & 3u) == 3u) return std::numeric_limits<double>::quiet_NaN();
  return (special & 1u) ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
}

}  // namespace

double ExactSum::cell_value(const Cell& c) {
  if (c.special) return special_value(c.special);
  if (c.top == Cell::kEmpty) return 0.0;
  return round_words(c.w[0], c.w[1], c.w[2], (c.top - 2) * kWidth - kBias);
}

void ExactSum::reset(Eigen::Index n) {
  const auto m = static_cast<std::size_t>(n);
  w0_.assign(m, 0);
  w1_.assign(m, 0);
  w2_.assign(m, 0);
  top_.assign(m, Cell::kEmpty);
  special_.assign(m, 0);
  fresh_ = true;
}

ExactSum::Cell ExactSum::cell(Eigen::Index i) const {
  const auto k = static_cast<std::size_t>(i);
  Cell c;
  c.w[0] = w0_[k];
  c.w[1] = w1_[k];
  c.w[2] = w2_[k];
  c.top = top_[k];
  c.special = special_[k];
  return c;
}

void ExactSum::store(Eigen::Index i, const Cell& c) {
  fresh_ = false;
  const auto k = static_cast<std::size_t>(i);
  w0_[k] = c.w[0];
  w1_[k] = c.w[1];
  w2_[k] = c.w[2];
  top_[k] = c.top;
  special_[k] = c.special;
}

void ExactSum::add(Eigen::Index i, double x) {
  Cell c = cell(i);
  add_cell(c, x);
  store(i, c);
}

// The vectorised add below, one lane per element, on the common path: a finite term whose top
// bin is not above its element's (no raise). With s = lsb - (top - 2) * 32 (the shift of the
// mantissa M above the lowest kept bin; s <= 43 since the term's leading bit lies in a kept bin),
// M * 2^s < 2^96 splits into lo = its low 64 bits and hi = the rest, and the three chunks
// add_cell takes are lo & mask (bin top-2), lo >> 32 (top-1) and hi (top). The variable shifts
// (vpsllvq / vpsrlvq) give 0 for counts >= 64, and a negative count is one, so
// lo = M << s | M >> -s and hi = M >> (64 - s) hold for every s without branches. Any other
// term (an element's first, a raise, subnormal, inf, NaN) goes through add_cell, so both paths
// give the same words (test_exact_sum checks it word by word).
void ExactSum::add(const double* x, Eigen::Index n, Eigen::Index offset) {
  fresh_ = false;
  Eigen::Index i = 0;
  std::int64_t* w0 = w0_.data() + offset;
  std::int64_t* w1 = w1_.data() + offset;
  std::int64_t* w2 = w2_.data() + offset;
  std::int32_t* top = top_.data() + offset;
#if defined(__AVX512F__)
  const __m512i mant_mask = _mm512_set1_epi64((1LL << 52) - 1);
  const __m512i hidden = _mm512_set1_epi64(1LL << 52);
  const __m512i field_mask = _mm512_set1_epi64(0x7ff);
  const __m512i bias = _mm512_set1_epi64(kBias - 1075);
  const __m512i c52 = _mm512_set1_epi64(52);
  const __m512i c64 = _mm512_set1_epi64(64);
  const __m512i bin_mask = _mm512_set1_epi64(static_cast<long long>(kMask));
  const __m512i zero = _mm512_setzero_si512();
  for (; i + 8 <= n; i += 8) {
    const __m512i b = _mm512_loadu_si512(x + i);
    const __m512i field = _mm512_and_si512(_mm512_srli_epi64(b, 52), field_mask);
    const __m512i mant = _mm512_and_si512(b, mant_mask);
    const __mmask8 normal = _mm512_cmpneq_epi64_mask(field, zero);
    const __m512i M = _mm512_mask_or_epi64(mant, normal, mant, hidden);
    const __m512i lsb = _mm512_add_epi64(field, bias);
    __m512i tops = _mm512_cvtepi32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(top + i)));
    const __m512i term_top = _mm512_srli_epi64(_mm512_add_epi64(lsb, c52), 5);
    const __mmask8 nonzero = _mm512_test_epi64_mask(M, M);
    if (_mm512_cmpeq_epi64_mask(field, field_mask) | (nonzero & ~normal)) {  // inf, NaN, subnormal
      for (Eigen::Index j = i; j < i + 8; ++j) add(offset + j, x[j]);
      continue;
    }
    // Raises (as raise() does; an element's first term too: it is empty, top -1, its words 0):
    // by d bins, words move down d places and those below the lowest bin are dropped.
    if (const __mmask8 up = nonzero & _mm512_cmpgt_epi64_mask(term_top, tops)) {
      const __m512i d = _mm512_sub_epi64(term_top, tops);
      const __mmask8 d1 = up & _mm512_cmpeq_epi64_mask(d, _mm512_set1_epi64(1));
      const __mmask8 d2 = up & _mm512_cmpeq_epi64_mask(d, _mm512_set1_epi64(2));
      const __m512i o0 = _mm512_loadu_si512(w0 + i), o1 = _mm512_loadu_si512(w1 + i);
      _mm512_mask_storeu_epi64(w2 + i, up, _mm512_mask_mov_epi64(_mm512_maskz_mov_epi64(d1, o1), d2, o0));
      _mm512_mask_storeu_epi64(w1 + i, up, _mm512_maskz_mov_epi64(d1, o0));
      _mm512_mask_storeu_epi64(w0 + i, up, zero);
      tops = _mm512_mask_mov_epi64(tops, up, term_top);
      _mm512_mask_cvtepi64_storeu_epi32(top + i, up, tops);
    }
    const __mmask8 neg = _mm512_cmplt_epi64_mask(b, zero);
    const __m512i s = _mm512_add_epi64(_mm512_sub_epi64(lsb, _mm512_slli_epi64(tops, 5)), c64);
    const __m512i lo = _mm512_or_si512(_mm512_sllv_epi64(M, s), _mm512_srlv_epi64(M, _mm512_sub_epi64(zero, s)));
    const __m512i hi = _mm512_srlv_epi64(M, _mm512_sub_epi64(c64, s));
    auto accumulate = [&](std::int64_t* w, __m512i v) {
      const __m512i old = _mm512_loadu_si512(w + i);
      _mm512_storeu_si512(w + i, _mm512_mask_sub_epi64(_mm512_add_epi64(old, v), neg, old, v));
    };
    accumulate(w0, hi);
    accumulate(w1, _mm512_srli_epi64(lo, 32));
    accumulate(w2, _mm512_and_si512(lo, bin_mask));
  }
#elif defined(__AVX2__)
  const __m256i mant_mask = _mm256_set1_epi64x((1LL << 52) - 1);
  const __m256i hidden = _mm256_set1_epi64x(1LL << 52);
  const __m256i field_mask = _mm256_set1_epi64x(0x7ff);
  const __m256i bias = _mm256_set1_epi64x(kBias - 1075);
  const __m256i c52 = _mm256_set1_epi64x(52);
  const __m256i c64 = _mm256_set1_epi64x(64);
  const __m256i bin_mask = _mm256_set1_epi64x(static_cast<long long>(kMask));
  const __m256i zero = _mm256_setzero_si256();
  for (; i + 4 <= n; i += 4) {
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
    const __m256i field = _mm256_and_si256(_mm256_srli_epi64(b, 52), field_mask);
    const __m256i mant = _mm256_and_si256(b, mant_mask);
    const __m256i subnormal_or_zero = _mm256_cmpeq_epi64(field, zero);
    const __m256i M = _mm256_or_si256(mant, _mm256_andnot_si256(subnormal_or_zero, hidden));
    const __m256i lsb = _mm256_add_epi64(field, bias);
    const __m256i tops = _mm256_cvtepi32_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(top + i)));
    const __m256i term_top = _mm256_srli_epi64(_mm256_add_epi64(lsb, c52), 5);
    const __m256i is_zero = _mm256_cmpeq_epi64(M, zero);
    const __m256i slow = _mm256_or_si256(
        _mm256_cmpeq_epi64(field, field_mask),
        _mm256_andnot_si256(is_zero, _mm256_or_si256(subnormal_or_zero, _mm256_cmpgt_epi64(term_top, tops))));
    if (!_mm256_testz_si256(slow, slow)) {
      for (Eigen::Index j = i; j < i + 4; ++j) add(offset + j, x[j]);
      continue;
    }
    const __m256i neg = _mm256_cmpgt_epi64(zero, b);  // sign bit set
    const __m256i s = _mm256_add_epi64(_mm256_sub_epi64(lsb, _mm256_slli_epi64(tops, 5)), c64);
    const __m256i lo = _mm256_or_si256(_mm256_sllv_epi64(M, s), _mm256_srlv_epi64(M, _mm256_sub_epi64(zero, s)));
    const __m256i hi = _mm256_srlv_epi64(M, _mm256_sub_epi64(c64, s));
    auto accumulate = [&](std::int64_t* w, __m256i v) {
      auto* p = reinterpret_cast<__m256i*>(w + i);
      _mm256_storeu_si256(p, _mm256_add_epi64(_mm256_loadu_si256(p), _mm256_sub_epi64(_mm256_xor_si256(v, neg), neg)));
    };
    accumulate(w0, hi);
    accumulate(w1, _mm256_srli_epi64(lo, 32));
    accumulate(w2, _mm256_and_si256(lo, bin_mask));
  }
#endif
  (void)w0, (void)w1, (void)w2, (void)top;
  for (; i < n; ++i) add(offset + i, x[i]);
}

void ExactSum::add(ConstVectorRef x, Eigen::Index offset) {
  if (x.innerStride() == 1) {
    add(x.data(), x.size(), offset);
    return;
  }
  for (Eigen::Index i = 0; i < x.size(); ++i) add(offset + i, x[i]);
}

void ExactSum::merge(const ExactSum& other) {
  if (size() == 0) reset(other.size());
  if (fresh_ && size() == other.size()) {  // nothing added yet: the sum is the other one
    w0_ = other.w0_;
    w1_ = other.w1_;
    w2_ = other.w2_;
    top_ = other.top_;
    special_ = other.special_;
    fresh_ = other.fresh_;
    return;
  }
  merge_elements(other, std::min(size(), other.size()), 0);
}

void ExactSum::merge_range(const ExactSum& other, Eigen::Index offset) {
  merge_elements(other, other.size(), offset);
}

void ExactSum::merge_elements(const ExactSum& other, Eigen::Index n, Eigen::Index offset) {
  fresh_ = false;
  // merge_cell's common cases without building cells (threads' sums share their bins, and a
  // fresh sum takes the first merge as it is); the rest through merge_cell.
  for (Eigen::Index j = 0; j < n; ++j) {
    const auto i = static_cast<std::size_t>(j), k = static_cast<std::size_t>(offset + j);
    const std::int32_t from_top = other.top_[i];
    if (other.special_[i] == 0) {
      if (from_top == top_[k]) {  // the same bins (or both empty: zeros)
        w0_[k] += other.w0_[i];
        w1_[k] += other.w1_[i];
        w2_[k] += other.w2_[i];
        continue;
      }
      if (from_top == Cell::kEmpty) continue;
    }
    if (top_[k] == Cell::kEmpty && special_[k] == 0) {
      w0_[k] = other.w0_[i];
      w1_[k] = other.w1_[i];
      w2_[k] = other.w2_[i];
      top_[k] = from_top;
      special_[k] = other.special_[i];
      continue;
    }
    Cell c = cell(offset + j);
    merge_cell(c, other.cell(j));
    store(offset + j, c);
  }
}

void ExactSum::values(double* out, Eigen::Index n, Eigen::Index offset) const {
  for (Eigen::Index j = 0; j < n; ++j) {
    const auto k = static_cast<std::size_t>(offset + j);
    if (special_[k]) out[j] = special_value(special_[k]);
    else if (top_[k] == Cell::kEmpty) out[j] = 0.0;
    else out[j] = round_words(w0_[k], w1_[k], w2_[k], (top_[k] - 2) * kWidth - kBias);
  }
}

Vector ExactSum::values() const {
  Vector v(size());
  values(v.data(), size());
  return v;
}

std::vector<ExactSum::Cell> ExactSum::cells() const {
  std::vector<Cell> out(static_cast<std::size_t>(size()));
  for (Eigen::Index i = 0; i < size(); ++i) out[static_cast<std::size_t>(i)] = cell(i);
  return out;
}

void ExactSum::assign(const std::vector<Cell>& cells) {
  reset(static_cast<Eigen::Index>(cells.size()));
  for (std::size_t i = 0; i < cells.size(); ++i) store(static_cast<Eigen::Index>(i), cells[i]);
}

double exact_sum(const std::vector<double>& terms) {
  ExactSum::Cell c;
  for (double t : terms) ExactSum::add_cell(c, t);
  return ExactSum::cell_value(c);
}

}  // namespace cvnode

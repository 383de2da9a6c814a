#include "nn/activation_kernels.h"

#include <algorithm>
#include <cstddef>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

namespace cvnode::detail {

namespace {

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
// tanh(a) for a = |u| from em = e^2a - 1: em / (em + 2) below atanh(1/2), where 1 - 2 / (em + 2)
// would cancel, and 1 - 2 / (em + 2) above, where the quotient is <= 1/2 and its rounding barely
// shows. One division: the branches only choose its numerator. e^2a - 1 needs no division
// either: 2a = k ln2 + r with |r| <= ln2 / 2, e^r - 1 from a polynomial, 2^k from the exponent
// bits. Measured against tanhl over 1.4e7 points: <= 1.47 ulps (the Eigen form below: 1.40);
// 1.1-1.3 ns an element with AVX-512 where that form took 3.8-4 (8.5 on 50-element arrays).
constexpr double kClamp = 20.0;  // tanh rounds to 1 from 19.06 on; also keeps 2^k finite
constexpr double kBig = 0.5493061443340549;  // atanh(1/2)
constexpr double kInvLn2 = 0x1.71547652b82fep0;
// Adding it rounds to an integer k and leaves k + 1023, the biased exponent of 2^k, in the low
// mantissa bits: shifted left by 52 they are 2^k.
constexpr double kShift = 0x1.8p52 + 1023.0;
// ln2 = kLn2Hi + kLn2Lo. 2a - k kLn2Hi is exact in one FMA (a multiple of 2^-54 below 2^-1),
// so the only rounding of the reduced argument is kept apart in rl = -k kLn2Lo.
constexpr double kLn2Hi = 0x1.62e42fefa39efp-1;
constexpr double kLn2Lo = 0x1.abc9e3b39803fp-56;
// e^r - 1 = r + r^2 (1/2 + r S(r)): S is a Chebyshev fit of degree 9 on |r| <= 1.0001 ln2 / 2,
// within 0.03 ulp of e^r - 1 (degree 8 is 0.7 ulp off). Highest degree first.
constexpr double kS[10] = {2.0911236630261545e-09, 2.510038549551032e-08, 2.755728296954995e-07,
                           2.7557268459997064e-06, 2.4801587317144498e-05, 0.00019841269863053618,
                           0.0013888888888886552,  0.008333333333330062,  0.041666666666666664,
                           0.16666666666666669};
#endif

// The instructions the kernel needs, for AVX-512 and for AVX2 with FMA; tanh_packet below is
// written once over them, so both instruction sets run the same operations (and give the same
// bits). Bitwise operations go through the integer unit: AVX-512F has no double-typed ones.
#if defined(__AVX512F__)
constexpr std::ptrdiff_t kWidth = 8;
using Packet = __m512d;
using Mask = __mmask8;
inline Packet set1(double v) { return _mm512_set1_pd(v); }
inline Packet add(Packet a, Packet b) { return _mm512_add_pd(a, b); }
inline Packet sub(Packet a, Packet b) { return _mm512_sub_pd(a, b); }
inline Packet mul(Packet a, Packet b) { return _mm512_mul_pd(a, b); }
inline Packet div(Packet a, Packet b) { return _mm512_div_pd(a, b); }
inline Packet min(Packet a, Packet b) { return _mm512_min_pd(a, b); }
inline Packet fmadd(Packet a, Packet b, Packet c) { return _mm512_fmadd_pd(a, b, c); }   // a b + c
inline Packet fnmadd(Packet a, Packet b, Packet c) { return _mm512_fnmadd_pd(a, b, c); } // c - a b
inline Packet bit_and(Packet a, Packet b) {
  return _mm512_castsi512_pd(_mm512_and_si512(_mm512_castpd_si512(a), _mm512_castpd_si512(b)));
}
inline Packet bit_andnot(Packet a, Packet b) {  // ~a & b
  return _mm512_castsi512_pd(_mm512_andnot_si512(_mm512_castpd_si512(a), _mm512_castpd_si512(b)));
}
inline Packet bit_or(Packet a, Packet b) {
  return _mm512_castsi512_pd(_mm512_or_si512(_mm512_castpd_si512(a), _mm512_castpd_si512(b)));
}
inline Packet shift_left_52(Packet a) {
  return _mm512_castsi512_pd(_mm512_slli_epi64(_mm512_castpd_si512(a), 52));
}
inline Mask greater_equal(Packet a, Packet b) { return _mm512_cmp_pd_mask(a, b, _CMP_GE_OQ); }
inline Packet select(Mask m, Packet if_true, Packet if_false) { return _mm512_mask_blend_pd(m, if_false, if_true); }
#elif defined(__AVX2__) && defined(__FMA__)
constexpr std::ptrdiff_t kWidth = 4;
using Packet = __m256d;
using Mask = __m256d;
inline Packet set1(double v) { return _mm256_set1_pd(v); }
inline Packet add(Packet a, Packet b) { return _mm256_add_pd(a, b); }
inline Packet sub(Packet a, Packet b) { return _mm256_sub_pd(a, b); }
inline Packet mul(Packet a, Packet b) { return _mm256_mul_pd(a, b); }
inline Packet div(Packet a, Packet b) { return _mm256_div_pd(a, b); }
inline Packet min(Packet a, Packet b) { return _mm256_min_pd(a, b); }
inline Packet fmadd(Packet a, Packet b, Packet c) { return _mm256_fmadd_pd(a, b, c); }
inline Packet fnmadd(Packet a, Packet b, Packet c) { return _mm256_fnmadd_pd(a, b, c); }
inline Packet bit_and(Packet a, Packet b) { return _mm256_and_pd(a, b); }
inline Packet bit_andnot(Packet a, Packet b) { return _mm256_andnot_pd(a, b); }
inline Packet bit_or(Packet a, Packet b) { return _mm256_or_pd(a, b); }
inline Packet shift_left_52(Packet a) {
  return _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(a), 52));
}
inline Mask greater_equal(Packet a, Packet b) { return _mm256_cmp_pd(a, b, _CMP_GE_OQ); }
inline Packet select(Mask m, Packet if_true, Packet if_false) { return _mm256_blendv_pd(if_false, if_true, m); }
#endif

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
inline Packet tanh_packet(Packet u) {
  const Packet sign_bit = set1(-0.0);
  const Packet sign = bit_and(u, sign_bit);
  const Packet one = set1(1.0), two = set1(2.0), half = set1(0.5);
  Packet a = bit_andnot(sign_bit, u);
  a = min(set1(kClamp), a);  // min returns its 2nd operand for a NaN: it passes
  const Packet y = add(a, a);
  const Packet t = fmadd(y, set1(kInvLn2), set1(kShift));
  const Packet k = sub(t, set1(kShift));
  const Packet r = fnmadd(k, set1(kLn2Hi), y);
  const Packet rl = mul(k, set1(-kLn2Lo));
  const Packet scale = shift_left_52(t);
  Packet s = set1(kS[0]);
  for (int i = 1; i < 10; ++i) s = fmadd(s, r, set1(kS[i]));
  s = fmadd(s, r, half);
  // em = 2^k (1 + r + rl (1 + r) + r^2 s) - 1 with 2^k (1 + r) - 1 rounded once and the small
  // rest added to it: rounding e^r - 1 on its own would cost up to 1 ulp more after the - 1.
  const Packet lead = fmadd(scale, r, sub(scale, one));
  const Packet rest = fmadd(mul(r, r), s, fmadd(rl, r, rl));
  const Packet em = fmadd(scale, rest, lead);
  const Packet den = add(em, two);
  const Mask big = greater_equal(a, set1(kBig));
  const Packet q0 = div(select(big, two, em), den);
  // Below atanh(1/2) the rounding of em + 2 would add up to 1 ulp: correct the quotient by the
  // exact remainder em - q0 (em + 2) over em + 2, and 1 / (em + 2) = (1 - q0) / 2 costs no division.
  const Packet den_lo = add(sub(two, den), em);
  const Packet rem = fnmadd(q0, den_lo, fnmadd(q0, den, em));
  const Packet small = fmadd(rem, fnmadd(half, q0, half), q0);
  return bit_or(select(big, sub(one, q0), small), sign);
}
#endif

}  // namespace

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
// Every element, the last few included, goes through tanh_packet at the same lane-independent
// operations, so its bits do not depend on its position, on the alignment or on how a batch is
// split between threads (the stacked fits promise bit-identical results for any thread count).
// The tail is padded with zeros rather than left to scalar code. Unaligned loads: the maps
// carry no alignment guarantee.
void fast_tanh(const ArrayMap& u, ArrayMap x) {
  const std::ptrdiff_t n = u.size();
  const double* in = u.data();
  double* out = x.data();
  std::ptrdiff_t i = 0;
#if defined(__AVX512F__)
  for (; i + kWidth <= n; i += kWidth) _mm512_storeu_pd(out + i, tanh_packet(_mm512_loadu_pd(in + i)));
  if (i < n) {
    const __mmask8 m = static_cast<__mmask8>((1u << (n - i)) - 1);
    _mm512_mask_storeu_pd(out + i, m, tanh_packet(_mm512_maskz_loadu_pd(m, in + i)));
  }
#else
  for (; i + kWidth <= n; i += kWidth) _mm256_storeu_pd(out + i, tanh_packet(_mm256_loadu_pd(in + i)));
  if (i < n) {
    double pad[kWidth] = {};
    std::copy(in + i, in + n, pad);
    _mm256_storeu_pd(pad, tanh_packet(_mm256_loadu_pd(pad)));
    std::copy(pad, pad + (n - i), out + i);
  }
#endif
}

#else
// Without AVX2 and FMA (CVNODE_NATIVE=OFF, another architecture), whose exact reductions the
// kernel above needs: Eigen 3.4 evaluates tanh on doubles with scalar code (~21 ns an element),
// this form uses only operations Eigen vectorises (exp, min/max, +, *, /). Below |u| = 0.625,
// where 1 - 2 / (e^2|u| + 1) would cancel, Cephes' rational approximation
// u (1 + u^2 P(u^2) / Q(u^2)) (on u clamped to that range, so it stays finite); above, the exp
// form, whose value is >= 0.55 so nothing cancels. The branches are blended with an exact 0/1
// weight instead of select(), which Eigen 3.4 does not vectorise. Within 1.40 ulps of tanhl.
// Fixed, aligned, zero-padded blocks: on a map Eigen would compute the unaligned head and the
// tail with std::exp rather than its vectorised exp, which can differ in the last bit, so an
// element's result would depend on its position and alignment.
void fast_tanh(const ArrayMap& u, ArrayMap x) {
  constexpr double kSwitch = 0.625, kHuge = 1e300;
  constexpr Eigen::Index kBlock = 64;
  Eigen::Array<double, kBlock, 1> ub, xb;
  for (Eigen::Index i = 0; i < u.size(); i += kBlock) {
    const Eigen::Index m = std::min(kBlock, u.size() - i);
    ub.head(m) = u.segment(i, m);
    ub.tail(kBlock - m).setZero();
    const auto a = ub.abs();
    // Exactly 1 below the switch (the gap is then >= 1e-16, times 1e300 saturates), 0 above.
    const auto w = ((kSwitch - a) * kHuge).max(0.0).min(1.0);
    const auto sign = (ub * kHuge).max(-1.0).min(1.0);  // +-1 except where w = 1 anyway
    const auto us = ub.max(-kSwitch).min(kSwitch);
    const auto z = us.square();
    const auto p = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z - 1.61468768441708447952e3;
    const auto q = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z + 4.84406305325125486048e3;
    // us (1 + ...), not us + us z P / Q: that sum is +0 at us = -0.
    const auto small = us * (1.0 + z * (p / q));
    const auto large = (1.0 - 2.0 / ((2.0 * a).exp() + 1.0)) * sign;
    xb = w * small + (1.0 - w) * large;
    x.segment(i, m) = xb.head(m);
  }
}
#endif

void activate(Activation a, const ArrayMap& u, ArrayMap x) {
  switch (a) {
    case Activation::Identity: x = u; break;
    case Activation::Tanh: fast_tanh(u, x); break;
    case Activation::Relu: x = u.max(0.0); break;
    // log(1 + e^u) = max(u, 0) + log(1 + e^-|u|): no overflow for large u. Eigen vectorises log
    // but not log1p (3.6 against 46 ns an element here); log(1 + e) differs from log1p(e) by at
    // most 1.1e-16 absolutely, which only matters relative to softplus(u) < 1e-16 (u < -37).
    case Activation::Softplus: x = u.max(0.0) + (1.0 + (-u.abs()).exp()).log(); break;
    case Activation::Sigmoid: x = 1.0 / (1.0 + (-u).exp()); break;
    case Activation::Silu: x = u / (1.0 + (-u).exp()); break;
    case Activation::Elu: x = (u > 0).select(u, u.min(0.0).expm1()); break;
  }
}

void activate_derivative(Activation a, const ArrayMap& u, const ArrayMap& x, ArrayMap d) {
  switch (a) {
    case Activation::Identity: d.setOnes(); break;
    case Activation::Tanh: d = 1.0 - x.square(); break;
    case Activation::Relu: d = (u > 0).cast<double>(); break;
    case Activation::Softplus: d = 1.0 / (1.0 + (-u).exp()); break;
    case Activation::Sigmoid: d = x * (1.0 - x); break;
    case Activation::Silu: {
      // s(u) = x / u is unsafe at u = 0; recompute the sigmoid instead.
      d = 1.0 / (1.0 + (-u).exp());
      d = d * (1.0 + u * (1.0 - d));
      break;
    }
    case Activation::Elu: d = (u > 0).select(Eigen::ArrayXd::Ones(u.size()), x + 1.0); break;
  }
}

void activate_second_derivative(Activation a, const ArrayMap& u, const ArrayMap& x, ArrayMap d2) {
  switch (a) {
    case Activation::Identity:
    case Activation::Relu: d2.setZero(); break;
    case Activation::Tanh: d2 = -2.0 * x * (1.0 - x.square()); break;
    case Activation::Softplus: {
      d2 = 1.0 / (1.0 + (-u).exp());  // s' = sigmoid(u) = g, s'' = g (1 - g)
      d2 = d2 * (1.0 - d2);
      break;
    }
    case Activation::Sigmoid: d2 = x * (1.0 - x) * (1.0 - 2.0 * x); break;
    case Activation::Silu: {
      // s = u g: s' = g (1 + u (1 - g)), s'' = g (1 - g) (2 + u (1 - 2 g)).
      d2 = 1.0 / (1.0 + (-u).exp());
      d2 = d2 * (1.0 - d2) * (2.0 + u * (1.0 - 2.0 * d2));
      break;
    }
    case Activation::Elu: d2 = (u > 0).select(Eigen::ArrayXd::Zero(u.size()), x + 1.0); break;
  }
}

}  // namespace cvnode::detail

// ExactSum, the reduction shared by threads and MPI ranks: the same bits for any order and any
// grouping of the terms, and within its stated bound of the exact sum (checked with exact
// big-integer arithmetic, in which every double is an integer multiple of 2^-1074).
// ctest: labels=unit,sanitize timeout=60
#define BOOST_TEST_MODULE exact_sum
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include <boost/multiprecision/cpp_int.hpp>

#include "cvnode/exact_sum.h"

using namespace cvnode;
using boost::multiprecision::cpp_int;

namespace {

std::uint64_t bits(double x) {
  std::uint64_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

// x * 2^1074 as an exact integer.
cpp_int scaled(double x) {
  int e;
  const double f = std::frexp(x, &e);               // x = f 2^e, |f| in [0.5, 1)
  const auto m = static_cast<std::int64_t>(std::ldexp(f, 53));  // exact
  cpp_int v = m;
  const int shift = e - 53 + 1074;
  return shift >= 0 ? cpp_int(v << shift) : cpp_int(v >> -shift);  // subnormals: exact, shift >= 0
}

std::vector<double> random_terms(std::mt19937_64& g, int n, int min_exp, int max_exp) {
  std::uniform_real_distribution<double> u(-1, 1);
  std::uniform_int_distribution<int> e(min_exp, max_exp);
  std::vector<double> t(n);
  for (auto& x : t) x = std::ldexp(u(g), e(g));
  return t;
}

}  // namespace

BOOST_AUTO_TEST_CASE(same_bits_for_any_order_and_grouping) {
  std::mt19937_64 g(7);
  for (int trial = 0; trial < 50; ++trial) {
    auto terms = random_terms(g, 200, -60, 60);
    const double ref = exact_sum(terms);
    // A plain sum depends on the order (that is the problem being solved); this one must not.
    for (int shuffle = 0; shuffle < 5; ++shuffle) {
      std::shuffle(terms.begin(), terms.end(), g);
      BOOST_TEST(bits(exact_sum(terms)) == bits(ref));
      // Split into random groups (threads, ranks), merge in a random order.
      const int groups = 1 + static_cast<int>(g() % 9);
      std::vector<ExactSum> parts(groups, ExactSum(1));
      for (double t : terms) parts[g() % groups].add(0, t);
      std::shuffle(parts.begin(), parts.end(), g);
      ExactSum total(1);
      for (const auto& p : parts) total.merge(p);
      BOOST_TEST(bits(total.value(0)) == bits(ref));
    }
  }
}

BOOST_AUTO_TEST_CASE(within_the_bound_of_the_exact_sum) {
  std::mt19937_64 g(11);
  for (int trial = 0; trial < 200; ++trial) {
    const int lo = -1070 + static_cast<int>(g() % 2000);
    const int hi = std::min(1000, lo + static_cast<int>(g() % 120));
    const auto terms = random_terms(g, 1 + static_cast<int>(g() % 300), lo, hi);
    cpp_int exact = 0;
    double maxabs = 0;
    for (double t : terms) {
      exact += scaled(t);
      maxabs = std::max(maxabs, std::abs(t));
    }
    const double got = exact_sum(terms);
    BOOST_TEST_REQUIRE(std::isfinite(got));
    // |got - exact| <= n 2^-64 max|t| (truncation) + half an ulp of the result (one rounding).
    cpp_int err = scaled(got) - exact;
    if (err < 0) err = -err;
    const double half_ulp = got == 0 ? 0 : std::ldexp(1.0, std::ilogb(got) - 53);
    const double bound = terms.size() * std::ldexp(maxabs, -64) + half_ulp;
    BOOST_TEST(err <= scaled(bound) + 1, "trial " << trial << ": error beyond the bound");
  }
}

BOOST_AUTO_TEST_CASE(exact_where_a_plain_sum_loses_everything) {
  // 2^60 + 1 - 2^60: a left-to-right sum gives 0.
  BOOST_TEST(exact_sum({std::ldexp(1.0, 60), 1.0, -std::ldexp(1.0, 60)}) == 1.0);
  // The doubles 0.1 + 0.2 - 0.3 sum to exactly 2^-55; a left-to-right sum gives 2^-54.
  BOOST_TEST(exact_sum({0.1, 0.2, -0.3}) == std::ldexp(1.0, -55));
  // Integers are exact, whatever the order.
  std::vector<double> ints;
  for (int i = 1; i <= 1000; ++i) ints.push_back(i % 2 ? i : -i * 3.0);
  double plain = 0;
  for (double x : ints) plain += x;
  BOOST_TEST(exact_sum(ints) == plain);
  // Subnormals add exactly.
  const double tiny = std::numeric_limits<double>::denorm_min();
  BOOST_TEST(exact_sum({tiny, tiny, tiny}) == 3 * tiny);
  BOOST_TEST(exact_sum({}) == 0.0);
  BOOST_TEST(exact_sum({-0.0, 0.0}) == 0.0);
  // 5 lies ~1020 bits below the largest term: truncated, as the bound allows (a plain sum: 0 too).
  BOOST_TEST(exact_sum({std::numeric_limits<double>::max(), -std::numeric_limits<double>::max(), 5.0}) == 0.0);
}

BOOST_AUTO_TEST_CASE(non_finite_terms_as_ieee_addition) {
  const double inf = std::numeric_limits<double>::infinity();
  BOOST_TEST(exact_sum({1.0, inf}) == inf);
  BOOST_TEST(exact_sum({1.0, -inf, 2.0}) == -inf);
  BOOST_TEST(std::isnan(exact_sum({inf, -inf})));
  BOOST_TEST(std::isnan(exact_sum({1.0, std::nan("")})));
}

BOOST_AUTO_TEST_CASE(vectors) {
  ExactSum s(3);
  Eigen::Vector3d a(1, 2, 3), b(-1, 0.5, 1e-300);
  s.add(a);
  s.add(b);
  Eigen::Vector2d c(4, 5);
  s.add(c, 1);
  const Vector v = s.values();
  BOOST_TEST(v[0] == 0.0);
  BOOST_TEST(v[1] == 6.5);
  BOOST_TEST(v[2] == 8.0);  // 1e-300 far below 2^-64 of 8: truncated
}

BOOST_AUTO_TEST_CASE(vectorised_add_and_merge_give_the_words_of_one_add_per_element) {
  // add(vector) takes a vectorised path (raises included) and add_cell for inf, NaN and
  // subnormals; merge() shortcuts equal bins and empty cells: every word of every cell must equal
  // the element-by-element result.
  // The terms mix magnitudes (raises), zeros, subnormals, infinities and NaNs, and vector lengths
  // that are not multiples of the vector width.
  std::mt19937_64 g(5);
  std::uniform_real_distribution<double> u(-1, 1);
  for (int trial = 0; trial < 40; ++trial) {
    const int n = 1 + static_cast<int>(g() % 37);
    ExactSum vectorised(n), single(n);
    // The units split over three partial sums (threads), merged afterwards in a random order.
    std::vector<ExactSum> parts(3, ExactSum(n));
    for (int unit = 0; unit < 30; ++unit) {
      Vector x(n);
      for (int i = 0; i < n; ++i) {
        const auto kind = g() % 100;
        if (kind < 5) x[i] = 0.0;
        else if (kind < 7) x[i] = std::numeric_limits<double>::denorm_min() * static_cast<double>(g() % 1000);
        else if (kind == 7 && trial % 4 == 0) x[i] = std::numeric_limits<double>::infinity() * (g() % 2 ? 1 : -1);
        else if (kind == 8 && trial % 4 == 1) x[i] = std::nan("");
        else x[i] = std::ldexp(u(g), static_cast<int>(g() % 200) - 100 + (trial % 3) * 400 - 400);
      }
      const Eigen::Index offset = 0;
      vectorised.add(x, offset);
      parts[g() % 3].add(x, offset);
      for (int i = 0; i < n; ++i) single.add(i, x[i]);
    }
    std::shuffle(parts.begin(), parts.end(), g);
    ExactSum merged;
    for (const auto& p : parts) merged.merge(p);
    for (int i = 0; i < n; ++i) {
      const ExactSum::Cell b = single.cell(i);
      for (const ExactSum* s : {&vectorised, &merged}) {
        const ExactSum::Cell a = s->cell(i);
        BOOST_TEST(a.top == b.top);
        BOOST_TEST(a.special == b.special);
        for (int k = 0; k < 3; ++k) BOOST_TEST(a.w[k] == b.w[k], "trial " << trial << " element " << i << " word " << k);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(value_is_the_128_bit_sum_rounded_once) {
  // cell_value converts w0 2^64 + w1 2^32 + w2 by its leading 64 bits with a sticky bit; it must
  // round as the exact 128-bit value does, at every scale (subnormal, normal, near overflow).
  std::mt19937_64 g(3);
  const int bias = 34 * 32;  // exact_sum.cpp's kBias
  for (int trial = 0; trial < 20000; ++trial) {
    ExactSum::Cell c;
    const int width = static_cast<int>(g() % 63);  // words up to 2^62 in size, either sign
    for (auto& w : c.w) w = static_cast<std::int64_t>(g() >> (63 - width)) * (g() % 2 ? 1 : -1);
    if (trial % 5 == 0) c.w[0] = 0;
    if (trial % 7 == 0) c.w[1] = 0;
    c.top = 2 + static_cast<int>(g() % 66);  // the scales of all doubles, from 2^-1074 to 2^1023
    const __int128 v = static_cast<__int128>(c.w[0]) * (static_cast<__int128>(1) << 64) +
                       static_cast<__int128>(c.w[1]) * (static_cast<__int128>(1) << 32) +
                       static_cast<__int128>(c.w[2]);
    const double expected = std::ldexp(static_cast<double>(v), (c.top - 2) * 32 - bias);
    BOOST_TEST(bits(ExactSum::cell_value(c)) == bits(expected), "trial " << trial);
  }
}

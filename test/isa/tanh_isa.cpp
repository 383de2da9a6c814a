// The tanh kernel built for instruction sets that this machine's native build does not take:
// AVX2 with FMA, and baseline x86-64 (Eigen's vectorised fallback). test_mlp checks the native
// kernel; this checks the paths other CPUs run: accuracy against long double, the special
// values, and results that do not depend on an element's position in the array.
// ctest: labels=unit timeout=60
#define BOOST_TEST_MODULE tanh_isa
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "nn/activation_kernels.h"

using cvnode::detail::ArrayMap;
using cvnode::detail::fast_tanh;

namespace {

bool cpu_runs_this_build() {
#if defined(__AVX2__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return true;
#endif
}

std::vector<double> tanh_of(std::vector<double> u) {
  std::vector<double> x(u.size());
  fast_tanh(ArrayMap(u.data(), static_cast<Eigen::Index>(u.size())), ArrayMap(x.data(), static_cast<Eigen::Index>(x.size())));
  return x;
}

std::uint64_t bits(double v) {
  std::uint64_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

}  // namespace

BOOST_AUTO_TEST_CASE(accuracy_specials_and_position) {
  if (!cpu_runs_this_build()) {
    BOOST_TEST_MESSAGE("this CPU lacks AVX2/FMA: nothing to check");
    return;
  }
  BOOST_TEST_MESSAGE("kernel built for " << (
#if defined(__AVX512F__)
      "AVX-512"
#elif defined(__AVX2__)
      "AVX2+FMA"
#else
      "baseline (Eigen fallback)"
#endif
      ));
  // A dense sweep over [-25, 25] and a log sweep from 1e-300 to 1e300 on both sides.
  std::vector<double> u;
  for (int i = 0; i <= 400000; ++i) u.push_back(-25.0 + 50.0 * i / 400000);
  for (double m = 1e-300; m < 1e300; m *= 1.01) {
    u.push_back(m);
    u.push_back(-m);
  }
  const std::vector<double> x = tanh_of(u);
  double worst = 0;
  for (std::size_t i = 0; i < u.size(); ++i) {
    const long double ref = std::tanh(static_cast<long double>(u[i]));
    const double r = static_cast<double>(ref);
    const double ulp = std::nextafter(std::abs(r), std::numeric_limits<double>::infinity()) - std::abs(r);
    const double err = static_cast<double>(std::abs(static_cast<long double>(x[i]) - ref)) / ulp;
    worst = std::max(worst, err);
  }
  BOOST_TEST_MESSAGE("max error " << worst << " ulp over " << u.size() << " points");
  BOOST_TEST(worst <= 2.0);

  const std::vector<double> sp = tanh_of({0.0, -0.0, 1e300, -1e300, INFINITY, -INFINITY, 19.1, -19.1, 4.9e-324, NAN});
  BOOST_TEST(bits(sp[0]) == bits(0.0));
  BOOST_TEST(bits(sp[1]) == bits(-0.0));
  BOOST_TEST(sp[2] == 1.0);
  BOOST_TEST(sp[3] == -1.0);
  BOOST_TEST(sp[4] == 1.0);
  BOOST_TEST(sp[5] == -1.0);
  BOOST_TEST(sp[6] == 1.0);
  BOOST_TEST(sp[7] == -1.0);
  BOOST_TEST(sp[8] == 4.9e-324);
  BOOST_TEST(std::isnan(sp[9]));

  // The same value gives the same bits alone, inside a short array and inside a long one.
  std::vector<double> many(1000);
  for (std::size_t i = 0; i < many.size(); ++i) many[i] = std::sin(0.37 * static_cast<double>(i)) * 3.0;
  const std::vector<double> all = tanh_of(many);
  int differ = 0;
  for (std::size_t i = 0; i < many.size(); ++i) {
    const double alone = tanh_of({many[i]})[0];
    const double middle = tanh_of({0.5, many[i], -0.5})[1];
    differ += bits(alone) != bits(all[i]) || bits(middle) != bits(all[i]);
  }
  BOOST_TEST(differ == 0);
}

// A small seeded generator whose streams are identical on every platform and standard library
// (std::uniform_real_distribution and friends are not), so a seed fixes the initial parameters.
#pragma once

#include <cmath>
#include <cstdint>

namespace cvnode::detail {

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : s_(seed) {}
  // splitmix64
  std::uint64_t next() {
    std::uint64_t z = (s_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double normal() {  // Box-Muller
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }
  std::uint64_t state() const { return s_; }
  void set_state(std::uint64_t s) { s_ = s; }

 private:
  std::uint64_t s_;
};

}  // namespace cvnode::detail

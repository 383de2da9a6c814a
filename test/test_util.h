// Helpers shared by the test suites: seeded random data, finite-difference references,
// temporary folders that are removed, and the skip of tests that need ../shared.
#pragma once

#include <stdlib.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>

#include <boost/test/unit_test.hpp>
#include <Eigen/Core>

#include "app/fit.h"
#include "cvnode/generators.h"
#include "cvnode/problem.h"

namespace cvnode::test {

inline Eigen::VectorXd random_vector(int n, std::uint64_t seed, double scale = 1.0) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  Eigen::VectorXd v(n);
  for (int i = 0; i < n; ++i) v[i] = scale * u(g);
  return v;
}

// Fourth-order central difference of a scalar function along direction v:
// (-F(2h) + 8 F(h) - 8 F(-h) + F(-2h)) / 12h, truncation error O(h^4).
inline double directional_fd(const std::function<double(const Eigen::VectorXd&)>& F,
                             const Eigen::VectorXd& x, const Eigen::VectorXd& v, double h) {
  return (-F(x + 2 * h * v) + 8 * F(x + h * v) - 8 * F(x - h * v) + F(x - 2 * h * v)) / (12 * h);
}

// Full gradient by fourth-order central differences, one coordinate at a time.
inline Eigen::VectorXd fd_gradient(const std::function<double(const Eigen::VectorXd&)>& F,
                                   const Eigen::VectorXd& x, double h) {
  Eigen::VectorXd g(x.size());
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    Eigen::VectorXd e = Eigen::VectorXd::Zero(x.size());
    e[i] = 1.0;
    g[i] = directional_fd(F, x, e, h);
  }
  return g;
}

// A short series of an n-state system for gradient checks: t0 = 0.1, z0 and values random in
// +-1 and +-0.8, three observations at 0.55, 0.9 and 1.42.
inline Trajectory short_series(int n, std::uint64_t seed) {
  Trajectory tr;
  tr.t0 = 0.1;
  tr.z0 = random_vector(n, seed, 1.0);
  tr.times = (Eigen::VectorXd(3) << 0.55, 0.9, 1.42).finished();
  tr.values = random_vector(3 * n, seed + 1, 0.8).reshaped(3, n);
  return tr;
}

// One series scored by `loss`, with a running cost the caller owns (optional): the problem a
// single-series gradient check solves.
inline Problem problem(const Trajectory& tr, std::shared_ptr<const Loss> loss, const RunningCost* rc = nullptr) {
  Problem p({tr}, std::move(loss));
  if (rc) p.add_running_cost(std::shared_ptr<const RunningCost>(rc, [](const RunningCost*) {}));
  return p;
}

inline Problem problem(const std::vector<Trajectory>& batch, std::shared_ptr<const Loss> loss) {
  return Problem(batch, std::move(loss));
}

inline double rel_err(const Eigen::VectorXd& a, const Eigen::VectorXd& ref) {
  return (a - ref).norm() / ref.norm();
}

#ifndef CVNODE_SHARED_DIR
#define CVNODE_SHARED_DIR "../shared"
#endif
inline std::string shared_path(const std::string& rel) { return std::string(CVNODE_SHARED_DIR) + "/" + rel; }

// A test case that reads ../shared (the benchmark problems and their references) declares it:
//   BOOST_AUTO_TEST_CASE(b1, *cvnode::test::needs_shared("bench/B1.h5"))
// Without the file the case is skipped with that reason, and CTest reports the test as skipped
// (its SKIP_REGULAR_EXPRESSION, test/CMakeLists.txt).
inline boost::unit_test::precondition needs_shared(const std::string& rel = "bench") {
  return boost::unit_test::precondition([rel](boost::unit_test::test_unit_id) {
    boost::test_tools::assertion_result r(std::filesystem::exists(shared_path(rel)));
    if (!r) r.message() << shared_path(rel) << " is absent (the shared benchmark folder beside the checkout)";
    return r;
  });
}

// The training tests' usual data: `series` noisy (1%) Lotka-Volterra series of `observations`
// irregular times on (0, t_end], from the generators, written to `path`.
inline void write_lotka_volterra(const std::string& path, int series, int observations, double t_end,
                                 std::uint64_t seed) {
  cvnode::GeneratorOptions g;
  g.system = "lotka_volterra";
  g.series = series;
  g.observations = observations;
  g.t_end = t_end;
  g.noise = 0.01;
  g.seed = seed;
  cvnode::generate(g).write(path);
}

// run_fit without progress lines: from the start, or resumed from `resume`, into `out`, stopped
// after epoch `stop` (> 0) as if interrupted.
inline cvnode::FitResult fit_quietly(const cvnode::Config& c, const std::string& out, int stop = 0,
                                     const std::string& resume = "") {
  cvnode::FitOptions fo;
  fo.out_dir = out;
  fo.quiet = true;
  fo.stop_after_epoch = stop;
  fo.resume = resume;
  return cvnode::run_fit(c, fo);
}

// A new folder for each call, all inside one folder per test process that is removed with
// everything in it when the process exits normally (CVNODE_KEEP_TEST_FILES=1 keeps it).
inline std::string make_temp_dir(const std::string& tag) {
  struct Root {
    std::string path;
    Root() {
      std::string t = (std::filesystem::temp_directory_path() / "cvnode_test_XXXXXX").string();
      if (!mkdtemp(t.data())) throw std::runtime_error("mkdtemp failed for " + t);
      path = t;
    }
    ~Root() {
      const char* keep = std::getenv("CVNODE_KEEP_TEST_FILES");
      if (keep && *keep == '1') return;
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static Root root;
  static std::atomic<int> count{0};
  const std::string dir = root.path + "/" + tag + "_" + std::to_string(count++);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace cvnode::test

// Running the cvnode program directly and under a real mpirun from a test (test_mpi_*.cpp).
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <boost/test/unit_test.hpp>

#include <cstring>

#include "cvnode/checkpoint.h"
#include "cvnode/generators.h"
#include "cvnode/ranks.h"

namespace cvnode::test {

inline std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// A small noisy Lotka-Volterra dataset written to `path` (the fits of these tests).
inline void write_lotka_volterra(const std::string& path, int series, int observations, double t_end,
                                 std::uint64_t seed) {
  GeneratorOptions g;
  g.system = "lotka_volterra";
  g.series = series;
  g.observations = observations;
  g.t_end = t_end;
  g.seed = seed;
  generate(g).write(path);
}

struct MpiRun {
  std::string dir;
  explicit MpiRun(const std::string& tag) {
    BOOST_TEST_REQUIRE(Ranks::compiled_with_mpi(),
                       "cvnode was built without MPI (CVNODE_MPI=OFF): scripts/setup.sh installs libopenmpi-dev");
    BOOST_TEST_REQUIRE(std::filesystem::exists(cli()), "build the cvnode program first: " << cli());
    dir = (std::filesystem::temp_directory_path() / ("cvnode_mpi_" + tag + "_XXXXXX")).string();
    BOOST_TEST_REQUIRE(mkdtemp(dir.data()) != nullptr);
    // OpenMPI refuses to run as root without these (CI runs as root).
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    // A sanitizer build: OpenMPI's own allocations held until exit are not cvnode's leaks.
    setenv("LSAN_OPTIONS", ("suppressions=" + std::string(CVNODE_SOURCE_DIR) + "/test/lsan_mpi.supp").c_str(), 0);
  }
  ~MpiRun() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  static std::string cli() { return std::string(CVNODE_BINARY_DIR) + "/apps/cvnode"; }
  // --oversubscribe: more ranks than free cores is fine (the tests are about bits, not speed);
  // --bind-to none: two ranks must not be pinned to one core of a busy machine.
  static std::string mpirun(int ranks) {
    return std::string(CVNODE_MPIEXEC) + " --oversubscribe --bind-to none -np " + std::to_string(ranks) + " " + cli();
  }
  // Runs a command; its output goes to a log that the failure message shows.
  int run(const std::string& cmd, bool require_success = true) {
    const std::string log = dir + "/cmd.log";
    std::fflush(stdout);
    const int rc = std::system((cmd + " > " + log + " 2>&1").c_str());
    const int code = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
    if (require_success) BOOST_TEST_REQUIRE(code == 0, cmd << "\n" << read_text(log));
    return code;
  }
};

// Parameters bit for bit, and every metric column but the wall time.
inline void expect_same_bits(const std::string& a_dir, const std::string& b_dir) {
  const Checkpoint a = Checkpoint::read(a_dir + "/latest.h5"), b = Checkpoint::read(b_dir + "/latest.h5");
  BOOST_TEST(a.epoch == b.epoch);
  BOOST_TEST_REQUIRE(a.parameters.size() == b.parameters.size());
  long differ = 0;
  for (Eigen::Index i = 0; i < a.parameters.size(); ++i)
    differ += std::memcmp(&a.parameters[i], &b.parameters[i], sizeof(double)) != 0;
  BOOST_TEST(differ == 0, b_dir << ": " << differ << " of " << a.parameters.size() << " parameters differ from "
                                << a_dir << " (max |diff| "
                                << (a.parameters - b.parameters).cwiseAbs().maxCoeff() << ")");
  for (const auto& [name, col] : a.metrics) {
    if (name == "seconds") continue;
    const auto& other = b.metrics.at(name);
    BOOST_TEST_REQUIRE(col.size() == other.size(), name);
    for (std::size_t e = 0; e < col.size(); ++e)
      BOOST_TEST((std::memcmp(&col[e], &other[e], sizeof(double)) == 0), name << " epoch " << e + 1 << ": " << col[e]
                                                                            << " vs " << other[e]);
  }
  BOOST_TEST(a.optimizer_vectors.at("m").cwiseEqual(b.optimizer_vectors.at("m")).all());
}

}  // namespace cvnode::test

// A stiff hybrid fit through the `cvnode fit` program end to end: the shipped Robertson config,
// a short run, its checkpoints and metrics, then `cvnode plot` drawing the species on a log time
// axis (plot.log_time), and `cvnode eval` of the hybrid checkpoint.
// ctest: labels=integration timeout=180
#define BOOST_TEST_MODULE stiff_cli
#include <boost/test/unit_test.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cvnode/checkpoint.h"
#include "app/config.h"
#include "test_util.h"

using namespace cvnode;
namespace fs = std::filesystem;

namespace {
std::string read_all(const std::string& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}
int run(const std::string& cmd) {
  std::fflush(stdout);
  return std::system(cmd.c_str());
}
}  // namespace

BOOST_AUTO_TEST_CASE(cvnode_fit_plot_eval_of_a_stiff_config) {
  const std::string cli = std::string(CVNODE_BINARY_DIR) + "/apps/cvnode";
  BOOST_TEST_REQUIRE(fs::exists(cli), "build the cvnode program first: " << cli);
  const std::string dir = cvnode::test::make_temp_dir("stiff_cli");
  const std::string cfg = std::string(CVNODE_SOURCE_DIR) + "/data/robertson_rates.toml";
  const std::string out = dir + "/run";
  const int rc = run(cli + " fit --config " + cfg + " --out " + out +
                     " --set run.epochs=10 --set run.threads=1 --quiet > " + dir + "/fit.txt 2>&1");
  const std::string fit_txt = read_all(dir + "/fit.txt");
  BOOST_TEST_REQUIRE(rc == 0, fit_txt);
  for (const char* f : {"latest.h5", "best.h5", "metrics.csv", "config.toml"})
    BOOST_TEST(fs::exists(fs::path(out) / f), f);
  // Ten epochs of Adam at lr 0.3 in log k move every rate from its 10x-off start.
  BOOST_TEST(fit_txt.find("physical parameters of the best model (robertson)") != std::string::npos, fit_txt);
  const Checkpoint ck = Checkpoint::read(out + "/latest.h5");
  BOOST_TEST(ck.epoch == 10);
  BOOST_TEST(ck.model_spec.find("\"type\":\"hybrid\"") != std::string::npos, ck.model_spec);
  BOOST_TEST(ck.model_spec.find("robertson") != std::string::npos, ck.model_spec);
  // metrics.csv: a header and ten rows.
  const std::string m = read_all(out + "/metrics.csv");
  BOOST_TEST(std::count(m.begin(), m.end(), '\n') == 11);

  // The plot: PNGs and a log time axis in the gnuplot script.
  fs::remove(fs::path(out) / "trajectories.png");
  const int prc = run(cli + " plot " + out + " > " + dir + "/plot.txt 2>&1");
  BOOST_TEST_REQUIRE(prc == 0, read_all(dir + "/plot.txt"));
  const fs::path png = fs::path(out) / "trajectories.png";
  BOOST_TEST_REQUIRE(fs::exists(png));
  BOOST_TEST(fs::file_size(png) > 1000u);
  std::ifstream pf(png, std::ios::binary);
  char sig[8] = {};
  pf.read(sig, 8);
  BOOST_TEST(std::string(sig + 1, 3) == "PNG");
  const std::string gp = read_all(out + "/plot_data/plots.gp");
  BOOST_TEST(gp.find("set logscale x") != std::string::npos, gp);
  // The prediction grid is logarithmic: the first drawn series starts at its first positive time
  // and the points grow geometrically (ratio of consecutive times constant).
  std::ifstream pr(out + "/plot_data/pred_0.dat");
  double t0 = 0, t1 = 0, t2 = 0, y;
  std::string line;
  std::getline(pr, line);
  std::istringstream(line) >> t0 >> y;
  std::getline(pr, line);
  std::istringstream(line) >> t1 >> y;
  std::getline(pr, line);
  std::istringstream(line) >> t2 >> y;
  BOOST_TEST(t0 > 0);
  BOOST_TEST(t2 / t1 == t1 / t0, boost::test_tools::tolerance(1e-6));

  // eval of the hybrid checkpoint works and solves every validation series.
  const int erc = run(cli + " eval " + out + "/best.h5 > " + dir + "/eval.txt 2>&1");
  const std::string ev = read_all(dir + "/eval.txt");
  BOOST_TEST(erc == 0, ev);
  BOOST_TEST(ev.find("(0 failed)") != std::string::npos, ev);

  // The solver comparison of docs/stiff.md: Adams (fixed point) under a small step budget gives
  // up on this stiff problem, and eval says where and why (text and JSON line); BDF does not.
  const std::string jl = dir + "/methods.jsonl";
  const int arc = run(cli + " eval " + out + "/best.h5 --split all --threads 1 --tolerances 1e-6 --json " + jl +
                      " --set solver.method=adams --set solver.max_steps=300 > " + dir + "/adams.txt 2>&1");
  const std::string at = read_all(dir + "/adams.txt");
  BOOST_TEST(arc == 0, at);
  BOOST_TEST(at.find("adams (fixed_point)") != std::string::npos, at);
  BOOST_TEST(at.find("8 of 8 series gave up (CV_TOO_MUCH_WORK") != std::string::npos, at);
  const int brc = run(cli + " eval " + out + "/best.h5 --split all --threads 1 --tolerances 1e-6 --json " + jl +
                      " > " + dir + "/bdf.txt 2>&1");
  BOOST_TEST(brc == 0, read_all(dir + "/bdf.txt"));
  std::ifstream jf(jl);
  std::string adams_line, bdf_line;
  std::getline(jf, adams_line);
  std::getline(jf, bdf_line);
  BOOST_TEST(adams_line.find("\"method\":\"adams\"") != std::string::npos, adams_line);
  BOOST_TEST(adams_line.find("\"failures\":8") != std::string::npos, adams_line);
  BOOST_TEST(adams_line.find("\"flag_name\":\"CV_TOO_MUCH_WORK\"") != std::string::npos, adams_line);
  BOOST_TEST(adams_line.find("\"t_reached\":") != std::string::npos, adams_line);
  BOOST_TEST(bdf_line.find("\"method\":\"bdf\"") != std::string::npos, bdf_line);
  BOOST_TEST(bdf_line.find("\"failures\":0") != std::string::npos, bdf_line);
  BOOST_TEST(bdf_line.find("\"max_rel_err_vs_ref\":") != std::string::npos, bdf_line);
}

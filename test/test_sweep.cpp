// `cvnode sweep`: the grid (bracket-aware values, cartesian product x seeds, every run validated
// before anything runs), the files it writes (resolved configurations, the Slurm array script),
// `sweep run` with a local pool of 2 processes (a second call finds nothing left to do), and
// `sweep collect` (results.csv with one row per run, results.png). The same sweep through a real
// Slurm is scripts/slurm_local.sh (CTest slurm_local).
// ctest: labels=integration timeout=300
#define BOOST_TEST_MODULE sweep
#include <boost/test/unit_test.hpp>

#include <filesystem>
#include <fstream>

#include "app/config.h"
#include "cvnode/errors.h"
#include "cvnode/generators.h"
#include "app/sweep.h"
#include "mpi_test_util.h"

using namespace cvnode;
using namespace cvnode::test;
namespace fs = std::filesystem;

BOOST_AUTO_TEST_CASE(grid_values_split_outside_brackets) {
  const GridAxis a = GridAxis::parse("model.hidden=[16,16],[32], [8,8,8]");
  BOOST_TEST(a.key == "model.hidden");
  BOOST_TEST_REQUIRE(a.values.size() == 3u);
  BOOST_TEST(a.values[0] == "[16,16]");
  BOOST_TEST(a.values[2] == "[8,8,8]");
  BOOST_TEST(GridAxis::parse("solver.method=\"bdf\",'adams'").values.size() == 2u);
  BOOST_CHECK_THROW(GridAxis::parse("optimizer.lr"), OptionsError);
  BOOST_CHECK_THROW(GridAxis::parse("model.hidden=[16,16"), OptionsError);
  BOOST_CHECK_THROW(GridAxis::parse("optimizer.lr=1e-3,,2e-3"), OptionsError);
}

BOOST_AUTO_TEST_CASE(plan_write_run_collect) {
  MpiRun m("sweep");
  write_lotka_volterra(m.dir + "/lv.h5", 12, 10, 4, 5);
  const std::string cfg = m.dir + "/fit.toml";
  std::ofstream(cfg) << "[data]\nfile = \"lv.h5\"\n[model]\nhidden = [8]\n[optimizer]\nlr = 0.01\n"
                        "[run]\nepochs = 2\nbatch_size = 4\n";
  // 2 x 2 grid points x 2 seeds = 8 runs, the first axis slowest.
  const SweepPlan plan = plan_sweep(cfg, {GridAxis::parse("optimizer.lr=0.01,0.02"),
                                          GridAxis::parse("model.hidden=[8],[4,4]")}, 2);
  BOOST_TEST_REQUIRE(plan.runs.size() == 8u);
  BOOST_TEST(plan.runs[0].id == "000");
  BOOST_TEST(plan.runs[7].id == "007");
  BOOST_TEST(plan.runs[2].overrides[0] == "optimizer.lr=0.01");
  BOOST_TEST(plan.runs[2].overrides[1] == "model.hidden=[4,4]");
  BOOST_TEST(plan.runs[3].overrides[3] == "run.seed=2");
  BOOST_TEST(plan.runs[4].overrides[0] == "optimizer.lr=0.02");
  // A bad value fails before anything is written, naming the run and the key.
  try {
    plan_sweep(cfg, {GridAxis::parse("optimizer.lr=0.01,-1")}, 0);
    BOOST_FAIL("a negative learning rate was accepted");
  } catch (const std::exception& e) {
    BOOST_TEST(std::string(e.what()).find("run 001") != std::string::npos, e.what());
  }

  // Two runs only for the local pool (each a real `cvnode fit` process).
  const SweepPlan small = plan_sweep(cfg, {GridAxis::parse("optimizer.lr=0.01,0.03")}, 0);
  const std::string dir = m.dir + "/sweep";
  SlurmLayout layout;
  layout.ranks = 2;
  layout.threads = 3;
  const std::string script = write_sweep(small, dir, layout, m.cli());
  const std::string text = read_text(script);
  for (const char* s : {"#SBATCH --array=0-1", "#SBATCH --ntasks=2", "#SBATCH --cpus-per-task=3", "#SBATCH --requeue",
                        "#SBATCH --signal=USR1@120", "scontrol requeue", "--resume", "srun --mpi="})
    BOOST_TEST(text.find(s) != std::string::npos, s);
  const Config run1 = Config::load(dir + "/runs/001/config.toml");
  BOOST_TEST(run1.train.optimizer.lr == 0.03);
  BOOST_TEST(fs::path(run1.data.file).is_absolute());
  BOOST_TEST(read_sweep(dir).runs.size() == 2u);

  BOOST_TEST(run_sweep_locally(dir, 2, m.cli()) == 0);
  for (const char* id : {"000", "001"}) BOOST_TEST(fs::exists(dir + "/runs/" + id + "/latest.h5"), id);
  const auto stamp = fs::last_write_time(dir + "/runs/000/latest.h5");
  BOOST_TEST(run_sweep_locally(dir, 2, m.cli()) == 0);  // finished runs are not run again
  BOOST_TEST((fs::last_write_time(dir + "/runs/000/latest.h5") == stamp));

  const std::string csv = read_text(collect_sweep(dir));
  BOOST_TEST(csv.find("run,optimizer.lr,seed,status,epochs,best_val_loss") == 0, csv);
  BOOST_TEST(csv.find("000,\"0.01\",,done,2,") != std::string::npos, csv);
  BOOST_TEST(csv.find("001,\"0.03\",,done,2,") != std::string::npos, csv);
  BOOST_TEST(fs::file_size(dir + "/results.png") > 1000u);
}

// `cvnode fit` under a real `mpirun` with 2 ranks gives the same bits as one process with 1 or 2
// threads and as `mpirun -np 1`: every parameter, every metric but the wall time. Once for the
// demo configuration (stacked Adams, windows curriculum; shortened) and once for a stiff BDF fit
// (data/robertson_rates.toml, per-series units handed out dynamically; the demo also with the
// static unit split). Also: a fit resumed
// with a different rank count, and the fast (plain MPI_Allreduce) reduction runs.
// ctest: labels=integration timeout=300
#define BOOST_TEST_MODULE mpi_fit
#include <boost/test/unit_test.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cvnode/checkpoint.h"
#include "cvnode/ranks.h"
#include "mpi_test_util.h"

using namespace cvnode;
using namespace cvnode::test;
namespace fs = std::filesystem;

BOOST_AUTO_TEST_CASE(demo_config_same_bits_for_ranks_and_threads) {
  MpiRun m("demo");
  const std::string cfg = std::string(CVNODE_SOURCE_DIR) + "/data/demo.toml";
  // Five epochs through all three curriculum phases (windows of 5, of 10, whole series).
  const std::string args = " fit --config " + cfg +
                           " --quiet --no-plots --set run.epochs=5 --set data.window_epochs=2"
                           " --set data.window_stage_epochs=[4] --set run.val_every=1";
  m.run(m.cli() + args + " --set run.threads=1 --out " + m.dir + "/t1");
  m.run(m.cli() + args + " --set run.threads=2 --out " + m.dir + "/t2");
  m.run(m.mpirun(1) + args + " --set run.threads=1 --out " + m.dir + "/np1");
  m.run(m.mpirun(2) + args + " --set run.threads=1 --out " + m.dir + "/np2");
  m.run(m.mpirun(2) + args + " --set run.threads=2 --out " + m.dir + "/np2t2");
  m.run(m.mpirun(2) + args + " --set run.threads=1 --set run.balance=static --out " + m.dir + "/static");
  for (const char* other : {"/t2", "/np1", "/np2", "/np2t2", "/static"}) expect_same_bits(m.dir + "/t1", m.dir + other);
  // The fit moved the parameters (a comparison of untouched initial values proves nothing).
  const Checkpoint c = Checkpoint::read(m.dir + "/np2/latest.h5");
  BOOST_TEST(c.metrics.at("train_loss").back() < 0.9 * c.metrics.at("train_loss").front());
}

BOOST_AUTO_TEST_CASE(stiff_bdf_fit_same_bits_and_resume_with_another_rank_count) {
  MpiRun m("bdf");
  const std::string cfg = std::string(CVNODE_SOURCE_DIR) + "/data/robertson_rates.toml";
  const std::string args = " fit --config " + cfg + " --quiet --no-plots --set run.val_every=1 --set run.threads=1";
  m.run(m.cli() + args + " --set run.epochs=4 --out " + m.dir + "/t1");
  m.run(m.mpirun(2) + args + " --set run.epochs=4 --out " + m.dir + "/np2");
  expect_same_bits(m.dir + "/t1", m.dir + "/np2");
  // Two epochs on 2 ranks, the rest on one process: the same bits again.
  m.run(m.mpirun(2) + args + " --set run.epochs=4 --stop-after-epoch 2 --out " + m.dir + "/split");
  BOOST_TEST(Checkpoint::read(m.dir + "/split/latest.h5").epoch == 2);
  m.run(m.cli() + " fit --resume " + m.dir + "/split/latest.h5 --quiet --no-plots --out " + m.dir + "/split");
  expect_same_bits(m.dir + "/t1", m.dir + "/split");
  // The rates moved from their 10x-off start.
  const Checkpoint c = Checkpoint::read(m.dir + "/np2/latest.h5");
  BOOST_TEST(c.metrics.at("train_loss").back() < 0.8 * c.metrics.at("train_loss").front());
}

BOOST_AUTO_TEST_CASE(fast_reduction_runs_and_stays_close) {
  MpiRun m("fast");
  const std::string cfg = std::string(CVNODE_SOURCE_DIR) + "/data/robertson_rates.toml";
  const std::string args = " fit --config " + cfg + " --quiet --no-plots --set run.epochs=2 --set run.threads=1";
  m.run(m.cli() + args + " --out " + m.dir + "/t1");
  m.run(m.mpirun(2) + args + " --set run.reduction=fast --out " + m.dir + "/fast");
  const Checkpoint a = Checkpoint::read(m.dir + "/t1/latest.h5"), b = Checkpoint::read(m.dir + "/fast/latest.h5");
  // Not bit-reproducible by design, but the same fit to rounding: log-rates agree to 1e-9.
  BOOST_TEST((a.parameters - b.parameters).cwiseAbs().maxCoeff() < 1e-9);
}

BOOST_AUTO_TEST_CASE(several_tasks_without_an_mpi_launch_are_refused) {
  // srun -n 2 without --mpi: two independent fits into one folder. cvnode says so and stops.
  MpiRun m("lonely");
  const int code = m.run("SLURM_STEP_NUM_TASKS=2 SLURM_PROCID=1 " + m.cli() + " fit --config " +
                             std::string(CVNODE_SOURCE_DIR) + "/data/demo.toml --out " + m.dir + "/x",
                         /*require_success=*/false);
  BOOST_TEST(code == 2);
  const std::string log = read_text(m.dir + "/cmd.log");
  BOOST_TEST(log.find("srun started 2 tasks without an MPI launch") != std::string::npos, log);
  BOOST_TEST(!std::filesystem::exists(m.dir + "/x/latest.h5"));
}

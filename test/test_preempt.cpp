// Preemption: SIGTERM (or SIGUSR1) to a running `cvnode fit` makes it finish the optimizer step it
// is in, write latest.h5 with the mid-epoch state and exit with code 75; a resumed run then ends
// with exactly the parameters and metrics of a run that was never stopped. Once for a single
// process and once for a 2-rank `mpirun` (signal sent to mpirun, which forwards it).
// ctest: labels=integration timeout=300
#define BOOST_TEST_MODULE preempt
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "cvnode/checkpoint.h"
#include "app/config.h"
#include "cvnode/generators.h"
#include "cvnode/preemption.h"
#include "mpi_test_util.h"

using namespace cvnode;
using namespace cvnode::test;
namespace fs = std::filesystem;

namespace {

pid_t spawn(const std::string& cmd, const std::string& log) {
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    execl("/bin/sh", "sh", "-c", ("exec " + cmd + " > " + log + " 2>&1").c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// The processes whose parent is `parent` (mpirun's ranks on this node).
std::vector<pid_t> children(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f(e.path() / "stat");
    std::string stat;
    std::getline(f, stat);
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent) out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return out;
}

// Waits until `dir`/latest.h5 holds at least `epochs` epochs.
bool wait_for_epoch(const std::string& dir, int epochs, pid_t pid) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) return false;  // ended on its own
    try {
      if (fs::exists(dir + "/latest.h5") && Checkpoint::read(dir + "/latest.h5").epoch >= epochs) return true;
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

struct Setup {
  MpiRun m;
  std::string cfg;
  static constexpr int kEpochs = 6;
  explicit Setup(const std::string& tag) : m(tag) {
    write_lotka_volterra(m.dir + "/lv.h5", 24, 15, 6, 21);
    cfg = m.dir + "/fit.toml";
    std::ofstream f(cfg);
    // Small minibatches: 9 steps per epoch, so a signal usually lands mid-epoch.
    f << "[data]\nfile = \"lv.h5\"\n[model]\nhidden = [24, 24]\n[solver]\nrtol = 1e-7\natol = 1e-9\n"
         "[optimizer]\nlr = 0.01\n[run]\nepochs = " << kEpochs << "\nbatch_size = 2\nthreads = 1\n";
  }
  // Runs the uninterrupted reference into DIR/ref; returns its duration per epoch (ms).
  double reference() {
    const auto t0 = std::chrono::steady_clock::now();
    m.run(m.cli() + " fit --config " + cfg + " --quiet --no-plots --out " + m.dir + "/ref");
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / kEpochs;
  }
  // After a checkpoint: a fifth of an epoch (as measured by reference(), start-up included, so at
  // most that) into the next one, of the 4 that remain. A fixed delay would be several epochs
  // on a fast machine and a moment on a slow one.
  static void into_the_next_epoch(double epoch_ms) {
    std::this_thread::sleep_for(std::chrono::microseconds(static_cast<long>(1000 * epoch_ms / 5)));
  }
  void expect_same_as_reference(const std::string& ref_dir, const std::string& dir) {
    const Checkpoint a = Checkpoint::read(ref_dir + "/latest.h5"), b = Checkpoint::read(dir + "/latest.h5");
    BOOST_TEST(b.epoch == kEpochs);
    BOOST_TEST_REQUIRE(a.parameters.size() == b.parameters.size());
    BOOST_TEST((std::memcmp(a.parameters.data(), b.parameters.data(), sizeof(double) * a.parameters.size()) == 0),
               "final parameters differ from the uninterrupted run's");
    for (const char* col : {"train_loss", "val_loss", "nfe_forward", "grad_norm", "lr"}) {
      const auto &x = a.metrics.at(col), &y = b.metrics.at(col);
      BOOST_TEST_REQUIRE(x.size() == y.size());
      BOOST_TEST((std::memcmp(x.data(), y.data(), sizeof(double) * x.size()) == 0), col << " differs");
    }
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(sigterm_then_resume_single_process) {
  Setup s("preempt1");
  const double epoch_ms = s.reference();
  const std::string out = s.m.dir + "/run";
  const pid_t pid = spawn(s.m.cli() + " fit --config " + s.cfg + " --no-plots --out " + out, s.m.dir + "/run.log");
  BOOST_TEST_REQUIRE(wait_for_epoch(out, 2, pid), "the fit ended or stalled before epoch 2: " << read_text(s.m.dir + "/run.log"));
  s.into_the_next_epoch(epoch_ms);
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  const std::string log = read_text(s.m.dir + "/run.log");
  BOOST_TEST_REQUIRE(WIFEXITED(status), log);
  BOOST_TEST_REQUIRE(WEXITSTATUS(status) == kPreemptedExitCode, log);
  BOOST_TEST(log.find("SIGTERM: stopping after epoch") != std::string::npos, log);
  const Checkpoint left = Checkpoint::read(out + "/latest.h5");
  const double step = left.optimizer_scalars.count("epoch_step") ? left.optimizer_scalars.at("epoch_step") : 0;
  BOOST_TEST_MESSAGE("stopped after epoch " << left.epoch << " step " << step);
  BOOST_TEST(left.epoch < Setup::kEpochs);
  s.m.run(s.m.cli() + " fit --resume " + out + "/latest.h5 --quiet --no-plots --out " + out);
  s.expect_same_as_reference(s.m.dir + "/ref", out);
}

// As Slurm does (srun signals every task), SIGTERM goes to each rank; mpirun itself would pass
// SIGTERM on only with a SIGKILL 1 s later (docs/cluster.md: send it SIGUSR1 instead).
BOOST_AUTO_TEST_CASE(sigterm_to_the_ranks_of_a_two_rank_fit_then_resume) {
  Setup s("preempt2");
  const double epoch_ms = s.reference();
  const std::string out = s.m.dir + "/run";
  const std::string mpirun = std::string(CVNODE_MPIEXEC) + " --oversubscribe --bind-to none -np 2 ";
  const pid_t pid = spawn(mpirun + s.m.cli() + " fit --config " + s.cfg + " --no-plots --out " + out, s.m.dir + "/run.log");
  BOOST_TEST_REQUIRE(wait_for_epoch(out, 2, pid), "the fit ended or stalled before epoch 2: " << read_text(s.m.dir + "/run.log"));
  s.into_the_next_epoch(epoch_ms);
  const std::vector<pid_t> ranks = children(pid);
  BOOST_TEST_REQUIRE(ranks.size() == 2u, "mpirun's rank processes: " << ranks.size());
  for (pid_t r : ranks) kill(r, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  const std::string log = read_text(s.m.dir + "/run.log");
  BOOST_TEST_REQUIRE(WIFEXITED(status), log);
  BOOST_TEST(WEXITSTATUS(status) == kPreemptedExitCode, log);  // mpirun passes the ranks' code on
  BOOST_TEST(log.find("SIGTERM: stopping after epoch") != std::string::npos, log);
  const Checkpoint left = Checkpoint::read(out + "/latest.h5");
  BOOST_TEST(left.epoch < Setup::kEpochs);
  s.m.run(std::string(CVNODE_MPIEXEC) + " --oversubscribe --bind-to none -np 2 " + s.m.cli() + " fit --resume " + out +
          "/latest.h5 --quiet --no-plots --out " + out);
  s.expect_same_as_reference(s.m.dir + "/ref", out);
}

// A `cvnode fit` process killed with SIGKILL in the middle of an epoch resumes from its last
// checkpoint (written atomically after every epoch) and ends with exactly the losses of a run
// that was never interrupted.
// ctest: labels=integration,sanitize timeout=180
#define BOOST_TEST_MODULE train_kill
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cvnode/checkpoint.h"
#include "app/config.h"
#include "app/fit.h"
#include "cvnode/generators.h"
#include "test_util.h"

using namespace cvnode;
namespace fs = std::filesystem;

namespace {

std::string temp_dir(const std::string& tag) { return cvnode::test::make_temp_dir("kill_" + tag); }

pid_t spawn(const std::vector<std::string>& args) {
  std::fflush(stdout);  // else the child would flush the parent's buffered output again
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    // Quiet child: the test's log stays readable.
    if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(126);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

}  // namespace

BOOST_AUTO_TEST_CASE(sigkill_mid_epoch_then_resume) {
  const std::string cli = std::string(CVNODE_BINARY_DIR) + "/apps/cvnode";
  BOOST_TEST_REQUIRE(fs::exists(cli), "build the cvnode program first: " << cli);
  const std::string dir = temp_dir("run");
  GeneratorOptions g;
  g.system = "lotka_volterra";
  g.series = 24;
  g.observations = 15;
  g.t_end = 6;
  g.seed = 21;
  generate(g).write(dir + "/lv.h5");
  const int epochs = 10;
  {
    std::ofstream f(dir + "/fit.toml");
    f << "[data]\nfile = \"lv.h5\"\n[model]\nhidden = [24, 24]\n[solver]\nrtol = 1e-7\natol = 1e-9\n"
         "[optimizer]\nlr = 0.01\n[run]\nepochs = " << epochs << "\nbatch_size = 4\nthreads = 1\n";
  }
  // The uninterrupted reference, in this process (same library, same bits).
  const Config cfg = Config::load(dir + "/fit.toml");
  FitOptions fo;
  fo.out_dir = dir + "/reference";
  fo.quiet = true;
  const auto t0 = std::chrono::steady_clock::now();
  const FitResult ref = run_fit(cfg, fo);
  // An epoch's duration on this machine now: the kill below lands a fraction of one after a
  // checkpoint (a fixed delay would be several epochs on a fast machine, a moment on a slow one).
  const double epoch_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / epochs;

  // The same fit as a separate process, killed once its second checkpoint exists.
  const std::string out = dir + "/killed";
  const pid_t pid = spawn({cli, "fit", "--config", dir + "/fit.toml", "--out", out, "--quiet", "--no-plots"});
  BOOST_TEST_REQUIRE(pid > 0);
  int seen = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (fs::exists(out + "/latest.h5")) {
      try {
        seen = static_cast<int>(Checkpoint::read(out + "/latest.h5").epoch);
      } catch (const std::exception&) {
      }
      if (seen >= 2) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // A checkpoint is written at the end of an epoch: a third of an epoch later the next one is
  // running, and 7 more remain.
  std::this_thread::sleep_for(std::chrono::microseconds(static_cast<long>(1000 * epoch_ms / 3)));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  BOOST_TEST_REQUIRE(WIFSIGNALED(status), "the fit ended before it could be killed");
  BOOST_TEST(WTERMSIG(status) == SIGKILL);
  const Checkpoint left = Checkpoint::read(out + "/latest.h5");  // readable: never torn
  BOOST_TEST_MESSAGE("killed after " << left.epoch << " complete epochs (of " << epochs << ")");
  BOOST_TEST(left.epoch >= 2);
  BOOST_TEST(left.epoch < epochs);

  // What a kill between a write and its rename leaves behind, for the killed process and for a
  // live one (this test): the resumed run's first checkpoint write removes the first only.
  const std::string stale = out + "/latest.h5.tmp." + std::to_string(pid) + ".3";
  const std::string live = out + "/latest.h5.tmp." + std::to_string(::getpid()) + ".3";
  std::ofstream(stale) << "partial";
  std::ofstream(live) << "partial";
  const pid_t again = spawn({cli, "fit", "--resume", out + "/latest.h5", "--out", out, "--quiet", "--no-plots"});
  waitpid(again, &status, 0);
  BOOST_TEST_REQUIRE(WIFEXITED(status));
  BOOST_TEST_REQUIRE(WEXITSTATUS(status) == 0);
  const Checkpoint done = Checkpoint::read(out + "/latest.h5");
  BOOST_TEST(done.epoch == epochs);
  BOOST_TEST(!fs::exists(stale), stale << " (of the killed process) was not removed");
  BOOST_TEST(fs::exists(live), live << " (of a live process) was removed");
  const auto& train = done.metrics.at("train_loss");
  const auto& val = done.metrics.at("val_loss");
  BOOST_TEST_REQUIRE(train.size() == ref.state.history.size());
  for (std::size_t e = 0; e < train.size(); ++e) {
    BOOST_TEST(train[e] == ref.state.history[e].train_loss);  // bit-identical
    BOOST_TEST(val[e] == ref.state.history[e].val_loss);
  }
  BOOST_TEST((done.parameters.array() == ref.state.params.array()).all());
}

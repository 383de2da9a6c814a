// A run folder belongs to one run (issue 19 cases 4, 5 and 12; issue 18's resume into a new
// folder): a second fit into a folder in use is refused while the first holds its lock; a fresh
// fit into a folder holding a run is refused unless --overwrite (which also removes the old
// figures) or --resume; a configuration that fails validation writes nothing; a resume notices
// changed data; metrics.csv follows the checkpoint after a kill; kills at random moments always
// leave a consistent folder from which the fit ends bit-identical to an uninterrupted one.
// ctest: labels=integration,sanitize timeout=300
#define BOOST_TEST_MODULE run_folder
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <filesystem>
#include <thread>

#include "cvnode/checkpoint.h"
#include "app/config.h"
#include "test_util.h"
#include "cli_util.h"

using namespace cvnode;
using namespace cvnode::test;
namespace fs = std::filesystem;

namespace {

using Setup = FitSetup;
Setup setup(int epochs) { return fit_setup("run_folder", epochs); }

std::vector<std::string> fit_args(const FitSetup& s, const std::string& out, std::vector<std::string> more = {}) {
  std::vector<std::string> a = {"fit", "--config", s.config, "--out", out, "--quiet"};
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

// Data rows of metrics.csv. A missing file counts as 0 rows: a kill after the first latest.h5 and
// before the first metrics.csv leaves none (metrics.csv is written right after latest.h5 and best.h5,
// atomically, so it is never there without its header).
long metrics_rows(const std::string& run) {
  if (!fs::exists(run + "/metrics.csv")) return 0;
  const std::string m = read_file(run + "/metrics.csv");
  BOOST_TEST_REQUIRE(!m.empty(), run << "/metrics.csv exists but is empty: it was not written atomically");
  return static_cast<long>(std::count(m.begin(), m.end(), '\n')) - 1;
}

}  // namespace

// Case 4: while one fit runs, a second into the same folder is refused (also with
// --overwrite) naming the process that holds it; the folder then holds the first run only.
BOOST_AUTO_TEST_CASE(a_second_fit_into_a_folder_in_use_is_refused) {
  // More epochs than any machine runs before the kill below: the first fit must still hold the
  // folder when the second ones start (400 epochs took ~1 s on a quiet machine).
  const Setup s = setup(1000000);
  const std::string out = s.dir + "/run", scratch = make_temp_dir("first");
  const pid_t first = spawn_cli(fit_args(s, out, {"--no-plots"}), {}, scratch);
  // Killed however the test case ends (a failed requirement included).
  struct KillAtEnd {
    pid_t pid;  // 0 once reaped
    ~KillAtEnd() {
      if (pid > 0 && kill(pid, SIGKILL) == 0) waitpid(pid, nullptr, 0);
    }
  } kill_at_end{first};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(out + "/latest.h5") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  BOOST_TEST_REQUIRE(fs::exists(out + "/latest.h5"), "the first fit wrote no checkpoint");
  std::ofstream(s.dir + "/other.toml") << read_file(s.config) << "[model]\n";  // not parsed: same sections
  for (const bool overwrite : {false, true}) {
    std::vector<std::string> more = {"--no-plots", "--set", "model.hidden=[6]"};
    if (overwrite) more.push_back("--overwrite");
    const CliResult second = run_cli(fit_args(s, out, more));
    BOOST_TEST(second.exit_code == 2, "the second fit: exit " << second.exit_code << ", " << second.err);
    const std::string expect = overwrite ? "another cvnode fit (process " + std::to_string(first) + ")"
                                         : "holds an earlier run";
    BOOST_TEST(second.err.find(expect) != std::string::npos, second.err);
  }
  kill(first, SIGKILL);
  const CliResult killed = wait_cli(first, scratch);
  kill_at_end.pid = 0;
  BOOST_TEST(killed.signal == SIGKILL, "the first fit ended on its own: " << killed.err);
  // Only the first run's files: its configuration is the one its checkpoint stores.
  const Checkpoint ck = Checkpoint::read(out + "/latest.h5");
  BOOST_TEST(read_file(out + "/config.toml").find(ck.config) != std::string::npos);
  BOOST_TEST(ck.config.find("hidden = [8]") != std::string::npos);
}

// Case 4, raced: two fits started together into one empty folder. One runs, the other is
// refused; the folder is consistent.
BOOST_AUTO_TEST_CASE(two_fits_started_together_one_is_refused) {
  const Setup s = setup(3);
  for (int round = 0; round < 4; ++round) {
    const std::string out = s.dir + "/race" + std::to_string(round);
    const std::string sa = make_temp_dir("a"), sb = make_temp_dir("b");
    const pid_t a = spawn_cli(fit_args(s, out, {"--no-plots"}), {}, sa);
    const pid_t b = spawn_cli(fit_args(s, out, {"--no-plots", "--set", "model.hidden=[6]"}), {}, sb);
    const CliResult ra = wait_cli(a, sa), rb = wait_cli(b, sb);
    BOOST_TEST_CONTEXT("round " << round << ": " << ra.err << " | " << rb.err) {
      BOOST_TEST(ra.signal == 0);
      BOOST_TEST(rb.signal == 0);
      BOOST_TEST(((ra.exit_code == 0) != (rb.exit_code == 0)), "exactly one fit must run");
      BOOST_TEST((ra.exit_code == 0 || ra.exit_code == 2));
      BOOST_TEST((rb.exit_code == 0 || rb.exit_code == 2));
      const Checkpoint ck = Checkpoint::read(out + "/latest.h5");
      BOOST_TEST(ck.epoch == 3);
      BOOST_TEST(read_file(out + "/config.toml").find(ck.config) != std::string::npos);
      BOOST_TEST(metrics_rows(out) == 3);
    }
  }
}

// Case 5: a fresh fit into a folder that holds a run is refused and changes nothing; with
// --overwrite it replaces the run, old figures included; --resume continues it.
BOOST_AUTO_TEST_CASE(a_fresh_fit_into_a_folder_holding_a_run) {
  const Setup s = setup(2);
  const std::string out = s.dir + "/run";
  CliResult r = run_cli(fit_args(s, out));  // with figures
  BOOST_TEST_REQUIRE(r.exit_code == 0, r.err);
  BOOST_TEST_REQUIRE(fs::exists(out + "/trajectories.png"));
  std::map<std::string, std::string> before;
  for (const auto& e : fs::directory_iterator(out))
    if (e.is_regular_file()) before[e.path().string()] = read_file(e.path().string());

  r = run_cli(fit_args(s, out, {"--no-plots", "--set", "model.hidden=[6]"}));
  BOOST_TEST(r.exit_code == 2, r.err);
  BOOST_TEST(r.err.find(out + ": holds an earlier run (latest.h5 after epoch 2)") != std::string::npos, r.err);
  BOOST_TEST(r.err.find("--resume") != std::string::npos);
  BOOST_TEST(r.err.find("--overwrite") != std::string::npos);
  for (const auto& [f, content] : before) BOOST_TEST((read_file(f) == content), f << " changed");

  r = run_cli(fit_args(s, out, {"--no-plots", "--set", "model.hidden=[6]", "--overwrite"}));
  BOOST_TEST(r.exit_code == 0, r.err);
  BOOST_TEST(!fs::exists(out + "/trajectories.png"), "the old run's figure was left behind");
  BOOST_TEST(!fs::exists(out + "/plot_data"));
  BOOST_TEST(Checkpoint::read(out + "/latest.h5").config.find("hidden = [6]") != std::string::npos);
  BOOST_TEST(read_file(out + "/config.toml").find("hidden = [6]") != std::string::npos);

  r = run_cli({"fit", "--resume", "--out", out, "--quiet", "--no-plots", "--set", "run.epochs=3"});
  BOOST_TEST(r.exit_code == 0, r.err);
  BOOST_TEST(Checkpoint::read(out + "/latest.h5").epoch == 3);
  BOOST_TEST(metrics_rows(out) == 3);
}

// Case 12: a configuration that fails validation (here only when the data is read, or when the
// trainer checks the solver options against the model's state) leaves no output at all.
BOOST_AUTO_TEST_CASE(a_configuration_that_fails_validation_writes_nothing) {
  const Setup s = setup(2);
  for (const auto& bad : std::vector<std::vector<std::string>>{
           {"--set", "data.file=\"" + s.dir + "/missing.h5\""},
           {"--set", "solver.atol_vector=[1e-6, 1e-6, 1e-6, 1e-6, 1e-6]"}}) {
    const std::string out = s.dir + "/invalid" + std::to_string(bad.size() + bad[1].size());
    const CliResult r = run_cli(fit_args(s, out, bad));
    BOOST_TEST(r.exit_code == 2, r.err);
    BOOST_TEST(!fs::exists(out + "/config.toml"), bad[1] << ": config.toml written for a run that never started");
  }
}

// Case 12: the data file's content is in the checkpoint; a resume on changed data says so.
BOOST_AUTO_TEST_CASE(a_resume_on_changed_data_says_so) {
  const Setup s = setup(2);
  const std::string out = s.dir + "/run";
  CliResult r = run_cli(fit_args(s, out, {"--no-plots"}));
  BOOST_TEST_REQUIRE(r.exit_code == 0, r.err);
  BOOST_TEST(!Checkpoint::read(out + "/latest.h5").data_fingerprint.empty());
  // Same path, other series.
  r = run_cli({"data", "generate", "--series", "12", "--observations", "10", "--t-end", "4", "--seed", "4", "--out", s.data});
  BOOST_TEST_REQUIRE(r.exit_code == 0, r.err);
  r = run_cli({"fit", "--resume", out + "/latest.h5", "--out", out, "--quiet", "--no-plots", "--set", "run.epochs=3"});
  BOOST_TEST(r.exit_code == 2, r.err);
  BOOST_TEST(r.err.find(s.data + ": the data file changed since " + out + "/latest.h5 was written") != std::string::npos,
             r.err);
  BOOST_TEST(Checkpoint::read(out + "/latest.h5").epoch == 2);
  r = run_cli({"fit", "--resume", "--out", out, "--quiet", "--no-plots", "--set", "run.epochs=3", "--allow-data-change"});
  BOOST_TEST(r.exit_code == 0, r.err);
  BOOST_TEST(Checkpoint::read(out + "/latest.h5").epoch == 3);
}

// Case 12: a kill between latest.h5 and metrics.csv leaves metrics.csv an epoch behind; the
// resume rewrites it from the checkpoint before anything else.
BOOST_AUTO_TEST_CASE(metrics_follow_the_checkpoint_after_a_resume) {
  const Setup s = setup(3);
  const std::string out = s.dir + "/run";
  CliResult r = run_cli(fit_args(s, out, {"--no-plots", "--stop-after-epoch", "2"}));
  BOOST_TEST_REQUIRE(r.exit_code == 0, r.err);
  // What a kill between the two writes of epoch 2 leaves: metrics.csv of epoch 1.
  const std::string m = read_file(out + "/metrics.csv");
  std::ofstream(out + "/metrics.csv") << m.substr(0, m.rfind('\n', m.size() - 2) + 1);
  BOOST_TEST_REQUIRE(metrics_rows(out) == 1);
  // A resume that runs no epoch (its last epoch is the checkpoint's) does only what every
  // resume does first: metrics.csv is the checkpoint's history again.
  r = run_cli({"fit", "--resume", out + "/latest.h5", "--out", out, "--quiet", "--no-plots", "--set", "run.epochs=2"});
  BOOST_TEST(r.exit_code == 0, r.err);
  BOOST_TEST(metrics_rows(out) == 2);
  BOOST_TEST((read_file(out + "/metrics.csv") == m));
}

// Issue 18: `fit --resume CKPT --out NEWDIR` whose remaining epochs bring no better validation
// (a vanishing learning rate keeps the parameters) ended with "NEWDIR/best.h5: cannot open".
BOOST_AUTO_TEST_CASE(resume_into_a_new_folder_without_a_better_validation) {
  const Setup s = setup(2);
  const std::string a = s.dir + "/a", b = s.dir + "/b";
  CliResult r = run_cli(fit_args(s, a, {"--no-plots"}));
  BOOST_TEST_REQUIRE(r.exit_code == 0, r.err);
  r = run_cli({"fit", "--resume", a + "/latest.h5", "--out", b, "--quiet", "--set", "run.epochs=3", "--set",
               "run.val_every=5", "--set", "optimizer.lr=1e-300"});
  BOOST_TEST(r.exit_code == 0, r.err);
  BOOST_TEST(r.err.find("cannot open") == std::string::npos, r.err);
  BOOST_TEST_REQUIRE(fs::exists(b + "/best.h5"));
  const Checkpoint best_a = Checkpoint::read(a + "/best.h5"), best_b = Checkpoint::read(b + "/best.h5");
  BOOST_TEST((best_a.parameters.array() == best_b.parameters.array()).all());
  BOOST_TEST(fs::exists(b + "/trajectories.png"));
}

// Kills at random moments (startup, mid-epoch, mid-write): after each, the folder is
// consistent (readable checkpoint, metrics.csv at most one epoch behind it, no temporary file of
// a live process) and the fit resumes; in the end it equals an uninterrupted run bit for bit.
BOOST_AUTO_TEST_CASE(kills_at_random_moments) {
  const int epochs = 30;
  const Setup s = setup(epochs);
  const std::string ref = s.dir + "/reference";
  const auto t0 = std::chrono::steady_clock::now();
  CliResult r = run_cli(fit_args(s, ref, {"--no-plots"}));
  BOOST_TEST_REQUIRE(r.exit_code == 0, r.err);
  const Checkpoint whole = Checkpoint::read(ref + "/latest.h5");
  // The kill moments are fractions (2-27%) of a time scale, never fixed milliseconds: first the
  // uninterrupted run's own duration. A machine that got faster since (the reference ran
  // beside a load that has gone) can finish a run before its kill: then the time scale halves
  // and the killing starts over in a fresh folder, so that the kills happen on a quiet and on a
  // loaded machine alike. Every run that reaches the end must equal the reference.
  double scale_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  auto same_as_reference = [&](const std::string& dir) {
    const Checkpoint done = Checkpoint::read(dir + "/latest.h5");
    BOOST_TEST(done.epoch == epochs);
    BOOST_TEST((done.parameters.array() == whole.parameters.array()).all());
    BOOST_TEST((done.metrics.at("train_loss") == whole.metrics.at("train_loss")));
    BOOST_TEST(metrics_rows(dir) == epochs);
    BOOST_TEST(temporaries(dir).empty());
  };
  std::uint64_t seed = 19;
  int kills = 0, folder = 0;
  std::string out = s.dir + "/killed0";
  // Until 6 kills, and a folder with a checkpoint to resume at the end.
  for (int attempt = 0; attempt < 60 && (kills < 6 || !fs::exists(out + "/latest.h5")); ++attempt) {
    const bool started = fs::exists(out + "/latest.h5");
    std::vector<std::string> args = started ? std::vector<std::string>{"fit", "--resume", "--out", out, "--quiet", "--no-plots"}
                                            : fit_args(s, out, {"--no-plots"});
    const std::string scratch = make_temp_dir("kill");
    const pid_t pid = spawn_cli(args, {}, scratch);
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    const double fraction = 0.02 + 0.25 * double((seed >> 33) % 1000) / 1000.0;
    std::this_thread::sleep_for(std::chrono::microseconds(2000 + static_cast<long>(1000 * fraction * scale_ms)));
    kill(pid, SIGKILL);
    const CliResult k = wait_cli(pid, scratch);
    if (k.signal == SIGKILL) ++kills;
    BOOST_TEST_CONTEXT("attempt " << attempt << " in " << out << (k.signal ? " (killed)" : " (ended before the kill)")) {
      if (k.signal == 0) BOOST_TEST(k.exit_code == 0, k.err);
      if (!fs::exists(out + "/latest.h5")) continue;
      const Checkpoint ck = Checkpoint::read(out + "/latest.h5");
      const long rows = metrics_rows(out);
      BOOST_TEST((rows == ck.epoch || rows == ck.epoch - 1), rows << " metrics rows for epoch " << ck.epoch);
      BOOST_TEST(read_file(out + "/config.toml").find(ck.config) != std::string::npos);
      if (ck.epoch >= epochs) {
        same_as_reference(out);
        scale_ms /= 2;
        out = s.dir + "/killed" + std::to_string(++folder);
      }
    }
  }
  BOOST_TEST_MESSAGE(kills << " kills, " << folder << " runs completed between kills");
  BOOST_TEST(kills >= 3);
  r = run_cli({"fit", "--resume", "--out", out, "--quiet", "--no-plots"});
  BOOST_TEST_REQUIRE(r.exit_code == 0, r.err);
  same_as_reference(out);
}

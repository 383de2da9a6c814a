// Every command that writes files, run with the disk filling up at many points (an LD_PRELOAD
// shim, test/fault/write_budget.c, gives the process a byte budget and then ENOSPC; another
// setting makes fsync fail with EIO). Whatever the point, the command exits with a clean error
// (status 2, no signal) naming the file it could not write, leaves no temporary file, and every
// output is either its previous version, byte for byte, or a complete new one - nothing is lost
// and nothing half-written is published (issue 19, cases 1-3 and 12). With room enough the same
// runs succeed and write exactly what an unconstrained run writes.
//
// Where a small tmpfs can be mounted (root, not in a container that forbids it), the same runs
// also go through a real full disk. bench/fault_trial.sh uses that case to count outcomes over
// many fill sizes for any cvnode program (CVNODE_CLI), without asserting: the before/after table
// of issue 19.
// ctest: labels=integration timeout=300
#define BOOST_TEST_MODULE fault_injection
#include <boost/test/unit_test.hpp>

#include <sys/mount.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <set>

#include "cvnode/checkpoint.h"
#include "cvnode/dataset.h"
#include "test_util.h"
#include "cli_util.h"

using namespace cvnode;
using namespace cvnode::test;
namespace fs = std::filesystem;

namespace {

struct Env : FitSetup {
  std::string csv, run;
};

// A small dataset, its CSV, a fit configuration and a finished 2-epoch run (for predict, eval,
// plot and the resumed fit).
const Env& env() {
  static const Env e = [] {
    Env x;
    static_cast<FitSetup&>(x) = fit_setup("fault", 2);
    x.csv = x.dir + "/data.csv";
    x.run = x.dir + "/run";
    auto must = [](const CliResult& r, const std::string& what) {
      if (r.exit_code != 0) throw std::runtime_error(what + " failed: " + r.err);
    };
    must(run_cli({"data", "export-csv", x.data, "--out", x.csv}), "export");
    must(run_cli({"fit", "--config", x.config, "--out", x.run, "--quiet", "--no-plots"}), "fit");
    return x;
  }();
  return e;
}

// One writing command: its arguments for an output base path, the files it writes there, and
// how to tell a complete new version of a file from a broken one.
struct Writer {
  std::string name;
  std::function<std::vector<std::string>(const std::string& out)> args;
  std::function<std::vector<std::string>(const std::string& out)> outputs;
  // Puts a previous version of the outputs in place (what must survive a failed run).
  std::function<void(const std::string& out)> prepare;
  // Deterministic commands: the new version is exactly the reference run's bytes. Others check
  // the file itself (a readable checkpoint, a complete PNG ...).
  bool deterministic = true;
  std::function<bool(const std::string& file)> complete;
  // Only in bench/fault_trial.sh's count (the latent, flow and classifier commands: seconds
  // each, too slow for the dozens of runs per command of the tests above).
  bool trial_only = false;
};

// A checkpoint that reads back, or a text file ending with a line break.
bool checkpoint_or_text_complete(const std::string& f) {
  try {
    if (f.size() > 3 && f.substr(f.size() - 3) == ".h5") return Checkpoint::read(f).epoch > 0;
    const std::string s = read_file(f);
    return !s.empty() && s.back() == '\n';
  } catch (const std::exception&) {
    return false;
  }
}

bool png_complete(const std::string& f) {
  const std::string s = read_file(f);
  return s.size() > 20 && s.compare(s.size() - 8, 4, "IEND") == 0;
}

std::vector<Writer> writers() {
  const Env& e = env();
  std::vector<Writer> w;
  w.push_back({"data generate",
               [](const std::string& o) {
                 return std::vector<std::string>{"data", "generate", "--series", "16", "--observations", "20",
                                                 "--seed", "5", "--out", o + ".h5"};
               },
               [](const std::string& o) { return std::vector<std::string>{o + ".h5"}; },
               [](const std::string& o) {
                 run_cli({"data", "generate", "--series", "4", "--seed", "9", "--out", o + ".h5"});
               },
               true, nullptr});
  w.push_back({"data import-csv",
               [e](const std::string& o) {
                 return std::vector<std::string>{"data", "import-csv", e.csv, "--id", "id", "--values", "prey,predator",
                                                 "--out", o + ".h5"};
               },
               [](const std::string& o) { return std::vector<std::string>{o + ".h5"}; },
               [](const std::string& o) {
                 run_cli({"data", "generate", "--series", "4", "--seed", "9", "--out", o + ".h5"});
               },
               true, nullptr});
  w.push_back({"data export-csv",
               [e](const std::string& o) {
                 return std::vector<std::string>{"data", "export-csv", e.data, "--out", o + ".csv"};
               },
               [](const std::string& o) { return std::vector<std::string>{o + ".csv"}; },
               [](const std::string& o) { std::ofstream(o + ".csv") << "id,time,x\na,0,1\n"; }, true, nullptr});
  w.push_back({"data split",
               [e](const std::string& o) {
                 return std::vector<std::string>{"data", "split", e.data, "--out-prefix", o};
               },
               [](const std::string& o) {
                 return std::vector<std::string>{o + "_train.h5", o + "_validation.h5", o + "_test.h5"};
               },
               [](const std::string& o) {
                 for (const char* p : {"_train.h5", "_validation.h5", "_test.h5"})
                   run_cli({"data", "generate", "--series", "2", "--seed", "9", "--out", o + p});
               },
               true, nullptr});
  w.push_back({"predict (CSV)",
               [e](const std::string& o) {
                 return std::vector<std::string>{"predict", e.run + "/best.h5", "--split", "all", "--out", o + ".csv"};
               },
               [](const std::string& o) { return std::vector<std::string>{o + ".csv"}; },
               [](const std::string& o) { std::ofstream(o + ".csv") << "series,t,x\n"; }, true, nullptr});
  w.push_back({"predict (HDF5)",
               [e](const std::string& o) {
                 return std::vector<std::string>{"predict", e.run + "/best.h5", "--split", "all", "--out", o + ".h5"};
               },
               [](const std::string& o) { return std::vector<std::string>{o + ".h5"}; },
               [](const std::string& o) {
                 run_cli({"data", "generate", "--series", "2", "--seed", "9", "--out", o + ".h5"});
               },
               true, nullptr});
  w.push_back({"eval --json",
               [e](const std::string& o) {
                 return std::vector<std::string>{"eval", e.run + "/best.h5", "--tolerances", "1e-3,1e-4", "--json",
                                                 o + ".jsonl"};
               },
               [](const std::string& o) { return std::vector<std::string>{o + ".jsonl"}; },
               [](const std::string& o) { std::ofstream(o + ".jsonl") << "{\"earlier\": 1}\n"; }, false,
               [](const std::string& f) {
                 // The earlier line, then both of this run's lines, complete.
                 const std::string s = read_file(f);
                 return s.rfind("{\"earlier\": 1}\n", 0) == 0 && std::count(s.begin(), s.end(), '\n') == 3 &&
                        s.back() == '\n';
               }});
  w.push_back({"fit --resume",
               [](const std::string& o) {
                 return std::vector<std::string>{"fit", "--resume", o + "/latest.h5", "--out", o, "--set",
                                                 "run.epochs=4", "--quiet", "--no-plots"};
               },
               [](const std::string& o) {
                 return std::vector<std::string>{o + "/latest.h5", o + "/best.h5", o + "/metrics.csv",
                                                 o + "/config.toml"};
               },
               [e](const std::string& o) {
                 fs::remove_all(o);
                 fs::copy(e.run, o);
               },
               false, checkpoint_or_text_complete});
  w.push_back({"fit",
               [e](const std::string& o) {
                 return std::vector<std::string>{"fit", "--config", e.config, "--out", o, "--quiet", "--no-plots"};
               },
               [](const std::string& o) {
                 return std::vector<std::string>{o + "/latest.h5", o + "/best.h5", o + "/metrics.csv",
                                                 o + "/config.toml"};
               },
               [](const std::string& o) { fs::remove_all(o); }, false, checkpoint_or_text_complete});
  w.push_back({"plot",
               [](const std::string& o) { return std::vector<std::string>{"plot", o}; },
               [](const std::string& o) {
                 return std::vector<std::string>{o + "/trajectories.png", o + "/loss.png", o + "/nfe.png"};
               },
               [e](const std::string& o) {
                 fs::remove_all(o);
                 fs::copy(e.run, o);
                 for (const char* p : {"/trajectories.png", "/loss.png", "/nfe.png"}) std::ofstream(o + p) << "old";
               },
               false, png_complete});
  // Trial only: the other models' writers.
  const std::string spirals = e.dir + "/spirals.h5", moons = e.dir + "/moons.h5";
  if (!fs::exists(spirals))
    run_cli({"data", "spirals", "--spirals", "20", "--seed", "1", "--out", spirals});
  if (!fs::exists(moons))
    run_cli({"data", "generate", "--system", "moons", "--series", "200", "--seed", "1", "--out", moons});
  auto previous_h5 = [](const std::string& o) {
    run_cli({"data", "generate", "--series", "4", "--seed", "9", "--out", o + ".h5"});
  };
  w.push_back({"data spirals",
               [](const std::string& o) {
                 return std::vector<std::string>{"data", "spirals", "--spirals", "20", "--seed", "2", "--out", o + ".h5"};
               },
               [](const std::string& o) { return std::vector<std::string>{o + ".h5"}; }, previous_h5, true, nullptr,
               true});
  w.push_back({"latent train",
               [spirals](const std::string& o) {
                 return std::vector<std::string>{"latent", "train", "-c", std::string(CVNODE_SOURCE_DIR) +
                                                 "/data/latent_spiral.toml", "--set", "data.file=\"" + spirals + "\"",
                                                 "--set", "run.epochs=2", "--set", "run.threads=1", "-q", "-o", o};
               },
               [](const std::string& o) {
                 return std::vector<std::string>{o + "/latest.h5", o + "/best.h5", o + "/metrics.csv",
                                                 o + "/config.toml"};
               },
               [](const std::string& o) { fs::remove_all(o); }, false, checkpoint_or_text_complete, true});
  w.push_back({"cnf train",
               [moons](const std::string& o) {
                 return std::vector<std::string>{"cnf", "train", "-c", std::string(CVNODE_SOURCE_DIR) +
                                                 "/data/cnf_moons.toml", "--set", "data.file=\"" + moons + "\"",
                                                 "--set", "run.epochs=1", "--set", "run.threads=1", "-q", "--no-plots",
                                                 "-o", o};
               },
               [](const std::string& o) {
                 return std::vector<std::string>{o + "/latest.h5", o + "/best.h5", o + "/metrics.csv",
                                                 o + "/config.toml"};
               },
               [](const std::string& o) { fs::remove_all(o); }, false, checkpoint_or_text_complete, true});
  w.push_back({"classify train",
               [](const std::string& o) {
                 // The smallest model (the writes are the same for every kind): a second, not a minute.
                 return std::vector<std::string>{"classify", "train", "--model", "resnet", "--blocks", "1",
                                                 "--channels", "4", "--groups", "2", "--threads", "1", "--epochs", "1",
                                                 "--batch", "8", "--train-images", "16", "--test-images", "8",
                                                 "--json", "--out", o};
               },
               [](const std::string& o) {
                 return std::vector<std::string>{o + "/model.h5", o + "/epochs.csv", o + "/steps.csv"};
               },
               [](const std::string& o) { fs::remove_all(o); }, false,
               [](const std::string& f) {
                 try {
                   if (f.size() > 3 && f.substr(f.size() - 3) == ".h5") return Checkpoint::read(f).parameters.size() > 0;
                   const std::string s = read_file(f);
                   return !s.empty() && s.back() == '\n';
                 } catch (const std::exception&) {
                   return false;
                 }
               },
               true});
  return w;
}

// The writers the tests check (without the trial-only ones).
std::vector<Writer> tested_writers() {
  std::vector<Writer> w;
  for (auto& x : writers())
    if (!x.trial_only) w.push_back(std::move(x));
  return w;
}

struct Reference {
  std::map<std::string, std::string> bytes;  // output file name -> content of a clean run
  long long written = 0;                     // bytes the command wrote to regular files in all
};

// A clean run of the writer (the shim loaded, no fault): what it writes, and how many bytes its
// writes carried in all (temporary files and rewrites included).
Reference reference(const Writer& w) {
  const std::string dir = make_temp_dir("reference");
  const std::string out = dir + "/out", report = dir + "/report";
  w.prepare(out);
  const pid_t pid = spawn_cli(w.args(out), {{"LD_PRELOAD", CVNODE_WRITE_BUDGET_LIB}, {"CVNODE_FAULT_REPORT", report}}, dir);
  const CliResult r = wait_cli(pid, dir);
  BOOST_TEST_REQUIRE(r.exit_code == 0, w.name << ": the clean run failed: " << r.err);
  Reference ref;
  for (const auto& f : w.outputs(out)) ref.bytes[fs::path(f).filename().string()] = read_file(f);
  std::istringstream lines(read_file(report));
  for (long p = 0, n = 0; lines >> p >> n;)
    if (p == pid) ref.written = n;
  BOOST_TEST_REQUIRE(ref.written > 0, w.name << ": the shim saw no write");
  return ref;
}

// How a run under a fault ended.
struct Outcome {
  bool crash = false;    // ended by a signal
  bool success = false;  // exit 0 and every output complete
  bool silent = false;   // exit 0 but an output is not complete
  bool clean = false;    // exit != 0, the file named, no temporary left, nothing lost or broken
  bool lost = false;     // a file that existed before is gone or neither old nor complete
  std::string detail;
};

// Runs the writer on outputs under `out` (prepared beforehand) with `fault` in its environment
// and classifies the result against the previous and the clean versions of the outputs.
Outcome classify(const Writer& w, const Reference& ref, const std::string& out,
                 const std::map<std::string, std::string>& previous,
                 const std::vector<std::pair<std::string, std::string>>& fault) {
  const CliResult r = run_cli(w.args(out), fault);
  Outcome o;
  o.crash = r.signal != 0;
  bool all_new = true, broken = false;
  for (const auto& f : w.outputs(out)) {
    const bool existed = previous.count(f) > 0, exists = fs::exists(f);
    const std::string now = exists ? read_file(f) : std::string();
    const std::string name = fs::path(f).filename().string();
    const bool renewed = exists && (w.deterministic ? now == ref.bytes.at(name) : w.complete(f));
    const bool kept = existed && exists && now == previous.at(f);
    if (!renewed) all_new = false;
    if (existed && !kept && !renewed) {
      o.lost = true;
      o.detail += f + " lost (" + std::to_string(now.size()) + " bytes); ";
    }
    if (!existed && exists && !renewed) {
      broken = true;
      o.detail += f + " incomplete; ";
    }
  }
  const auto left = temporaries(fs::path(w.outputs(out)[0]).parent_path().string());
  if (!left.empty()) o.detail += "temporary file left: " + left[0] + "; ";
  if (o.crash) {
    o.detail += "signal " + std::to_string(r.signal) + "; ";
  } else if (r.exit_code == 0) {
    o.success = all_new;
    o.silent = !all_new;
  } else {
    const bool named = r.err.find(out) != std::string::npos;  // an output, or a working file beside them
    if (!named) o.detail += "the message names no output: " + r.err + "; ";
    if (r.err.find("HDF5-DIAG") != std::string::npos) o.detail += "HDF5 error stack printed; ";
    o.clean = named && left.empty() && !o.lost && !broken && r.err.find("HDF5-DIAG") == std::string::npos;
  }
  if (!o.clean && !o.success) o.detail += "exit " + std::to_string(r.exit_code) + ", stderr: " + r.err;
  return o;
}

std::map<std::string, std::string> snapshot(const Writer& w, const std::string& out) {
  std::map<std::string, std::string> m;
  for (const auto& f : w.outputs(out))
    if (fs::exists(f)) m[f] = read_file(f);
  return m;
}

// Runs the writer under `fault` in a fresh folder and requires a clean error.
void faulty_run(const Writer& w, const Reference& ref, const std::vector<std::pair<std::string, std::string>>& fault,
                const std::string& tag) {
  BOOST_TEST_CONTEXT(w.name << ", " << tag) {
    const std::string out = make_temp_dir("faulty") + "/out";
    w.prepare(out);
    const Outcome o = classify(w, ref, out, snapshot(w, out), fault);
    BOOST_TEST(o.clean, o.detail);
  }
}

std::string budget_lib() { return CVNODE_WRITE_BUDGET_LIB; }

}  // namespace

BOOST_AUTO_TEST_CASE(every_writer_fails_cleanly_when_the_disk_fills_up) {
  for (const Writer& w : tested_writers()) {
    const Reference ref = reference(w);
    BOOST_TEST_MESSAGE(w.name << ": a clean run writes " << ref.written << " bytes");
    // From nothing at all to one byte short of what a clean run writes.
    // Commands whose output carries timings write a few bytes more or less from run to run:
    // their last budget keeps a margin.
    const long long W = ref.written, last = w.deterministic ? W - 1 : 9 * W / 10;
    const std::set<long long> budgets = {0, 1, 100, W / 4, W / 2, 3 * W / 4, last};
    for (long long b : budgets)
      faulty_run(w, ref, {{"LD_PRELOAD", budget_lib()}, {"CVNODE_FAULT_WRITE_BUDGET", std::to_string(b)}},
                 "write budget " + std::to_string(b) + " bytes");
  }
}

BOOST_AUTO_TEST_CASE(every_writer_fails_cleanly_when_fsync_fails) {
  for (const Writer& w : tested_writers()) {
    const Reference ref = reference(w);
    faulty_run(w, ref, {{"LD_PRELOAD", budget_lib()}, {"CVNODE_FAULT_FSYNC", "1"}}, "fsync fails with EIO");
  }
}

// With room to spare the shim changes nothing: the outputs are those of the clean run.
BOOST_AUTO_TEST_CASE(with_room_enough_the_outputs_are_complete) {
  for (const Writer& w : tested_writers()) {
    if (!w.deterministic) continue;
    const Reference ref = reference(w);
    const std::string out = make_temp_dir("roomy") + "/out";
    w.prepare(out);
    const CliResult r = run_cli(w.args(out), {{"LD_PRELOAD", budget_lib()},
                                              {"CVNODE_FAULT_WRITE_BUDGET", std::to_string(ref.written + 1000)}});
    BOOST_TEST(r.exit_code == 0, w.name << ": " << r.err);
    for (const auto& f : w.outputs(out))
      BOOST_TEST((read_file(f) == ref.bytes.at(fs::path(f).filename().string())), w.name << ": " << f);
  }
}

namespace {

// A tmpfs of `bytes` mounted at `dir` for the life of the object, when this process may mount
// (root with CAP_SYS_ADMIN; containers usually forbid it).
class Tmpfs {
 public:
  Tmpfs(std::string dir, long bytes) : dir_(std::move(dir)) {
    fs::create_directories(dir_);
    mounted_ = ::mount("tmpfs", dir_.c_str(), "tmpfs", 0, ("size=" + std::to_string(bytes)).c_str()) == 0;
  }
  ~Tmpfs() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& dir() const { return dir_; }
  void clear() const {
    for (const auto& e : fs::directory_iterator(dir_)) fs::remove_all(e.path());
  }
  long free_bytes() const {
    struct statvfs v {};
    return ::statvfs(dir_.c_str(), &v) == 0 ? static_cast<long>(v.f_bavail * v.f_frsize) : -1;
  }
  // Fills the file system until at most `bytes` are free.
  void leave_free(long bytes) const {
    const long fill = free_bytes() - bytes;
    if (fill <= 0) return;
    std::ofstream f(dir_ + "/fill", std::ios::binary);
    const std::string block(4096, '\0');
    for (long done = 0; done < fill; done += 4096) f.write(block.data(), std::min<long>(4096, fill - done));
  }

 private:
  std::string dir_;
  bool mounted_ = false;
};

}  // namespace

// The real thing: a full tmpfs at fill levels from nothing free to room enough. Every run ends
// in success (room enough) or a clean error, and no earlier file is lost. With
// CVNODE_FAULT_TRIAL=FILE (bench/fault_trial.sh) it counts the outcomes of CVNODE_FAULT_FILLS
// levels per command into FILE as JSON lines instead of asserting.
BOOST_AUTO_TEST_CASE(a_real_full_disk_on_a_small_tmpfs) {
  const char* trial_env = std::getenv("CVNODE_FAULT_TRIAL");
  const std::string trial = trial_env ? trial_env : "";
  const char* fills_env = std::getenv("CVNODE_FAULT_FILLS");
  const int levels = trial.empty() ? 6 : std::max(2, fills_env ? std::atoi(fills_env) : 60);
  const Tmpfs disk(make_temp_dir("tmpfs") + "/mnt", 16L << 20);
  if (!disk.mounted()) {
    BOOST_TEST_MESSAGE("tmpfs: this process may not mount one (" << std::strerror(errno)
                                                                << "); the LD_PRELOAD cases above cover the same paths");
    BOOST_TEST(trial.empty(), "bench/fault_trial.sh needs a tmpfs: run it as root");
    return;
  }
  // CVNODE_FAULT_WRITERS=NAME,NAME...: only these commands (the trial runs the slow ones with
  // fewer levels).
  const char* only_env = std::getenv("CVNODE_FAULT_WRITERS");
  const std::string only = only_env ? "," + std::string(only_env) + "," : "";
  for (const Writer& w : trial.empty() ? tested_writers() : writers()) {
    if (!only.empty() && only.find("," + w.name + ",") == std::string::npos) continue;
    const Reference ref = reference(w);
    int tried = 0, clean = 0, success = 0, crash = 0, silent = 0, lost = 0, unclean = 0;
    const long top = ref.written + 16384;
    for (int i = 0; i < levels; ++i) {
      const long free = top * i / (levels - 1);
      disk.clear();
      const std::string out = disk.dir() + "/out";
      w.prepare(out);
      const auto previous = snapshot(w, out);
      disk.leave_free(free);
      const Outcome o = classify(w, ref, out, previous, {});
      ++tried;
      clean += o.clean;
      success += o.success;
      crash += o.crash;
      silent += o.silent;
      lost += o.lost;
      unclean += !o.clean && !o.success && !o.crash && !o.silent;
      if (trial.empty()) {
        BOOST_TEST((o.clean || o.success), w.name << ", " << free << " bytes free: " << o.detail);
        BOOST_TEST(!o.lost, w.name << ", " << free << " bytes free: " << o.detail);
      } else if (!o.clean && !o.success) {
        BOOST_TEST_MESSAGE(w.name << ", " << free << " bytes free: " << o.detail);
      }
    }
    BOOST_TEST_MESSAGE(w.name << ": " << tried << " fill levels: " << clean << " clean errors, " << success
                              << " successes, " << crash << " crashes, " << silent << " silent, " << lost
                              << " with data lost, " << unclean << " other errors");
    if (!trial.empty()) {
      std::ofstream j(trial, std::ios::app);
      j << "{\"program\": \"" << cli_path() << "\", \"command\": \"" << w.name << "\", \"fill_levels\": " << tried
        << ", \"max_free_bytes\": " << top << ", \"clean_errors\": " << clean << ", \"successes\": " << success
        << ", \"crashes\": " << crash << ", \"silent\": " << silent << ", \"data_lost\": " << lost
        << ", \"other_errors\": " << unclean << "}\n";
    }
  }
}

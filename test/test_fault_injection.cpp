// Every command that writes files, run with the disk filling up at many points (an LD_PRELOAD
// shim, test/fault/write_budget.c, gives the process a byte budget and then ENOSPC; another
// setting makes fsync fail with EIO). Whatever the point, the command exits with a clean error
// (status 2, no signal) naming the file it could not write, leaves no temporary file, and every
// output is either its previous version, byte for byte, or a complete new one - nothing is lost
// and nothing half-written is published (issue 19, cases 1-3 and 12). With room enough the same
// runs succeed and write exactly what an unconstrained run writes.
// ctest: labels=integration timeout=300
#define BOOST_TEST_MODULE fault_injection
#include <boost/test/unit_test.hpp>

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

struct Env {
  std::string dir, data, csv, config, run;
};

// A small dataset, its CSV, a fit configuration and a finished 2-epoch run (for predict, eval,
// plot and the resumed fit).
const Env& env() {
  static const Env e = [] {
    Env x;
    x.dir = make_temp_dir("fault");
    x.data = x.dir + "/data.h5";
    x.csv = x.dir + "/data.csv";
    x.config = x.dir + "/fit.toml";
    x.run = x.dir + "/run";
    auto must = [](const CliResult& r, const std::string& what) {
      if (r.exit_code != 0) throw std::runtime_error(what + " failed: " + r.err);
    };
    must(run_cli({"data", "generate", "--series", "8", "--observations", "8", "--t-end", "4", "--seed", "3", "--out",
                  x.data}),
         "generate");
    must(run_cli({"data", "export-csv", x.data, "--out", x.csv}), "export");
    std::ofstream(x.config) << "[data]\nfile = \"data.h5\"\ntrain_fraction = 0.5\nval_fraction = 0.25\n"
                               "[model]\nhidden = [8]\n[solver]\nrtol = 1e-5\natol = 1e-7\n"
                               "[run]\nepochs = 2\nbatch_size = 4\nthreads = 1\n[plot]\nseries = 1\npoints = 20\n";
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
};

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
                 return std::vector<std::string>{"data", "import-csv", e.csv, "--id", "id", "--out", o + ".h5"};
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
                 return std::vector<std::string>{"fit", "--resume", "--out", o, "--set", "run.epochs=4", "--quiet",
                                                 "--no-plots"};
               },
               [](const std::string& o) {
                 return std::vector<std::string>{o + "/latest.h5", o + "/best.h5", o + "/metrics.csv",
                                                 o + "/config.toml"};
               },
               [e](const std::string& o) {
                 fs::remove_all(o);
                 fs::copy(e.run, o);
               },
               false,
               [](const std::string& f) {
                 try {
                   if (f.size() > 3 && f.substr(f.size() - 3) == ".h5") return Checkpoint::read(f).epoch > 0;
                   const std::string s = read_file(f);
                   return !s.empty() && s.back() == '\n';
                 } catch (const std::exception&) {
                   return false;
                 }
               }});
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

// Runs the writer with `env` and checks the outcome against the previous and the clean version.
void faulty_run(const Writer& w, const Reference& ref, const std::vector<std::pair<std::string, std::string>>& fault,
                const std::string& tag) {
  BOOST_TEST_CONTEXT(w.name << ", " << tag) {
    const std::string dir = make_temp_dir("faulty");
    const std::string out = dir + "/out";
    w.prepare(out);
    std::map<std::string, std::string> previous;
    for (const auto& f : w.outputs(out)) previous[f] = read_file(f);
    const CliResult r = run_cli(w.args(out), fault);
    BOOST_TEST(r.signal == 0, "ended by signal " << r.signal << "; stderr: " << r.err);
    BOOST_TEST(r.exit_code == 2, "exit code " << r.exit_code << "; stderr: " << r.err);
    // The file named is one of the outputs, or a working file beside them (plot's plot_data).
    BOOST_TEST(r.err.find(out) != std::string::npos, "the message names no output file: " << r.err);
    BOOST_TEST(r.err.find("HDF5-DIAG") == std::string::npos, "an HDF5 error stack was printed: " << r.err);
    for (const auto& f : w.outputs(out)) {
      const std::string now = read_file(f);
      const bool kept = fs::exists(f) && now == previous[f];
      const std::string name = fs::path(f).filename().string();
      const bool renewed = w.deterministic ? fs::exists(f) && now == ref.bytes.at(name) : fs::exists(f) && w.complete(f);
      BOOST_TEST((kept || renewed), f << " is neither its previous version nor a complete new one ("
                                        << now.size() << " bytes)");
    }
    const auto left = temporaries(fs::path(w.outputs(out)[0]).parent_path().string());
    BOOST_TEST(left.empty(), "temporary files left: " << (left.empty() ? "" : left[0]));
  }
}

std::string budget_lib() { return CVNODE_WRITE_BUDGET_LIB; }

}  // namespace

BOOST_AUTO_TEST_CASE(every_writer_fails_cleanly_when_the_disk_fills_up) {
  for (const Writer& w : writers()) {
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
  for (const Writer& w : writers()) {
    const Reference ref = reference(w);
    faulty_run(w, ref, {{"LD_PRELOAD", budget_lib()}, {"CVNODE_FAULT_FSYNC", "1"}}, "fsync fails with EIO");
  }
}

// With room to spare the shim changes nothing: the outputs are those of the clean run.
BOOST_AUTO_TEST_CASE(with_room_enough_the_outputs_are_complete) {
  for (const Writer& w : writers()) {
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

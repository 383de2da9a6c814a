// Running the `cvnode` program from a test: arguments without a shell, extra environment
// variables, stdout and stderr captured, the exit code or the signal that ended it. The program
// is the build's apps/cvnode, or $CVNODE_CLI (how the tests were run against the cvnode of main
// before the issue-19 fixes, to see them fail).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace cvnode::test {

inline std::string cli_path() {
  const char* env = std::getenv("CVNODE_CLI");
  return env && *env ? env : std::string(CVNODE_BINARY_DIR) + "/apps/cvnode";
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

struct CliResult {
  int exit_code = -1;  // -1 when a signal ended it
  int signal = 0;
  std::string out, err;
  bool clean_error() const { return signal == 0 && exit_code > 0; }
};

// Starts `cvnode ARGS...` with `env` added to the environment; stdout and stderr go to files in
// `scratch`. Returns the child's pid (for tests that kill it).
inline pid_t spawn_cli(const std::vector<std::string>& args, const std::vector<std::pair<std::string, std::string>>& env,
                       const std::string& scratch) {
  std::fflush(stdout);
  std::fflush(stderr);
  const std::string prog = cli_path();
  const pid_t pid = fork();
  if (pid == 0) {
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    const int out = ::open((scratch + "/stdout").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open((scratch + "/stderr").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) _exit(126);
    std::vector<char*> argv{const_cast<char*>(prog.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(prog.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

inline CliResult wait_cli(pid_t pid, const std::string& scratch) {
  CliResult r;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  r.out = read_file(scratch + "/stdout");
  r.err = read_file(scratch + "/stderr");
  return r;
}

// Runs `cvnode ARGS...` to its end. `scratch` (default: a fresh temporary folder) receives the
// captured output files, never inside a folder under test.
inline CliResult run_cli(const std::vector<std::string>& args,
                         const std::vector<std::pair<std::string, std::string>>& env = {},
                         const std::string& scratch_dir = "") {
  const std::string scratch = scratch_dir.empty() ? make_temp_dir("cli") : scratch_dir;
  return wait_cli(spawn_cli(args, env, scratch), scratch);
}

// A small fit as the CLI tests use it: 12 Lotka-Volterra series of 10 observations
// (`cvnode data generate`) and a configuration of `epochs` epochs (half the series train, a
// quarter validate) in a new folder; `extra` is appended to the configuration.
struct FitSetup {
  std::string dir, data, config;
};
inline FitSetup fit_setup(const std::string& tag, int epochs, const std::string& extra = "") {
  FitSetup s;
  s.dir = make_temp_dir(tag);
  s.data = s.dir + "/data.h5";
  s.config = s.dir + "/fit.toml";
  const CliResult g = run_cli({"data", "generate", "--series", "12", "--observations", "10", "--t-end", "4", "--seed",
                               "3", "--out", s.data});
  if (g.exit_code != 0) throw std::runtime_error("data generate failed: " + g.err);
  std::ofstream(s.config) << "[data]\nfile = \"data.h5\"\ntrain_fraction = 0.5\nval_fraction = 0.25\n"
                             "[model]\nhidden = [8]\n[solver]\nrtol = 1e-5\natol = 1e-7\n"
                             "[run]\nepochs = "
                          << epochs << "\nbatch_size = 3\nthreads = 1\n[plot]\nseries = 1\npoints = 20\n" << extra;
  return s;
}

// Leftover temporary files of atomic writes (NAME.tmp.PID.N) in a folder.
inline std::vector<std::string> temporaries(const std::string& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().filename().string().find(".tmp.") != std::string::npos) found.push_back(it->path().string());
  return found;
}

}  // namespace cvnode::test

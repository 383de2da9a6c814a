#include "app/sweep.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cvnode/checkpoint.h"
#include "app/config.h"
#include "cvnode/errors.h"
#include "data/atomic_file.h"

namespace cvnode {

namespace fs = std::filesystem;

namespace {

std::string trim(const std::string& s) {
  const auto a = s.find_first_not_of(" \t");
  const auto b = s.find_last_not_of(" \t");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// Atomic, every write checked (a full disk is an error naming the file).
void write_text(const fs::path& path, const std::string& text) { io::write_text(path.string(), text); }

// Shell single quotes.
std::string sh(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string run_dir(const std::string& dir, const SweepRun& r) { return (fs::path(dir) / "runs" / r.id).string(); }

std::string value_of(const std::vector<std::string>& overrides, const std::string& key) {
  for (const auto& o : overrides)
    if (o.compare(0, key.size() + 1, key + "=") == 0) return o.substr(key.size() + 1);
  return "";
}

// The number of epochs a run is configured for (its stored configuration).
int configured_epochs(const std::string& run) {
  return Config::load((fs::path(run) / "config.toml").string()).train.run.epochs;
}

// A run is finished when its checkpoint holds all its epochs or it stopped early.
bool finished(const Checkpoint& c, const std::string& run) {
  const auto early = c.optimizer_scalars.find("stopped_early");
  return c.epoch >= configured_epochs(run) || (early != c.optimizer_scalars.end() && early->second != 0);
}

}  // namespace

GridAxis GridAxis::parse(const std::string& option) {
  const auto eq = option.find('=');
  if (eq == std::string::npos || eq == 0)
    throw OptionsError("--grid '" + option + "': expected key=value1,value2,...");
  GridAxis a;
  a.key = trim(option.substr(0, eq));
  std::string cur;
  int depth = 0;
  char quote = 0;
  for (char c : option.substr(eq + 1)) {
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '[' || c == '{') {
      ++depth;
    } else if (c == ']' || c == '}') {
      --depth;
    } else if (c == ',' && depth == 0) {
      a.values.push_back(trim(cur));
      cur.clear();
      continue;
    }
    cur += c;
  }
  a.values.push_back(trim(cur));
  if (depth != 0 || quote) throw OptionsError("--grid '" + option + "': unbalanced brackets or quotes");
  for (const auto& v : a.values)
    if (v.empty()) throw OptionsError("--grid '" + option + "': an empty value");
  return a;
}

SweepPlan plan_sweep(const std::string& config, const std::vector<GridAxis>& grid, int seeds) {
  if (seeds < 0) throw OptionsError("--seeds = " + std::to_string(seeds) + " must be >= 0");
  SweepPlan p;
  p.config = fs::absolute(config).lexically_normal().string();
  p.grid = grid;
  p.seeds = seeds;
  std::size_t points = 1;
  for (const auto& a : grid) points *= a.values.size();
  const std::size_t total = points * static_cast<std::size_t>(std::max(1, seeds));
  const int width = std::max<int>(3, static_cast<int>(std::to_string(total - 1).size()));
  std::vector<std::size_t> idx(grid.size(), 0);
  for (std::size_t point = 0; point < points; ++point) {
    // Mixed-radix digits of `point`, the first axis slowest.
    std::size_t rest = point;
    for (std::size_t k = grid.size(); k-- > 0;) {
      idx[k] = rest % grid[k].values.size();
      rest /= grid[k].values.size();
    }
    for (int s = 1; s <= std::max(1, seeds); ++s) {
      SweepRun r;
      for (std::size_t k = 0; k < grid.size(); ++k) r.overrides.push_back(grid[k].key + "=" + grid[k].values[idx[k]]);
      if (seeds > 0) {
        r.overrides.push_back("model.seed=" + std::to_string(s));
        r.overrides.push_back("run.seed=" + std::to_string(s));
      }
      char id[32];
      std::snprintf(id, sizeof id, "%0*zu", width, p.runs.size());
      r.id = id;
      try {
        Config::load(p.config, r.overrides);  // every value checked before anything runs
      } catch (const std::exception& e) {
        throw OptionsError("sweep run " + r.id + ": " + e.what());
      }
      p.runs.push_back(std::move(r));
    }
  }
  return p;
}

std::string write_sweep(const SweepPlan& plan, const std::string& dir, const SlurmLayout& L,
                        const std::string& cvnode) {
  if (L.ranks < 1 || L.threads < 1) throw OptionsError("sweep: --ranks and --threads must be >= 1");
  const fs::path root = fs::absolute(dir).lexically_normal();
  fs::create_directories(root / "runs");
  nlohmann::json j;
  j["config"] = plan.config;
  j["seeds"] = plan.seeds;
  for (const auto& a : plan.grid) j["grid"].push_back({{"key", a.key}, {"values", a.values}});
  if (plan.grid.empty()) j["grid"] = nlohmann::json::array();
  for (const auto& r : plan.runs) {
    j["runs"].push_back({{"id", r.id}, {"overrides", r.overrides}});
    fs::create_directories(root / "runs" / r.id);
    const Config c = Config::load(plan.config, r.overrides);
    std::string head = "# cvnode sweep run " + r.id + " of " + plan.config + "\n";
    for (const auto& o : r.overrides) head += "#   --set " + o + "\n";
    write_text(root / "runs" / r.id / "config.toml", head + c.to_toml());
  }
  write_text(root / "sweep.json", j.dump(2) + "\n");

  const int n = static_cast<int>(plan.runs.size());
  const int width = plan.runs.empty() ? 3 : static_cast<int>(plan.runs[0].id.size());
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# cvnode sweep: " << n << " runs of " << plan.config << " as a Slurm job array\n"
    << "# (written by `cvnode sweep`; docs/cluster.md). Submit with:  sbatch " << (root / "sweep.sbatch").string() << "\n"
    << "# Array task i is run i (runs/<i>/): " << L.ranks << " MPI rank(s) x " << L.threads << " OpenMP thread(s).\n"
    << "# SIGUSR1 arrives " << L.signal_seconds << " s before the time limit, SIGTERM on preemption: cvnode fit\n"
    << "# finishes its optimizer step, writes latest.h5 and exits 75; the task is then requeued and\n"
    << "# resumes from latest.h5 with the same bits as an uninterrupted run.\n"
    << "#SBATCH --job-name=cvnode-sweep\n"
    << "#SBATCH --array=0-" << n - 1 << (L.max_parallel > 0 ? "%" + std::to_string(L.max_parallel) : "") << "\n"
    << "#SBATCH --ntasks=" << L.ranks << "\n"
    << "#SBATCH --cpus-per-task=" << L.threads << "\n";
  if (L.nodes > 0) s << "#SBATCH --nodes=" << L.nodes << "\n";
  s << "#SBATCH --time=" << L.time << "\n"
    << "#SBATCH --signal=USR1@" << L.signal_seconds << "\n"
    << "#SBATCH --requeue\n"
    << "#SBATCH --open-mode=append\n"
    << "#SBATCH --output=" << (root / "runs" / "slurm-%A_%a.out").string() << "\n";
  if (!L.partition.empty()) s << "#SBATCH --partition=" << L.partition << "\n";
  if (!L.account.empty()) s << "#SBATCH --account=" << L.account << "\n";
  if (!L.extra.empty()) s << "#SBATCH " << L.extra << "\n";
  s << "set -u\n"
    << "CVNODE=" << sh(cvnode) << "\n"
    << "SWEEP=" << sh(root.string()) << "\n"
    << "id=$(printf '%0" << width << "d' \"$SLURM_ARRAY_TASK_ID\")\n"
    << "run=\"$SWEEP/runs/$id\"\n"
    << "# One OpenMP thread per allocated CPU, each kept on its core (docs/cluster.md, pinning).\n"
    << "export OMP_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\" OMP_PLACES=cores OMP_PROC_BIND=close\n"
    << "args=(fit --out \"$run\" --no-plots --set run.threads=\"$OMP_NUM_THREADS\")\n"
    << "if [ -f \"$run/latest.h5\" ]; then args+=(--resume \"$run/latest.h5\"); else args+=(--config \"$run/config.toml\"); fi\n"
    << "echo \"sweep: run $id on $(hostname), job ${SLURM_JOB_ID}, restart ${SLURM_RESTART_COUNT:-0}\"\n"
    << "# The batch shell must outlive the signal to requeue: it only notes it, srun passes it on.\n"
    << "trap 'echo \"sweep: run $id got a stop signal\"' TERM USR1\n"
    << "srun --mpi=" << "${CVNODE_SRUN_MPI:-pmix}" << " --ntasks=" << L.ranks << " --cpus-per-task=" << L.threads
    << " --cpu-bind=cores \"$CVNODE\" \"${args[@]}\" >> \"$run/fit.log\" 2>&1 &\n"
    << "pid=$!\n"
    << "while :; do wait \"$pid\"; rc=$?; kill -0 \"$pid\" 2>/dev/null || break; done\n"
    << "if [ \"$rc\" -eq 75 ]; then\n"
    << "  echo \"sweep: run $id saved its state; requeueing\"\n"
    << "  scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"\n"
    << "fi\n"
    << "echo \"sweep: run $id exit $rc\"\n"
    << "exit \"$rc\"\n";
  const fs::path script = root / "sweep.sbatch";
  write_text(script, s.str());
  fs::permissions(script, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add);
  return script.string();
}

SweepPlan read_sweep(const std::string& dir) {
  const fs::path path = fs::path(dir) / "sweep.json";
  std::ifstream f(path);
  if (!f) throw DataError(path.string() + ": not found (is " + dir + " a folder written by `cvnode sweep`?)");
  nlohmann::json j;
  try {
    f >> j;
  } catch (const std::exception& e) {
    throw DataError(path.string() + ": not JSON: " + e.what());
  }
  SweepPlan p;
  try {
    p.config = j.at("config").get<std::string>();
    p.seeds = j.at("seeds").get<int>();
    for (const auto& a : j.at("grid")) p.grid.push_back({a.at("key"), a.at("values").get<std::vector<std::string>>()});
    for (const auto& r : j.at("runs")) p.runs.push_back({r.at("id"), r.at("overrides").get<std::vector<std::string>>()});
  } catch (const std::exception& e) {
    throw DataError(path.string() + ": " + e.what());
  }
  return p;
}

int run_sweep_locally(const std::string& dir, int jobs, const std::string& cvnode) {
  if (jobs < 1) throw OptionsError("sweep run: --jobs = " + std::to_string(jobs) + " must be >= 1");
  const SweepPlan plan = read_sweep(dir);
  std::vector<const SweepRun*> todo;
  for (const auto& r : plan.runs) {
    const std::string rd = run_dir(dir, r);
    const fs::path latest = fs::path(rd) / "latest.h5";
    bool done = false;
    if (fs::exists(latest)) {
      try {
        const Checkpoint c = Checkpoint::read(latest.string());
        done = finished(c, rd);
      } catch (const std::exception&) {
      }
    }
    if (!done) todo.push_back(&r);
  }
  std::fprintf(stderr, "sweep: %zu of %zu runs to do, %d at a time\n", todo.size(), plan.runs.size(), jobs);
  std::map<pid_t, const SweepRun*> running;
  int failed = 0;
  std::size_t next = 0;
  auto reap = [&](bool block) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, block ? 0 : WNOHANG);
    if (pid <= 0) return false;
    auto it = running.find(pid);
    if (it == running.end()) return true;
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok) ++failed;
    std::fprintf(stderr, "sweep: run %s %s\n", it->second->id.c_str(),
                 ok ? "done" : ("failed (exit " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)) +
                                "), see " + run_dir(dir, *it->second) + "/fit.log").c_str());
    running.erase(it);
    return true;
  };
  while (next < todo.size() || !running.empty()) {
    while (next < todo.size() && static_cast<int>(running.size()) < jobs) {
      const SweepRun& r = *todo[next++];
      const std::string rd = run_dir(dir, r);
      const bool resume = fs::exists(fs::path(rd) / "latest.h5");
      std::vector<std::string> args{cvnode, "fit", "--out", rd, "--no-plots"};
      if (resume) {
        args.insert(args.end(), {"--resume", rd + "/latest.h5"});
      } else {
        args.insert(args.end(), {"--config", rd + "/config.toml"});
      }
      std::fflush(stdout);
      std::fflush(stderr);
      const pid_t pid = fork();
      if (pid < 0) throw std::runtime_error("sweep run: fork failed");
      if (pid == 0) {
        const std::string log = rd + "/fit.log";
        if (!freopen(log.c_str(), "a", stdout) || !freopen(log.c_str(), "a", stderr)) _exit(126);
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        execv(argv[0], argv.data());
        _exit(127);
      }
      running[pid] = &r;
      std::fprintf(stderr, "sweep: run %s started%s\n", r.id.c_str(), resume ? " (resumed)" : "");
    }
    reap(true);
  }
  return failed;
}

std::string collect_sweep(const std::string& dir) {
  const SweepPlan plan = read_sweep(dir);
  const fs::path root(dir);
  std::ostringstream csv;
  csv.precision(17);
  csv << "run";
  for (const auto& a : plan.grid) csv << "," << a.key;
  csv << ",seed,status,epochs,best_val_loss,best_epoch,final_train_loss,final_val_loss,best_val_rmse,seconds\n";
  std::ostringstream dat;  // for gnuplot: index, best val loss, label
  dat.precision(17);
  int plotted = 0;
  for (std::size_t i = 0; i < plan.runs.size(); ++i) {
    const SweepRun& r = plan.runs[i];
    const std::string rd = run_dir(dir, r);
    csv << r.id;
    std::string label;
    for (const auto& a : plan.grid) {
      const std::string v = value_of(r.overrides, a.key);
      csv << ",\"" << v << "\"";
      label += (label.empty() ? "" : " ") + v;
    }
    const std::string seed = value_of(r.overrides, "run.seed");
    csv << "," << seed;
    if (!seed.empty()) label += (label.empty() ? "s" : " s") + seed;
    const fs::path latest = fs::path(rd) / "latest.h5";
    if (!fs::exists(latest)) {
      csv << ",not started,0,,,,,,\n";
      continue;
    }
    const Checkpoint c = Checkpoint::read(latest.string());
    const auto col = [&](const char* name) -> const std::vector<double>& { return c.metrics.at(name); };
    const auto& val = col("val_loss");
    const auto& rmse = col("val_rmse");
    const auto& train = col("train_loss");
    const auto& secs = col("seconds");
    double best = std::numeric_limits<double>::infinity(), best_rmse = NAN, final_val = NAN, seconds = 0;
    int best_epoch = 0;
    for (std::size_t e = 0; e < val.size(); ++e) {
      if (!std::isnan(val[e])) {
        final_val = val[e];
        if (val[e] < best) {
          best = val[e];
          best_epoch = static_cast<int>(e) + 1;
          best_rmse = rmse[e];
        }
      }
      seconds += secs[e];
    }
    const bool done = finished(c, rd);
    csv << "," << (done ? "done" : "partial") << "," << c.epoch << ",";
    if (best_epoch > 0) csv << best << "," << best_epoch;
    else csv << ",";
    csv << "," << (train.empty() ? NAN : train.back()) << "," << final_val << "," << best_rmse << ","
        << seconds << "\n";
    if (best_epoch > 0) {
      dat << i << " " << best << " \"" << (label.empty() ? r.id : label) << "\"\n";
      ++plotted;
    }
  }
  const fs::path out = root / "results.csv";
  write_text(out, csv.str());
  if (plotted > 0) {
    write_text(root / "results.dat", dat.str());
    const bool cairo = std::system("gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1") == 0;
    std::ostringstream gp;
    gp << "set terminal " << (cairo ? "pngcairo" : "png") << " size 900,500\n"
       << "set output '" << (root / "results.png").string() << "'\n"
       << "set title 'cvnode sweep: best validation loss per run'\n"
       << "set ylabel 'best validation loss'\nset logscale y\nset grid ytics\n"
       << "set xtics rotate by -45 font ',8'\nset key off\nset boxwidth 0.6\nset style fill solid 0.6\n"
       << "set xrange [-0.8:" << plan.runs.size() - 0.2 << "]\n"
       << "plot '" << (root / "results.dat").string() << "' using 1:2:xtic(3) with boxes\n";
    write_text(root / "results.gp", gp.str());
    const std::string cmd = "gnuplot '" + (root / "results.gp").string() + "' 2>'" + (root / "gnuplot.log").string() + "'";
    if (std::system(cmd.c_str()) != 0)
      throw DataError("sweep collect: gnuplot failed, see " + (root / "gnuplot.log").string());
  }
  return out.string();
}

}  // namespace cvnode

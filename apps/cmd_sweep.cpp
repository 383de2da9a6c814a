// `cvnode sweep CONFIG --grid key=v1,v2 [--grid ...] [--seeds N] --out DIR [layout options]`
// writes one configuration per run and a Slurm array script; `cvnode sweep run DIR` runs them with
// a local pool of processes; `cvnode sweep collect DIR` writes results.csv and results.png.
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "commands.h"
#include "cvnode/errors.h"
#include "app/sweep.h"

namespace cvnode::app {

namespace {

// This program's own path, for the jobs to run.
std::string self() {
  std::error_code ec;
  const auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw std::runtime_error("sweep: cannot find the cvnode program (/proc/self/exe)");
  return p.string();
}

struct SweepArgs {
  std::string config, out, dir;
  std::vector<std::string> grid;
  int seeds = 0, jobs = 1;
  SlurmLayout layout;
};

}  // namespace

void add_sweep(CLI::App& app) {
  auto a = std::make_shared<SweepArgs>();
  CLI::App* cmd = app.add_subcommand(
      "sweep", "Hyper-parameter sweep: configurations and a Slurm array script (run, collect: subcommands)");
  cmd->add_option("config", a->config, "Base configuration (TOML)");
  cmd->add_option("--grid,-g", a->grid, "key=v1,v2,... (repeatable; arrays as [16,16],[32])");
  cmd->add_option("--seeds", a->seeds, "Each configuration with model.seed = run.seed = 1..N (0: as configured)");
  cmd->add_option("--out,-o", a->out, "Sweep folder (sweep.json, sweep.sbatch, runs/<id>/)");
  auto& L = a->layout;
  cmd->add_option("--ranks", L.ranks, "MPI ranks per run (srun --ntasks)")->capture_default_str();
  cmd->add_option("--threads", L.threads, "OpenMP threads per rank (--cpus-per-task)")->capture_default_str();
  cmd->add_option("--nodes", L.nodes, "Nodes per run (0: Slurm chooses)");
  cmd->add_option("--time", L.time, "Time limit per job (sbatch --time)")->capture_default_str();
  cmd->add_option("--partition", L.partition, "Slurm partition");
  cmd->add_option("--account", L.account, "Slurm account");
  cmd->add_option("--signal-seconds", L.signal_seconds, "SIGUSR1 this long before the time limit (save, requeue)")
      ->capture_default_str();
  cmd->add_option("--max-parallel", L.max_parallel, "At most this many array tasks at once (0: no limit)");
  cmd->add_option("--sbatch", L.extra, "One more sbatch option, written verbatim (e.g. --mem=4G)");
  cmd->require_subcommand(0, 1);

  CLI::App* run = cmd->add_subcommand("run", "Run a sweep's unfinished runs here, a pool of processes");
  run->add_option("dir", a->dir, "Sweep folder")->required();
  run->add_option("--jobs,-j", a->jobs, "Runs at once")->capture_default_str();
  run->callback([a] {
    const int failed = run_sweep_locally(a->dir, a->jobs, self());
    if (failed > 0) throw std::runtime_error("sweep run: " + std::to_string(failed) + " run(s) failed");
    std::cout << "sweep: all runs done; collect with: cvnode sweep collect " << a->dir << "\n";
  });
  CLI::App* collect = cmd->add_subcommand("collect", "Gather every run's final metrics: results.csv, results.png");
  collect->add_option("dir", a->dir, "Sweep folder")->required();
  collect->callback([a] {
    const std::string csv = collect_sweep(a->dir);
    std::cout << "sweep: table " << csv << "\n";
    const auto png = std::filesystem::path(a->dir) / "results.png";
    if (std::filesystem::exists(png)) std::cout << "sweep: figure " << png.string() << "\n";
  });

  cmd->callback([a, cmd] {
    if (!cmd->get_subcommands().empty()) return;  // run / collect did the work
    if (a->config.empty() || a->out.empty())
      throw OptionsError("sweep: give CONFIG and --out DIR (or: sweep run DIR, sweep collect DIR)");
    std::vector<GridAxis> grid;
    for (const auto& g : a->grid) grid.push_back(GridAxis::parse(g));
    const SweepPlan plan = plan_sweep(a->config, grid, a->seeds);
    const std::string script = write_sweep(plan, a->out, a->layout, self());
    std::cout << "sweep: " << plan.runs.size() << " runs in " << a->out << "/runs/\n"
              << "sweep: on Slurm:   sbatch " << script << "\n"
              << "sweep: here:       cvnode sweep run " << a->out << " --jobs 2\n"
              << "sweep: afterwards: cvnode sweep collect " << a->out << "\n";
  });
}

}  // namespace cvnode::app

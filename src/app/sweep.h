// Hyper-parameter sweeps: one fit per point of a grid of configuration overrides (times a number
// of seeds), each in its own folder with its own resolved configuration; run as a Slurm job
// array (the generated sweep.sbatch, requeued on preemption) or by a local pool of processes;
// and every run's final metrics gathered into one table and one figure.
//
//   cvnode sweep CONFIG --grid optimizer.lr=1e-3,1e-2 --grid model.hidden=[16],[32,32] --seeds 2 --out DIR
//   sbatch DIR/sweep.sbatch        or        cvnode sweep run DIR --jobs 2
//   cvnode sweep collect DIR       -> DIR/results.csv, DIR/results.png
#pragma once

#include <string>
#include <vector>

namespace cvnode {

// One --grid option: a configuration key and its values (TOML values as on the command line).
struct GridAxis {
  std::string key;
  std::vector<std::string> values;
  // "key=v1,v2,...": values split at commas outside brackets and quotes, so arrays work
  // (model.hidden=[16,16],[32]). Throws OptionsError naming the option.
  static GridAxis parse(const std::string& option);
};

// How each run of the Slurm array is laid out (sbatch options of the generated script).
struct SlurmLayout {
  int ranks = 1;               // MPI ranks per run (srun --ntasks)
  int threads = 1;             // OpenMP threads per rank (--cpus-per-task, run.threads)
  int nodes = 0;               // 0: let Slurm choose
  std::string time = "01:00:00";
  std::string partition;       // "" : the cluster's default
  std::string account;
  int signal_seconds = 120;    // SIGUSR1 this long before the time limit: save and requeue
  int max_parallel = 0;        // --array=...%N (0: no limit)
  std::string extra;           // more #SBATCH lines, verbatim (e.g. "--mem=4G")
};

struct SweepRun {
  std::string id;                         // "000", "001", ...
  std::vector<std::string> overrides;     // key=value, grid order, then the seeds
};

struct SweepPlan {
  std::string config;                     // absolute path of the base configuration
  std::vector<GridAxis> grid;
  int seeds = 0;                          // 0: the configuration's own seeds
  std::vector<SweepRun> runs;
};

// The cartesian product of the axes (first axis slowest) times seeds 1..seeds (model.seed and
// run.seed). Every run's configuration is validated here, so a bad value fails before any job.
SweepPlan plan_sweep(const std::string& config, const std::vector<GridAxis>& grid, int seeds);

// Writes DIR/sweep.json (the plan), DIR/runs/<id>/config.toml (resolved) and DIR/sweep.sbatch;
// `cvnode` is the program the jobs run (an absolute path). Returns the script's path.
std::string write_sweep(const SweepPlan& plan, const std::string& dir, const SlurmLayout& layout,
                        const std::string& cvnode);
SweepPlan read_sweep(const std::string& dir);

// Runs every run not finished yet (a run is finished when its latest.h5 holds all its epochs),
// at most `jobs` at a time, each `cvnode fit` resumed from its latest.h5 if it has one; output to
// runs/<id>/fit.log. Returns the number of runs that failed.
int run_sweep_locally(const std::string& dir, int jobs, const std::string& cvnode);

// One row per run: id, the grid values, seed, status (done / partial / not started), epochs, best
// validation loss and its epoch, final training and validation loss, validation RMSE at the best
// epoch, wall seconds. Writes DIR/results.csv and (gnuplot) DIR/results.png; returns the CSV path.
std::string collect_sweep(const std::string& dir);

}  // namespace cvnode

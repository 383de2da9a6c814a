// The subcommands of the `cvnode` program; each lives in its own file and only parses options,
// calls the library and prints. No numerics here.
#pragma once

#include <cmath>
#include <functional>
#include <stdexcept>
#include <utility>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cvnode/densities.h"
#include "cvnode/flow.h"

namespace cvnode::app {

// Some series of a command failed to solve: their results are missing from its output (which
// holds the others). `cvnode` exits with 3, as for a solver failure, so that a partial result is
// never taken for a complete one.
class SeriesFailures : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

void add_bench(CLI::App& app);
void add_bench_flow(CLI::App& app);
void add_classify(CLI::App& app);
void add_data(CLI::App& app);
void add_fit(CLI::App& app);
void add_predict(CLI::App& app);
void add_eval(CLI::App& app);
void add_plot(CLI::App& app);
void add_sweep(CLI::App& app);
void add_cnf(CLI::App& app);

// `cvnode cnf train` (cmd_cnf.cpp); `cvnode fit` runs it for a configuration with [cnf].
struct CnfTrainArgs {
  std::string config, out, resume;
  std::vector<std::string> overrides;
  int stop_after = 0;
  bool quiet = false, no_plots = false;
};
void run_cnf_train(const CnfTrainArgs& args);
// `cvnode data spirals` (cmd_latent.cpp), added to the data command.
void add_data_spirals(CLI::App& data);
// `cvnode latent train|eval|predict` (cmd_latent.cpp).
void add_latent(CLI::App& app);

// Minimum and median of `rounds` timings of `call` (seconds per call) after one warm-up call,
// each round repeating it for at least `window` seconds (cmd_bench_flow.cpp).
std::pair<double, double> time_call(const std::function<void()>& call, int rounds, double window);

// Draws the figures of a run (fitted trajectories with extrapolation, losses, NFE) from its
// checkpoint and metrics.csv into `out_dir` with gnuplot; returns the PNG paths.
std::vector<std::string> make_plots(const std::string& checkpoint, const std::string& out_dir);

// What the figures of a flow need (cmd_plot_flow.cpp). The flow works in model units; `shift`
// and `scale` (empty: none) map them to the data's units, x = shift + scale .* y.
struct FlowPlotInput {
  explicit FlowPlotInput(const Flow& f) : flow(f) {}  // the rest by name (no half-filled braces)
  const Flow& flow;
  const Density* target = nullptr;  // the true density, when known (heat map beside the learned one)
  Matrix data;                      // points in data units (the scatter)
  Vector shift, scale;
  std::string title;
  double entropy = std::nan("");    // drawn on the loss figure when known
  std::string metrics_csv;          // loss.png and nfe.png from it (empty: skipped)
  int train_column = 3, val_column = 4, nfe_forward_column = 6, nfe_backward_column = 7;  // 1-based
  int grid = 100;       // density heat maps: grid x grid points
  int flow_grid = 60;   // the flow figure's densities (0: none)
  int samples = 5000;
  std::uint64_t seed = 0;
};
// Draws density.png, flow.png (and loss.png, nfe.png from the metrics) into `out_dir`; returns
// the PNG paths. Throws DataError when gnuplot fails.
std::vector<std::string> make_flow_plots(const FlowPlotInput& input, const std::string& out_dir);

}  // namespace cvnode::app

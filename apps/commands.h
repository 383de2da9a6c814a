// The subcommands of the `cvnode` program; each lives in its own file and only parses options,
// calls the library and prints. No numerics here.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace cvnode::app {

void add_bench(CLI::App& app);
void add_bench_flow(CLI::App& app);
void add_data(CLI::App& app);
void add_fit(CLI::App& app);
void add_predict(CLI::App& app);
void add_eval(CLI::App& app);
void add_plot(CLI::App& app);
void add_sweep(CLI::App& app);

// Draws the figures of a run (fitted trajectories with extrapolation, losses, NFE) from its
// checkpoint and metrics.csv into `out_dir` with gnuplot; returns the PNG paths.
std::vector<std::string> make_plots(const std::string& checkpoint, const std::string& out_dir);

}  // namespace cvnode::app

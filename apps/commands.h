// The subcommands of the `cvnode` program; each lives in its own file and only parses options,
// calls the library and prints. No numerics here.
#pragma once

#include <CLI/CLI.hpp>

namespace cvnode::app {

void add_bench(CLI::App& app);

}  // namespace cvnode::app

// `cvnode`: the command-line entry point. Every error ends in one line on stderr and a non-zero
// exit: 2 for bad input or options, 3 for a solver failure.
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "cvnode/errors.h"

int main(int argc, char** argv) {
  CLI::App app{"cvnode: neural ordinary differential equations on SUNDIALS CVODES"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "cvnode 0.1.0");
  cvnode::app::add_bench(app);
  cvnode::app::add_data(app);
  cvnode::app::add_fit(app);
  cvnode::app::add_predict(app);
  cvnode::app::add_eval(app);
  cvnode::app::add_plot(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const cvnode::SolverError& e) {
    std::cerr << "cvnode: solver failure: " << e.what() << "\n";
    return 3;
  } catch (const std::exception& e) {
    std::cerr << "cvnode: error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}

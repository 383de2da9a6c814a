// `cvnode`: the command-line entry point. Every error ends in one line on stderr and a non-zero
// exit: 2 for bad input or options, 3 for a solver failure.
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "cvnode/errors.h"
#include "cvnode/preemption.h"
#include "cvnode/ranks.h"
#include "cvnode/version.h"

int main(int argc, char** argv) {
  CLI::App app{"cvnode: neural ordinary differential equations on SUNDIALS CVODES"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("cvnode ") + CVNODE_VERSION);
  cvnode::app::add_bench(app);
  cvnode::app::add_bench_flow(app);
  cvnode::app::add_classify(app);
  cvnode::app::add_data(app);
  cvnode::app::add_data_spirals(*app.get_subcommand("data"));
  cvnode::app::add_fit(app);
  cvnode::app::add_latent(app);
  cvnode::app::add_predict(app);
  cvnode::app::add_eval(app);
  cvnode::app::add_plot(app);
  cvnode::app::add_sweep(app);
  cvnode::app::add_cnf(app);
  // Under mpirun or srun every task is an MPI rank; otherwise MPI is not started at all.
  int code = 0;
  std::string prefix = "cvnode: ";
  try {
    const cvnode::Ranks& ranks = cvnode::Ranks::init(&argc, &argv);
    if (ranks.distributed()) prefix = "cvnode (rank " + std::to_string(ranks.rank()) + "): ";
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    code = app.exit(e);
  } catch (const cvnode::Preempted& e) {
    if (cvnode::Ranks::world().root()) std::cerr << "cvnode: " << e.what() << "\n";
    code = cvnode::kPreemptedExitCode;
  } catch (const cvnode::SolverError& e) {
    std::cerr << prefix << "solver failure: " << e.what() << "\n";
    code = 3;
  } catch (const cvnode::app::SeriesFailures& e) {
    std::cerr << prefix << "solver failure: " << e.what() << "\n";
    code = 3;
  } catch (const std::bad_alloc&) {
    std::cerr << prefix << "error: out of memory (a size in the input or the options is larger than this machine "
                           "can hold)\n";
    code = 2;
  } catch (const std::exception& e) {
    std::cerr << prefix << "error: " << e.what() << "\n";
    code = 2;
  }
  // What went to standard output must have arrived (a redirect into a full disk fails here).
  std::cout.flush();
  if (code == 0 && (!std::cout || std::fflush(stdout) != 0 || std::ferror(stdout))) {
    std::cerr << prefix << "error: standard output: write failed (disk full or closed pipe?)\n";
    code = 2;
  }
  // A rank that failed alone would leave the others waiting in a collective: end them all.
  if (code != 0 && code != cvnode::kPreemptedExitCode && cvnode::Ranks::world().distributed())
    cvnode::Ranks::abort(code);
  cvnode::Ranks::finalize();
  return code;
}

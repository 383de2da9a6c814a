// `cvnode fit --config FILE --out DIR [--set key=value ...] [--resume [CKPT]] [--overwrite]`:
// trains a model and leaves in DIR latest.h5, best.h5, metrics.csv, config.toml and the PNG
// figures. DIR belongs to one run: a fresh fit into a folder holding another run is refused
// unless --overwrite, and a second fit into a folder in use is refused (run_fit's lock).
#include <filesystem>
#include <iostream>
#include <limits>

#include "commands.h"
#include "cvnode/checkpoint.h"
#include "models/cnf/cnf_fit.h"
#include "app/fit.h"
#include "cvnode/preemption.h"
#include "cvnode/ranks.h"
#include "options.h"

namespace cvnode::app {

namespace {

struct FitArgs {
  std::string config, out, resume;
  std::vector<std::string> overrides;
  int stop_after = 0;
  bool quiet = false, no_plots = false, overwrite = false, allow_data_change = false, resume_given = false;
};

void run(FitArgs a) {
  // --resume without a checkpoint: the folder's own latest.h5.
  if (a.resume_given && a.resume.empty()) a.resume = (std::filesystem::path(a.out) / "latest.h5").string();
  // A flow ([cnf] section, or a flow's checkpoint) trains in its own loop until the trainer
  // drives model kinds.
  if (a.config.empty() ? !a.resume.empty() && is_cnf_checkpoint(Checkpoint::read(a.resume))
                       : CnfFitConfig::describes_cnf(a.config)) {
    run_cnf_train({a.config, a.out, a.resume, a.overrides, a.stop_after, a.quiet, a.no_plots});
    return;
  }
  Config cfg;
  if (!a.resume.empty() && a.config.empty()) {
    // The checkpoint carries the resolved configuration of the run it continues.
    cfg = Config::parse(Checkpoint::read(a.resume).config, a.resume + " (stored configuration)",
                        a.overrides);
  } else if (!a.config.empty()) {
    cfg = Config::load(a.config, a.overrides);
  } else {
    throw OptionsError("fit: give --config FILE (or --resume CHECKPOINT)");
  }
  FitOptions fo;
  fo.out_dir = a.out;
  fo.resume = a.resume;
  fo.stop_after_epoch = a.stop_after;
  fo.quiet = a.quiet;
  fo.overwrite = a.overwrite;
  fo.allow_data_change = a.allow_data_change;
  install_stop_signals();  // SIGTERM, SIGUSR1: finish the step, save, exit 75 (preemption.h)
  const FitResult r = run_fit(cfg, fo);
  if (r.stopped_by_signal)
    throw Preempted("fit: stopped by " + std::string(signal_name(r.stopped_by_signal)) + " after epoch " +
                    std::to_string(r.state.epoch) + " step " + std::to_string(r.state.epoch_step) +
                    "; continue with: cvnode fit --resume " +
                    (std::filesystem::path(a.out) / "latest.h5").string() + " --out " + a.out);
  if (!Ranks::world().root()) return;  // rank 0 reports and draws
  const auto& s = r.state;
  std::cout << "fit: " << s.epoch << " epochs, " << s.step << " steps, best validation loss "
            << s.best_val << " at epoch " << s.best_epoch << ", " << s.failures_total
            << " failed series solves, " << s.rollbacks << " rollbacks, " << r.seconds << " s\n";
  if (r.physical.size() > 0) {
    std::cout << "fit: physical parameters of the best model (" << cfg.model.physics.kind << "):";
    std::cout.precision(8);
    for (Eigen::Index i = 0; i < r.physical.size(); ++i) std::cout << " " << r.physical[i];
    std::cout.precision(6);
    std::cout << "\n";
  }
  if (r.best_val.series > 0 && r.best_val.failures == 0) {
    std::cout << "fit: best model on the validation split: RMSE per channel (data units)";
    for (Eigen::Index i = 0; i < r.best_val_data.rmse.size(); ++i) std::cout << " " << r.best_val_data.rmse[i];
    std::cout << ", overall " << r.best_val_data.rmse_all << "\n";
  } else if (r.best_val.series > 0) {
    // Errors over part of the split are not the split's errors: reported as missing.
    std::cout << "fit: best model on the validation split: RMSE not available (" << r.best_val.failures << " of "
              << r.best_val.series << " series failed to solve)\n";
  }
  namespace fs = std::filesystem;
  const std::string latest = (fs::path(a.out) / "latest.h5").string();
  const std::string best = (fs::path(a.out) / "best.h5").string();
  const bool have_best = fs::exists(best);
  std::cout << "fit: checkpoints " << latest;
  if (have_best) std::cout << " and " << best;
  else std::cout << " (no best.h5: no validation has succeeded yet)";
  std::cout << ", metrics " << (fs::path(a.out) / "metrics.csv").string() << "\n";
  if (!a.no_plots && a.stop_after == 0) {
    for (const auto& png : make_plots(have_best ? best : latest, a.out)) std::cout << "fit: figure " << png << "\n";
  }
}

}  // namespace

void add_fit(CLI::App& app) {
  auto a = std::make_shared<FitArgs>();
  CLI::App* cmd = app.add_subcommand("fit", "Train a neural ODE on a dataset (TOML configuration)");
  cmd->add_option("--config,-c", a->config, "Configuration file (TOML, see data/demo.toml)");
  cmd->add_option("--out,-o", a->out, "Output directory (checkpoints, metrics, figures)")->required();
  cmd->add_option("--set", a->overrides, "Override a configuration key: --set solver.rtol=1e-6 (repeatable)");
  cmd->add_option("--resume", a->resume,
                  "Continue from a checkpoint (default: OUT/latest.h5; its stored configuration unless --config)")
      ->expected(0, 1);
  cmd->add_flag("--overwrite", a->overwrite, "Replace the files of an earlier run in --out");
  cmd->add_flag("--allow-data-change", a->allow_data_change,
                "Resume although the data file's content changed since the checkpoint");
  cmd->add_option("--stop-after-epoch", a->stop_after, "Stop after this epoch as if interrupted (resume later)")
      ->check(int_range(0, std::numeric_limits<int>::max()));
  cmd->add_flag("--quiet,-q", a->quiet, "No progress lines");
  cmd->add_flag("--no-plots", a->no_plots, "Do not draw the figures at the end");
  cmd->callback([a, cmd] {
    a->resume_given = cmd->count("--resume") > 0;
    run(*a);
  });
}

}  // namespace cvnode::app

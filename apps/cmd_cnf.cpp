// `cvnode cnf train|sample|density|plot`: continuous normalizing flows (docs/cnf.md).
//   train    --config FILE --out DIR: latest.h5, best.h5, metrics.csv, config.toml and the
//            figures (also what `cvnode fit` does with a configuration that has a [cnf] section)
//   sample   --checkpoint C --n N --out FILE.csv: samples with their log-densities (data units)
//   density  --checkpoint C [--data FILE.h5] [--split test]: held-out NLL (exact trace), against
//            the true entropy when the dataset knows it; --out FILE.csv writes each point's log p
//   plot     --checkpoint C --out DIR: the figures again
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "commands.h"
#include "models/cnf/cnf_fit.h"
#include "cvnode/errors.h"
#include "data/atomic_file.h"

namespace cvnode::app {

namespace fs = std::filesystem;

namespace {

std::vector<std::string> plot_run(const TrainedCnf& t, const std::string& out, const std::string& metrics_csv) {
  const CnfData d = load_cnf_data(t.config);
  const Flow flow = t.flow();
  FlowPlotInput in{flow};
  in.target = d.density.get();
  in.data = d.to_data(d.test.rows() >= 500 ? d.test : d.train);
  in.shift = t.mean;
  in.scale = t.std;
  in.title = t.model->describe();
  in.entropy = d.entropy.value;
  in.metrics_csv = metrics_csv;
  const auto names = CnfEpoch::names();
  const auto col = [&](const char* n) {
    return static_cast<int>(std::find(names.begin(), names.end(), n) - names.begin()) + 1;
  };
  in.train_column = col("train_nll");
  in.val_column = col("val_nll");
  in.nfe_forward_column = col("nfe_forward");
  in.nfe_backward_column = col("nfe_backward");
  in.grid = t.config.plot_grid;
  in.flow_grid = t.config.plot_flow_grid;
  in.samples = t.config.plot_samples;
  in.seed = t.config.base.train.run.seed;
  return make_flow_plots(in, out);
}

void write_points_csv(const std::string& path, const Matrix& X, const Vector& logp) {
  // Atomic, every write checked (a full disk is an error naming the file).
  io::AtomicOutput out(path);
  std::ostream& f = out.stream();
  f.precision(17);
  for (Eigen::Index j = 0; j < X.cols(); ++j) f << "x" << j + 1 << ",";
  f << "log_density\n";
  for (Eigen::Index i = 0; i < X.rows(); ++i) {
    for (Eigen::Index j = 0; j < X.cols(); ++j) f << X(i, j) << ",";
    f << logp[i] << "\n";
  }
  out.commit();
}

struct SampleArgs {
  std::string checkpoint, out;
  int n = 1000;
  std::uint64_t seed = 0;
  std::vector<std::string> overrides;
};

struct DensityArgs {
  std::string checkpoint, data, split = "test", out;
  std::vector<std::string> overrides;
};

}  // namespace

void run_cnf_train(const CnfTrainArgs& a) {
  CnfFitConfig cfg;
  if (!a.config.empty()) cfg = CnfFitConfig::load(a.config, a.overrides);
  else if (!a.resume.empty())
    cfg = CnfFitConfig::parse(Checkpoint::read(a.resume).config, a.resume + " (stored configuration)", a.overrides);
  else throw OptionsError("cnf train: give --config FILE (or --resume CHECKPOINT)");
  CnfFitOptions o;
  o.out_dir = a.out;
  o.resume = a.resume;
  o.stop_after_epoch = a.stop_after;
  o.quiet = a.quiet;
  const CnfFitResult r = run_cnf_fit(cfg, o);
  std::cout.precision(5);
  std::cout << "cnf: " << r.epochs << " epochs, " << r.steps << " steps, best validation NLL " << r.best_val_nll
            << " nats at epoch " << r.best_epoch << ", " << r.seconds << " s\n";
  if (r.test.log_density.size() > 0) {
    std::cout << "cnf: test NLL " << r.test.nll << " nats (" << r.test.nll_per_dim << " per dimension, "
              << r.test.log_density.size() << " points)";
    if (std::isfinite(r.entropy.value))
      std::cout << "; true entropy " << r.entropy.value << " +- " << r.entropy.standard_error << ", gap "
                << (r.test.nll - r.entropy.value) / r.dim << " nats per dimension";
    std::cout << "\n";
  }
  const std::string best = (fs::path(a.out) / "best.h5").string();
  std::cout << "cnf: checkpoints " << (fs::path(a.out) / "latest.h5").string() << " and " << best << ", metrics "
            << (fs::path(a.out) / "metrics.csv").string() << "\n";
  if (!a.no_plots && a.stop_after == 0)
    for (const auto& png : plot_run(load_trained_cnf(best), a.out, (fs::path(a.out) / "metrics.csv").string()))
      std::cout << "cnf: figure " << png << "\n";
}

void add_cnf(CLI::App& app) {
  CLI::App* cnf = app.add_subcommand("cnf", "Continuous normalizing flows: train, sample, density, plot");
  cnf->require_subcommand(1);

  auto t = std::make_shared<CnfTrainArgs>();
  CLI::App* tc = cnf->add_subcommand("train", "Train a flow by maximum likelihood (TOML configuration with [cnf])");
  tc->add_option("--config,-c", t->config, "Configuration file (see data/cnf_moons.toml)");
  tc->add_option("--out,-o", t->out, "Output directory (checkpoints, metrics, figures)")->required();
  tc->add_option("--set", t->overrides, "Override a key: --set cnf.trace=hutchinson (repeatable)");
  tc->add_option("--resume", t->resume, "Continue from latest.h5 (its stored configuration unless --config)");
  tc->add_option("--stop-after-epoch", t->stop_after, "Stop after this epoch as if interrupted");
  tc->add_flag("--quiet,-q", t->quiet, "No progress lines");
  tc->add_flag("--no-plots", t->no_plots, "Do not draw the figures at the end");
  tc->callback([t] { run_cnf_train(*t); });

  auto s = std::make_shared<SampleArgs>();
  CLI::App* sc = cnf->add_subcommand("sample", "Samples of a trained flow with their log-densities (CSV)");
  sc->add_option("--checkpoint", s->checkpoint, "best.h5 or latest.h5 of a flow")->required();
  sc->add_option("--n", s->n, "Number of samples")->capture_default_str()->check(CLI::PositiveNumber);
  sc->add_option("--seed", s->seed, "Seed of the base draws")->capture_default_str();
  sc->add_option("--out,-o", s->out, "Output CSV: x1..xD,log_density")->required();
  sc->add_option("--set", s->overrides, "Override a stored key, e.g. solver.rtol=1e-7");
  sc->callback([s] {
    const TrainedCnf t = load_trained_cnf(s->checkpoint, s->overrides);
    const FlowPoints p = t.sample(s->n, s->seed);
    write_points_csv(s->out, p.points, p.log_density);
    std::cout << "cnf: " << s->n << " samples to " << s->out << " (" << p.nfe << " NFE)\n";
  });

  auto d = std::make_shared<DensityArgs>();
  CLI::App* dc = cnf->add_subcommand("density", "Log-density of points under a trained flow; held-out NLL");
  dc->add_option("--checkpoint", d->checkpoint, "best.h5 or latest.h5 of a flow")->required();
  dc->add_option("--data", d->data, "Dataset of points (default: the fit's own, split --split)");
  dc->add_option("--split", d->split, "With the fit's data: train, val, test or all")
      ->capture_default_str()->check(CLI::IsMember({"train", "val", "test", "all"}));
  dc->add_option("--out,-o", d->out, "Write x1..xD,log_density per point (CSV)");
  dc->add_option("--set", d->overrides, "Override a stored key, e.g. solver.rtol=1e-7");
  dc->callback([d] {
    std::vector<std::string> ov = d->overrides;
    if (!d->data.empty()) {
      ov.push_back("data.file=\"" + d->data + "\"");
      if (d->split == "test") d->split = "all";  // a file of its own: every point
    }
    const TrainedCnf t = load_trained_cnf(d->checkpoint, ov);
    CnfFitConfig c = t.config;
    if (d->split == "all") c.base.data.train_fraction = 1, c.base.data.val_fraction = 0;
    // The points in data units, whatever normalisation the data load computes for its split.
    const CnfData data = load_cnf_data(c);
    const Matrix X = data.to_data(d->split == "val" ? data.val : d->split == "test" ? data.test : data.train);
    if (X.rows() == 0) throw DataError(c.base.data.file + ": no points in split " + d->split);
    const Vector logp = t.log_density(X);
    std::cout.precision(6);
    std::cout << "cnf: NLL " << -logp.mean() << " nats (" << -logp.mean() / X.cols() << " per dimension) over "
              << X.rows() << " points of " << c.base.data.file;
    if (std::isfinite(data.entropy.value))
      std::cout << "; true entropy " << data.entropy.value << " +- " << data.entropy.standard_error << ", gap "
                << (-logp.mean() - data.entropy.value) / X.cols() << " nats per dimension";
    std::cout << "\n";
    if (!d->out.empty()) write_points_csv(d->out, X, logp);
  });

  auto p = std::make_shared<std::pair<std::string, std::string>>();
  CLI::App* pc = cnf->add_subcommand("plot", "The figures of a trained flow (density.png, flow.png, loss.png, nfe.png)");
  pc->add_option("--checkpoint", p->first, "best.h5 of a flow (metrics.csv beside it)")->required();
  pc->add_option("--out,-o", p->second, "Output directory")->required();
  pc->callback([p] {
    const std::string metrics = (fs::path(p->first).parent_path() / "metrics.csv").string();
    for (const auto& png : plot_run(load_trained_cnf(p->first), p->second, metrics)) std::cout << "cnf: figure " << png << "\n";
  });
}

}  // namespace cvnode::app

// The latent models' pieces of the `cvnode` commands: `cvnode data spirals` (the paper's
// bidirectional spirals) and `cvnode latent train|eval|predict` (model.kind = latent_ode or
// rnn_baseline). Option parsing, printing and the gnuplot figure only; the work is in the library.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "data/atomic_file.h"
#include "cvnode/checkpoint.h"
#include "cvnode/errors.h"
#include "cvnode/latent.h"
#include "models/latent/latent_fit.h"

namespace cvnode::app {

namespace fs = std::filesystem;

namespace {

void add_window(CLI::App* c, LatentWindow& w) {
  c->add_option("--until", w.until, "Condition on observations at times <= this (default: the file's window_end, "
                                    "e.g. of `cvnode data spirals`, else the whole series)");
  c->add_option("--fraction", w.fraction, "Condition on this first fraction of each series' span instead");
}

void add_choice(CLI::App* c, LatentSeriesChoice& ch) {
  c->add_option("--split", ch.split, "Series of the model's dataset: train, val, test or all")->capture_default_str();
  c->add_option("--data", ch.data_file, "Use every series of this file instead (e.g. series the model never saw)");
  c->add_option("--series", ch.ids, "Only these series ids");
  c->add_option("--max-series", ch.max_series, "Use at most this many series (0 = all)");
}

void add_posterior(CLI::App* c, LatentPosterior& p) {
  c->add_option("--posterior", p.method,
                "How z0 is drawn: encoder (its q(z0|x)) or importance (the model's posterior, importance-resampled "
                "from q widened by --proposal-scale)")
      ->capture_default_str();
  c->add_option("--proposal-scale", p.proposal_scale, "importance: widen q's standard deviations by this factor")
      ->capture_default_str();
  c->add_option("--proposals", p.proposals, "importance: draws weighted per series (0: 10 per sample)")
      ->capture_default_str();
}

std::string gp_quote(const std::string& s) {
  std::string o = "'";
  for (char c : s) o += (c == '\'') ? std::string("''") : std::string(1, c);
  return o + "'";
}

// Rows "time value..." with NaN for what is not to be drawn.
void write_rows(std::ostream& f, const Vector& t, const Matrix& v, const Matrix* keep, bool want) {
  for (Eigen::Index k = 0; k < t.size(); ++k) {
    f << t[k];
    for (Eigen::Index c = 0; c < v.cols(); ++c) {
      const bool ok = !keep || ((*keep)(k, c) != 0) == want;
      f << " " << (ok && std::isfinite(v(k, c)) ? v(k, c) : NAN);
    }
    f << "\n";
  }
}

// One PNG per series: each channel against time (band between the outer quantiles, the mean,
// posterior samples thin, points seen and held back); with two channels a second panel draws
// the curve in the plane (the spiral figure).
void plot(const std::vector<LatentPrediction>& pred, const std::vector<std::string>& names, const std::string& dir,
          int max_samples) {
  fs::create_directories(dir);
  const bool cairo = std::system("gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1") == 0;
  const std::string term = cairo ? "pngcairo noenhanced font 'sans,10'" : "png noenhanced";
  const std::string gp_path = (fs::path(dir) / "bands.gp").string();
  std::ofstream gp(gp_path);
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};
  for (std::size_t s = 0; s < pred.size(); ++s) {
    const LatentPrediction& p = pred[s];
    if (!p.error.empty() || p.quantiles.empty()) continue;
    const int C = static_cast<int>(p.mean.cols());
    const std::string base = (fs::path(dir) / p.id).string();
    {
      std::ofstream f(base + ".dat");
      f.precision(8);
      // Index 0: mean, lower, upper per channel; 1: seen points; 2: held back; 3..: samples.
      for (Eigen::Index k = 0; k < p.times.size(); ++k) {
        f << p.times[k];
        for (int c = 0; c < C; ++c)
          f << " " << p.mean(k, c) << " " << p.quantiles.front()(k, c) << " " << p.quantiles.back()(k, c);
        f << "\n";
      }
      f << "\n\n";
      write_rows(f, p.observed_times, p.observed, &p.seen, true);
      f << "\n\n";
      write_rows(f, p.observed_times, p.observed, &p.seen, false);
      for (int m = 0; m < std::min<int>(max_samples, static_cast<int>(p.samples.size())); ++m) {
        f << "\n\n";
        write_rows(f, p.times, p.samples[m], nullptr, true);
      }
      for (int m = 0; m < std::min<int>(max_samples, static_cast<int>(p.latent.size())); ++m) {
        f << "\n\n";
        write_rows(f, p.times, p.latent[m], nullptr, true);
      }
    }
    const std::string dat = gp_quote(base + ".dat");
    const bool plane = C == 2;
    const int S = std::min<int>(max_samples, static_cast<int>(p.samples.size()));
    const int L = std::min<int>(max_samples, static_cast<int>(p.latent.size()));
    const int panels = 1 + plane + (L > 0);
    gp << "set terminal " << term << " size " << 600 * panels << ",450\n";
    gp << "set output " << gp_quote(base + ".png") << "\n";
    gp << "set multiplot layout 1," << panels << " title "
       << gp_quote("series " + p.id + ": conditioned on t <= " + std::to_string(p.window_end) +
                   " (filled points); band " + "between the outer quantiles") << "\n";
    gp << "set key outside bottom center horizontal\nset xlabel 't'\nunset arrow\n";
    gp << "set arrow from " << p.window_end << ", graph 0 to " << p.window_end << ", graph 1 nohead dt 2 lc rgb 'gray40'\n";
    gp << "plot ";
    for (int c = 0; c < C; ++c) {
      const std::string col = colors[c % 6], n = c < static_cast<int>(names.size()) ? names[c] : "y" + std::to_string(c);
      gp << (c ? ", " : "") << dat << " index 0 using 1:" << 3 * c + 3 << ":" << 3 * c + 4
         << " with filledcurves fs transparent solid 0.2 lc rgb '" << col << "' title " << gp_quote(n + " band") << ", "
         << dat << " index 0 using 1:" << 3 * c + 2 << " with lines lw 2 lc rgb '" << col << "' title "
         << gp_quote(n + " mean") << ", " << dat << " index 1 using 1:" << c + 2 << " with points pt 7 ps 0.5 lc rgb '"
         << col << "' notitle, " << dat << " index 2 using 1:" << c + 2 << " with points pt 6 ps 0.5 lc rgb '" << col
         << "' notitle";
    }
    gp << "\n";
    if (plane) {
      gp << "unset arrow\nset xlabel " << gp_quote(names.size() > 0 ? names[0] : "y0") << "\nset ylabel "
         << gp_quote(names.size() > 1 ? names[1] : "y1") << "\nplot ";
      for (int m = 0; m < S; ++m)
        gp << dat << " index " << 3 + m << " using 2:3 with lines lw 0.5 lc rgb '#a0a0a0' "
           << (m ? "notitle" : "title 'samples'") << ", ";
      gp << dat << " index 0 using 2:5 with lines lw 2 lc rgb '#1f77b4' title 'mean', " << dat
         << " index 1 using 2:3 with points pt 7 ps 0.5 lc rgb 'black' title 'seen', " << dat
         << " index 2 using 2:3 with points pt 6 ps 0.5 lc rgb '#d62728' title 'held back'\n";
      gp << "unset ylabel\n";
    }
    if (L > 0) {
      // The latent trajectories of the posterior samples, each component against time.
      const int D = static_cast<int>(p.latent[0].cols());
      gp << "unset arrow\nset xlabel 't'\nset title 'latent trajectories z(t) of the samples'\nplot ";
      for (int m = 0; m < L; ++m)
        for (int d = 0; d < D; ++d)
          gp << (m || d ? ", " : "") << dat << " index " << 3 + S + m << " using 1:" << d + 2
             << " with lines lw 0.7 lc rgb '" << colors[d % 6] << "' "
             << (m ? "notitle" : "title " + gp_quote("z" + std::to_string(d)));
      gp << "\nunset title\n";
    }
    gp << "unset multiplot\n";
  }
  gp.close();
  const std::string cmd = "gnuplot " + gp_quote(gp_path) + " 2>" + gp_quote((fs::path(dir) / "gnuplot.log").string());
  if (std::system(cmd.c_str()) != 0) throw DataError("gnuplot failed (is gnuplot-nox installed? see " + dir + "/gnuplot.log)");
}

}  // namespace

void add_latent(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("latent", "Latent ODE and RNN baseline (model.kind = latent_ode | rnn_baseline)");
  cmd->require_subcommand(1);

  struct TrainArgs {
    std::string config;
    std::vector<std::string> overrides;
    LatentFitOptions fit;
  };
  auto t = std::make_shared<TrainArgs>();
  CLI::App* tr = cmd->add_subcommand("train", "Train on a dataset's conditioning windows; checkpoints in --out");
  tr->add_option("--config,-c", t->config, "Configuration (TOML; model.kind, [encoder], [decoder])")->required();
  tr->add_option("--set", t->overrides, "Override a key: --set model.latent_dim=4 (repeatable)");
  tr->add_option("--out,-o", t->fit.out_dir, "Output directory")->required();
  tr->add_option("--resume", t->fit.resume, "Continue from this latest.h5");
  tr->add_option("--stop-after-epoch", t->fit.stop_after_epoch, "Stop after this epoch as if interrupted");
  tr->add_flag("--quiet,-q", t->fit.quiet, "No progress lines");
  add_window(tr, t->fit.window);
  tr->callback([t] {
    const Config cfg = Config::load(t->config, t->overrides);
    const LatentFitResult r = run_latent_fit(cfg, t->fit);
    std::cout << "latent train: " << r.epochs << " epochs, " << r.steps << " steps, best validation loss "
              << r.best_val_loss << " at epoch " << r.best_epoch << ", " << r.seconds << " s; checkpoints "
              << (fs::path(t->fit.out_dir) / "best.h5").string() << ", "
              << (fs::path(t->fit.out_dir) / "latest.h5").string() << "\n";
  });

  auto e = std::make_shared<std::pair<std::string, LatentEvalOptions>>();
  CLI::App* ev = cmd->add_subcommand(
      "eval", "Interpolation and extrapolation RMSE (data units) and band coverage of a split, as one JSON line");
  ev->add_option("checkpoint", e->first, "best.h5 or latest.h5 of `cvnode latent train`")->required();
  add_choice(ev, e->second.series);
  add_window(ev, e->second.window);
  ev->add_option("--samples", e->second.samples, "Posterior samples per series")->capture_default_str();
  ev->add_option("--level", e->second.level, "Central predictive band whose coverage is reported")->capture_default_str();
  ev->add_option("--seed", e->second.seed, "Seed of the posterior samples")->capture_default_str();
  add_posterior(ev, e->second.posterior);
  ev->add_option("--threads", e->second.threads, "Threads (0: the run's run.threads)");
  ev->callback([e] { std::cout << latent_evaluate(e->first, e->second).to_json() << "\n"; });

  struct PredictArgs {
    std::string checkpoint, out, plot_dir;
    int plot_samples = 20;
    LatentPredictOptions o;
  };
  auto p = std::make_shared<PredictArgs>();
  CLI::App* pr = cmd->add_subcommand(
      "predict", "Condition on each series' observed part; mean and quantile bands from posterior samples (CSV)");
  pr->add_option("checkpoint", p->checkpoint, "best.h5 or latest.h5 of `cvnode latent train`")->required();
  add_choice(pr, p->o.series);
  add_window(pr, p->o.window);
  pr->add_option("--samples", p->o.samples, "Posterior samples (0: the trajectory of the posterior mean)")->capture_default_str();
  pr->add_option("--levels", p->o.levels, "Quantile levels")->capture_default_str()->delimiter(',');
  pr->add_option("--grid", p->o.grid, "Equally spaced query times per series (0: its own times)")->capture_default_str();
  pr->add_option("--extend", p->o.extend, "With --grid: continue this fraction of the span past the last time")
      ->capture_default_str();
  pr->add_option("--seed", p->o.seed, "Seed of the posterior samples")->capture_default_str();
  add_posterior(pr, p->o.posterior);
  pr->add_option("--threads", p->o.threads, "Threads (0: the run's run.threads)");
  pr->add_option("--out,-o", p->out, "CSV file: id,time,channel,mean,q<level>... (default: stdout)");
  pr->add_option("--plot", p->plot_dir, "Also draw one PNG per series into this folder (gnuplot)");
  pr->add_option("--plot-samples", p->plot_samples, "Posterior samples drawn per figure")->capture_default_str();
  pr->callback([p] {
    std::vector<std::string> names;
    const std::vector<LatentPrediction> pred = latent_predict(p->checkpoint, p->o, &names);
    std::ostringstream o;
    o.precision(10);
    o << "id,time,channel,mean";
    for (double l : p->o.levels) o << ",q" << l;
    o << "\n";
    int failed = 0;
    for (const auto& s : pred) {
      if (!s.error.empty()) {
        std::cerr << "latent predict: series '" << s.id << "' failed: " << s.error << "\n";
        ++failed;
        continue;
      }
      for (Eigen::Index k = 0; k < s.times.size(); ++k)
        for (Eigen::Index c = 0; c < s.mean.cols(); ++c) {
          o << s.id << "," << s.times[k] << "," << (c < static_cast<Eigen::Index>(names.size()) ? names[c] : "") << ","
            << s.mean(k, c);
          for (const auto& q : s.quantiles) o << "," << q(k, c);
          o << "\n";
        }
    }
    if (p->out.empty()) {
      std::cout << o.str();
    } else {
      io::write_text(p->out, o.str());  // atomic, every write checked
      std::cerr << "latent predict: " << pred.size() - failed << " series into " << p->out << "\n";
    }
    if (!p->plot_dir.empty()) {
      plot(pred, names, p->plot_dir, p->plot_samples);
      std::cerr << "latent predict: figures in " << p->plot_dir << "\n";
    }
    if (failed > 0) throw DataError(std::to_string(failed) + " series could not be predicted");
  });
}

void add_data_spirals(CLI::App& data) {
  auto o = std::make_shared<std::pair<SpiralOptions, std::string>>();
  CLI::App* sc = data.add_subcommand(
      "spirals", "Bidirectional 2-d spirals of the latent ODE experiment (Chen et al. 2018, section 5.1)");
  SpiralOptions& s = o->first;
  sc->add_option("--spirals", s.spirals, "Number of spirals")->capture_default_str();
  sc->add_option("--observed", s.observed, "Points kept of each observation window (irregular times)")->capture_default_str();
  sc->add_option("--window", s.window, "Equally spaced points of the observation window")->capture_default_str();
  sc->add_option("--extrapolate", s.extrapolate, "Target points after the window (<= window)")->capture_default_str();
  sc->add_option("--noise", s.noise, "Gaussian noise std of the observed points")->capture_default_str();
  sc->add_flag("--noisy-targets", s.noisy_targets, "Targets with the same noise (default: the clean curve)");
  sc->add_option("--missing", s.missing, "Probability that a channel of an observed point is missing (masks)")
      ->capture_default_str();
  sc->add_option("--total", s.total, "Points of each spiral's whole curve")->capture_default_str();
  sc->add_option("--stop", s.stop, "Last angle of the curve")->capture_default_str();
  sc->add_option("--a", s.a, "Spiral parameter a of r = a + b theta")->capture_default_str();
  sc->add_option("--b", s.b, "Spiral parameter b")->capture_default_str();
  sc->add_option("--seed", s.seed, "Random seed")->capture_default_str();
  sc->add_option("--out,-o", o->second, "Output HDF5 file")->required();
  sc->callback([o] {
    const Dataset d = generate_spirals(o->first);
    d.write(o->second);
    const double dt = o->first.stop / (o->first.total - 1);
    std::cout << o->second << ": " << d.size() << " spirals, " << d.observations()
              << " observation times; window ends at t = " << (o->first.window - 1) * dt << "\n";
  });
}

}  // namespace cvnode::app

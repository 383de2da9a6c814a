// `cvnode plot RUN_DIR` (or a checkpoint): PNG figures with gnuplot - fitted trajectories against
// the data for a few validation series, continued past their last observation; training and
// validation loss; forward and backward NFE per series per epoch.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "commands.h"
#include "cvnode/errors.h"
#include "app/fit.h"
#include "data/atomic_file.h"

namespace cvnode::app {

namespace fs = std::filesystem;

namespace {

void write_matrix(const std::string& path, const Vector& t, const Matrix& v, const Matrix* mask) {
  io::AtomicOutput out(path);
  std::ostream& f = out.stream();
  f.precision(10);
  for (Eigen::Index k = 0; k < t.size(); ++k) {
    f << t[k];
    for (Eigen::Index i = 0; i < v.cols(); ++i) {
      // gnuplot skips "NaN" points: missing observations stay missing in the figure.
      const bool seen = !mask || mask->size() == 0 || (*mask)(k, i) != 0;
      if (seen) f << " " << v(k, i);
      else f << " NaN";
    }
    f << "\n";
  }
  out.commit();
}

// A PNG is complete when it ends with its IEND chunk (gnuplot does not report a failed write).
bool complete_png(const std::string& path) {
  static const unsigned char kEnd[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f || f.tellg() < 20) return false;
  f.seekg(-12, std::ios::end);
  unsigned char tail[12];
  return f.read(reinterpret_cast<char*>(tail), 12) && std::equal(tail, tail + 12, kEnd);
}

std::string gp_quote(const std::string& s) {
  std::string o = "'";
  for (char c : s) o += (c == '\'') ? std::string("''") : std::string(1, c);
  return o + "'";
}

}  // namespace

std::vector<std::string> make_plots(const std::string& checkpoint, const std::string& out_dir) {
  const TrainedModel tm = load_trained(checkpoint);
  const FitData data = load_model_data(tm);
  std::error_code ec;
  fs::create_directories(fs::path(out_dir) / "plot_data", ec);
  if (ec) throw DataError((fs::path(out_dir) / "plot_data").string() + ": cannot create: " + ec.message());
  const std::string dir = (fs::path(out_dir) / "plot_data").string();

  // A few validation series (training ones if there is no validation split).
  const bool use_val = !data.val.empty();
  const auto& series = use_val ? data.val : data.train;
  const auto& ids = use_val ? data.val_ids : data.train_ids;
  const int count = std::min<int>(tm.config.plot.series, static_cast<int>(series.size()));
  std::vector<Trajectory> sel(series.begin(), series.begin() + count);
  std::vector<std::string> sel_ids(ids.begin(), ids.begin() + count);
  std::vector<Vector> grids;
  for (const auto& tr : sel) {
    const bool from_first = tm.config.model.initial_state == InitialState::FirstObservation ||
                            tr.z0.size() == 0;
    const double a = from_first ? tr.times[0] : tr.t0, b = tr.times[tr.times.size() - 1];
    if (tm.config.plot.log_time) {
      // A logarithmic grid from the first positive time (t0 = 0 has no place on a log axis).
      double lo = a > 0 ? a : 0;
      for (Eigen::Index k = 0; k < tr.times.size() && !(lo > 0); ++k)
        if (tr.times[k] > 0) lo = tr.times[k];
      if (!(lo > 0) || !(b > lo))
        throw DataError("plot.log_time: series has no positive observation times to draw on a log axis");
      const double hi = std::exp(std::log(b) + tm.config.plot.extrapolate * (std::log(b) - std::log(lo)));
      Vector g = Vector::LinSpaced(tm.config.plot.points, std::log(lo), std::log(hi)).array().exp();
      g[0] = lo;
      grids.push_back(g);
      continue;
    }
    const double end = b + tm.config.plot.extrapolate * (b - a);
    grids.push_back(Vector::LinSpaced(tm.config.plot.points, a, end));
  }
  // Validation forecast windows start from the state fitted to their past (data.forecast_history).
  std::vector<int> history;
  if (use_val) history.assign(data.val_history.begin(), data.val_history.begin() + std::min<std::size_t>(count, data.val_history.size()));
  const std::vector<Prediction> pred =
      predict(tm, sel, sel_ids, grids, tm.config.train.solver, tm.config.train.run.threads, history);

  const int C = data.channels;
  io::AtomicOutput script((fs::path(dir) / "plots.gp").string());
  std::ostream& gp = script.stream();
  // gnuplot draws into temporary names; each PNG is checked and renamed into place afterwards.
  const std::string suffix = ".tmp." + std::to_string(::getpid()) + ".png";
  const bool cairo = std::system("gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1") == 0;
  const std::string term = cairo ? "pngcairo noenhanced font 'sans,10'" : "png noenhanced";
  std::vector<std::string> pngs;

  // Trajectories: one panel per series, lines = model, points = data, dashed line = last
  // observation (everything right of it is extrapolation).
  const std::string traj_png = (fs::path(out_dir) / "trajectories.png").string();
  const int cols = count > 1 ? 2 : 1, rows = std::max(1, (count + 1) / 2);
  gp << "set terminal " << term << " size " << 600 * cols << "," << 380 * rows << "\n";
  gp << "set output " << gp_quote(traj_png + suffix) << "\n";
  gp << "set multiplot layout " << rows << "," << cols << " title 'fitted trajectories (lines) vs data (points); dashed: last observation, extrapolation to the right'\n";
  gp << "set key outside right top\nset xlabel 't'\n";
  if (tm.config.plot.log_time) {
    // Species spanning orders of magnitude: log time, and log concentrations when all positive.
    bool positive = true;
    for (const auto& tr : sel) {
      const Matrix y = to_data_units(tr.values, tm.normalization, tm.transforms);
      for (Eigen::Index k = 0; k < y.rows(); ++k)
        for (Eigen::Index i = 0; i < y.cols(); ++i)
          if ((tr.mask.size() == 0 || tr.mask(k, i) != 0) && !(y(k, i) > 0)) positive = false;
    }
    gp << "set logscale x\nset format x '%.0e'\nset xlabel 't (log scale)'\n";
    if (positive) gp << "set logscale y\nset format y '%.0e'\n";
  }
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};
  for (int s = 0; s < count; ++s) {
    const std::string obs = dir + "/obs_" + std::to_string(s) + ".dat";
    const std::string prd = dir + "/pred_" + std::to_string(s) + ".dat";
    const Matrix y = to_data_units(sel[s].values, tm.normalization, tm.transforms);
    write_matrix(obs, sel[s].times, y, &sel[s].mask);
    if (!pred[s].error.empty()) {
      std::cerr << "plot: series '" << sel_ids[s] << "' could not be predicted: " << pred[s].error << "\n";
      continue;
    }
    write_matrix(prd, pred[s].times, pred[s].values, nullptr);
    const double last = sel[s].times[sel[s].times.size() - 1];
    gp << "unset arrow\nset arrow from " << last << ", graph 0 to " << last
       << ", graph 1 nohead dt 2 lc rgb 'gray40'\n";
    gp << "set title " << gp_quote("series " + sel_ids[s] + (use_val ? " (validation)" : " (training)")) << "\n";
    gp << "plot ";
    for (int i = 0; i < C; ++i) {
      const std::string name = i < static_cast<int>(data.channel_names.size()) ? data.channel_names[i] : "z" + std::to_string(i);
      const char* col = colors[i % 6];
      gp << (i ? ", " : "") << gp_quote(prd) << " using 1:" << i + 2 << " with lines lw 2 lc rgb '" << col
         << "' title " << gp_quote(name + " model") << ", " << gp_quote(obs) << " using 1:" << i + 2
         << " with points pt 7 ps 0.6 lc rgb '" << col << "' title " << gp_quote(name + " data");
    }
    gp << "\n";
  }
  gp << "unset multiplot\nunset arrow\nunset title\nunset logscale\nset format x '% h'\nset format y '% h'\nset xlabel 't'\n";
  pngs.push_back(traj_png);

  const std::string metrics = (fs::path(checkpoint).parent_path() / "metrics.csv").string();
  if (fs::exists(metrics)) {
    const std::string loss_png = (fs::path(out_dir) / "loss.png").string();
    const std::string nfe_png = (fs::path(out_dir) / "nfe.png").string();
    gp << "set datafile separator ','\nset key autotitle columnhead\n";
    gp << "set terminal " << term << " size 800,500\nset output " << gp_quote(loss_png + suffix) << "\n";
    gp << "set title 'loss per epoch'\nset xlabel 'epoch'\nset ylabel 'loss'\nset logscale y\nset key inside top right\n";
    gp << "plot " << gp_quote(metrics) << " using 1:3 with lines lw 2 title 'train', " << gp_quote(metrics)
       << " using 1:4 with linespoints pt 7 ps 0.5 lw 2 title 'validation'\n";
    gp << "unset logscale y\nset output " << gp_quote(nfe_png + suffix) << "\n";
    gp << "set title 'function evaluations per series per gradient'\nset ylabel 'NFE'\nset key inside top left\n";
    gp << "plot " << gp_quote(metrics) << " using 1:6 with lines lw 2 title 'forward', " << gp_quote(metrics)
       << " using 1:7 with lines lw 2 title 'backward (adjoint)'\n";
    pngs.push_back(loss_png);
    pngs.push_back(nfe_png);
  } else {
    std::cerr << "plot: no " << metrics << ": loss and NFE figures skipped\n";
  }
  gp << "unset output\n";
  script.commit();
  const std::string cmd = "gnuplot " + gp_quote((fs::path(dir) / "plots.gp").string()) + " 2>" +
                          gp_quote((fs::path(dir) / "gnuplot.log").string());
  const bool ok = std::system(cmd.c_str()) == 0;
  std::string failed;
  for (const auto& png : pngs) {
    const std::string tmp = png + suffix;
    if (ok && complete_png(tmp)) {
      io::publish(tmp, png);
    } else {
      std::error_code ec;
      fs::remove(tmp, ec);
      failed += (failed.empty() ? "" : ", ") + png;
    }
  }
  if (!ok) throw DataError("gnuplot failed (is gnuplot-nox installed? see " + dir + "/gnuplot.log)");
  if (!failed.empty()) throw DataError(failed + ": cannot write: gnuplot left an incomplete figure (disk full?)");
  return pngs;
}

void add_plot(CLI::App& app) {
  auto run_dir = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("plot", "PNG figures of a run: trajectories, loss, NFE (gnuplot)");
  cmd->add_option("run", *run_dir, "Run directory of `cvnode fit` (or a checkpoint .h5)")->required();
  cmd->add_option("--out,-o", *out, "Where the PNGs go (default: the run directory)");
  cmd->callback([run_dir, out] {
    std::string ck = *run_dir;
    if (fs::is_directory(ck)) ck = (fs::path(ck) / (fs::exists(fs::path(ck) / "best.h5") ? "best.h5" : "latest.h5")).string();
    const std::string dest = out->empty() ? fs::path(ck).parent_path().string() : *out;
    for (const auto& p : make_plots(ck, dest.empty() ? "." : dest)) std::cout << "plot: " << p << "\n";
  });
}

}  // namespace cvnode::app

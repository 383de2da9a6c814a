// The figures of a continuous normalizing flow, drawn with gnuplot:
//   density.png  target density | data | learned density | samples of the flow (the paper's
//                Figure 6 analogue; for D > 2 the first two coordinates of data and samples)
//   flow.png     the flow over time: samples carried from the base (t = T) to the data (t = 0),
//                and for D = 2 the density of z(t) at the same times
//   loss.png, nfe.png from the run's metrics.csv (NLL per epoch against the true entropy; NFE).
// The numbers come from the library (Flow: log-densities on a grid, samples, transport); this
// file writes them out and the gnuplot script.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "commands.h"
#include "cvnode/errors.h"

namespace cvnode::app {

namespace fs = std::filesystem;

namespace {

std::string quote(const std::string& s) {
  std::string o = "'";
  for (char c : s) o += (c == '\'') ? std::string("''") : std::string(1, c);
  return o + "'";
}

void write_points(const std::string& path, const Matrix& X) {
  std::ofstream f(path);
  f.precision(7);
  for (Eigen::Index i = 0; i < X.rows(); ++i) f << X(i, 0) << " " << (X.cols() > 1 ? X(i, 1) : 0.0) << "\n";
  if (!f) throw DataError(path + ": cannot write");
}

// x y p rows with a blank line after each x, for gnuplot's `with image`.
void write_grid(const std::string& path, const Matrix& grid, const Vector& logp, int n) {
  std::ofstream f(path);
  f.precision(7);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      const Eigen::Index k = static_cast<Eigen::Index>(i) * n + j;
      f << grid(k, 0) << " " << grid(k, 1) << " " << (std::isfinite(logp[k]) ? std::exp(logp[k]) : 0.0) << "\n";
    }
    f << "\n";
  }
  if (!f) throw DataError(path + ": cannot write");
}

}  // namespace

std::vector<std::string> make_flow_plots(const FlowPlotInput& in, const std::string& out_dir) {
  const Flow& flow = in.flow;
  const int D = flow.dim();
  const fs::path dir = fs::path(out_dir) / "plot_data";
  fs::create_directories(dir);
  const auto to_data = [&](const Matrix& Y) {
    Matrix X = Y;
    if (in.scale.size()) X = (Y.array().rowwise() * in.scale.transpose().array()).rowwise() + in.shift.transpose().array();
    return X;
  };
  const auto to_model = [&](const Matrix& X) {
    Matrix Y = X;
    if (in.scale.size()) Y = (X.array().rowwise() - in.shift.transpose().array()).rowwise() / in.scale.transpose().array();
    return Y;
  };
  double log_scale = 0;  // log |det| of the map to data units
  for (Eigen::Index i = 0; i < in.scale.size(); ++i) log_scale += std::log(in.scale[i]);

  // The view: the data's range in its first two coordinates, with a margin, as a square.
  const Eigen::Vector2d lo(in.data.col(0).minCoeff(), D > 1 ? in.data.col(1).minCoeff() : -1.0);
  const Eigen::Vector2d hi(in.data.col(0).maxCoeff(), D > 1 ? in.data.col(1).maxCoeff() : 1.0);
  const Eigen::Vector2d mid = 0.5 * (lo + hi);
  const double half = 0.55 * (hi - lo).maxCoeff() + 0.2;
  const double x0 = mid[0] - half, x1 = mid[0] + half, y0 = mid[1] - half, y1 = mid[1] + half;

  const FlowPoints samples = flow.sample(in.samples, in.seed);
  write_points((dir / "samples.dat").string(), to_data(samples.points));
  write_points((dir / "data.dat").string(), in.data.topRows(std::min<Eigen::Index>(in.data.rows(), in.samples)));

  const bool cairo = std::system("gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1") == 0;
  const std::string term = cairo ? "pngcairo noenhanced font 'sans,10'" : "png noenhanced";
  std::ofstream gp(dir / "flow_plots.gp");
  gp << "set palette defined (0 '#000004', 1 '#3b0f70', 2 '#8c2981', 3 '#de4968', 4 '#fe9f6d', 5 '#fcfdbf')\n"
     << "unset colorbox\nset size square\nset xrange [" << x0 << ":" << x1 << "]\nset yrange [" << y0 << ":" << y1
     << "]\nset tics scale 0.5 font ',8'\nunset key\n";
  std::vector<std::string> pngs;

  // ---- density.png ----
  const int n = in.grid;
  Matrix grid(static_cast<Eigen::Index>(n) * n, 2);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      grid.row(static_cast<Eigen::Index>(i) * n + j) << x0 + (i + 0.5) * (x1 - x0) / n, y0 + (j + 0.5) * (y1 - y0) / n;
  const std::string density_png = (fs::path(out_dir) / "density.png").string();
  const std::string pts = "with points pt 7 ps 0.12 lc rgb '#1f3b73'";
  if (D == 2) {
    const Vector learned = flow.log_density(to_model(grid)).log_density.array() - log_scale;
    write_grid((dir / "learned.dat").string(), grid, learned, n);
    Vector target(grid.rows());
    if (in.target)
      for (Eigen::Index k = 0; k < grid.rows(); ++k) target[k] = in.target->log_density(grid.row(k).transpose());
    if (in.target) write_grid((dir / "target.dat").string(), grid, target, n);
    gp << "set terminal " << term << " size 1600,430\nset output " << quote(density_png) << "\n"
       << "set multiplot layout 1,4 title " << quote(in.title) << "\n";
    if (in.target)
      gp << "set title 'target density'\nplot " << quote((dir / "target.dat").string()) << " using 1:2:3 with image\n";
    else
      gp << "set title 'target density (unknown)'\nplot 1/0\n";
    gp << "set title 'data'\nplot " << quote((dir / "data.dat").string()) << " " << pts << "\n";
    gp << "set title 'learned density'\nplot " << quote((dir / "learned.dat").string()) << " using 1:2:3 with image\n";
    gp << "set title 'samples of the flow'\nplot " << quote((dir / "samples.dat").string()) << " " << pts << "\n";
    gp << "unset multiplot\n";
  } else {
    gp << "set terminal " << term << " size 900,450\nset output " << quote(density_png) << "\n"
       << "set multiplot layout 1,2 title " << quote(in.title + " (first two coordinates)") << "\n"
       << "set title 'data'\nplot " << quote((dir / "data.dat").string()) << " " << pts << "\n"
       << "set title 'samples of the flow'\nplot " << quote((dir / "samples.dat").string()) << " " << pts << "\n"
       << "unset multiplot\n";
  }
  pngs.push_back(density_png);

  // ---- flow.png: snapshots from the base (t = T) to the data (t = 0) ----
  const double T = flow.settings().end_time;
  const int snaps = 5;
  Vector times(snaps);
  for (int k = 0; k < snaps; ++k) times[k] = T * k / (snaps - 1);
  const Matrix base = samples.base.topRows(std::min<Eigen::Index>(samples.base.rows(), 2000));
  const std::vector<Matrix> moved = flow.transport(base, times, true);
  const std::string flow_png = (fs::path(out_dir) / "flow.png").string();
  const bool densities = D == 2 && in.flow_grid > 0;
  gp << "set terminal " << term << " size 1600," << (densities ? 700 : 380) << "\nset output " << quote(flow_png)
     << "\nset multiplot layout " << (densities ? 2 : 1) << "," << snaps
     << " title 'the flow over time: samples (and the density of z(t)) from the base at t = T to the data at t = 0'\n";
  for (int k = snaps - 1; k >= 0; --k) {
    const std::string f = (dir / ("flow_" + std::to_string(k) + ".dat")).string();
    write_points(f, to_data(moved[k]));
    gp << "set title 't = " << times[k] << "'\nplot " << quote(f) << " " << pts << "\n";
  }
  if (densities) {
    const int m = in.flow_grid;
    Matrix g(static_cast<Eigen::Index>(m) * m, 2);
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < m; ++j)
        g.row(static_cast<Eigen::Index>(i) * m + j) << x0 + (i + 0.5) * (x1 - x0) / m, y0 + (j + 0.5) * (y1 - y0) / m;
    for (int k = snaps - 1; k >= 0; --k) {
      const std::string f = (dir / ("flow_density_" + std::to_string(k) + ".dat")).string();
      write_grid(f, g, flow.log_density(to_model(g), times[k]).log_density.array() - log_scale, m);
      gp << "set title 'density of z(" << times[k] << ")'\nplot " << quote(f) << " using 1:2:3 with image\n";
    }
  }
  gp << "unset multiplot\n";
  pngs.push_back(flow_png);

  // ---- loss.png and nfe.png from the metrics ----
  if (!in.metrics_csv.empty() && fs::exists(in.metrics_csv)) {
    const std::string loss_png = (fs::path(out_dir) / "loss.png").string();
    const std::string nfe_png = (fs::path(out_dir) / "nfe.png").string();
    gp << "set autoscale\nset size nosquare\nset key\nset tics scale 1 font ',10'\n"
       << "set datafile separator ','\nset key autotitle columnhead\nset key inside top right\n"
       << "set terminal " << term << " size 800,500\nset output " << quote(loss_png) << "\n"
       << "set title 'negative log-likelihood per sample (nats)'\nset xlabel 'epoch'\nset ylabel 'NLL'\n"
       << "plot " << quote(in.metrics_csv) << " using 1:" << in.train_column << " with lines lw 2 title 'train', "
       << quote(in.metrics_csv) << " using 1:" << in.val_column
       << " with linespoints pt 7 ps 0.5 lw 2 title 'validation'";
    if (std::isfinite(in.entropy)) gp << ", " << in.entropy << " with lines dt 2 lc rgb 'black' title 'true entropy'";
    gp << "\nset output " << quote(nfe_png) << "\nset title 'function evaluations per solve'\nset ylabel 'NFE'\n"
       << "set key inside top left\nplot " << quote(in.metrics_csv) << " using 1:" << in.nfe_forward_column
       << " with lines lw 2 title 'forward', " << quote(in.metrics_csv) << " using 1:" << in.nfe_backward_column
       << " with lines lw 2 title 'backward'\n";
    pngs.push_back(loss_png);
    pngs.push_back(nfe_png);
  }
  gp.close();
  const std::string cmd =
      "gnuplot " + quote((dir / "flow_plots.gp").string()) + " 2>" + quote((dir / "gnuplot.log").string());
  if (std::system(cmd.c_str()) != 0)
    throw DataError("gnuplot failed (is gnuplot-nox installed? see " + (dir / "gnuplot.log").string() + ")");
  return pngs;
}

}  // namespace cvnode::app

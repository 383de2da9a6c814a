// `cvnode predict CHECKPOINT`: trajectories of a trained model at the series' own times or on a
// grid, at any tolerance, into CSV or HDF5 (the dataset format), with the NFE each solve used.
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "cvnode/dataset.h"
#include "cvnode/errors.h"
#include "cvnode/fit.h"

namespace cvnode::app {

namespace {

struct PredictArgs {
  std::string checkpoint, split = "val", times, out;
  std::vector<std::string> overrides;
  double rtol = 0, atol = 0, extend = 0;
  int max_series = 0, threads = 0;
};

void run(const PredictArgs& a) {
  const TrainedModel tm = load_trained(a.checkpoint, a.overrides);
  const FitData data = load_model_data(tm);
  std::vector<Trajectory> series;
  std::vector<std::string> ids;
  std::vector<int> history;
  split_series(data, a.split, series, ids, &history);
  if (a.max_series > 0 && static_cast<std::size_t>(a.max_series) < series.size()) {
    series.resize(a.max_series);
    ids.resize(a.max_series);
    history.resize(a.max_series);
  }
  if (series.empty()) throw DataError("predict: the '" + a.split + "' split has no series");
  SolverOptions opt = tm.config.train.solver;
  if (a.rtol > 0) opt.rtol = a.rtol;
  if (a.atol > 0) opt.atol = a.atol;
  opt.check(tm.model->state_size());

  std::vector<Vector> grids;
  for (const auto& tr : series) {
    const bool from_first = tm.config.model.initial_state == InitialState::FirstObservation ||
                            tr.z0.size() == 0;
    const double start = from_first ? tr.times[0] : tr.t0, last = tr.times[tr.times.size() - 1];
    if (!a.times.empty()) {
      double t0, t1;
      int n;
      char c1, c2;
      std::istringstream in(a.times);
      if (!(in >> t0 >> c1 >> t1 >> c2 >> n) || c1 != ':' || c2 != ':' || n < 1 || !(t1 >= t0))
        throw OptionsError("--times = '" + a.times + "' (expected START:STOP:COUNT, STOP >= START)");
      if (t0 < start)
        throw OptionsError("--times starts at " + std::to_string(t0) + ", before series '" + ids[&tr - &series[0]] +
                           "' starts at " + std::to_string(start));
      grids.push_back(n == 1 ? Vector(Vector::Constant(1, t0)) : Vector(Vector::LinSpaced(n, t0, t1)));
    } else if (a.extend > 0) {
      grids.push_back(Vector::LinSpaced(200, start, last + a.extend * (last - start)));
    } else {
      grids.push_back(tr.times);
    }
  }
  const auto t_start = std::chrono::steady_clock::now();
  const std::vector<Prediction> pred = predict(tm, series, ids, grids, opt, a.threads, history);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  long nfe = 0;
  int failed = 0;
  for (const auto& p : pred) {
    nfe += p.nfe;
    if (!p.error.empty()) {
      ++failed;
      std::cerr << "predict: series '" << p.id << "' failed: " << p.error << "\n";
    }
  }
  const bool h5 = a.out.size() > 3 && a.out.substr(a.out.size() - 3) == ".h5";
  if (h5) {
    Dataset out(data.channel_names, std::vector<std::string>(data.channels, ""));
    for (const auto& p : pred) {
      if (!p.error.empty()) continue;
      Series s;
      s.id = p.id;
      s.t0 = p.times[0];
      s.times = p.times;
      s.values = p.values;
      out.add(s);
    }
    nlohmann::json prov;
    prov["cvnode"] = "predict";
    prov["checkpoint"] = a.checkpoint;
    prov["rtol"] = opt.rtol;
    prov["atol"] = opt.atol;
    for (const auto& p : pred) prov["nfe"][p.id] = p.nfe;
    out.set_provenance(prov.dump());
    out.write(a.out);
  } else {
    std::ofstream file;
    if (!a.out.empty()) {
      file.open(a.out);
      if (!file) throw DataError(a.out + ": cannot write");
    }
    std::ostream& o = a.out.empty() ? std::cout : file;
    o.precision(12);
    o << "series,t";
    for (const auto& n : data.channel_names) o << "," << n;
    o << ",nfe\n";
    for (const auto& p : pred) {
      if (!p.error.empty()) continue;
      for (Eigen::Index k = 0; k < p.times.size(); ++k) {
        o << p.id << "," << p.times[k];
        for (Eigen::Index i = 0; i < p.values.cols(); ++i) o << "," << p.values(k, i);
        o << "," << p.nfe << "\n";
      }
    }
  }
  std::cerr << "predict: " << pred.size() - failed << " series (" << failed << " failed), rtol "
            << opt.rtol << ", atol " << opt.atol << ", NFE " << nfe << " (" << double(nfe) / pred.size()
            << " per series), " << secs << " s" << (a.out.empty() ? "" : ", written to " + a.out) << "\n";
}

}  // namespace

void add_predict(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  CLI::App* cmd = app.add_subcommand("predict", "Trajectories of a trained model (CSV or HDF5)");
  cmd->add_option("checkpoint", a->checkpoint, "Checkpoint of `cvnode fit` (best.h5 or latest.h5)")->required();
  cmd->add_option("--split", a->split, "train, val, test or all")->capture_default_str();
  cmd->add_option("--times", a->times, "START:STOP:COUNT grid (default: the series' own times)");
  cmd->add_option("--extend", a->extend, "Without --times: 200 points up to last + F * span");
  cmd->add_option("--rtol", a->rtol, "Relative tolerance (default: the run's)");
  cmd->add_option("--atol", a->atol, "Absolute tolerance (default: the run's)");
  cmd->add_option("--max-series", a->max_series, "At most this many series (0 = all)");
  cmd->add_option("--threads", a->threads, "OpenMP threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--set", a->overrides,
                  "Override a key of the stored configuration, e.g. --set data.file=OTHER.h5 --set "
                  "solver.method=bdf (repeatable; the model keys must stay as trained)");
  cmd->add_option("--out,-o", a->out, "Output: FILE.csv or FILE.h5 (default: CSV on stdout)");
  cmd->callback([a] { run(*a); });
}

}  // namespace cvnode::app

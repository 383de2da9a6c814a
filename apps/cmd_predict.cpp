// `cvnode predict CHECKPOINT`: trajectories of a trained model at the series' own times or on a
// grid, at any tolerance, into CSV or HDF5 (the dataset format), with the NFE each solve used.
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "cvnode/dataset.h"
#include "cvnode/errors.h"
#include "app/fit.h"
#include "data/atomic_file.h"
#include "data/memory_check.h"
#include "options.h"

namespace cvnode::app {

namespace {

struct PredictArgs {
  std::string checkpoint, split = "val", times, out;
  std::vector<std::string> overrides;
  double rtol = 0, atol = 0, extend = 0;
  bool rtol_given = false, atol_given = false;
  int max_series = 0, threads = 0;
  bool typical = false;
};

// START:STOP:COUNT, each part checked (finite, STOP >= START, COUNT in [1, 10^7]).
void parse_grid(const std::string& text, double* t0, double* t1, long* n) {
  auto bad = [&](const std::string& why) {
    return OptionsError("--times = '" + text + "': " + why + " (expected START:STOP:COUNT, finite START <= STOP, "
                        "COUNT an integer in [1, 10000000])");
  };
  const auto a = text.find(':'), b = a == std::string::npos ? a : text.find(':', a + 1);
  if (b == std::string::npos) throw bad("not three parts");
  const std::string p0 = text.substr(0, a), p1 = text.substr(a + 1, b - a - 1), p2 = text.substr(b + 1);
  char* end = nullptr;
  *t0 = std::strtod(p0.c_str(), &end);
  if (p0.empty() || end != p0.c_str() + p0.size() || !std::isfinite(*t0)) throw bad("START is not a finite number");
  *t1 = std::strtod(p1.c_str(), &end);
  if (p1.empty() || end != p1.c_str() + p1.size() || !std::isfinite(*t1)) throw bad("STOP is not a finite number");
  if (!(*t1 >= *t0)) throw bad("STOP is before START");
  const long long count = std::strtoll(p2.c_str(), &end, 10);
  if (p2.empty() || end != p2.c_str() + p2.size() || count < 1 || count > 10000000) throw bad("COUNT is out of range");
  *n = static_cast<long>(count);
}

void run(const PredictArgs& a) {
  io::check_not_input("predict", a.out, {a.checkpoint});
  TrainedModel tm = load_trained(a.checkpoint, a.overrides);
  tm.individual = !a.typical;
  io::check_not_input("predict", a.out, {tm.config.data.file});
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
  if (a.rtol_given) opt.rtol = a.rtol;
  if (a.atol_given) opt.atol = a.atol;
  opt.check(tm.model->state_size());

  double g0 = 0, g1 = 0;
  long gn = 200;
  if (!a.times.empty()) parse_grid(a.times, &g0, &g1, &gn);
  // The predictions (times and values of every series) before they are allocated.
  io::require_memory(8.0 * static_cast<double>(series.size()) * (a.times.empty() && a.extend == 0 ? 1 : gn) *
                         (3.0 + 2.0 * data.channels),
                     "predict: " + std::to_string(series.size()) + " series on a grid of " + std::to_string(gn) +
                         " times");
  std::vector<Vector> grids;
  for (const auto& tr : series) {
    const bool from_first = tm.config.model.initial_state == InitialState::FirstObservation ||
                            tr.z0.size() == 0;
    const double start = from_first ? tr.times[0] : tr.t0, last = tr.times[tr.times.size() - 1];
    if (!a.times.empty()) {
      const double t0 = g0, t1 = g1;
      const long n = gn;
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
  if (failed == static_cast<int>(pred.size()))
    throw SeriesFailures("predict: all " + std::to_string(failed) + " series failed to solve" +
                         (a.out.empty() ? std::string() : "; nothing was written to " + a.out));
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
    std::unique_ptr<io::AtomicOutput> file;
    if (!a.out.empty()) file = std::make_unique<io::AtomicOutput>(a.out);
    std::ostream& o = file ? file->stream() : std::cout;
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
    if (file) file->commit();
  }
  std::cerr << "predict: " << pred.size() - failed << " series (" << failed << " failed), rtol "
            << opt.rtol << ", atol " << opt.atol << ", NFE " << nfe << " (" << double(nfe) / pred.size()
            << " per series), " << secs << " s" << (a.out.empty() ? "" : ", written to " + a.out) << "\n";
  if (failed > 0)
    throw SeriesFailures("predict: " + std::to_string(failed) + " of " + std::to_string(pred.size()) +
                         " series failed to solve (above); the output holds the other " +
                         std::to_string(pred.size() - failed));
}

}  // namespace

void add_predict(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  CLI::App* cmd = app.add_subcommand("predict", "Trajectories of a trained model (CSV or HDF5)");
  cmd->add_option("checkpoint", a->checkpoint, "Checkpoint of `cvnode fit` (best.h5 or latest.h5)")->required();
  cmd->add_option("--split", a->split, "train, val, test or all")->capture_default_str();
  cmd->add_option("--times", a->times, "START:STOP:COUNT grid (default: the series' own times)");
  cmd->add_option("--extend", a->extend, "Without --times: 200 points up to last + F * span")
      ->check(real_range(0, 1e6));
  cmd->add_option("--rtol", a->rtol, "Relative tolerance (default: the run's)")->check(real_range(0, 1, true, true));
  cmd->add_option("--atol", a->atol, "Absolute tolerance (default: the run's)")
      ->check(real_range(0, std::numeric_limits<double>::infinity(), false, true));
  cmd->add_option("--max-series", a->max_series, "At most this many series (0 = all)")
      ->check(int_range(0, std::numeric_limits<int>::max()));
  cmd->add_flag("--typical", a->typical,
                "Random effects: predict the typical subject (eta = 0) instead of each subject's empirical-Bayes eta "
                "from its observations");
  cmd->add_option("--threads", a->threads, "OpenMP threads (0 = all cores)")->capture_default_str()->check(thread_count());
  cmd->add_option("--set", a->overrides,
                  "Override a key of the stored configuration, e.g. --set data.file=OTHER.h5 --set "
                  "solver.method=bdf (repeatable; the model keys must stay as trained)");
  cmd->add_option("--out,-o", a->out, "Output: FILE.csv or FILE.h5 (default: CSV on stdout)");
  cmd->callback([a, cmd] {
    a->rtol_given = cmd->count("--rtol") > 0;
    a->atol_given = cmd->count("--atol") > 0;
    run(*a);
  });
}

}  // namespace cvnode::app

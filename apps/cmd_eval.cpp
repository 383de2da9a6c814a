// `cvnode eval CHECKPOINT`: loss and per-channel RMSE / MAE of a trained model on a split, and
// the tolerance vs NFE vs error table: the same model solved at several tolerances, its error
// measured against the data and against a reference solve at a much tighter tolerance.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "cvnode/errors.h"
#include "cvnode/fit.h"

namespace cvnode::app {

namespace {

struct EvalArgs {
  std::string checkpoint, split = "val", tolerances = "1e-3,1e-4,1e-5,1e-6,1e-7,1e-8";
  int threads = 0;
};

void run(const EvalArgs& a) {
  const TrainedModel tm = load_trained(a.checkpoint);
  const FitData data = load_fit_data(tm.config);
  std::vector<Trajectory> series;
  std::vector<std::string> ids;
  split_series(data, a.split, series, ids);
  if (series.empty()) throw DataError("eval: the '" + a.split + "' split has no series");
  ModelOptions mo = tm.model->options();
  const Model lift(mo, tm.model->observed());
  std::vector<Trajectory> lifted;
  for (std::size_t s = 0; s < series.size(); ++s) lifted.push_back(lift.lift(series[s], ids[s]));
  const Vector& std_ = data.normalization.empty() ? Vector(Vector::Ones(data.channels)) : data.normalization.std;

  const SolverOptions base = tm.config.train.solver;
  const Evaluation ev = evaluate(tm.model->dynamics(), tm.theta, lifted, base, tm.config.train.loss, a.threads);
  std::printf("eval: %s, split '%s', %d series (%d failed), rtol %g\n", a.checkpoint.c_str(),
              a.split.c_str(), ev.series, ev.failures, base.rtol);
  std::printf("  loss (%s units) %.6g\n", data.normalization.empty() ? "data" : "normalised", ev.loss);
  std::printf("  %-16s %14s %14s %14s %12s\n", "channel", "RMSE", "MAE", "data std", "RMSE/std");
  for (int i = 0; i < data.channels; ++i) {
    // Errors in data units: normalised errors times the channel's training std.
    std::printf("  %-16s %14.6g %14.6g %14.6g %12.4f\n", data.channel_names[i].c_str(), ev.rmse[i] * std_[i],
                ev.mae[i] * std_[i], data.data_std[i], ev.rmse[i] * std_[i] / data.data_std[i]);
  }

  // The tolerance table. The reference is the same model at rtol 1e-10: "solver error" is then the
  // integration error alone, "RMSE vs data" adds the model's own misfit.
  std::vector<double> tols;
  std::stringstream in(a.tolerances);
  for (std::string tok; std::getline(in, tok, ',');) {
    try {
      tols.push_back(std::stod(tok));
    } catch (...) {
      throw OptionsError("--tolerances: '" + tok + "' is not a number");
    }
    if (!(tols.back() > 0)) throw OptionsError("--tolerances: " + tok + " must be > 0");
  }
  SolverOptions ref_opt = base;
  ref_opt.rtol = 1e-10;
  ref_opt.atol = 1e-12;
  const Evaluation ref = evaluate(tm.model->dynamics(), tm.theta, lifted, ref_opt, tm.config.train.loss, a.threads);
  std::printf("\n  tolerance vs NFE vs error (atol = rtol * %g; reference rtol 1e-10)\n", base.atol / base.rtol);
  std::printf("  %10s %14s %16s %18s %10s\n", "rtol", "NFE/series", "RMSE vs data", "max |z - z_ref|", "ms");
  for (double tol : tols) {
    SolverOptions o = base;
    o.atol = base.atol / base.rtol * tol;
    o.rtol = tol;
    const auto t0 = std::chrono::steady_clock::now();
    const Evaluation e = evaluate(tm.model->dynamics(), tm.theta, lifted, o, tm.config.train.loss, a.threads);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    double maxdiff = 0;
    for (std::size_t s = 0; s < lifted.size(); ++s)
      if (e.predictions[s].size() && ref.predictions[s].size())
        maxdiff = std::max(maxdiff, ((e.predictions[s] - ref.predictions[s]).array().rowwise() *
                                     std_.transpose().array()).abs().maxCoeff());
    // RMSE over all channels in data units.
    double se = 0;
    for (int i = 0; i < data.channels; ++i) se += e.rmse[i] * std_[i] * e.rmse[i] * std_[i];
    std::printf("  %10.1e %14.1f %16.6g %18.3e %10.1f%s\n", tol, double(e.nfe) / std::max(1, e.series - e.failures),
                std::sqrt(se / data.channels), maxdiff, ms, e.failures ? "  (failures)" : "");
  }
}

}  // namespace

void add_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "Loss, RMSE/MAE and the tolerance-NFE-error table of a trained model");
  cmd->add_option("checkpoint", a->checkpoint, "Checkpoint of `cvnode fit`")->required();
  cmd->add_option("--split", a->split, "train, val, test or all")->capture_default_str();
  cmd->add_option("--tolerances", a->tolerances, "Comma-separated rtol values")->capture_default_str();
  cmd->add_option("--threads", a->threads, "OpenMP threads (0 = all cores)")->capture_default_str();
  cmd->callback([a] { run(*a); });
}

}  // namespace cvnode::app

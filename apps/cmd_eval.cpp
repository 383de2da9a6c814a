// `cvnode eval CHECKPOINT`: loss and per-channel RMSE / MAE of a trained model on a split, and
// the tolerance vs NFE vs error table: the same model solved at several tolerances, its error
// measured against the data and against a reference solve at a much tighter tolerance (always
// BDF, so that `--set solver.method=adams` compares Adams with a stiff-safe reference). Solves that
// fail are reported with the CVODES flag and the time they reached (e.g. Adams under a step
// budget giving up on a stiff problem); `--json FILE` appends one JSON line per tolerance.
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "cvnode/errors.h"
#include "app/fit.h"
#include "cvnode/pk.h"
#include "data/atomic_file.h"
#include "options.h"

namespace cvnode::app {

namespace {

struct EvalArgs {
  std::string checkpoint, split = "val", tolerances = "1e-3,1e-4,1e-5,1e-6,1e-7,1e-8", json;
  std::vector<std::string> overrides;
  double reference_rtol = 1e-10;
  std::string season;
  std::string jacobian_at, inputs;
  int threads = 0;
};

std::vector<double> numbers(const std::string& list, const char* option) {
  std::vector<double> out;
  std::stringstream in(list);
  for (std::string tok; std::getline(in, tok, ',');) {
    try {
      std::size_t used = 0;
      out.push_back(std::stod(tok, &used));
      if (used != tok.size() && tok.find_first_not_of(' ', used) != std::string::npos) throw std::invalid_argument(tok);
    } catch (...) {
      throw OptionsError(std::string(option) + ": '" + tok + "' is not a number");
    }
  }
  return out;
}

// The trained right-hand side and its Jacobian df/dz at one state (model units: normalised
// channels, dose-scaled compartments) and given inputs (data units, standardised here with the
// checkpoint's statistics): what a fitted network says about rates, e.g. a hybrid PK model's
// absorption -df_depot/d depot.
void print_jacobian(const TrainedModel& tm, const EvalArgs& a) {
  const Dynamics& f = tm.model->dynamics();
  const std::vector<double> z = numbers(a.jacobian_at, "--jacobian-at");
  const std::vector<double> u = numbers(a.inputs, "--inputs");
  const int n = f.state_size(), m = f.input_size();
  if (static_cast<int>(z.size()) != n)
    throw OptionsError("--jacobian-at has " + std::to_string(z.size()) + " values, the model's state has " +
                       std::to_string(n) + " components");
  if (static_cast<int>(u.size()) != m)
    throw OptionsError("--inputs has " + std::to_string(u.size()) + " values, the model reads " + std::to_string(m) +
                       " inputs (controls, then covariates)");
  Vector zv = Eigen::Map<const Vector>(z.data(), n), uv = Eigen::Map<const Vector>(u.data(), m);
  const Normalization& in = tm.input_normalization;
  if (!in.empty()) uv = ((uv - in.mean).array() / in.std.array()).matrix();
  Vector fv(n), work(f.workspace_size());
  Matrix J(n, n);
  f.rhs_u(0.0, zv, uv, tm.theta, fv, work);
  f.jacobian_u(0.0, zv, uv, tm.theta, J, work);
  std::printf("f(z) and df/dz of %s at z = [%s]%s%s (model units)\n", a.checkpoint.c_str(), a.jacobian_at.c_str(),
              m ? ", inputs = " : "", m ? a.inputs.c_str() : "");
  for (int i = 0; i < n; ++i) {
    std::printf("  f[%d] = %-18.10g J[%d] =", i, fv[i], i);
    for (int j = 0; j < n; ++j) std::printf(" %18.10g", J(i, j));
    std::printf("\n");
  }
}

// Tolerances scaled together: rtol -> tol, atol (scalar and per component) by the same factor.
SolverOptions at_tolerance(const SolverOptions& base, double tol) {
  SolverOptions o = base;
  const double f = tol / base.rtol;
  o.rtol = tol;
  o.atol = base.atol * f;
  if (o.atol_vector.size()) o.atol_vector = base.atol_vector * f;
  if (o.cvodes.adjoint_atol > 0) o.cvodes.adjoint_atol = base.cvodes.adjoint_atol * f;
  return o;
}

const char* nonlinear_name(const SolverOptions& o) {
  if (o.method == "dopri5") return "explicit";
  return o.cvodes.uses_fixed_point(o.is_bdf()) ? "fixed_point" : "newton";
}

// Data made by `cvnode data generate pk` carry their truth: the true model's errors on the same
// entries, the yardsticks of a fitted one (nothing is printed for other data).
void print_pk_truth(const DataOptions& o, const std::string& split, const std::vector<std::string>& ids,
                    const DataErrors& model, const DataErrors* typical) {
  const std::string file = split == "test" && !o.test_file.empty()             ? o.test_file
                           : split == "val" && !o.validation_file.empty()      ? o.validation_file
                           : split == "all" && !o.validation_file.empty()      ? std::string()
                                                                               : o.file;
  if (file.empty()) return;
  PkTruthErrors t;
  try {
    t = pk_truth_errors(Dataset::read(file), ids);
  } catch (const std::exception&) {
    return;  // not generated PK data
  }
  if (t.entries != static_cast<long>(model.entries)) return;
  std::printf("  the generator's true model on the same %ld entries (RMSE): each subject's own ka, ke, V %.6g "
              "(the noise floor); typical values at the subject's weight %.6g; at 70 kg %.6g; this model / "
              "typical at weight %.4f\n",
              t.entries, t.own, t.typical_at_weight, t.typical_70kg, model.rmse_all / t.typical_at_weight);
  std::printf("  the true model as a mixed-effects model (empirical-Bayes eta per subject from its observations, true "
              "Omega, residual variance = the noise floor's): with the weight %.6g, without it (typical at 70 kg) %.6g\n",
              t.eb_at_weight, t.eb_70kg);
  if (typical)  // a mixed-effects model: like with like
    std::printf("  ratios: individual (EB) %.4f of the true model's EB at weight, %.4f without the weight; typical "
                "(eta = 0) %.4f of the true typical at 70 kg\n",
                model.rmse_all / t.eb_at_weight, model.rmse_all / t.eb_70kg, typical->rmse_all / t.typical_70kg);
}

// A number, or "n/a" for one that could not be computed (NaN: nothing was solved).
std::string num(double v, const char* fmt = "%.6g") {
  if (std::isnan(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

void run(const EvalArgs& a) {
  io::check_not_input("eval --json", a.json, {a.checkpoint});
  const TrainedModel tm = load_trained(a.checkpoint, a.overrides);
  if (!a.jacobian_at.empty()) return print_jacobian(tm, a);
  io::check_not_input("eval --json", a.json, {tm.config.data.file});
  // The model's own normalisation and transforms, whatever file the configuration now names.
  const FitData data = load_model_data(tm);
  std::vector<Trajectory> series;
  std::vector<std::string> ids;
  std::vector<int> history;
  split_series(data, a.split, series, ids, &history);
  if (series.empty()) throw DataError("eval: the '" + a.split + "' split has no series");
  std::vector<Trajectory> lifted;
  for (std::size_t s = 0; s < series.size(); ++s) lifted.push_back(tm.lift(series[s], ids[s]));

  const SolverOptions base = tm.config.train.solver;
  // Forecast windows with a known past (data.forecast_history > 1) start from the state fitted to it.
  start_forecasts(tm.model->dynamics(), tm.theta, lifted, history, base, tm.model->observed());
  // Random effects: the model as a population model (every subject typical, eta = 0), then each
  // subject with its empirical-Bayes eta from its own observations: the individual predictions,
  // which everything below scores.
  const Dynamics* dynamics = &tm.model->dynamics();
  Vector theta = tm.theta;
  std::optional<DataErrors> typical;
  std::shared_ptr<const RandomEffectsDynamics> individual_dynamics;
  if (tm.model->random_effects()) {
    const Evaluation t = evaluate(*dynamics, theta, tm.problem(lifted), base, a.threads);
    typical = data_errors(data, series, t.predictions, history);
    IndividualFit f = empirical_bayes_fit(tm, lifted, base, a.threads);
    lifted = std::move(f.series);
    individual_dynamics = f.dynamics;
    dynamics = individual_dynamics.get();
    theta = f.theta;
  }
  const Problem problem = tm.problem(lifted);
  const Evaluation ev = evaluate(*dynamics, theta, problem, base, a.threads);
  std::printf("eval: %s, split '%s'%s, %d series (%d failed), rtol %g\n", a.checkpoint.c_str(), a.split.c_str(),
              data.forecast && a.split != "train" ? " (forecast windows)" : "", ev.series, ev.failures, base.rtol);
  if (ev.failures)  // the loss and errors below cover the solved series only
    std::printf("  %d series failed at these options (loss and errors below: the solved ones only); first: %s\n",
                ev.failures, ev.failed[0].message.c_str());
  std::printf("  loss (%s units) %s\n", data.normalization.empty() ? "model" : "normalised", num(ev.loss_solved).c_str());
  // Errors in data units: predictions denormalised and back-transformed, against the data;
  // forecast windows are scored after their origin only.
  const DataErrors err = data_errors(data, series, ev.predictions, history);
  std::printf("  %-16s %14s %14s %14s %12s %9s\n", "channel", "RMSE", "MAE", "data std", "RMSE/std", "entries");
  for (int i = 0; i < data.channels; ++i)
    std::printf("  %-16s %14s %14s %14.6g %12s %9.0f\n", data.channel_names[i].c_str(), num(err.rmse[i]).c_str(),
                num(err.mae[i]).c_str(), data.data_std[i], num(err.rmse[i] / data.data_std[i], "%.4f").c_str(),
                err.count[i]);
  if (typical) {
    std::printf("  random effects: individual predictions (each subject's empirical-Bayes eta) above; the typical "
                "subject (eta = 0): RMSE");
    for (int i = 0; i < data.channels; ++i) std::printf(" %s %s", data.channel_names[i].c_str(), num(typical->rmse[i]).c_str());
    std::printf(", overall %s\n", num(typical->rmse_all).c_str());
  }
  if (!data.forecast && data.channels == 1) print_pk_truth(tm.config.data, a.split, ids, err, typical ? &*typical : nullptr);
  if (data.forecast && a.split != "train") {
    // The forecasts a model has to beat, on the same entries.
    const auto& past = a.split == "val" ? data.val_past : a.split == "test" ? data.test_past : std::vector<Trajectory>{};
    if (!past.empty()) {
      auto line = [&](const char* name, const DataErrors& e) {
        std::printf("  %-30s RMSE", name);
        for (int i = 0; i < data.channels; ++i) std::printf(" %s %.6g", data.channel_names[i].c_str(), e.rmse[i]);
        std::printf(", overall %.6g\n", e.rmse_all);
      };
      line("model", err);
      line("persistence (last value)", naive_forecast_errors(data, series, history, past, 0));
      if (!a.season.empty()) {
        double period = 0;
        if (a.season == "auto") {
          period = best_season(past);
        } else {
          try {
            period = std::stod(a.season);
          } catch (...) {
          }
          if (!(period > 0) || !std::isfinite(period))
            throw OptionsError("--season = '" + a.season + "' (expected a period > 0 or auto)");
        }
        char name[80];
        std::snprintf(name, sizeof name, "seasonal naive (period %.4g%s)", period, a.season == "auto" ? ", best on the past" : "");
        if (period > 0) line(name, naive_forecast_errors(data, series, history, past, period));
      }
    }
  }

  // The tolerance table. The reference is the same model at rtol 1e-10: "solver error" is then the
  // integration error alone, "RMSE vs data" adds the model's own misfit.
  std::vector<double> tols;
  std::stringstream in(a.tolerances);
  for (std::string tok; std::getline(in, tok, ',');) {
    double v = 0;
    if (!detail::parse_real(tok, &v) || !(v > 0 && v < 1))
      throw OptionsError("--tolerances: '" + detail::clip(tok) + "' is not a number in (0, 1)");
    tols.push_back(v);
  }
  if (tols.empty()) throw OptionsError("--tolerances: give at least one rtol in (0, 1)");
  // The reference: BDF (Newton, dense unless the run asked for another BDF linear solver) at
  // reference_rtol with every absolute tolerance scaled by the same factor, and a step budget
  // large enough never to bind.
  SolverOptions ref_opt = at_tolerance(base, a.reference_rtol);
  ref_opt.method = "bdf";
  ref_opt.dopri5 = Dopri5Options{};
  ref_opt.cvodes.nonlinear_solver = NonlinearSolver::Newton;
  if (base.method != "bdf") ref_opt.cvodes.linear_solver = LinearSolver::Dense;
  ref_opt.max_steps = std::max<long>(base.max_steps, 1000000);
  const Evaluation ref = evaluate(*dynamics, theta, problem, ref_opt, a.threads);
  if (ref.failures)
    throw SolverError("eval reference (BDF, rtol " + std::to_string(a.reference_rtol) + ")", ref.failed[0].flag,
                      ref.failed[0].flag_name, ref.failed[0].time, ref.failed[0].message);
  Vector peak = Vector::Zero(data.channels);  // per channel: max |z_ref| (data units)
  for (const Matrix& p : ref.predictions) {
    const Matrix y = to_data_units(p, data.normalization, data.transforms);
    for (int i = 0; i < data.channels; ++i) peak[i] = std::max(peak[i], y.col(i).cwiseAbs().maxCoeff());
  }

  // JSON lines are appended atomically: the file gets all of this run's lines or none.
  std::unique_ptr<io::AtomicOutput> json_file;
  if (!a.json.empty()) json_file = std::make_unique<io::AtomicOutput>(a.json, /*keep_existing=*/true);
  std::printf("\n  tolerance vs NFE vs error: %s (%s), max_steps %ld per observation interval\n"
              "  (atol scaled with rtol; reference: BDF at rtol %g; rel. error = max |z - z_ref| / max |z_ref| per channel)\n",
              base.method.c_str(), nonlinear_name(base), base.max_steps, a.reference_rtol);
  std::printf("  %10s %14s %16s %18s %12s %10s\n", "rtol", "NFE/series", "RMSE vs data", "max |z - z_ref|",
              "max rel.err", "ms");
  for (double tol : tols) {
    const SolverOptions o = at_tolerance(base, tol);
    const auto t0 = std::chrono::steady_clock::now();
    const Evaluation e = evaluate(*dynamics, theta, problem, o, a.threads);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    double maxdiff = 0;
    Vector chan_err = Vector::Zero(data.channels);
    for (std::size_t s = 0; s < lifted.size(); ++s)
      if (e.predictions[s].size() && ref.predictions[s].size()) {
        const Matrix d = (to_data_units(e.predictions[s], data.normalization, data.transforms) -
                          to_data_units(ref.predictions[s], data.normalization, data.transforms))
                             .cwiseAbs();
        maxdiff = std::max(maxdiff, d.maxCoeff());
        for (int i = 0; i < data.channels; ++i) chan_err[i] = std::max(chan_err[i], d.col(i).maxCoeff() / peak[i]);
      }
    // RMSE over all scored entries in data units.
    const DataErrors de = data_errors(data, series, e.predictions, history);
    const int solved = e.series - e.failures;
    std::printf("  %10.1e %14.1f %16.6g %18.3e %12.3e %10.1f", tol, double(e.nfe) / std::max(1, solved),
                solved ? de.rmse_all : NAN, solved ? maxdiff : NAN,
                solved ? chan_err.maxCoeff() : NAN, ms);
    if (e.failures) {
      double t_min = e.failed[0].time;
      for (const auto& f : e.failed) t_min = std::min(t_min, f.time);
      std::printf("  %d of %d series gave up (%s, earliest at t = %.4g)", e.failures, e.series,
                  e.failed[0].flag_name.c_str(), t_min);
    }
    std::printf("\n");
    for (const auto& f : e.failed)
      std::printf("      series '%s': %s\n", ids[f.series].c_str(), f.message.c_str());
    if (json_file) {
      nlohmann::json j;
      j["checkpoint"] = a.checkpoint;
      j["split"] = a.split;
      j["method"] = o.method;
      j["nonlinear_solver"] = nonlinear_name(o);
      j["linear_solver"] = linear_solver_name(o.cvodes.linear_solver);
      j["rtol"] = o.rtol;
      j["atol"] = o.atol;
      if (o.atol_vector.size()) j["atol_vector"] = std::vector<double>(o.atol_vector.data(), o.atol_vector.data() + o.atol_vector.size());
      j["max_steps"] = o.max_steps;
      j["threads"] = a.threads;
      j["series"] = e.series;
      j["failures"] = e.failures;
      j["nfe"] = e.nfe;  // forward right-hand-side calls of the series that were solved
      j["nfe_per_series"] = double(e.nfe) / std::max(1, solved);
      j["ms"] = ms;
      j["reference_rtol"] = a.reference_rtol;
      if (solved) {
        j["rmse_vs_data"] = de.rmse_all;
        j["max_abs_err_vs_ref"] = maxdiff;
        j["max_rel_err_vs_ref"] = chan_err.maxCoeff();
        for (int i = 0; i < data.channels; ++i) {
          j["rel_err_vs_ref_per_channel"][data.channel_names[i]] = chan_err[i];
          j["rmse_per_channel"][data.channel_names[i]] = de.rmse[i];
        }
      }
      j["failed"] = nlohmann::json::array();
      for (const auto& f : e.failed)
        j["failed"].push_back({{"series", ids[f.series]}, {"flag", f.flag}, {"flag_name", f.flag_name},
                               {"t_reached", f.time}, {"message", f.message}});
      json_file->stream() << j.dump() << "\n";
    }
  }
  if (json_file) json_file->commit();
}

}  // namespace

void add_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "Loss, RMSE/MAE and the tolerance-NFE-error table of a trained model");
  cmd->add_option("checkpoint", a->checkpoint, "Checkpoint of `cvnode fit`")->required();
  cmd->add_option("--split", a->split, "train, val, test or all")->capture_default_str();
  cmd->add_option("--tolerances", a->tolerances, "Comma-separated rtol values")->capture_default_str();
  cmd->add_option("--threads", a->threads, "OpenMP threads (0 = all cores)")->capture_default_str()->check(thread_count());
  cmd->add_option("--set", a->overrides,
                  "Override a key of the stored configuration, e.g. --set solver.method=adams "
                  "--set solver.max_steps=5000 (repeatable; the model keys must stay as trained)");
  cmd->add_option("--season", a->season,
                  "Forecast windows (data.split = time): also score the seasonal naive forecast of this period "
                  "(auto: the period whose seasonal naive forecast fits the known past best)");
  cmd->add_option("--reference-rtol", a->reference_rtol, "rtol of the BDF reference solve (atol scaled alike)")
      ->capture_default_str()
      ->check(real_range(0, 1, true, true));
  cmd->add_option("--json", a->json, "Append one JSON line per tolerance to this file");
  cmd->add_option("--jacobian-at", a->jacobian_at,
                  "Instead of scoring: print f and df/dz at this state (comma-separated, model units; t = 0)");
  cmd->add_option("--inputs", a->inputs,
                  "With --jacobian-at: the model's inputs (controls, then covariates; data units)");
  cmd->callback([a] { run(*a); });
}

}  // namespace cvnode::app

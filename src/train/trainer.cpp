#include "cvnode/trainer.h"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <iostream>
#include <numeric>
#include <sstream>

#include "cvnode/errors.h"
#include "cvnode/preemption.h"
#include "cvnode/rank_backend.h"
#include "cvnode/running_cost.h"
#include "cvnode/solver.h"
#include "core/random.h"
#include "train/shift_times.h"

namespace cvnode {

// ---------------------------------------------------------------------------------------------
ThreadBackend::ThreadBackend(const Dynamics& dynamics, const SolverOptions& options, BatchOptions batch)
    : solver_(dynamics, options, [&] {
        batch.skip_failures = true;
        return batch;
      }()) {}

BatchGradient ThreadBackend::gradient(ConstVectorRef theta, const Problem& problem) {
  return solver_.gradient(theta, problem);
}

// ---------------------------------------------------------------------------------------------
std::string TrainOptions::validate() const {
  std::ostringstream o;
  o.precision(17);
  if (epochs < 1) o << "run.epochs = " << epochs << " must be >= 1";
  else if (batch_size < 1) o << "run.batch_size = " << batch_size << " must be >= 1";
  else if (threads < 0) o << "run.threads = " << threads << " must be >= 0 (0 = all cores)";
  else if (val_every < 1) o << "run.val_every = " << val_every << " must be >= 1";
  else if (early_stop_patience < 0) o << "run.early_stop_patience = " << early_stop_patience << " must be >= 0";
  else if (!(kinetic_weight >= 0) || !std::isfinite(kinetic_weight)) o << "run.kinetic_weight = " << kinetic_weight << " must be finite and >= 0";
  else if (!(failure_fraction >= 0 && failure_fraction <= 1)) o << "run.failure_fraction = " << failure_fraction << " must lie in [0, 1]";
  else if (failure_patience < 1) o << "run.failure_patience = " << failure_patience << " must be >= 1";
  else if (!(failure_lr_factor > 0 && failure_lr_factor < 1)) o << "run.failure_lr_factor = " << failure_lr_factor << " must lie in (0, 1)";
  else if (max_rollbacks < 0) o << "run.max_rollbacks = " << max_rollbacks << " must be >= 0";
  else if (stack_size < 1) o << "run.stack_size = " << stack_size << " must be >= 1";
  else if (batch_mode == BatchMode::Stacked && kinetic_weight > 0)
    o << "run.batch_mode = \"stacked\" does not take loss.kinetic_weight > 0 (a running cost); use "
         "\"per_series\" or \"auto\"";
  return o.str();
}

// ---------------------------------------------------------------------------------------------
const char* EpochMetrics::csv_header() {
  return "epoch,lr,train_loss,val_loss,val_rmse,nfe_forward,nfe_backward,grad_norm,failures,seconds";
}

std::vector<std::string> EpochMetrics::names() {
  return {"epoch", "lr", "train_loss", "val_loss", "val_rmse", "nfe_forward", "nfe_backward",
          "grad_norm", "failures", "seconds"};
}

std::vector<double> EpochMetrics::values() const {
  return {static_cast<double>(epoch), lr, train_loss, val_loss, val_rmse, nfe_forward,
          nfe_backward, grad_norm, static_cast<double>(failures), seconds};
}

EpochMetrics EpochMetrics::from_values(const std::vector<double>& v) {
  if (v.size() != names().size())
    throw DataError("metrics row has " + std::to_string(v.size()) + " values, expected " +
                    std::to_string(names().size()));
  EpochMetrics m;
  m.epoch = static_cast<int>(v[0]);
  m.lr = v[1];
  m.train_loss = v[2];
  m.val_loss = v[3];
  m.val_rmse = v[4];
  m.nfe_forward = v[5];
  m.nfe_backward = v[6];
  m.grad_norm = v[7];
  m.failures = static_cast<long>(v[8]);
  m.seconds = v[9];
  return m;
}

std::string EpochMetrics::csv_row() const {
  // %.17g: the CSV carries the exact doubles, so runs can be compared bit for bit.
  char buf[512];
  std::snprintf(buf, sizeof buf, "%d,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%ld,%.6f", epoch, lr,
                train_loss, val_loss, val_rmse, nfe_forward, nfe_backward, grad_norm, failures,
                seconds);
  return buf;
}

// ---------------------------------------------------------------------------------------------
Evaluation evaluate(const Dynamics& dynamics, ConstVectorRef theta, const Problem& problem,
                    const SolverOptions& options, int threads) {
  if (threads <= 0) threads = omp_get_max_threads();
  const int S = problem.size();
  problem.check(dynamics.state_size());
  std::vector<std::unique_ptr<Solver>> solvers;
  for (int i = 0; i < std::max(1, std::min(threads, S)); ++i)
    solvers.push_back(std::make_unique<Solver>(dynamics, options));
  std::vector<Solution> sol(S);
  std::vector<std::exception_ptr> err(S);
  const Vector th = theta;
#pragma omp parallel for schedule(dynamic, 1) num_threads(static_cast<int>(solvers.size()))
  for (int s = 0; s < S; ++s) {
    try {
      const Trajectory& tr = problem.series(s);
      sol[s] = solvers[omp_get_thread_num()]->solve(th, tr);  // events and inputs applied
      sol[s].states.conservativeResize(tr.times.size(), Eigen::NoChange);  // not the horizon row
      if (!sol[s].states.allFinite())
        throw SolverError("evaluate", 0, "NON_FINITE", tr.t0, "the solution is not finite");
    } catch (...) {
      err[s] = std::current_exception();
    }
  }
  // Each series' terms are summed in its own order, and the series' sums with ExactSum: the same
  // bits for every thread count, and for evaluations split over ranks and merged.
  Evaluation ev;
  ev.series = S;
  if (problem.loss().reduction() == LossReduction::Mean) ev.mean_entries = problem.entries();
  const int C = S > 0 ? static_cast<int>(problem.series(0).values.cols()) : 0;
  ev.sums.reset(1 + 3 * C);
  ev.predictions.resize(S);
  ev.series_nfe.assign(S, 0);
  Vector se(C), ae(C), cnt(C);
  for (int s = 0; s < S; ++s) {
    if (err[s]) {
      ev.failed.push_back(describe_failure(s, err[s]));
      ++ev.failures;
      continue;
    }
    const Trajectory& tr = problem.series(s);
    ev.nfe += sol[s].nfe;
    ev.series_nfe[s] = sol[s].nfe;
    const double series_loss = problem.observe(s, sol[s].states).loss;
    ev.predictions[s] = problem.predict(s, sol[s].states);
    const Matrix& pred = ev.predictions[s];
    se.setZero();
    ae.setZero();
    cnt.setZero();
    for (Eigen::Index k = 0; k < tr.times.size(); ++k)
      for (int i = 0; i < C; ++i) {
        if (tr.mask.size() && tr.mask(k, i) == 0) continue;
        const double r = pred(k, i) - tr.values(k, i);
        se[i] += r * r;
        ae[i] += std::abs(r);
        cnt[i] += 1;
      }
    ev.sums.add(0, series_loss);
    ev.sums.add(se, 1);
    ev.sums.add(ae, 1 + C);
    ev.sums.add(cnt, 1 + 2 * C);
  }
  finish_evaluation(ev);
  return ev;
}

void finish_evaluation(Evaluation& ev) {
  const int C = static_cast<int>((ev.sums.size() - 1) / 3);
  const Vector v = ev.sums.values();
  const Vector se = v.segment(1, C), ae = v.segment(1 + C, C), cnt = v.segment(1 + 2 * C, C);
  const double entries = cnt.sum();  // counts are exact integers
  // A channel (or a split) without a solved observation has no error: NaN, never 0.
  constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();
  const bool none_solved = ev.series > 0 && ev.failures >= ev.series;
  // Each series' terms carry the problem's normalisation: v[0] is the loss when none failed. The
  // loss of the solved series alone divides a mean loss by their entries instead.
  ev.loss = v[0];
  ev.loss_solved = none_solved ? kMissing : (ev.mean_entries > 0 && entries > 0) ? v[0] * static_cast<double>(ev.mean_entries) / entries : v[0];
  ev.rmse = (cnt.array() > 0).select((se.array() / cnt.array().max(1.0)).sqrt(), kMissing);
  ev.mae = (cnt.array() > 0).select(ae.array() / cnt.array().max(1.0), kMissing);
  ev.rmse_all = entries > 0 ? std::sqrt(se.sum() / entries) : kMissing;
  if (ev.failures > 0) ev.loss = std::numeric_limits<double>::infinity();
}

// ---------------------------------------------------------------------------------------------
namespace {
constexpr double kProgressSeconds = 5.0;  // at most this long between progress lines
}  // namespace

Trainer::Trainer(const Model& model, const std::vector<Trajectory>& train,
                 const std::vector<std::string>& train_ids, const std::vector<Trajectory>& val,
                 const std::vector<std::string>& val_ids, const TrainerSettings& settings)
    : model_(model),
      train_ids_(train_ids),
      val_ids_(val_ids),
      s_(settings),
      opt_(settings.optimizer,
           model.shared_params() +
               (model.options().initial_state == InitialState::Learned
                    ? static_cast<int>(train.size()) * model.state_size()
                    : 0)),
      sched_(settings.schedule, settings.optimizer.lr, settings.run.epochs) {
  std::string why = s_.run.validate();
  if (why.empty()) why = s_.regularization.validate();
  if (why.empty()) why = error_penalty_refusal(s_.solver, s_.regularization.error_weight);
  if (why.empty() && s_.run.batch_mode == BatchMode::Stacked && s_.regularization.jacobian_weight > 0)
    why = "run.batch_mode = \"stacked\" does not take regularization.jacobian_weight > 0 (a running cost); use "
          "\"per_series\" or \"auto\"";
  if (why.empty()) why = s_.solver.validate(model.state_size());
  if (!why.empty()) throw OptionsError(why);
  loss_ = make_loss(s_.loss, model.observation_map());
  if (train.empty()) throw DataError("the training split has no series");
  if (train_ids_.size() != train.size() || val_ids_.size() != val.size())
    throw OptionsError("Trainer: one id per series is needed");
  for (std::size_t i = 0; i < train.size(); ++i) train_.push_back(model.lift(train[i], train_ids_[i]));
  // The stacked mode solves many series as one ODE: events and inputs differ per series, so a
  // series with them is solved on its own (auto does so; stacked is refused here, once).
  if (s_.run.batch_mode == BatchMode::Stacked)
    for (std::size_t i = 0; i < train_.size(); ++i) {
      const Trajectory& tr = train_[i];
      if (tr.events.empty() && tr.controls.empty() && tr.covariates.size() == 0) continue;
      throw OptionsError("run.batch_mode = \"stacked\" takes series without events, controls or covariates only; "
                         "series '" + train_ids_[i] + "' has " +
                         (tr.events.empty() ? std::string("inputs (controls or covariates)")
                                            : std::to_string(tr.events.size()) + " event(s)") +
                         ": use run.batch_mode = \"per_series\" or \"auto\" (auto stacks the series without them)");
    }
  // Stacked solves need a shared t0. Without time input the dynamics are autonomous, so a
  // series (e.g. a window) may start at t = 0 instead: the solution is the same, shifted
  // (train/shift_times.h: the shifted times on a common relative grid).
  if (s_.run.batch_mode != BatchMode::PerSeries && !model.options().time_input) detail::shift_to_common_start(train_);
  for (std::size_t i = 0; i < val.size(); ++i) val_.push_back(model.lift(val[i], val_ids_[i]));
  Problem(train_, loss_).check(model.state_size());
  Problem(val_, loss_).check(model.state_size());

  const int P = model.network_params();
  const int total = opt_.m().size();
  st_.params.resize(total);
  st_.params.head(P) = model.initial_parameters();
  trainable_ = Vector::Ones(total);
  decay_ = Vector::Zero(total);
  trainable_.head(P) = model.trainable_mask();
  decay_.head(P) = model.decay_mask();
  const int R = model.readout_params(), Q = model.shared_params(), N = model.state_size();
  st_.params.segment(P, R) = loss_->initial_parameters();  // trained, no weight decay
  for (std::size_t i = 0; Q + static_cast<int>(i) * N < total; ++i)
    st_.params.segment(Q + i * N, N) = train_[i].z0;
  st_.opt_m = opt_.m();
  st_.opt_v = opt_.v();
  st_.good_params = st_.params;
  st_.good_m = st_.opt_m;
  st_.good_v = st_.opt_v;
  st_.best_params = st_.params;

  const BatchOptions batch{s_.run.threads, s_.run.batch_mode, s_.run.stack_size, true};
  // Training solves carry the solver-error penalty; validation and evaluation solve without it.
  const SolverOptions train_solver = with_error_penalty(s_.solver, s_.regularization.error_weight);
  // Started as one of several MPI ranks (mpirun, srun): the minibatches' units spread over them.
  if (Ranks::world().distributed())
    backend_ = std::make_unique<RankBackend>(model.dynamics(), train_solver, batch, Ranks::world(), s_.run.reduction,
                                             model.options().initial_state == InitialState::Learned,
                                             s_.run.balance);
  else
    backend_ = std::make_unique<ThreadBackend>(model.dynamics(), train_solver, batch);
  s_.regularization.kinetic_weight = s_.run.kinetic_weight;
  // Built once here (this also refuses a Jacobian norm the dynamics cannot give, before any step).
  running_costs_ = regularizer_costs(model.dynamics(), s_.regularization, 0);
}

Trainer::~Trainer() = default;

void Trainer::set_series_owners(std::vector<int> owners) {
  if (!owners.empty() && !dynamic_cast<RankBackend*>(backend_.get()))
    throw OptionsError("Trainer::set_series_owners: series owners need MPI ranks");
  if (!owners.empty() && owners.size() != train_.size())
    throw OptionsError("Trainer::set_series_owners: " + std::to_string(owners.size()) + " owners for " +
                       std::to_string(train_.size()) + " training series");
  owners_ = std::move(owners);
}

void Trainer::emit(const std::string& line) const {
  if (log) log(line);
  else std::cerr << line << std::endl;
}

void Trainer::restore(const TrainState& state) {
  if (state.params.size() != st_.params.size())
    throw DataError("the checkpoint has " + std::to_string(state.params.size()) +
                    " parameters, this model and data need " + std::to_string(st_.params.size()));
  st_ = state;
  opt_.set_state(st_.opt_m, st_.opt_v, st_.opt_steps);
  sched_.set_state(st_.schedule);
}

bool Trainer::finished() const { return st_.stopped_early || st_.epoch >= s_.run.epochs; }

std::vector<Trajectory> Trainer::train_with_z0(const Vector& params) const {
  std::vector<Trajectory> out = train_;
  if (model_.options().initial_state != InitialState::Learned) return out;
  const int Q = model_.shared_params(), N = model_.state_size();
  for (std::size_t i = 0; i < out.size(); ++i) out[i].z0 = params.segment(Q + i * N, N);
  return out;
}

Problem Trainer::val_problem(const Vector& params) const {
  std::vector<Trajectory> val = val_;
  if (prepare_val) prepare_val(network(params), val);
  Problem p(std::move(val), loss_);
  p.set_loss_parameters(params.segment(model_.network_params(), model_.readout_params()));
  return p;
}

void Trainer::rollback(int epoch) {
  ++st_.rollbacks;
  if (st_.rollbacks > s_.run.max_rollbacks) {
    // Name what failed. A solution that has to cross a sign constraint cannot go on (CVODES
    // shrinks the step until it fails, as CV_CONSTR_FAIL or a non-finite state): with
    // constraints set they come first in the advice, not the tolerances.
    const SeriesFailure& f = last_failure_;
    const bool constrained = (s_.solver.cvodes.constraints.array() != 0).any();
    std::ostringstream why;
    why.precision(6);
    why << "more than run.max_rollbacks = " << s_.run.max_rollbacks << " rollbacks after repeated solver failures";
    if (!last_failure_id_.empty())
      why << "; the last: series '" << last_failure_id_ << "', " << (f.flag_name.empty() ? "error" : f.flag_name)
          << " at t = " << f.time << ": " << f.message;
    if (constrained) {
      why << "; the solves run with solver.constraints = [";
      for (Eigen::Index i = 0; i < s_.solver.cvodes.constraints.size(); ++i)
        why << (i ? ", " : "") << s_.solver.cvodes.constraints[i];
      why << "], which stop any solution that has to cross them: relax or drop the constraints (a positive channel "
             "stays positive with data.transform = \"log\"), then the tolerances, solver.max_steps or optimizer.lr";
    } else {
      why << "; loosen the tolerances, raise solver.max_steps or lower optimizer.lr";
    }
    throw SolverError("training", f.flag, "TOO_MANY_ROLLBACKS", f.time, why.str());
  }
  // The state follows the optimizer back: a checkpoint written now (and a later non-finite
  // update, which restores the optimizer from the state) must see the rolled-back moments.
  st_.params = st_.good_params;
  st_.opt_m = st_.good_m;
  st_.opt_v = st_.good_v;
  st_.opt_steps = st_.good_opt_steps;
  opt_.set_state(st_.opt_m, st_.opt_v, st_.opt_steps);
  sched_.reduce(s_.run.failure_lr_factor);
  st_.bad_steps = 0;
  std::ostringstream o;
  o << "epoch " << epoch << ": " << s_.run.failure_patience
    << " bad steps in a row: rolled back to the last good parameters, learning rate x"
    << sched_.scale() << " of the schedule (rollback " << st_.rollbacks << ")";
  emit(o.str());
}

// Any rank's signal stops all of them after the same step: on ranks, the flag travels with each
// step's reduction (RankBackend::agreed_stop), so every rank sees it after the same step.
int Trainer::stop_requested() const {
  if (const auto* ranks = dynamic_cast<const RankBackend*>(backend_.get())) return ranks->agreed_stop();
  return stop_signal();
}

bool Trainer::run_epoch(int epoch, EpochMetrics& m) {
  const int S = static_cast<int>(train_.size());
  const int P = model_.network_params(), R = model_.readout_params(), Q = P + R, N = model_.state_size();
  const bool learned = model_.options().initial_state == InitialState::Learned;
  // Minibatch order is a pure function of (seed, epoch): a resumed run draws the same batches.
  std::vector<int> order(S);
  std::iota(order.begin(), order.end(), 0);
  detail::Rng rng(s_.run.seed ^ (0xD1B54A32D192ED03ULL * static_cast<std::uint64_t>(epoch)));
  for (int i = S - 1; i > 0; --i) std::swap(order[i], order[static_cast<int>(rng.next() % (i + 1))]);

  double lr = sched_.lr(epoch);
  const int warm = s_.schedule.phase_warmup_epochs;
  if (phase_start_ > 0 && warm > 0 && epoch > phase_start_ && epoch - phase_start_ <= warm)
    lr *= 0.1 + 0.9 * static_cast<double>(epoch - phase_start_ - 1) / warm;
  double loss_weighted = 0, weight = 0;
  long solved = 0, steps = 0;
  double grad_norm_sum = 0;
  int step_in_epoch = 0;
  if (st_.epoch_step > 0) {  // resumed mid-epoch: continue the epoch's sums where they stopped
    lr = st_.partial_lr;
    loss_weighted = st_.partial_loss_weighted;
    weight = st_.partial_weight;
    grad_norm_sum = st_.partial_grad_norm;
    solved = st_.partial_solved;
    steps = st_.partial_steps;
    m.nfe_forward = st_.partial_nfe_forward;
    m.nfe_backward = st_.partial_nfe_backward;
    m.failures = st_.partial_failures;
    step_in_epoch = st_.epoch_step;
  }
  m.lr = lr;
  using clock = std::chrono::steady_clock;
  const auto epoch_start = clock::now();
  auto last_line = epoch_start;
  const int total_steps = (S + s_.run.batch_size - 1) / s_.run.batch_size;
  for (int first = step_in_epoch * s_.run.batch_size; first < S; first += s_.run.batch_size) {
    if (const int sig = stop_requested()) {
      stopped_by_signal_ = sig;
      st_.epoch_step = step_in_epoch;
      st_.partial_lr = lr;
      st_.partial_loss_weighted = loss_weighted;
      st_.partial_weight = weight;
      st_.partial_grad_norm = grad_norm_sum;
      st_.partial_solved = solved;
      st_.partial_steps = steps;
      st_.partial_nfe_forward = m.nfe_forward;
      st_.partial_nfe_backward = m.nfe_backward;
      st_.partial_failures = m.failures;
      st_.schedule = sched_.state();
      return false;
    }
    const int B = std::min(s_.run.batch_size, S - first);
    ++step_in_epoch;
    // A progress line every few seconds within long epochs (the per-epoch line follows).
    const auto now = clock::now();
    if (std::chrono::duration<double>(now - last_line).count() >= kProgressSeconds && first > 0) {
      last_line = now;
      const double secs = std::chrono::duration<double>(now - epoch_start).count();
      char line[300];
      std::snprintf(line, sizeof line,
                    "epoch %4d/%d  step %d/%d  train %.4e  nfe/series fwd %.0f bwd %.0f  %.1fs  epoch ETA %.0fs",
                    epoch, s_.run.epochs, step_in_epoch - 1, total_steps,
                    weight > 0 ? loss_weighted / weight : std::numeric_limits<double>::quiet_NaN(),
                    static_cast<double>(m.nfe_forward) / std::max<long>(1, solved),
                    static_cast<double>(m.nfe_backward) / std::max<long>(1, solved), secs,
                    secs / (step_in_epoch - 1) * (total_steps - step_in_epoch + 1));
      emit(line);
    }
    // This step's noise (Hutchinson probes, STEER's times): a function of (seed, step, series).
    const std::uint64_t step_seed = detail::Rng(s_.run.seed * 0xD1B54A32D192ED03ULL + static_cast<std::uint64_t>(st_.step) + 1).next();
    std::vector<Trajectory> batch(B);
    for (int b = 0; b < B; ++b) {
      const int s = order[first + b];
      batch[b] = s_.regularization.steer > 0
                     ? steer_times(train_[s], s_.regularization.steer, step_seed ^ (0x9E3779B97F4A7C15ULL * (s + 1)))
                     : train_[s];
      if (learned) batch[b].z0 = st_.params.segment(Q + s * N, N);
    }
    Problem problem(std::move(batch), loss_);
    problem.set_loss_parameters(st_.params.segment(P, R));
    const bool fresh = s_.regularization.jacobian_weight > 0 && s_.regularization.jacobian_estimator == TraceEstimator::Hutchinson;
    for (const auto& c : fresh ? regularizer_costs(model_.dynamics(), s_.regularization, step_seed) : running_costs_)
      problem.add_running_cost(c);
    long entries = problem.entries();
    const Vector theta = st_.params.head(P);
    if (!owners_.empty()) {  // shard reads: each series on the rank that holds its values
      std::vector<int> owner(static_cast<std::size_t>(B));
      for (int b = 0; b < B; ++b) owner[b] = owners_[order[first + b]];
      static_cast<RankBackend&>(*backend_).set_owners(std::move(owner));
    }
    BatchGradient g = backend_->gradient(theta, problem);
    for (const auto& f : g.failures) {
      std::ostringstream o;
      o.precision(6);
      o << "epoch " << epoch << " step " << st_.step + 1 << ": series '" << train_ids_[order[first + f.series]]
        << "' failed (flag " << f.flag << ", t = " << f.time << "): " << f.message
        << "; left out of this step";
      emit(o.str());
      last_failure_ = f;
      last_failure_id_ = train_ids_[order[first + f.series]];
    }
    const int failed = static_cast<int>(g.failures.size());
    // A mean loss is normalised by the entries of the whole batch, failed series included.
    // Rescale to the entries of the series that were solved, so that a step with a failure is
    // still a mean over what it saw (the same loss scale as a clean step).
    const bool mean = loss_->reduction() == LossReduction::Mean;
    if (mean && failed > 0 && failed < B) {
      long lost = 0;
      for (const auto& f : g.failures) lost += loss_->entries(problem.series(f.series));
      const long kept = entries - lost;
      if (kept > 0) {
        const double factor = static_cast<double>(entries) / static_cast<double>(kept);
        g.loss *= factor;
        g.theta *= factor;
        g.phi *= factor;
        for (auto& z : g.z0) z *= factor;
        entries = kept;
      }
    }
    m.failures += failed;
    st_.failures_total += failed;
    solved += B - failed;
    m.nfe_forward += g.nfe_forward;
    m.nfe_backward += g.nfe_backward;

    Vector grad = Vector::Zero(st_.params.size());
    grad.head(P) = g.theta;
    grad.segment(P, R) = g.phi;
    if (learned)
      for (int b = 0; b < B; ++b)
        if (g.z0[b].size() == N) grad.segment(Q + order[first + b] * N, N) = g.z0[b];
    if (add_prior) {
      std::vector<bool> lost(static_cast<std::size_t>(B), false);
      for (const auto& f : g.failures) lost[static_cast<std::size_t>(f.series)] = true;
      std::vector<int> seen;
      for (int b = 0; b < B; ++b)
        if (!lost[static_cast<std::size_t>(b)]) seen.push_back(order[first + b]);
      add_prior(st_.params, seen, entries, grad);
    }
    bool bad = failed == B || failed > s_.run.failure_fraction * B || !std::isfinite(g.loss) ||
               !grad.allFinite();
    Vector next = st_.params;
    double norm = 0;
    if (!bad) {
      norm = clip_gradient(grad, s_.optimizer.clip_norm);
      opt_.step(next, grad, lr * 1.0, trainable_, decay_);
      // A non-finite update never reaches the parameters.
      if (!next.allFinite()) {
        bad = true;
        opt_.set_state(st_.opt_m, st_.opt_v, st_.opt_steps);
      }
    }
    if (bad) {
      std::ostringstream o;
      o << "epoch " << epoch << ": bad step (" << failed << " of " << B
        << " series failed, loss " << g.loss << "); parameters unchanged";
      emit(o.str());
      if (++st_.bad_steps >= s_.run.failure_patience) rollback(epoch);
      continue;
    }
    ++st_.step;
    ++steps;
    grad_norm_sum += norm;
    st_.params = next;
    st_.opt_m = opt_.m();
    st_.opt_v = opt_.v();
    st_.opt_steps = opt_.steps();
    // After a clean step these are the rollback target; a step with excluded series is kept
    // but not trusted as a target.
    st_.bad_steps = 0;
    if (failed == 0) {
      st_.good_params = st_.params;
      st_.good_m = st_.opt_m;
      st_.good_v = st_.opt_v;
      st_.good_opt_steps = st_.opt_steps;
    }
    // Mean losses are per entry of the batch: weight them by its entries for the epoch mean.
    if (mean) {
      loss_weighted += g.loss * entries;
      weight += entries;
    } else {
      loss_weighted += g.loss;
      weight = 1;
    }
  }
  m.train_loss = weight > 0 ? loss_weighted / weight : std::numeric_limits<double>::quiet_NaN();
  m.nfe_forward /= std::max<long>(1, solved);
  m.nfe_backward /= std::max<long>(1, solved);
  m.grad_norm = steps > 0 ? grad_norm_sum / steps : 0;
  st_.epoch_step = 0;
  return true;
}

void Trainer::run(int stop_after_epoch) {
  stopped_by_signal_ = 0;
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const int first_epoch = st_.epoch + 1;
  while (!finished()) {
    const int epoch = st_.epoch + 1;
    const auto t0 = clock::now();
    EpochMetrics m;
    m.epoch = epoch;
    if (!run_epoch(epoch, m)) {
      char line[200];
      std::snprintf(line, sizeof line, "%s: stopping after epoch %d step %d (of %d); latest.h5 keeps the state",
                    signal_name(stopped_by_signal_), st_.epoch, st_.epoch_step,
                    (static_cast<int>(train_.size()) + s_.run.batch_size - 1) / s_.run.batch_size);
      emit(line);
      if (on_epoch) on_epoch(st_);
      break;
    }

    const bool validate = epoch % s_.run.val_every == 0 || epoch == s_.run.epochs;
    if (after_epoch_steps) after_epoch_steps(validate, st_.params);
    if (validate) {
      const bool have_val = !val_.empty();
      const std::vector<Trajectory> no_z0;
      const Evaluation ev = have_val ? evaluate_on_ranks(Ranks::world(), model_.dynamics(), network(st_.params),
                                                         val_problem(st_.params), s_.solver, s_.run.threads)
                                     : Evaluation{};
      for (const auto& f : ev.failed) {
        std::ostringstream o;
        o << "epoch " << epoch << ": validation series '" << val_ids_[f.series] << "' failed (flag "
          << f.flag << "): " << f.message;
        emit(o.str());
      }
      // Without a validation split the training loss stands in (early stopping, plateau, best).
      m.val_loss = have_val ? ev.loss : m.train_loss;
      m.val_rmse = have_val ? ev.rmse_all : std::numeric_limits<double>::quiet_NaN();
      if (m.val_loss < st_.best_val) {
        st_.best_val = m.val_loss;
        st_.best_epoch = epoch;
        st_.best_params = st_.params;
        st_.stale_validations = 0;
      } else if (++st_.stale_validations >= s_.run.early_stop_patience &&
                 s_.run.early_stop_patience > 0) {
        st_.stopped_early = true;
      }
      sched_.observe(m.val_loss);
    }
    m.seconds = std::chrono::duration<double>(clock::now() - t0).count();
    st_.schedule = sched_.state();
    st_.epoch = epoch;
    st_.history.push_back(m);

    const double elapsed = std::chrono::duration<double>(clock::now() - start).count();
    const double eta = elapsed / (epoch - first_epoch + 1) * (s_.run.epochs - epoch);
    // Validation figures only on the epochs that validate (not "val nan" in between); a
    // validation whose series failed has no RMSE to show.
    char val_part[80] = "";
    if (validate && !val_.empty() && std::isfinite(m.val_rmse))
      std::snprintf(val_part, sizeof val_part, "  val %.4e  rmse %.4e", m.val_loss, m.val_rmse);
    else if (validate && !val_.empty())
      std::snprintf(val_part, sizeof val_part, "  val failed");
    char line[400];
    std::snprintf(line, sizeof line,
                  "epoch %4d/%d  train %.4e%s  nfe/series fwd %.0f bwd %.0f  "
                  "lr %.2e  %.2fs  ETA %.0fs%s",
                  epoch, s_.run.epochs, m.train_loss, val_part, m.nfe_forward, m.nfe_backward, m.lr,
                  m.seconds, eta, m.failures ? ("  failures " + std::to_string(m.failures)).c_str() : "");
    emit(line);
    if (st_.stopped_early)
      emit("early stopping: no validation improvement for " +
           std::to_string(s_.run.early_stop_patience) + " validations (best epoch " +
           std::to_string(st_.best_epoch) + ")");
    if (on_epoch) on_epoch(st_);
    if (stop_after_epoch > 0 && epoch >= stop_after_epoch) break;
  }
}

}  // namespace cvnode

#include "cvnode/cnf_model.h"

#include <cmath>
#include <sstream>

#include "cvnode/errors.h"
#include "cvnode/loss.h"
#include "cvnode/problem.h"
#include "cvnode/regularization.h"
#include "cvnode/solver_options.h"
#include "cvnode/planar_flow.h"
#include "cvnode/probed_mlp.h"
#include "core/random.h"

namespace cvnode {

namespace {

// The loss of one sample at its one observation, t = T: its negative log-likelihood
// 0.5 |z|^2 / s^2 + (D/2) log(2 pi s^2) + l(T) (l' = -tr J) plus the weighted regulariser
// integrals carried as state components. A mean over the minibatch: each sample counts once.
class CnfLikelihood final : public Loss {
 public:
  CnfLikelihood(const Cnf& cnf, double s2, double kinetic_weight, double jacobian_weight)
      : cnf_(cnf), s2_(s2), kinetic_weight_(kinetic_weight), jacobian_weight_(jacobian_weight) {}
  std::string name() const override { return "cnf_likelihood"; }
  LossReduction reduction() const override { return LossReduction::Mean; }
  long entries(const Trajectory&) const override { return 1; }
  std::string validate(int series, const Trajectory& trajectory, int state_size) const override {
    if (state_size != cnf_.state_size() || trajectory.times.size() != 1)
      return "cnf_likelihood scores one observation (t = T) of a flow state of " +
             std::to_string(cnf_.state_size()) + " components";
    return {};
  }
  double term(const ObservationSite&, ConstVectorRef z, ConstVectorRef, VectorRef dl_dz, VectorRef) const override {
    const int D = cnf_.dim();
    dl_dz.setZero();
    dl_dz.head(D) = z.head(D) / s2_;
    dl_dz[cnf_.logp_index()] = 1;
    double l = 0.5 * z.head(D).squaredNorm() / s2_ + 0.5 * D * std::log(2 * M_PI * s2_) + z[cnf_.logp_index()];
    if (cnf_.kinetic_index() >= 0) {
      dl_dz[cnf_.kinetic_index()] = kinetic_weight_;
      l += kinetic_weight_ * z[cnf_.kinetic_index()];
    }
    if (cnf_.frobenius_index() >= 0) {
      dl_dz[cnf_.frobenius_index()] = jacobian_weight_;
      l += jacobian_weight_ * z[cnf_.frobenius_index()];
    }
    return l;
  }

 private:
  const Cnf& cnf_;
  double s2_, kinetic_weight_, jacobian_weight_;
};

}  // namespace

std::uint64_t probe_seed(std::uint64_t seed, long step, std::size_t index) {
  detail::Rng r(seed ^ (0x9E3779B97F4A7C15ULL * static_cast<std::uint64_t>(step + 1)) ^
                (0xD1B54A32D192ED03ULL * static_cast<std::uint64_t>(index + 1)));
  return r.next();
}

std::string CnfModelOptions::validate() const {
  if (field != "mlp" && field != "planar") return "cnf.field = '" + field + "': mlp or planar";
  for (int h : hidden)
    if (h < 1) return "cnf.hidden: width " + std::to_string(h) + " must be >= 1";
  if (width < 1) return "cnf.width = " + std::to_string(width) + " must be >= 1";
  if (hyper_hidden < 1) return "cnf.hyper_hidden = " + std::to_string(hyper_hidden) + " must be >= 1";
  if (trace == TraceEstimator::Hutchinson && probes < 1)
    return "cnf.probes = " + std::to_string(probes) + " must be >= 1";
  if (!(end_time > 0) || !std::isfinite(end_time)) return "cnf.end_time = " + std::to_string(end_time) + " must be > 0";
  if (!(base_std > 0) || !std::isfinite(base_std)) return "cnf.base_std = " + std::to_string(base_std) + " must be > 0";
  if (!(kinetic_weight >= 0) || !std::isfinite(kinetic_weight))
    return "regularization.kinetic_weight = " + std::to_string(kinetic_weight) + " must be >= 0";
  if (!(jacobian_weight >= 0) || !std::isfinite(jacobian_weight))
    return "regularization.jacobian_weight = " + std::to_string(jacobian_weight) + " must be >= 0";
  if (!(error_weight >= 0) || !std::isfinite(error_weight))
    return "regularization.error_weight = " + std::to_string(error_weight) + " must be >= 0";
  if (!(steer >= 0) || !(steer < end_time))
    return "regularization.steer = " + std::to_string(steer) + " must be in [0, cnf.end_time = " +
           std::to_string(end_time) + ")";
  return {};
}

CnfModel::CnfModel(const CnfModelOptions& options, int dim, double log_scale)
    : o_(options), dim_(dim), log_scale_(log_scale) {
  if (std::string why = o_.validate(); !why.empty()) throw OptionsError(why);
  if (dim < 1) throw OptionsError("cnf: the data have " + std::to_string(dim) + " dimensions");
  if (o_.field == "mlp") {
    ProbedMlpSpec s;
    s.layers.push_back(dim);
    s.layers.insert(s.layers.end(), o_.hidden.begin(), o_.hidden.end());
    s.layers.push_back(dim);
    s.activation = o_.activation;
    s.time_input = o_.time_input;
    s.init = o_.init;
    field_ = std::make_unique<ProbedMlp>(s);
  } else {
    PlanarFlowSpec s;
    s.dim = dim;
    s.width = o_.width;
    s.hyper_hidden = o_.hyper_hidden;
    s.init = o_.init;
    field_ = std::make_unique<PlanarFlow>(s);
  }
  CnfOptions c;
  c.trace = o_.trace;
  c.noise = o_.noise;
  c.probes = o_.probes;
  c.kinetic = o_.kinetic_weight > 0;
  c.frobenius = o_.jacobian_weight > 0;
  cnf_ = std::make_unique<Cnf>(*field_, c);
}

CnfModel::~CnfModel() = default;

std::string CnfModel::describe() const {
  std::ostringstream s;
  s << "cnf ";
  if (o_.field == "mlp") {
    s << "mlp " << dim_;
    for (int h : o_.hidden) s << "-" << h;
    s << "-" << dim_ << " " << activation_name(o_.activation) << (o_.time_input ? " time_input" : "");
  } else {
    s << "planar width " << o_.width << " hypernetwork 1-" << o_.hyper_hidden << "-" << o_.hyper_hidden;
  }
  s << ", trace " << trace_estimator_name(o_.trace);
  if (o_.trace == TraceEstimator::Hutchinson) s << " (" << o_.probes << " " << probe_noise_name(o_.noise) << ")";
  s << ", T " << o_.end_time << ", base std " << o_.base_std << ", " << param_size() << " parameters";
  return s.str();
}

CnfEngine CnfModel::engine(SolverOptions solver, int stack, int threads) const {
  if (stack < 1) throw OptionsError("cnf stack = " + std::to_string(stack) + " must be >= 1");
  if (solver.method != "dopri5" && solver.cvodes.adjoint_form == AdjointForm::Auto)
    solver.cvodes.adjoint_form = AdjointForm::Restart;
  solver = with_error_penalty(solver, o_.error_weight);
  CnfEngine e;
  e.solver = solver;
  e.stack = stack;
  e.threads = threads;
  BatchOptions b;
  b.threads = threads;
  b.mode = BatchMode::Stacked;
  b.stack_size = stack;
  b.skip_failures = true;
  e.batch = std::make_unique<BatchSolver>(*cnf_, solver, b);
  return e;
}

CnfMinibatch CnfModel::gradient(const Vector& params, const Matrix& points, const std::vector<std::size_t>& rows,
                                const CnfStep& step, CnfEngine& engine) const {
  const Cnf& cnf = *cnf_;
  const int D = dim_;
  const int B = static_cast<int>(rows.size());
  CnfMinibatch out;
  out.end_time = o_.end_time;
  if (o_.steer > 0) {
    detail::Rng r(probe_seed(step.seed ^ 0x5EEDULL, step.step, 0));
    out.end_time += o_.steer * (2 * r.uniform() - 1);
  }
  std::vector<Trajectory> batch(B);
  for (int b = 0; b < B; ++b) {
    Trajectory& tr = batch[b];
    tr.t0 = 0;
    tr.z0 = cnf.initial_state(points.row(rows[b]).transpose(), probe_seed(step.seed, step.step, rows[b]));
    tr.times = Vector::Constant(1, out.end_time);
    tr.values = Matrix::Zero(1, 1);  // not read: the likelihood scores z(T) alone
  }
  const double s2 = o_.base_std * o_.base_std;
  Problem problem(std::move(batch), std::make_shared<CnfLikelihood>(cnf, s2, o_.kinetic_weight, o_.jacobian_weight));
  const BatchGradient g = engine.batch->gradient(params, problem);
  out.failures = g.failures;
  out.gradient = g.theta;
  out.nfe_forward = g.nfe_forward;
  out.nfe_backward = g.nfe_backward;
  out.solves = (B + engine.stack - 1) / engine.stack;
  // The penalty is one per stacked solve (its steps serve all its samples), not per sample.
  const double penalty = o_.error_weight * g.solver_error;
  out.solver_error = g.solver_error / out.solves;
  std::vector<bool> failed(B, false);
  for (const SeriesFailure& f : g.failures) failed[f.series] = true;
  const int ok = B - static_cast<int>(g.failures.size());
  const double norm = 0.5 * D * std::log(2 * M_PI * s2);
  for (int b = 0; b < B; ++b) {
    if (failed[b]) continue;
    const Vector y = g.states[b].row(0).transpose();
    const double nll = 0.5 * y.head(D).squaredNorm() / s2 + norm + y[cnf.logp_index()];
    out.nll += nll;
    out.loss += nll;
    if (cnf.kinetic_index() >= 0) {
      out.kinetic += y[cnf.kinetic_index()];
      out.loss += o_.kinetic_weight * y[cnf.kinetic_index()];
    }
    if (cnf.frobenius_index() >= 0) {
      out.frobenius += y[cnf.frobenius_index()];
      out.loss += o_.jacobian_weight * y[cnf.frobenius_index()];
    }
  }
  // The gradient is of the sum over all B samples / B (+ the penalty); rescale to the mean over
  // those solved (failures are rare: a step with more than half of them is skipped; the
  // penalty's part of the gradient is then rescaled with the rest).
  if (ok > 0) {
    out.gradient *= static_cast<double>(B) / ok;
    out.nll = out.nll / ok + log_scale_;
    out.loss = out.loss / ok + penalty;
    out.kinetic /= ok;
    out.frobenius /= ok;
  }
  return out;
}

Flow CnfModel::flow(const Vector& params, FlowSettings settings) const {
  settings.end_time = o_.end_time;
  settings.base_std = o_.base_std;
  return Flow(*field_, params, settings);
}

CnfEvaluation CnfModel::evaluate(const Vector& params, const Matrix& points, const FlowSettings& settings) const {
  const Flow f = flow(params, settings);
  const FlowPoints r = f.log_density(points);
  CnfEvaluation e;
  e.log_density = r.log_density.array() - log_scale_;
  e.nll = -e.log_density.mean();
  e.nll_per_dim = e.nll / dim_;
  e.nfe = r.nfe;
  return e;
}

}  // namespace cvnode

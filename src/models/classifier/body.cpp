#include "models/classifier/body.h"

#include <map>

#include "core/random.h"
#include "cvnode/errors.h"
#include "cvnode/loss.h"
#include "cvnode/observations.h"
#include "cvnode/problem.h"
#include "cvnode/solver.h"
#include "cvnode/stacked.h"

namespace cvnode::detail {

namespace {

// The head as the ODE block's loss: at z(T) (the minibatch stacked, n x B) the term is the
// head's loss and dl/dz its cotangent; the head's own parameter gradient is written as it runs
// (the Cotangent's side effect). Unlike the Loss contract's general case it is not shared across
// threads: one Solver evaluates it once per gradient, for the one series of its Problem.
class HeadLoss final : public Loss {
 public:
  HeadLoss(const Cotangent& head, int n, int B) : head_(head), n_(n), B_(B) {}
  std::string name() const override { return "classifier_head"; }
  std::string validate(int, const Trajectory& tr, int state_size) const override {
    if (tr.times.size() != 1 || state_size != static_cast<long>(n_) * B_)
      return "classifier head: one observation time and " + std::to_string(static_cast<long>(n_) * B_) +
             " states expected, got " + std::to_string(tr.times.size()) + " and " + std::to_string(state_size);
    return {};
  }
  double term(const ObservationSite&, ConstVectorRef z, ConstVectorRef, VectorRef dl_dz, VectorRef) const override {
    Z1_ = Eigen::Map<const Matrix>(z.data(), n_, B_);
    const double loss = head_(Z1_, dZ1_);
    dl_dz = Eigen::Map<const Vector>(dZ1_.data(), dZ1_.size());
    return loss;
  }

 private:
  const Cotangent& head_;
  int n_, B_;
  mutable Matrix Z1_, dZ1_;
};

class OdeBody final : public Body {
 public:
  OdeBody(const ConvDynamics& f, const SolverOptions& options, double horizon)
      : f_(f), base_options_(options), options_(options), horizon_(horizon) {}

  int param_size() const override { return f_.param_size(); }
  Vector initial_parameters(std::uint64_t seed) const override { return f_.initial_parameters(seed); }

  void forward(const double* theta, const Matrix& Z0, Matrix& Z1, BodyStats& stats,
               const SolverOptions* solver) override {
    const int B = static_cast<int>(Z0.cols());
    Unit& u = unit(B);
    std::unique_ptr<Solver> own;
    if (solver) own = std::make_unique<Solver>(*u.dynamics, *solver);
    const Solution s = (own ? *own : *u.solver).solve(theta_map(theta), 0.0, flat(Z0), end_time());
    Z1 = Eigen::Map<const Matrix>(s.states.data(), f_.state_size(), B);
    stats.nfe_forward = s.nfe;
    stats.nfe_backward = 0;
    stats.forward = s.stats;
    stats.backward = SolverStats{};
  }

  void set_regularization(const RegularizationOptions& o) override {
    if (std::string why = o.validate(); !why.empty()) throw OptionsError(why);
    if (!(o.steer < horizon_))
      throw OptionsError("regularization.steer = " + std::to_string(o.steer) + " must be below the block's horizon " +
                         std::to_string(horizon_) + " (the end time is drawn from U(horizon - b, horizon + b))");
    if (o.jacobian_weight > 0 && o.jacobian_estimator == TraceEstimator::Exact)
      throw OptionsError("regularization.jacobian_estimator = exact would take one Jacobian-vector product per state "
                         "entry (" + std::to_string(f_.state_size()) + " per image) of the convolutional block; use "
                         "hutchinson");
    // Throws naming regularization.error_weight for the CVODES adjoint (adams, bdf).
    SolverOptions solver = with_error_penalty(base_options_, o.error_weight);
    reg_ = o;
    options_ = solver;
    units_.clear();  // solvers with the new options on the next call
  }

  // The rest of the network (the head) is the block's loss: an engine asks its loss for the
  // terms once, after the forward pass, at the very z(T) its backward pass starts from, so one
  // solve gives z(T), the head's cotangent c = dLoss/dz(T) and the gradient.
  void gradient(const double* theta, const Matrix& Z0, const Cotangent& head, Matrix& dZ0, double* dtheta,
                BodyStats& stats, std::uint64_t step_seed) override {
    const int B = static_cast<int>(Z0.cols());
    Unit& u = unit(B);
    Rng rng(step_seed);
    Trajectory tr;
    tr.t0 = 0;
    tr.z0 = flat(Z0);
    // STEER (Ghosh et al. 2020): the block stops at T ~ U(horizon - b, horizon + b) this step.
    tr.times = Vector::Constant(1, reg_.steer > 0 ? horizon_ + reg_.steer * (2 * rng.uniform() - 1) : horizon_);
    tr.values = Matrix(1, 0);  // nothing observed: the head scores z(T)
    Problem problem({std::move(tr)}, std::make_shared<HeadLoss>(head, f_.state_size(), B));
    // The running costs of the stacked minibatch, per image (weight / B) as the head's loss is
    // the mean over images: sum_b |f_b|^2 and sum_b |J_b|_F^2 (the stack's Jacobian is block
    // diagonal, a probe over the whole stack estimates the sum).
    if (reg_.kinetic_weight > 0) problem.add_running_cost(std::make_shared<KineticEnergy>(*u.dynamics, reg_.kinetic_weight / B));
    if (reg_.jacobian_weight > 0) {
      JacobianDifference::Options j;
      j.weight = reg_.jacobian_weight / B;
      j.probes = reg_.jacobian_probes;
      j.seed = rng.next();
      problem.add_running_cost(std::make_shared<JacobianDifference>(*u.dynamics, j));
    }
    const Gradient g = u.solver->gradient(theta_map(theta), problem);
    stats.objective = g.loss;
    stats.solver_error = g.solver_error;
    stats.end_time = problem.all_series()[0].times[0];
    dZ0 = Eigen::Map<const Matrix>(g.z0.data(), f_.state_size(), B);
    Eigen::Map<Vector>(dtheta, f_.param_size()) = g.theta;
    stats.nfe_forward = g.nfe_forward;
    stats.nfe_backward = g.nfe_backward;
    stats.forward = g.forward;
    stats.backward = g.backward;
  }

 private:
  struct Unit {
    std::unique_ptr<Stacked> dynamics;
    std::unique_ptr<Solver> solver;
  };
  // One stacked ODE and its solver per minibatch size (training and evaluation batches differ).
  Unit& unit(int B) {
    Unit& u = units_[B];
    if (!u.solver) {
      u.dynamics = std::make_unique<Stacked>(f_, B);
      u.solver = std::make_unique<Solver>(*u.dynamics, options_);
    }
    return u;
  }
  Eigen::Map<const Vector> theta_map(const double* theta) const { return {theta, f_.param_size()}; }
  static Vector flat(const Matrix& Z) { return Eigen::Map<const Vector>(Z.data(), Z.size()); }
  Vector end_time() const { return Vector::Constant(1, horizon_); }

  const ConvDynamics& f_;
  SolverOptions base_options_, options_;  // as built; with the solver-error penalty of reg_
  double horizon_;
  RegularizationOptions reg_;
  std::map<int, Unit> units_;
};

class ResidualBody final : public Body {
 public:
  ResidualBody(const ConvDynamics& f, int blocks) : f_(f), blocks_(blocks) {}

  int param_size() const override { return blocks_ * f_.param_size(); }
  Vector initial_parameters(std::uint64_t seed) const override {
    Vector theta(param_size());
    for (int k = 0; k < blocks_; ++k) theta.segment(k * f_.param_size(), f_.param_size()) = f_.initial_parameters(seed + k);
    return theta;
  }

  void forward(const double* theta, const Matrix& Z0, Matrix& Z1, BodyStats& stats, const SolverOptions*) override {
    stats = BodyStats{};
    run(theta, Z0, Z1, false);
  }

  void gradient(const double* theta, const Matrix& Z0, const Cotangent& head, Matrix& dZ0, double* dtheta,
                BodyStats& stats, std::uint64_t) override {
    stats = BodyStats{};
    Matrix Z1, A;
    run(theta, Z0, Z1, true);
    stats.objective = head(Z1, A);
    const int P = f_.param_size();
    Matrix AZ(A.rows(), A.cols());
    // Backwards through the layers, each VJP on its own layer's kept forward pass.
    for (int k = blocks_ - 1; k >= 0; --k) {
      Eigen::Map<Vector> dk(dtheta + static_cast<long>(k) * P, P);
      f_.vjp_batch_again(0.0, inputs_[k], theta_k(theta, k), A, AZ, dk, work_[k]);
      A += AZ;
    }
    dZ0 = std::move(A);
  }

  void set_regularization(const RegularizationOptions& o) override {
    if (o.any())
      throw OptionsError("the [regularization] keys apply to the ODE blocks (odenet, rknet); a resnet has no "
                         "solver, end time or running cost");
  }

 private:
  Eigen::Map<const Vector> theta_k(const double* theta, int k) const {
    return {theta + static_cast<long>(k) * f_.param_size(), f_.param_size()};
  }
  // z_{k+1} = z_k + f(z_k; theta_k); with `keep`, every layer's input and forward pass are kept
  // (memory grows with depth, as in any backpropagated ResNet).
  void run(const double* theta, const Matrix& Z0, Matrix& Z, bool keep) {
    const int B = static_cast<int>(Z0.cols());
    const int layers = keep ? blocks_ : 1;
    if (static_cast<int>(work_.size()) != layers || work_[0].size() != f_.batch_workspace_size(B)) {
      work_.assign(layers, Vector(f_.batch_workspace_size(B)));
      inputs_.assign(layers, Matrix());
    }
    Z = Z0;
    Matrix F(Z0.rows(), B);
    for (int k = 0; k < blocks_; ++k) {
      Vector& w = work_[keep ? k : 0];
      if (keep) inputs_[k] = Z;
      f_.rhs_batch(0.0, Z, theta_k(theta, k), F, w);
      Z += F;
    }
  }

  const ConvDynamics& f_;
  int blocks_;
  std::vector<Vector> work_;
  std::vector<Matrix> inputs_;
};

}  // namespace

std::unique_ptr<Body> make_ode_body(const ConvDynamics& f, const SolverOptions& options, double horizon) {
  return std::make_unique<OdeBody>(f, options, horizon);
}

std::unique_ptr<Body> make_residual_body(const ConvDynamics& f, int blocks) {
  return std::make_unique<ResidualBody>(f, blocks);
}

}  // namespace cvnode::detail

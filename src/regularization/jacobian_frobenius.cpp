// JacobianFrobenius: g = lambda c sum_k |J e_k|^2 over probe columns E (the identity, c = 1: the
// exact squared Frobenius norm; K random probes, c = 1/K: Hutchinson's estimate). J E comes from
// the network's forward-mode tangents (ProbedMlp), and dg/dz, dg/dtheta from its reverse pass
// with the tangent cotangent G = 2 lambda c J E, which carries the second derivatives.
#include <stdexcept>

#include "cvnode/errors.h"
#include "cvnode/hybrid.h"
#include "cvnode/mlp.h"
#include "cvnode/probed_mlp.h"
#include "cvnode/running_cost.h"

namespace cvnode {

namespace {
using MatMap = Eigen::Map<Eigen::MatrixXd>;
using ConstMatMap = Eigen::Map<const Eigen::MatrixXd>;
}  // namespace

struct JacobianFrobenius::Impl {
  std::unique_ptr<ProbedMlp> net;
  int n = 0, m = 0, K = 0, pn = 0, theta_offset = 0, net_work = 0;
  double c = 1, weight = 0;
  Vector decay;            // k_diag of the Mlp (J = J_net - diag(k)), or empty
  std::vector<int> in;     // state components the network reads (all for a plain Mlp)
  Vector scale;            // and their factors
  Matrix E;                // m x K probes
  // Workspace offsets after the network's: x, F, JE, G, Fbar, xbar, Ebar.
  int x, F, JE, G, Fbar, xbar, Ebar, end;
};

JacobianFrobenius::JacobianFrobenius(const Dynamics& dynamics, Options o) {
  auto impl = std::make_unique<Impl>();
  const Mlp* mlp = dynamic_cast<const Mlp*>(&dynamics);
  const auto* hybrid = dynamic_cast<const Hybrid*>(&dynamics);
  if (hybrid) {
    mlp = hybrid->network() ? dynamic_cast<const Mlp*>(hybrid->network()) : nullptr;
    if (!mlp)
      throw OptionsError("the Jacobian regulariser needs the hybrid model's network term to be an MLP");
    impl->in = hybrid->input_indices();
    impl->scale = hybrid->input_scale();
    impl->theta_offset = hybrid->physics_param_size();
  } else if (!mlp) {
    throw OptionsError("the Jacobian regulariser applies to MLP dynamics and to hybrid models with an MLP term");
  }
  if (!(o.weight >= 0)) throw OptionsError("jacobian_weight = " + std::to_string(o.weight) + " must be >= 0");
  if (o.estimator == TraceEstimator::Hutchinson && o.probes < 1)
    throw OptionsError("jacobian probes = " + std::to_string(o.probes) + " must be >= 1");
  ProbedMlpSpec spec;
  spec.layers = mlp->spec().layers;
  spec.activation = mlp->spec().activation;
  spec.time_input = mlp->spec().time_input;
  impl->net = std::make_unique<ProbedMlp>(spec);
  impl->n = dynamics.state_size();
  impl->m = mlp->state_size();
  impl->pn = mlp->param_size();
  impl->decay = hybrid ? Vector() : mlp->spec().k_diag;
  if (!hybrid) {
    impl->in.resize(impl->m);
    for (int i = 0; i < impl->m; ++i) impl->in[i] = i;
    impl->scale = Vector::Ones(impl->m);
  }
  impl->weight = o.weight;
  if (o.estimator == TraceEstimator::Exact) {
    impl->K = impl->m;
    impl->E = Matrix::Identity(impl->m, impl->m);
  } else {
    impl->K = o.probes;
    impl->E.resize(impl->m, impl->K);
    draw_probes(o.noise, o.seed, Eigen::Map<Vector>(impl->E.data(), impl->E.size()));
    impl->c = 1.0 / impl->K;
  }
  const int m = impl->m, K = impl->K;
  impl->net_work = impl->net->workspace_size(1, K);
  int w = impl->net_work;
  impl->x = w, w += m;
  impl->F = w, w += m;
  impl->JE = w, w += m * K;
  impl->G = w, w += m * K;
  impl->Fbar = w, w += m;
  impl->xbar = w, w += m;
  impl->Ebar = w, w += m * K;
  impl->end = w;
  impl_ = std::move(impl);
}

JacobianFrobenius::~JacobianFrobenius() = default;

int JacobianFrobenius::workspace_size() const { return impl_->end; }

double JacobianFrobenius::evaluate(double t, ConstVectorRef z, ConstVectorRef theta, double* w) const {
  const Impl& p = *impl_;
  Eigen::Map<Vector> x(w + p.x, p.m);
  for (int i = 0; i < p.m; ++i) x[i] = p.scale[i] * z[p.in[i]];
  MatMap JE(w + p.JE, p.m, p.K);
  p.net->forward(t, ConstMatMap(x.data(), p.m, 1), theta.segment(p.theta_offset, p.pn), p.E,
                 MatMap(w + p.F, p.m, 1), JE, Eigen::Map<Vector>(w, p.net_work));
  if (p.decay.size()) JE -= p.decay.asDiagonal() * p.E;
  return p.weight * p.c * JE.squaredNorm();
}

double JacobianFrobenius::value(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef work) const {
  return evaluate(t, z, theta, work.data());
}

void JacobianFrobenius::gradient(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef dg_dz,
                                 VectorRef dg_dtheta, VectorRef work) const {
  const Impl& p = *impl_;
  double* w = work.data();
  evaluate(t, z, theta, w);
  MatMap G(w + p.G, p.m, p.K);
  G = (2 * p.weight * p.c) * MatMap(w + p.JE, p.m, p.K);
  MatMap(w + p.Fbar, p.m, 1).setZero();
  MatMap xbar(w + p.xbar, p.m, 1);
  const bool want_theta = dg_dtheta.size() > 0;
  if (want_theta) dg_dtheta.head(p.theta_offset).setZero();
  Eigen::Map<Vector> none(w, 0);
  p.net->reverse(t, theta.segment(p.theta_offset, p.pn), p.E, MatMap(w + p.Fbar, p.m, 1), G, xbar,
                 want_theta ? VectorRef(dg_dtheta.segment(p.theta_offset, p.pn)) : VectorRef(none),
                 MatMap(w + p.Ebar, p.m, p.K), Eigen::Map<Vector>(w, p.net_work));
  dg_dz.setZero();
  for (int i = 0; i < p.m; ++i) dg_dz[p.in[i]] += p.scale[i] * xbar(i, 0);
}

}  // namespace cvnode

// The adjoint's VJPs at one interpolated forward state share one forward pass (vjp_again): the
// solver must call it, only at the point of the previous VJP, and the gradient must be the same
// bits as with a fresh forward pass every time.
// ctest: labels=unit,sanitize timeout=60
#define BOOST_TEST_MODULE vjp_reuse
#include <boost/test/unit_test.hpp>

#include "cvnode/cvnode.h"
#include "test_util.h"

using namespace cvnode;
using cvnode::test::random_vector;

namespace {

// Wraps a Dynamics; counts vjp_again calls and either forwards them (reuse) or runs a full vjp.
class Counting final : public Dynamics {
 public:
  Counting(const Dynamics& inner, bool reuse) : inner_(inner), reuse_(reuse) {}
  int state_size() const override { return inner_.state_size(); }
  int param_size() const override { return inner_.param_size(); }
  int workspace_size() const override { return inner_.workspace_size(); }
  void rhs(double t, ConstVectorRef z, ConstVectorRef th, VectorRef f, VectorRef w) const override {
    inner_.rhs(t, z, th, f, w);
  }
  void vjp(double t, ConstVectorRef z, ConstVectorRef th, ConstVectorRef a, VectorRef az, VectorRef ap,
           VectorRef w) const override {
    ++full;
    inner_.vjp(t, z, th, a, az, ap, w);
  }
  void vjp_again(double t, ConstVectorRef z, ConstVectorRef th, ConstVectorRef a, VectorRef az, VectorRef ap,
                 VectorRef w) const override {
    ++again;
    if (reuse_) inner_.vjp_again(t, z, th, a, az, ap, w);
    else inner_.vjp(t, z, th, a, az, ap, w);
  }
  void jacobian(double t, ConstVectorRef z, ConstVectorRef th, MatrixRef J, VectorRef w) const override {
    inner_.jacobian(t, z, th, J, w);
  }
  void jvp(double t, ConstVectorRef z, ConstVectorRef th, ConstVectorRef v, VectorRef Jv,
           VectorRef w) const override {
    inner_.jvp(t, z, th, v, Jv, w);
  }
  mutable long full = 0, again = 0;

 private:
  const Dynamics& inner_;
  bool reuse_;
};

Trajectory series(int n, std::uint64_t seed) {
  Trajectory tr;
  tr.z0 = random_vector(n, seed);
  tr.times = Vector::LinSpaced(5, 0.3, 2.0);
  tr.values = random_vector(5 * n, seed + 1, 0.5).reshaped(5, n);
  return tr;
}

}  // namespace

BOOST_AUTO_TEST_CASE(reused_forward_pass_gives_the_same_bits) {
  MlpSpec s;
  s.layers = {3, 16, 16, 3};
  const Mlp mlp(s);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 4);
  const Trajectory tr = series(3, 9);
  for (std::string m : {"adams", "bdf"}) {
    for (LinearSolver ls : {LinearSolver::Dense, LinearSolver::Gmres}) {
      if (m == "adams" && ls == LinearSolver::Gmres) continue;
      SolverOptions o;
      o.method = m;
      o.cvodes.linear_solver = ls;
      o.rtol = 1e-8;
      o.cvodes.checkpoint_steps = 7;  // recomputation between checkpoints interleaves forward rhs calls
      Counting reuse(mlp, true), fresh(mlp, false);
      Solver a(reuse, o), b(fresh, o);
      const Gradient ga = a.gradient(theta, test::problem(tr, make_loss("half_sse"))), gb = b.gradient(theta, test::problem(tr, make_loss("half_sse")));
      BOOST_TEST_CONTEXT(m << (ls == LinearSolver::Gmres ? " gmres" : " dense")) {
        BOOST_TEST(reuse.again > 0);  // the quadrature at least follows the last corrector VJP
        BOOST_TEST(reuse.again == fresh.again);
        BOOST_TEST(ga.loss == gb.loss);
        BOOST_TEST((ga.theta - gb.theta).cwiseAbs().maxCoeff() == 0.0);
        BOOST_TEST((ga.z0 - gb.z0).cwiseAbs().maxCoeff() == 0.0);
        BOOST_TEST_MESSAGE("forward passes saved: " << reuse.again << " of " << reuse.again + reuse.full);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(stacked_batches_reuse_the_batched_forward_pass) {
  MlpSpec s;
  s.layers = {2, 16, 2};
  const Mlp mlp(s);
  const Vector theta = mlp.initial_parameters(Init::Glorot, 6);
  std::vector<Trajectory> batch;
  for (int b = 0; b < 4; ++b) batch.push_back(series(2, 100 + b));
  const Stacked stacked(mlp, 4);
  Vector z(8), a = random_vector(8, 3), az1(8), az2(8), ap1(mlp.param_size()), ap2(mlp.param_size()),
      f(8);
  for (int b = 0; b < 4; ++b) z.segment(2 * b, 2) = batch[b].z0;
  Vector w = Vector::Zero(stacked.workspace_size());
  stacked.rhs(0.5, z, theta, f, w);
  stacked.vjp_again(0.5, z, theta, a, az1, ap1, w);  // after rhs at the same point
  stacked.vjp(0.5, z, theta, a, az2, ap2, w);
  BOOST_TEST((az1 - az2).cwiseAbs().maxCoeff() == 0.0);
  BOOST_TEST((ap1 - ap2).cwiseAbs().maxCoeff() == 0.0);
}

// SUNDIALS' adjoint example cvsRoberts_ASAi_dns through cvnode's public API: the Robertson
// kinetics as a user-defined Dynamics with parameters p = (p1, p2, p3), and
// G = integral of y3 from 0 to tB as a running cost. For each horizon of the example
// (tB = 4e7 and tB = 50) prints one JSON line with G, dG/dp and dG/dy0 (the adjoint at t0).
#include <iostream>

#include <nlohmann/json.hpp>

#include "cvnode/cvnode.h"

namespace {

using namespace cvnode;

// dy1/dt = -p1 y1 + p2 y2 y3
// dy2/dt =  p1 y1 - p2 y2 y3 - p3 y2^2
// dy3/dt =  p3 y2^2
class RobertsonKinetics final : public Dynamics {
 public:
  int state_size() const override { return 3; }
  int param_size() const override { return 3; }
  int workspace_size() const override { return 0; }

  void rhs(double, ConstVectorRef y, ConstVectorRef p, VectorRef f, VectorRef) const override {
    const double r1 = p[0] * y[0], r2 = p[1] * y[1] * y[2], r3 = p[2] * y[1] * y[1];
    f << -r1 + r2, r1 - r2 - r3, r3;
  }
  void jacobian(double, ConstVectorRef y, ConstVectorRef p, MatrixRef J, VectorRef) const override {
    J << -p[0], p[1] * y[2], p[1] * y[1],
          p[0], -p[1] * y[2] - 2 * p[2] * y[1], -p[1] * y[1],
          0, 2 * p[2] * y[1], 0;
  }
  void jvp(double t, ConstVectorRef y, ConstVectorRef p, ConstVectorRef v, VectorRef Jv,
           VectorRef w) const override {
    Eigen::Matrix3d J;
    jacobian(t, y, p, J, w);
    Jv = J * v;
  }
  void vjp(double t, ConstVectorRef y, ConstVectorRef p, ConstVectorRef a, VectorRef a_dfdy,
           VectorRef a_dfdp, VectorRef w) const override {
    Eigen::Matrix3d J;
    jacobian(t, y, p, J, w);
    a_dfdy = J.transpose() * a;
    if (a_dfdp.size() == 0) return;
    // df/dp columns: d/dp1 = y1 (-1, 1, 0), d/dp2 = y2 y3 (1, -1, 0), d/dp3 = y2^2 (0, -1, 1)
    a_dfdp << y[0] * (a[1] - a[0]), y[1] * y[2] * (a[0] - a[1]), y[1] * y[1] * (a[2] - a[1]);
  }
};

// g(t, y) = y3
class Y3 final : public RunningCost {
 public:
  double value(double, ConstVectorRef y, ConstVectorRef, VectorRef) const override { return y[2]; }
  void gradient(double, ConstVectorRef, ConstVectorRef, VectorRef dy, VectorRef dp,
                VectorRef) const override {
    dy << 0, 0, 1;
    dp.setZero();
  }
};

}  // namespace

int main() {
  try {
    const RobertsonKinetics robertson;  // written here as a user would; cvnode::Robertson is the built-in twin
    const auto y3 = std::make_shared<const Y3>();
    const Vector p = (Vector(3) << 0.04, 1.0e4, 3.0e7).finished();

    // The example's settings: BDF with a dense Jacobian, rtol 1e-6, atol (1e-8, 1e-14, 1e-6),
    // adjoint atol 1e-8, quadratures with atol 1e-6 in the error test, 150 steps a checkpoint.
    SolverOptions opt;
    opt.method = "bdf";
    opt.rtol = 1e-6;
    opt.atol_vector = (Vector(3) << 1e-8, 1e-14, 1e-6).finished();
    opt.cvodes.adjoint_atol = 1e-8;
    opt.cvodes.quadrature_atol = 1e-6;
    opt.cvodes.quadrature_error_control = true;
    opt.max_steps = 2500;
    opt.cvodes.checkpoint_steps = 150;
    Solver solver(robertson, opt);

    for (double tB : {4e7, 50.0}) {
      Trajectory tr;
      tr.t0 = 0;
      tr.z0 = (Vector(3) << 1, 0, 0).finished();
      tr.times.resize(0);
      tr.values.resize(0, 3);
      tr.t_end = tB;
      Problem problem({tr}, make_loss("half_sse"));  // no observations: G alone
      problem.add_running_cost(y3);
      const Gradient g = solver.gradient(p, problem);
      nlohmann::json j;
      j["tB"] = tB;
      j["G"] = g.loss;
      j["dGdp"] = {g.theta[0], g.theta[1], g.theta[2]};
      j["dGdy0"] = {g.z0[0], g.z0[1], g.z0[2]};
      j["nfe_fwd"] = g.nfe_forward;
      j["nfe_bwd"] = g.nfe_backward;
      std::cout << j.dump() << std::endl;
    }
  } catch (const std::exception& e) {
    std::cerr << "roberts_adjoint: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

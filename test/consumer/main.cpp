// A downstream project: find_package(cvnode) and one adjoint gradient through the installed API.
#include <cvnode/cvnode.h>
#include <iostream>
int main() {
  cvnode::MlpSpec s; s.layers = {2, 8, 2};
  cvnode::Mlp f(s);
  cvnode::Solver solver(f, cvnode::SolverOptions{});
  cvnode::Trajectory tr; tr.z0 = cvnode::Vector::Ones(2); tr.times = cvnode::Vector::Constant(1, 1.0); tr.values = cvnode::Matrix::Zero(1, 2);
  const cvnode::Problem problem({tr}, cvnode::make_loss("half_sse"));
  auto g = solver.gradient(f.initial_parameters(cvnode::Init::Glorot, 1), problem);
  std::cout << g.loss << " " << g.theta.norm() << "\n";
}

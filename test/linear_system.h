// A known linear system for the training tests: the damped rotation dz/dt = A z sampled without
// noise at irregular times, each series with its initial state stored.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "cvnode/cvnode.h"

namespace cvnode::test {

// A damped rotation: eigenvalues -0.1 +- 2i, so the data spiral inwards over [0, 3].
Matrix true_A() {
  Matrix A(2, 2);
  A << -0.1, 2.0, -2.0, -0.1;
  return A;
}

std::vector<Trajectory> linear_data(int series, int times, std::uint64_t seed) {
  MlpSpec spec;
  spec.layers = {2, 2};
  spec.activation = Activation::Identity;
  const Mlp truth(spec);
  Vector theta = Vector::Zero(truth.param_size());
  const Matrix A = true_A();
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 2; ++c) theta[truth.weight_offset(0) + 2 * r + c] = A(r, c);
  SolverOptions tight;
  tight.rtol = 1e-12;
  tight.atol = 1e-14;
  Solver solver(truth, tight);
  std::vector<Trajectory> out;
  for (int s = 0; s < series; ++s) {
    Trajectory tr;
    const double ang = 2 * M_PI * (s + 0.37 * static_cast<double>(seed % 7)) / series;
    tr.z0 = Vector(2);
    tr.z0 << (1.0 + 0.1 * s) * std::cos(ang), (1.0 + 0.1 * s) * std::sin(ang);
    tr.t0 = 0;
    // Irregular times: a fixed quadratic warp of an even grid, different per series.
    tr.times.resize(times);
    for (int k = 0; k < times; ++k) {
      const double u = static_cast<double>(k) / (times - 1);
      tr.times[k] = 3.0 * (u + 0.15 * std::sin(M_PI * u) * ((s % 3) - 1) * 0.5);
    }
    tr.values = solver.solve(theta, tr.t0, tr.z0, tr.times).states;
    out.push_back(tr);
  }
  return out;
}

// dz/dt = A z as a model: one linear layer (identity activation), biases frozen at zero.
inline ModelOptions linear_model_options() {
  ModelOptions mo;
  mo.hidden = {};
  mo.activation = Activation::Identity;
  mo.bias = false;
  mo.init = Init::Glorot;
  mo.seed = 3;
  return mo;
}

}  // namespace cvnode::test

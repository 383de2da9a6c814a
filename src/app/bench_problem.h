// A gradient benchmark problem of ../shared/bench (one HDF5 file): network, initial states,
// observation times, targets, loss, and an independent reference loss and gradient.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cvnode/loss.h"
#include "cvnode/mlp.h"
#include "cvnode/observations.h"

namespace cvnode {

struct BenchProblem {
  std::string name, about, reference;
  std::string loss_name;
  MlpSpec spec;
  Vector theta;                          // [W1 row-major, b1, W2 row-major, b2, ...]
  std::vector<Trajectory> trajectories;  // one per initial state; t[0] is t0 and observed
  std::shared_ptr<const Loss> loss;
  double ref_loss = 0;
  Vector ref_grad;

  // Throws DataError naming the file and the field for anything missing or inconsistent.
  static BenchProblem load(const std::string& path);
  // What the gradient integrates: the problem's network (with its k_diag decay, B3), or with
  // `hybrid` the physics + network route of docs/hybrid.md, Hybrid(LinearDecay(k_diag), network
  // without k_diag): the same f, parameters and reference gradient (throws OptionsError for a
  // problem without k_diag).
  std::unique_ptr<Dynamics> dynamics(bool hybrid = false) const;
  // The network alone, for its batched kernels (`cvnode bench --network-rate`).
  std::shared_ptr<const Mlp> network() const;
};

}  // namespace cvnode

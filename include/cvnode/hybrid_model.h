// A hybrid model from a plain description, the shape a config file maps onto:
//
//   [model.physics]                      ->  HybridModelSpec::physics
//   kind = "mass_action"
//   species = ["y1", "y2", "y3"]
//   reactions = ["y1 -> y2", "y2 + y3 -> y1 + y3", "2 y2 -> y2 + y3"]
//   initial = [0.4, 1e5, 3e8]             (physical values; a factor 10 off, say)
//   transform = "log"
//   [model.network]                      ->  HybridModelSpec::network (MlpSpec) + coupling
//   layers = [2, 16, 2]
//   inputs = [0, 2]  outputs = [0, 2]  output_mask = [0.01, 0.01]
//
// build_hybrid() turns it into a Hybrid Dynamics plus the maps between the optimizer's vector
// [q, theta] and the physical parameters. See docs/hybrid.md.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cvnode/hybrid.h"
#include "cvnode/mlp.h"
#include "cvnode/parameter_transform.h"

namespace cvnode {

struct PhysicsSpec {
  // "none" | "linear_decay" | "mass_action" | "robertson" (the hand-written cvnode::Robertson).
  std::string kind = "none";
  // linear_decay: the state size, and optional fixed rates (then the term has no parameters).
  int size = 0;
  Vector fixed_rates;
  // mass_action: species names (state order) and reactions ("A + B -> C", see mass_action.h).
  std::vector<std::string> species;
  std::vector<std::string> reactions;
  // How the optimizer sees the physical parameters, for all of them:
  // "identity" | "log" (p > 0) | "bounded" | "log_bounded" (lower < p < upper).
  std::string transform = "identity";
  double lower = 0, upper = 0;
  // One bound per parameter instead (e.g. log for two rates, bounded for a third); when given,
  // transform/lower/upper are ignored.
  std::vector<ParamBound> bounds;
  // Initial physical values (one per parameter). Empty: Robertson's (0.04, 1e4, 3e7), ones for
  // linear decay and mass action.
  Vector initial;
};

struct HybridModelSpec {
  PhysicsSpec physics;
  // The network term; absent for pure physics. Its layers[0] is the number of components it reads.
  std::optional<MlpSpec> network;
  HybridCoupling coupling;
  Init network_init = Init::SmallOutput;  // starts near N = 0: the physics alone
  std::uint64_t seed = 1;

  // Empty when valid, else a readable reason naming the field.
  std::string validate() const;
};

struct HybridModel {
  std::shared_ptr<const Hybrid> dynamics;
  // The physics term as the optimizer sees it (null without physics), and the network (null
  // without one): parameters [q (physics_size), theta (network)].
  std::shared_ptr<const TransformedParameters> physics;
  std::shared_ptr<const Mlp> network;
  Vector initial;  // [T^-1(physics.initial), network weights from network_init and seed]

  int physics_size() const { return dynamics->physics_param_size(); }
  // The physical parameters p = T(q) of a full parameter vector, e.g. the recovered rates.
  Vector physical(ConstVectorRef params) const;
};

// Throws OptionsError with the reason from validate() or from the parts' constructors.
HybridModel build_hybrid(const HybridModelSpec& spec);

}  // namespace cvnode

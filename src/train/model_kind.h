// The model kinds a fit builds (`model.kind`): each kind is a factory of ModelKind, the part of a
// Model that depends on its kind (the dynamics and what is known of their parameters). The kinds
// are named in src/train/model_kind_list.h; Model, the Trainer and `cvnode fit` reach them only
// through this interface.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cvnode/dynamics.h"
#include "cvnode/model.h"

namespace cvnode::detail {

class ModelKind {
 public:
  virtual ~ModelKind() = default;
  // What the solver integrates (state_size() components, inputs() inputs).
  virtual std::shared_ptr<const Dynamics> dynamics() const = 0;
  // Initial parameters of the dynamics, from the options' init scheme and seed.
  virtual Vector initial_parameters() const = 0;
  // 1 where weight decay applies (weights), 0 elsewhere (biases, physical parameters).
  virtual Vector decay_mask() const = 0;
  // 1 on the parameters model.bias = false freezes at zero (biases), 0 elsewhere.
  virtual Vector bias_mask() const = 0;
  // The kind's part of Model::describe(): "mlp 2-32-32-2 tanh, 1234 parameters".
  virtual std::string describe() const = 0;
  // The kind's entries of the checkpoint's model_spec ("type", "layers", ...): a checkpoint is
  // read back only by a configuration that gives the same spec.
  virtual void spec(nlohmann::json& j) const = 0;
  // The network, for a kind that has one (Model::mlp()).
  virtual const Mlp* network() const { return nullptr; }
  // Physical parameters and their map, for a hybrid kind (Model::hybrid()).
  virtual const HybridModel* hybrid() const { return nullptr; }
};

// A kind's factory: `state` = observed channels + augment, `inputs` = controls + covariates.
// Throws OptionsError naming the configuration's keys.
using ModelKindFactory = std::unique_ptr<ModelKind> (*)(const ModelOptions& options, int state, int inputs);

// The factory of a kind (null for the kinds another command fits); throws OptionsError listing
// every kind for an unknown name.
ModelKindFactory model_kind_factory(const std::string& kind);

// The network model.hidden, activation and time_input describe, from `in` to `out` components,
// reading `inputs` inputs u beside them (a neural_ode's dynamics, a hybrid's network term).
MlpSpec network_spec(const ModelOptions& options, int in, int out, int inputs);
// A network's "2-32-32-2 tanh, N parameters".
std::string describe_network(const Mlp& net);
// 1 on a network's biases, placed at `offset` in a `size`-long parameter vector.
Vector network_bias_mask(const Mlp& net, int offset, int size);

}  // namespace cvnode::detail

#include "cvnode/model.h"

#include <sstream>

#include "cvnode/errors.h"

namespace cvnode {

InitialState parse_initial_state(const std::string& name) {
  if (name == "first_observation") return InitialState::FirstObservation;
  if (name == "given") return InitialState::Given;
  if (name == "learned") return InitialState::Learned;
  throw OptionsError("unknown initial state rule '" + name +
                     "' (expected first_observation, given or learned)");
}

const char* initial_state_name(InitialState s) {
  switch (s) {
    case InitialState::FirstObservation: return "first_observation";
    case InitialState::Given: return "given";
    case InitialState::Learned: return "learned";
  }
  return "?";
}

Init parse_init(const std::string& name) {
  if (name == "glorot") return Init::Glorot;
  if (name == "he") return Init::He;
  if (name == "pytorch") return Init::PyTorch;
  if (name == "small_output") return Init::SmallOutput;
  throw OptionsError("unknown init '" + name + "' (expected glorot, he, pytorch or small_output)");
}

const char* init_name(Init i) {
  switch (i) {
    case Init::Glorot: return "glorot";
    case Init::He: return "he";
    case Init::PyTorch: return "pytorch";
    case Init::SmallOutput: return "small_output";
  }
  return "?";
}

std::string ModelOptions::validate() const {
  for (std::size_t i = 0; i < hidden.size(); ++i)
    if (hidden[i] < 1)
      return "model.hidden[" + std::to_string(i) + "] = " + std::to_string(hidden[i]) + " must be >= 1";
  if (augment < 0) return "model.augment = " + std::to_string(augment) + " must be >= 0";
  if (!bias && (init == Init::PyTorch))
    return "model.bias = false needs an init with zero biases (glorot, he or small_output), not pytorch";
  return {};
}

Model::Model(const ModelOptions& options, int observed) : o_(options), observed_(observed) {
  const std::string why = o_.validate();
  if (!why.empty()) throw OptionsError(why);
  if (observed < 1) throw OptionsError("the data have " + std::to_string(observed) + " channels; need >= 1");
  MlpSpec spec;
  spec.layers.push_back(state_size());
  for (int h : o_.hidden) spec.layers.push_back(h);
  spec.layers.push_back(state_size());
  spec.activation = o_.activation;
  spec.time_input = o_.time_input;
  mlp_ = std::make_unique<Mlp>(spec);
}

Vector Model::initial_parameters() const {
  Vector theta = mlp_->initial_parameters(o_.init, o_.seed);
  if (!o_.bias) theta.array() *= trainable_mask().array();
  return theta;
}

Vector Model::decay_mask() const {
  Vector m = Vector::Ones(mlp_->param_size());
  const auto& layers = mlp_->spec().layers;
  for (std::size_t l = 0; l + 1 < layers.size(); ++l)
    m.segment(mlp_->bias_offset(static_cast<int>(l)), layers[l + 1]).setZero();
  return m;
}

Vector Model::trainable_mask() const {
  return o_.bias ? Vector(Vector::Ones(mlp_->param_size())) : decay_mask();
}

Trajectory Model::lift(const Trajectory& obs, const std::string& id) const {
  Trajectory tr = obs;
  const int n = state_size(), c = observed_;
  if (obs.values.cols() != c)
    throw DataError("series '" + id + "' has " + std::to_string(obs.values.cols()) +
                    " channels, the model observes " + std::to_string(c));
  tr.z0 = Vector::Zero(n);
  // Learned initial states start from the given one when the series has it (a window of a
  // series, or a validation series with a stored z(t0)), else from the first observation.
  const bool given = o_.initial_state == InitialState::Given ||
                     (o_.initial_state == InitialState::Learned && obs.z0.size() >= c);
  if (given) {
    if (obs.z0.size() < c)
      throw DataError("series '" + id + "' has no initial state (model.initial_state = given)");
    tr.z0.head(c) = obs.z0.head(c);
  } else {
    if (obs.times.size() == 0) throw DataError("series '" + id + "' has no observations");
    // The first observation is the initial condition: the model starts at its time, and
    // missing entries of it start at 0 (the normalised mean).
    tr.t0 = obs.times[0];
    for (int i = 0; i < c; ++i) {
      const bool seen = obs.mask.size() == 0 || obs.mask(0, i) != 0;
      tr.z0[i] = seen ? obs.values(0, i) : 0.0;
    }
  }
  const std::string why = tr.validate(n);
  if (!why.empty()) throw DataError("series '" + id + "': " + why);
  return tr;
}

std::string Model::describe() const {
  std::ostringstream o;
  o << "mlp ";
  const auto& layers = mlp_->spec().layers;
  for (std::size_t i = 0; i < layers.size(); ++i) o << (i ? "-" : "") << layers[i];
  o << " " << activation_name(o_.activation) << ", " << mlp_->param_size() << " parameters, augment "
    << o_.augment << ", time_input " << (o_.time_input ? "true" : "false") << ", bias "
    << (o_.bias ? "true" : "false") << ", z0 " << initial_state_name(o_.initial_state);
  return o.str();
}

}  // namespace cvnode

// model.kind = "hybrid" (or "neural_ode" with a [physics] section): a known physics term plus an
// optional network (docs/hybrid.md), built from the options by hybrid_spec (cvnode/model.h).
#include <memory>

#include "cvnode/errors.h"
#include "train/model_kind.h"

namespace cvnode {

namespace {
class HybridKind final : public detail::ModelKind {
 public:
  HybridKind(const ModelOptions& o, int state, int inputs) : p_(o.physics) {
    const HybridModelSpec hs = hybrid_spec(o, state, inputs);
    if (std::string w = hs.validate(); !w.empty()) throw OptionsError("[physics] " + w);
    if (inputs > 0 && !hs.network)
      throw OptionsError("[physics] the data give the model " + std::to_string(inputs) +
                         " inputs (controls and covariates) but the physics has no network to read them: set "
                         "physics.network = true, or leave them out with data.ignore = [names]");
    h_ = build_hybrid(hs);
    if (h_.dynamics->state_size() != state)
      throw OptionsError("[physics] the physics has " + std::to_string(h_.dynamics->state_size()) +
                         " state components, the model " + std::to_string(state) +
                         " (data channels + model.augment)");
  }
  std::shared_ptr<const Dynamics> dynamics() const override { return h_.dynamics; }
  Vector initial_parameters() const override { return h_.initial; }
  Vector bias_mask() const override {
    const int P = h_.dynamics->param_size();
    return h_.network ? detail::network_bias_mask(*h_.network, h_.physics_size(), P) : Vector::Zero(P);
  }
  Vector decay_mask() const override {  // no weight decay on physical parameters
    Vector m = Vector::Ones(h_.dynamics->param_size()) - bias_mask();
    m.head(h_.physics_size()).setZero();
    return m;
  }
  std::string describe() const override {
    std::string s = "hybrid: physics " + p_.kind + " (" + std::to_string(h_.physics_size()) +
                    " parameters, transform " + p_.transform + ")";
    if (h_.network) s += " + network " + detail::describe_network(*h_.network);
    return s;
  }
  void spec(nlohmann::json& j) const override {
    j["type"] = "hybrid";
    j["physics"] = {{"kind", p_.kind},           {"species", p_.species},     {"reactions", p_.reactions},
                    {"transform", p_.transform}, {"lower", p_.lower},         {"upper", p_.upper},
                    {"size", p_.size},           {"inputs", p_.inputs},       {"outputs", p_.outputs},
                    {"output_mask", p_.output_mask}, {"input_scale", p_.input_scale},
                    {"output_matrix", p_.output_matrix}, {"physics_params", h_.physics_size()}};
    if (h_.network) j["layers"] = h_.network->spec().layers;
  }
  const Mlp* network() const override { return h_.network.get(); }
  const HybridModel* hybrid() const override { return &h_; }

 private:
  PhysicsOptions p_;
  HybridModel h_;
};
}  // namespace

std::unique_ptr<detail::ModelKind> make_hybrid_model(const ModelOptions& options, int state, int inputs) {
  if (!options.physics.enabled())
    throw OptionsError("model.kind = \"hybrid\" needs a physics term or network: set physics.kind or physics.network = true");
  return std::make_unique<HybridKind>(options, state, inputs);
}

}  // namespace cvnode

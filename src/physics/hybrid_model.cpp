#include "cvnode/hybrid_model.h"

#include "cvnode/errors.h"
#include "cvnode/linear_decay.h"
#include "cvnode/mass_action.h"
#include "cvnode/physics.h"

namespace cvnode {

std::string HybridModelSpec::validate() const {
  const std::string& k = physics.kind;
  if (k != "none" && k != "linear_decay" && k != "mass_action" && k != "robertson")
    return "physics.kind = '" + k + "' (expected none, linear_decay, mass_action or robertson)";
  if (k == "none" && !network) return "the model has neither physics nor a network";
  if (k == "linear_decay" && physics.size < 1 && physics.fixed_rates.size() == 0)
    return "physics.size must be >= 1 for linear_decay (or give fixed_rates)";
  if (k == "linear_decay" && physics.size > 0 && physics.fixed_rates.size() > 0 &&
      physics.fixed_rates.size() != physics.size)
    return "physics.fixed_rates has " + std::to_string(physics.fixed_rates.size()) + " entries, physics.size is " +
           std::to_string(physics.size);
  if (k == "mass_action" && (physics.species.empty() || physics.reactions.empty()))
    return "mass_action physics needs species and reactions";
  if (network) {
    if (std::string why = network->validate(); !why.empty()) return "network: " + why;
  }
  for (size_t i = 0; i < physics.bounds.size(); ++i)
    if (std::string why = physics.bounds[i].validate(); !why.empty())
      return "physics.bounds[" + std::to_string(i) + "]: " + why;
  if (physics.bounds.empty()) {
    try {
      ParamBound b{parse_param_transform(physics.transform), physics.lower, physics.upper};
      if (std::string why = b.validate(); !why.empty()) return "physics.transform: " + why;
    } catch (const OptionsError& e) {
      return e.what();
    }
  }
  return {};
}

Vector HybridModel::physical(ConstVectorRef params) const {
  if (!physics) return Vector();
  return physics->to_physical(params.head(physics_size()));
}

HybridModel build_hybrid(const HybridModelSpec& spec) {
  if (std::string why = spec.validate(); !why.empty()) throw OptionsError(why);
  const PhysicsSpec& ps = spec.physics;
  std::shared_ptr<const Dynamics> raw;
  Vector p0;
  if (ps.kind == "linear_decay") {
    if (ps.fixed_rates.size() > 0) {
      raw = std::make_shared<LinearDecay>(ps.fixed_rates);
    } else {
      raw = std::make_shared<LinearDecay>(ps.size);
      p0 = Vector::Ones(ps.size);
    }
  } else if (ps.kind == "mass_action") {
    auto ma = std::make_shared<MassAction>(MassActionSpec::parse(ps.species, ps.reactions));
    p0 = Vector::Ones(ma->param_size());
    raw = ma;
  } else if (ps.kind == "robertson") {
    raw = std::make_shared<Robertson>();
    p0 = Robertson::default_parameters();
  }
  HybridModel m;
  if (raw) {
    if (ps.initial.size() > 0) {
      if (ps.initial.size() != raw->param_size())
        throw OptionsError("physics.initial has " + std::to_string(ps.initial.size()) + " values for " +
                           std::to_string(raw->param_size()) + " parameters");
      p0 = ps.initial;
    }
    if (!ps.bounds.empty()) {
      if (static_cast<int>(ps.bounds.size()) != raw->param_size())
        throw OptionsError("physics.bounds has " + std::to_string(ps.bounds.size()) + " entries for " +
                           std::to_string(raw->param_size()) + " parameters");
      m.physics = std::make_shared<TransformedParameters>(raw, ps.bounds);
    } else {
      const ParamBound bound{parse_param_transform(ps.transform), ps.lower, ps.upper};
      m.physics = std::make_shared<TransformedParameters>(raw, bound);
    }
  }
  if (spec.network) m.network = std::make_shared<Mlp>(*spec.network);
  m.dynamics = std::make_shared<Hybrid>(m.physics, m.network, spec.coupling);
  m.initial.resize(m.dynamics->param_size());
  if (m.physics) m.initial.head(m.physics->param_size()) = m.physics->to_internal(p0);
  if (m.network) m.initial.tail(m.network->param_size()) = m.network->initial_parameters(spec.network_init, spec.seed);
  return m;
}

}  // namespace cvnode

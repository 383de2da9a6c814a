#include "cvnode/model.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <sstream>

#include "core/names.h"
#include "cvnode/errors.h"
#include "train/model_kind.h"

namespace cvnode {

namespace {
const detail::EnumName<InitialState> kInitialStateNames[] = {
    {InitialState::FirstObservation, "first_observation"},
    {InitialState::Given, "given"},
    {InitialState::Learned, "learned"},
    {InitialState::Zero, "zero"}};
}  // namespace

InitialState parse_initial_state(const std::string& name) {
  return detail::parse_enum(kInitialStateNames, name, "initial state rule");
}

const char* initial_state_name(InitialState s) { return detail::enum_name(kInitialStateNames, s); }

namespace {
const detail::EnumName<Readout> kReadoutNames[] = {
    {Readout::Identity, "identity"},
    {Readout::Linear, "linear"}};
}  // namespace

Readout parse_readout(const std::string& name) { return detail::parse_enum(kReadoutNames, name, "readout"); }

const char* readout_name(Readout r) { return detail::enum_name(kReadoutNames, r); }

namespace {
const detail::EnumName<Init> kInitNames[] = {
    {Init::Glorot, "glorot"},
    {Init::He, "he"},
    {Init::PyTorch, "pytorch"},
    {Init::SmallOutput, "small_output"}};
}  // namespace

Init parse_init(const std::string& name) { return detail::parse_enum(kInitNames, name, "init"); }

const char* init_name(Init i) { return detail::enum_name(kInitNames, i); }

std::string ModelOptions::validate() const {
  const std::vector<std::string> kinds = model_kinds();
  if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end())
    return "model.kind = \"" + kind + "\" (expected " + detail::choices(kinds) + ")";
  if (kind == "hybrid" && !physics.enabled())
    return "model.kind = \"hybrid\" needs a physics term or network: set physics.kind or physics.network = true";
  for (std::size_t i = 0; i < hidden.size(); ++i)
    if (hidden[i] < 1)
      return "model.hidden[" + std::to_string(i) + "] = " + std::to_string(hidden[i]) + " must be >= 1";
  if (augment < 0) return "model.augment = " + std::to_string(augment) + " must be >= 0";
  if (!bias && (init == Init::PyTorch))
    return "model.bias = false needs an init with zero biases (glorot, he or small_output), not pytorch";
  return {};
}

std::string RandomEffectsOptions::validate() const {
  if (names.empty()) {
    if (!physics.empty() || !output_scale.empty() || !omega.empty() || network_input)
      return "[random_effects] has settings but no random_effects.names (one eta per name)";
    return {};
  }
  const std::size_t k = names.size();
  std::set<std::string> seen;
  for (const auto& n : names)
    if (n.empty() || !seen.insert(n).second)
      return "random_effects.names: '" + n + "' is " + (n.empty() ? "empty" : "given twice");
  if (!physics.empty() && physics.size() != k)
    return "random_effects.physics has " + std::to_string(physics.size()) + " entries, random_effects.names " +
           std::to_string(k) + " (one physics parameter index per name, -1: none)";
  for (std::size_t e = 0; e < physics.size(); ++e)
    if (physics[e] < -1)
      return "random_effects.physics[" + std::to_string(e) + "] = " + std::to_string(physics[e]) + " (a parameter index, or -1)";
  if (!output_scale.empty() && output_scale.size() != k)
    return "random_effects.output_scale has " + std::to_string(output_scale.size()) + " rows, random_effects.names " +
           std::to_string(k) + " (one row per name, one column per network output)";
  for (std::size_t e = 0; e < output_scale.size(); ++e)
    for (double c : output_scale[e])
      if (!std::isfinite(c)) return "random_effects.output_scale row " + std::to_string(e) + " has a non-finite entry";
  if (!omega.empty() && omega.size() != 1 && omega.size() != k)
    return "random_effects.omega has " + std::to_string(omega.size()) + " entries: give one, or one per name (" +
           std::to_string(k) + ")";
  for (double w : omega)
    if (!(w > 0) || !std::isfinite(w))
      return "random_effects.omega = " + std::to_string(w) + " must be a finite variance > 0";
  if (network_input && estimate_omega)
    return "random_effects.network_input = true scales the etas by learned weights, so Omega cannot be estimated: "
           "set random_effects.estimate_omega = false (Omega then sets the etas' scale)";
  for (std::size_t e = 0; e < k; ++e) {
    bool acts = network_input || (!physics.empty() && physics[e] >= 0);
    if (!output_scale.empty())
      for (double c : output_scale[e]) acts = acts || c != 0;
    if (!acts)
      return "random effect '" + names[e] + "' acts on nothing: give it a random_effects.physics index, a non-zero "
             "random_effects.output_scale row, or set random_effects.network_input = true";
  }
  return {};
}

HybridModelSpec hybrid_spec(const ModelOptions& o, int state, int inputs) {
  const PhysicsOptions& p = o.physics;
  HybridModelSpec s;
  s.physics.kind = p.kind;
  s.physics.size = p.kind == "linear_decay" && p.size == 0 ? state : p.size;
  s.physics.species = p.species;
  s.physics.reactions = p.reactions;
  s.physics.transform = p.transform;
  s.physics.lower = p.lower;
  s.physics.upper = p.upper;
  s.physics.initial = Eigen::Map<const Vector>(p.initial.data(), static_cast<Eigen::Index>(p.initial.size()));
  auto& c = s.coupling;
  c.input_indices = p.inputs;
  c.output_indices = p.outputs;
  c.output_mask = Eigen::Map<const Vector>(p.output_mask.data(), static_cast<Eigen::Index>(p.output_mask.size()));
  c.input_scale = Eigen::Map<const Vector>(p.input_scale.data(), static_cast<Eigen::Index>(p.input_scale.size()));
  if (!p.output_matrix.empty()) {
    const std::size_t cols = p.output_matrix[0].size();
    c.output_matrix.resize(static_cast<Eigen::Index>(p.output_matrix.size()), static_cast<Eigen::Index>(cols));
    for (std::size_t r = 0; r < p.output_matrix.size(); ++r) {
      if (p.output_matrix[r].size() != cols)
        throw OptionsError("physics.output_matrix: row " + std::to_string(r) + " has " +
                           std::to_string(p.output_matrix[r].size()) + " entries, row 0 has " +
                           std::to_string(cols));
      for (std::size_t k = 0; k < cols; ++k)
        c.output_matrix(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(k)) = p.output_matrix[r][k];
    }
  }
  if (p.network) {
    const int in = p.inputs.empty() ? state : static_cast<int>(p.inputs.size());
    const int out = !p.output_matrix.empty() ? static_cast<int>(p.output_matrix[0].size()) : in;
    s.network = detail::network_spec(o, in, out, inputs);
  }
  s.network_init = o.init;
  s.seed = o.seed;
  return s;
}

Model::Model(const ModelOptions& options, int observed, int inputs, int subjects)
    : o_(options), observed_(observed), inputs_(inputs), subjects_(subjects) {
  std::string why = o_.validate();
  if (why.empty()) why = o_.random_effects.validate();
  if (!why.empty()) throw OptionsError(why);
  if (observed < 1) throw OptionsError("the data have " + std::to_string(observed) + " channels; need >= 1");
  if (inputs < 0) throw OptionsError("the data have " + std::to_string(inputs) + " inputs; need >= 0");
  // A [physics] section makes a neural_ode a hybrid (the configuration's spelling since before
  // the kinds were named).
  const std::string kind = o_.kind == "neural_ode" && o_.physics.enabled() ? "hybrid" : o_.kind;
  const detail::ModelKindFactory make = detail::model_kind_factory(kind);
  if (!make)
    throw OptionsError("model.kind = \"" + kind + "\" is fitted by `cvnode " + model_kind_command(kind) +
                       "`, not as a Model (`cvnode fit`)");
  if (o_.readout == Readout::Linear) map_ = std::make_shared<LinearReadout>(observed_, state_size());
  kind_ = make(o_, state_size(), inputs_);
  dynamics_ = kind_->dynamics();
  add_random_effects();
}

// Random effects wrap whatever the kind built: physics shifts need the kind's physical
// parameters (Model::hybrid()), output scales and the first-layer embedding its network.
void Model::add_random_effects() {
  const RandomEffectsOptions& r = o_.random_effects;
  if (!r.enabled()) return;
  if (subjects_ < 0) throw OptionsError("random effects: " + std::to_string(subjects_) + " subjects");
  const int k = r.size();
  const HybridModel* h = kind_->hybrid();
  const Mlp* net = kind_->network();
  const int physics = h ? h->physics_size() : 0;
  RandomEffectMap map;
  map.effects = k;
  for (int e = 0; e < k && !r.physics.empty(); ++e) {
    const int j = r.physics[static_cast<std::size_t>(e)];
    if (j < 0) continue;
    if (j >= physics)
      throw OptionsError("random_effects.physics[" + std::to_string(e) + "] = " + std::to_string(j) + ": the physics has " +
                         std::to_string(physics) + " parameters (0.." + std::to_string(physics - 1) + ")");
    map.shift.push_back({j, e, 1.0});
  }
  const bool scales = !r.output_scale.empty();
  if ((scales || r.network_input) && !net)
    throw OptionsError("random_effects.output_scale / network_input need a network (physics.network = true)");
  for (int e = 0; e < k && scales; ++e) {
    const auto& row = r.output_scale[static_cast<std::size_t>(e)];
    const int outputs = net->spec().layers.back();
    if (static_cast<int>(row.size()) != outputs)
      throw OptionsError("random_effects.output_scale row " + std::to_string(e) + " ('" + r.names[static_cast<std::size_t>(e)] +
                         "') has " + std::to_string(row.size()) + " entries, the network has " + std::to_string(outputs) +
                         " outputs");
    for (int j = 0; j < outputs; ++j)
      if (row[static_cast<std::size_t>(j)] != 0) add_output_scale(map, *net, physics, j, e, row[static_cast<std::size_t>(j)]);
  }
  if (r.network_input) add_first_layer_embedding(map, *net, physics);
  re_ = std::make_shared<RandomEffectsDynamics>(dynamics_, std::move(map), subjects_);
  dynamics_ = re_;
}

Trajectory Model::with_subject(Trajectory series, int row) const {
  if (!re_) return series;
  series.covariates.conservativeResize(series.covariates.size() + 1);
  series.covariates[series.covariates.size() - 1] = row;
  return series;
}

const Mlp& Model::mlp() const {
  if (!kind_->network()) throw OptionsError("the model has no network (physics only)");
  return *kind_->network();
}

const HybridModel* Model::hybrid() const { return kind_->hybrid(); }

Vector Model::initial_parameters() const {
  Vector base = kind_->initial_parameters();
  if (!o_.bias) base.array() *= (Vector::Ones(base.size()) - kind_->bias_mask()).array();
  if (!re_) return base;
  // The embedding W starts small and random (at W = 0 neither W nor eta would get a gradient);
  // every eta starts at 0 (the typical subject).
  Vector theta = Vector::Zero(re_->param_size());
  theta.head(base.size()) = base;
  std::mt19937_64 g(o_.seed ^ 0x5EED0E7A5EED0E7AULL);
  std::uniform_real_distribution<double> u(-0.1, 0.1);
  for (int i = re_->embedding_offset(); i < re_->eta_offset(); ++i) theta[i] = u(g);
  return theta;
}

// With random effects the kind's masks cover the head (its own parameters); W and the etas
// take no weight decay (their prior is Omega) and are always trained.
Vector Model::decay_mask() const {
  const Vector kind = kind_->decay_mask();
  Vector m = Vector::Zero(dynamics_->param_size());
  m.head(kind.size()) = kind;
  return m;
}

Vector Model::trainable_mask() const {
  Vector m = Vector::Ones(dynamics_->param_size());
  if (o_.bias) return m;
  const Vector bias = kind_->bias_mask();
  m.head(bias.size()) -= bias;
  return m;
}

Vector Model::loss_parameters(ConstVectorRef params) const {
  if (params.size() < shared_params())
    throw OptionsError("the parameter vector has " + std::to_string(params.size()) + " entries, the model shares " +
                       std::to_string(shared_params()));
  return params.segment(network_params(), readout_params());
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
  if (obs.z0.size() > n)
    throw DataError("series '" + id + "' has a " + std::to_string(obs.z0.size()) + "-entry initial state, the model's "
                    "state has " + std::to_string(n) + " components (the observed channels + model.augment)");
  if (o_.initial_state == InitialState::Zero && obs.z0.size() == n && n > c && obs.times.size() > 0) {
    // A training window warm-started from the model's own solution (data.window_start = model):
    // its full state at its first observation, as with the other rules.
    tr.t0 = obs.times[0];
    tr.z0 = obs.z0;
  } else if (o_.initial_state == InitialState::Zero) {
    // Every component 0 at the series' own t0 (tr.t0 = obs.t0): doses from t0 on fill it. The
    // events at t0 before any observation (the first dose) are the initial state itself: applied
    // here, exactly, up to the first infusion (nothing observes the state between them).
    if (obs.times.size() == 0 || obs.times[0] > obs.t0) {
      std::size_t k = 0;
      for (; k < tr.events.size() && tr.events[k].time == tr.t0; ++k) {
        const Event& e = tr.events[k];
        if (e.kind == EventKind::Infusion || e.compartment < 0 || e.compartment >= n) break;
        if (e.kind == EventKind::Bolus) tr.z0[e.compartment] += e.amount;
        else if (e.kind == EventKind::Remove) tr.z0[e.compartment] *= 1 - e.amount;
        else tr.z0.setZero();  // Reset
      }
      tr.events.erase(tr.events.begin(), tr.events.begin() + static_cast<std::ptrdiff_t>(k));
    }
  } else if (given) {
    if (obs.z0.size() < c)
      throw DataError("series '" + id + "' has no initial state (model.initial_state = given)");
    // All of it: entries beyond the channels are the unobserved components' given start.
    tr.z0.head(obs.z0.size()) = obs.z0;
  } else {
    if (obs.times.size() == 0) throw DataError("series '" + id + "' has no observations");
    // The first observation is the initial condition: the model starts at its time, and
    // missing entries of it start at 0 (the normalised mean). A full state given with the series
    // (a training window warm-started from the model's own solution) supplies the unobserved
    // components; otherwise they start at 0.
    tr.t0 = obs.times[0];
    for (int i = 0; i < c; ++i) {
      const bool seen = obs.mask.size() == 0 || obs.mask(0, i) != 0;
      tr.z0[i] = seen ? obs.values(0, i) : 0.0;
    }
    if (obs.z0.size() == n && n > c) tr.z0.tail(n - c) = obs.z0.tail(n - c);
  }
  const std::string why = tr.validate(n);
  if (!why.empty()) throw DataError("series '" + id + "': " + why);
  return tr;
}

std::string Model::describe() const {
  std::ostringstream o;
  o << kind_->describe();
  if (kind_->network()) {
    o << ", augment " << o_.augment << ", time_input " << (o_.time_input ? "true" : "false") << ", bias "
      << (o_.bias ? "true" : "false") << ", z0 " << initial_state_name(o_.initial_state);
    if (inputs_ > 0) o << ", inputs " << inputs_ << " (controls + covariates)";
    if (o_.readout == Readout::Linear) o << ", readout linear (" << readout_params() << " parameters)";
  }
  if (re_) {
    o << ", random effects";
    for (const auto& n : o_.random_effects.names) o << " " << n;
    o << " (" << subjects_ << " subjects";
    if (o_.random_effects.network_input) o << ", network input";
    o << ")";
  }
  return o.str();
}

}  // namespace cvnode

// The model a fit trains: Mlp dynamics on the observed channels plus optional augmented
// dimensions (Dupont et al. 2019), optional time input, the observation map (the first `observed`
// state components, or a learned linear readout y = C z) and the rule that gives each series its
// initial state.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cvnode/hybrid_model.h"
#include "cvnode/mlp.h"
#include "cvnode/observation_map.h"
#include "cvnode/observations.h"
#include "cvnode/random_effects.h"

namespace cvnode {

enum class InitialState {
  FirstObservation,  // z0 = first observation (t0 moved to its time), augmented dims 0
  Given,             // z0 = the series' stored initial state at its t0, augmented dims 0
  Learned,           // one free z0 per training series (or window), started from the stored
                     // initial state if there is one, else the first observation; other series
                     // (validation, prediction) start from those without learning
  Zero               // z0 = 0 at the series' own t0: the state before the first dose
                     // (pharmacokinetics: no drug in the body before the first dose)
};
InitialState parse_initial_state(const std::string& name);  // first_observation|given|learned|zero

enum class Readout {
  Identity,  // channel i is state component i (the first `observed` components)
  Linear     // y = C z with C (channels x state) learned, started at [I 0]: a latent state seen
             // through learned combinations (augmented dimensions then mix into what is measured)
};
Readout parse_readout(const std::string& name);  // identity|linear
const char* readout_name(Readout r);
const char* initial_state_name(InitialState s);

// A known physics term plus an optional network (docs/hybrid.md, the config's [physics] section):
// maps onto HybridModelSpec. kind = "none" (the default) is the plain Mlp model. The network, when
// on, uses ModelOptions' hidden/activation/time_input/init/seed.
struct PhysicsOptions {
  std::string kind = "none";           // none | linear_decay | mass_action | robertson
  int size = 0;                        // linear_decay: state size (0 = the data's channels)
  std::vector<std::string> species;    // mass_action: state order
  std::vector<std::string> reactions;  // mass_action: "A + B -> C"
  std::vector<double> initial;         // initial physical parameter values (empty: defaults)
  std::string transform = "identity";  // identity | log | bounded | log_bounded
  double lower = 0, upper = 0;         // bounds for bounded transforms
  bool network = false;                // add a network term N(z)
  std::vector<int> inputs;             // components the network reads (empty: all)
  std::vector<int> outputs;            // components its outputs add to (empty: = inputs)
  std::vector<double> output_mask;     // per-output weight (empty: ones)
  std::vector<double> input_scale;     // per-input factor (empty: ones)
  // n x m map of the network's m outputs onto the state (rows = state components); replaces
  // outputs/output_mask. E.g. one reaction replaced by a network: its net stoichiometry column.
  std::vector<std::vector<double>> output_matrix;

  bool enabled() const { return kind != "none" || network; }
};

// Per-subject random effects ([random_effects], docs/measurement-data.md section 4b): subject i's
// dynamics use its own eta_i ~ N(0, Omega), one entry per name, learned jointly with the
// population parameters (penalised likelihood, the prior eta^T Omega^-1 eta / 2 per subject) and
// estimated for a new subject from its observations (empirical Bayes). What each eta acts on:
struct RandomEffectsOptions {
  std::vector<std::string> names;   // one eta each; empty: no random effects
  // Per name: the physics parameter (its stored, transformed value: the logarithm with
  // physics.transform = "log", so rate = typical exp(eta)) the eta is added to; -1: none.
  std::vector<int> physics;
  // Per name (rows) and network output (columns): loading c of the eta on the log of that
  // output, N_j -> N_j exp(sum c eta) (a rate the network stands for times exp(eta); c = -1 on the
  // flow into a concentration: a volume). Empty: none.
  std::vector<std::vector<double>> output_scale;
  // Every eta also enters the network's first layer through learned weights W (as extra network
  // inputs would: "neural mixed effects"; Omega then fixes the scale and is not estimated).
  bool network_input = false;
  std::vector<double> omega;        // prior variances (one, or one per name); the start when estimated
  bool estimate_omega = true;       // Omega_e = mean over subjects of (eta_e^2 + posterior variance)

  bool enabled() const { return !names.empty(); }
  int size() const { return static_cast<int>(names.size()); }
  double omega_of(int e) const { return omega.empty() ? 1.0 : omega.size() == 1 ? omega[0] : omega[static_cast<std::size_t>(e)]; }
  std::string validate() const;  // empty when valid (what needs the model's sizes: Model checks)
};

struct ModelOptions {
  // One of model_kinds(): "neural_ode" (a network on the observed channels; a hybrid when the
  // [physics] section is on), "hybrid" (needs [physics]), both fitted by `cvnode fit` as a Model;
  // "latent_ode" or "rnn_baseline" (include/cvnode/latent.h: [encoder], [decoder]), fitted by
  // `cvnode latent train`.
  std::string kind = "neural_ode";
  std::vector<int> hidden = {32, 32};  // hidden layer widths (empty: one linear layer)
  Activation activation = Activation::Tanh;
  int augment = 0;           // extra zero-initialised state dimensions
  bool time_input = false;   // feed t to the first layer
  bool bias = true;          // false: every bias is frozen at zero (e.g. a pure linear system)
  Init init = Init::SmallOutput;  // starts near f = 0, which keeps the first solves cheap
  std::uint64_t seed = 1;    // initial parameters
  InitialState initial_state = InitialState::FirstObservation;
  Readout readout = Readout::Identity;
  PhysicsOptions physics;  // kind != "none" or network = true: a Hybrid instead of the plain Mlp
  RandomEffectsOptions random_effects;

  std::string validate() const;  // empty when valid
};
Init parse_init(const std::string& name);  // glorot|he|pytorch|small_output

// The model kinds model.kind names (src/train/model_kind_list.h), in registration order, and the
// `cvnode` command that fits a kind: "fit" for the kinds a Model builds, "latent train" for the
// latent sequence models. model_kind_command throws OptionsError listing the kinds.
std::vector<std::string> model_kinds();
std::string model_kind_command(const std::string& kind);

namespace detail {
class ModelKind;  // src/train/model_kind.h
}
const char* init_name(Init i);

// A fitted model: the dynamics its kind builds (a registered model kind, src/train/model_kind.h),
// the observation map and the initial-state rule.
class Model {
 public:
  // `observed` = number of data channels (the first state components); `inputs` = the series'
  // inputs u = [controls; covariates] (Dynamics::input_size), which the network's first layer
  // reads beside the state (a hybrid's network term likewise; the physics takes none).
  // With random effects, `subjects` = rows of the eta table (the training subjects; each series
  // names its row with Model::with_subject).
  Model(const ModelOptions& options, int observed, int inputs = 0, int subjects = 0);

  const ModelOptions& options() const { return o_; }
  // The network of a plain model; of a hybrid its network term (throws without one).
  const Mlp& mlp() const;
  // What the solver integrates: what the kind built (the Mlp, the Hybrid [physics, network]),
  // wrapped by the random effects when they are on.
  const Dynamics& dynamics() const { return *dynamics_; }
  // Non-null for a hybrid model: its parts and the map to physical parameters.
  const HybridModel* hybrid() const;
  // The kind's part of the model (what model.kind built, before any random-effects wrapper).
  const detail::ModelKind& kind() const { return *kind_; }
  // Non-null with random effects: the wrapper (its base is what the kind built).
  const RandomEffectsDynamics* random_effects() const { return re_.get(); }
  int subjects() const { return subjects_; }
  // The series with its subject's row (-1: the typical subject, eta = 0) appended to its
  // covariates, as the random-effects dynamics read it; unchanged without random effects.
  Trajectory with_subject(Trajectory series, int row) const;
  int observed() const { return observed_; }
  int inputs() const { return inputs_; }
  int state_size() const { return observed_ + o_.augment; }
  // All parameters of the dynamics ([q physics, theta network] for a hybrid).
  int network_params() const { return dynamics_->param_size(); }
  // What the loss compares with the data: a learned linear readout y = C z (model.readout =
  // linear), or null for the first `observed` state components.
  std::shared_ptr<const ObservationMap> observation_map() const { return map_; }
  // The loss's parameters phi: the readout's entries (C column-major), 0 for the identity map.
  int readout_params() const { return map_ ? map_->param_size() : 0; }
  // The parameters every series shares: [dynamics | loss phi]. Learned initial states follow them.
  int shared_params() const { return network_params() + readout_params(); }
  // The loss's parameters within a parameter vector that starts with the shared parameters.
  Vector loss_parameters(ConstVectorRef params) const;

  // Network parameters from the options' init scheme and seed (biases zeroed when bias = false).
  Vector initial_parameters() const;
  // 1 where a network parameter is trained, 0 where frozen (biases when bias = false).
  Vector trainable_mask() const;
  // 1 on weights (where weight decay applies), 0 on biases.
  Vector decay_mask() const;

  // The series in state space: values/mask untouched, z0 per the initial-state rule, padded with
  // zeros to state_size(). `obs.z0` is the given initial state (channels long) for Given and is
  // ignored otherwise. Throws DataError naming `id` when the rule cannot be applied.
  Trajectory lift(const Trajectory& obs, const std::string& id) const;

  // One line: "mlp 2-32-32-2 tanh, augment 0, time_input false, bias true, z0 first_observation".
  std::string describe() const;

 private:
  ModelOptions o_;
  int observed_;
  int inputs_;
  int subjects_ = 0;
  std::shared_ptr<const detail::ModelKind> kind_;
  std::shared_ptr<const RandomEffectsDynamics> re_;
  std::shared_ptr<const Dynamics> dynamics_;
  std::shared_ptr<const ObservationMap> map_;
  void add_random_effects();  // wraps dynamics_ (options' random_effects)
};

// The HybridModelSpec a model's physics options give, for `state` components and a network that
// reads `inputs` inputs u beside its state components (throws OptionsError).
HybridModelSpec hybrid_spec(const ModelOptions& options, int state, int inputs = 0);

}  // namespace cvnode

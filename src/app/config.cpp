#include "app/config.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <functional>
#include <regex>
#include <sstream>

#include <toml++/toml.h>

#include "app/toml_tables.h"
#include "core/names.h"
#include "cvnode/engine.h"
#include "cvnode/errors.h"
#include "cvnode/solver_options.h"

namespace cvnode {

namespace {

std::string fmt_double(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  // Shortest text that reads back to the same double: the printed config is exact.
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  else if (s.find('.') == std::string::npos) {  // TOML needs "1.0e-06", not "1e-06"
    const auto e = s.find_first_of("eE");
    s.insert(e, ".0");
  }
  return s;
}

std::string quote(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o + "\"";
}

const char* type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date/time";
  }
}

struct Bad {
  std::string what;
};

double as_double(const toml::node& n) {
  if (auto v = n.as_floating_point()) return v->get();
  if (auto v = n.as_integer()) return static_cast<double>(v->get());
  throw Bad{std::string("expected a number, got ") + type_name(n)};
}
long long as_int(const toml::node& n) {
  if (auto v = n.as_integer()) return v->get();
  if (auto v = n.as_floating_point()) {
    const double d = v->get();
    if (std::floor(d) == d && std::abs(d) < 9e15) return static_cast<long long>(d);
  }
  throw Bad{std::string("expected an integer, got ") + type_name(n)};
}
bool as_bool(const toml::node& n) {
  if (auto v = n.as_boolean()) return v->get();
  throw Bad{std::string("expected true or false, got ") + type_name(n)};
}
std::string as_string(const toml::node& n) {
  if (auto v = n.as_string()) return v->get();
  throw Bad{std::string("expected a string, got ") + type_name(n)};
}
int as_int32(const toml::node& n) {
  const long long v = as_int(n);
  if (v < -2147483647LL || v > 2147483647LL)
    throw Bad{std::to_string(v) + " is out of range (this key takes an integer in [-2147483647, 2147483647])"};
  return static_cast<int>(v);
}
std::vector<double> as_doubles(const toml::node& n) {
  const auto* a = n.as_array();
  if (!a) throw Bad{std::string("expected an array of numbers, got ") + type_name(n)};
  std::vector<double> out;
  for (const auto& e : *a) out.push_back(as_double(e));
  return out;
}
std::vector<int> as_ints(const toml::node& n) {
  const auto* a = n.as_array();
  if (!a) throw Bad{std::string("expected an array of integers, got ") + type_name(n)};
  std::vector<int> out;
  for (const auto& e : *a) out.push_back(as_int32(e));
  return out;
}

struct Entry {
  std::string key;
  std::function<void(Config&, const toml::node&)> set;
  std::function<std::string(const Config&)> get;
};

template <class T>
using Acc = T& (*)(Config&);

Entry num(const char* key, Acc<double> acc) {
  return {key, [acc](Config& c, const toml::node& n) { acc(c) = as_double(n); },
          [acc](const Config& c) { return fmt_double(acc(const_cast<Config&>(c))); }};
}
Entry integer(const char* key, Acc<int> acc) {
  return {key, [acc](Config& c, const toml::node& n) { acc(c) = as_int32(n); },
          [acc](const Config& c) { return std::to_string(acc(const_cast<Config&>(c))); }};
}
Entry long_int(const char* key, Acc<long> acc) {
  return {key, [acc](Config& c, const toml::node& n) { acc(c) = static_cast<long>(as_int(n)); },
          [acc](const Config& c) { return std::to_string(acc(const_cast<Config&>(c))); }};
}
Entry seed(const char* key, Acc<std::uint64_t> acc) {
  return {key,
          [acc](Config& c, const toml::node& n) {
            const long long v = as_int(n);
            if (v < 0) throw Bad{"a seed must be >= 0"};
            acc(c) = static_cast<std::uint64_t>(v);
          },
          [acc](const Config& c) { return std::to_string(acc(const_cast<Config&>(c))); }};
}
Entry boolean(const char* key, Acc<bool> acc) {
  return {key, [acc](Config& c, const toml::node& n) { acc(c) = as_bool(n); },
          [acc](const Config& c) { return std::string(acc(const_cast<Config&>(c)) ? "true" : "false"); }};
}
Entry text(const char* key, Acc<std::string> acc) {
  return {key, [acc](Config& c, const toml::node& n) { acc(c) = as_string(n); },
          [acc](const Config& c) { return quote(acc(const_cast<Config&>(c))); }};
}
// An enum stored as its name: the parser's own message (listing the choices) is kept.
template <class E>
Entry choice(const char* key, Acc<E> acc, E (*parse)(const std::string&), const char* (*name)(E)) {
  return {key,
          [acc, parse](Config& c, const toml::node& n) {
            try {
              acc(c) = parse(as_string(n));
            } catch (const std::invalid_argument& e) {
              throw Bad{e.what()};
            }
          },
          [acc, name](const Config& c) { return quote(name(acc(const_cast<Config&>(c)))); }};
}

// A name from a registry (solver methods, losses): checked when set, the registry's message kept.
Entry registered(const char* key, Acc<std::string> acc, void (*check)(const std::string&)) {
  return {key,
          [acc, check](Config& c, const toml::node& n) {
            const std::string name = as_string(n);
            try {
              check(name);
            } catch (const std::invalid_argument& e) {
              throw Bad{e.what()};
            }
            acc(c) = name;
          },
          [acc](const Config& c) { return quote(acc(const_cast<Config&>(c))); }};
}
void check_method(const std::string& name) {
  const std::vector<std::string> methods = engine_methods();
  if (std::find(methods.begin(), methods.end(), name) == methods.end()) detail::unknown_name("solver method", name, methods);
}

std::string doubles_str(const std::vector<double>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + fmt_double(v[i]);
  return s + "]";
}
std::string vector_str(const Vector& v) {
  return doubles_str(std::vector<double>(v.data(), v.data() + v.size()));
}
Vector to_vector(const std::vector<double>& v) {
  return Eigen::Map<const Vector>(v.data(), static_cast<Eigen::Index>(v.size()));
}
std::vector<std::string> as_strings(const toml::node& n) {
  const auto* a = n.as_array();
  if (!a) throw Bad{std::string("expected an array of strings, got ") + type_name(n)};
  std::vector<std::string> out;
  for (const auto& e : *a) out.push_back(as_string(e));
  return out;
}
std::string strings_str(const std::vector<std::string>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + quote(v[i]);
  return s + "]";
}
Entry doubles(const char* key, Acc<std::vector<double>> acc) {
  return {key, [acc](Config& c, const toml::node& n) { acc(c) = as_doubles(n); },
          [acc](const Config& c) { return doubles_str(acc(const_cast<Config&>(c))); }};
}
// An array of rows (arrays of numbers), e.g. a matrix.
Entry rows(const char* key, Acc<std::vector<std::vector<double>>> acc) {
  return {key,
          [acc](Config& c, const toml::node& n) {
            const auto* a = n.as_array();
            if (!a) throw Bad{std::string("expected an array of rows (arrays of numbers), got ") + type_name(n)};
            std::vector<std::vector<double>> m;
            for (const auto& r : *a) m.push_back(as_doubles(r));
            acc(c) = m;
          },
          [acc](const Config& c) {
            std::string s = "[";
            const auto& m = acc(const_cast<Config&>(c));
            for (std::size_t i = 0; i < m.size(); ++i) s += (i ? ", " : "") + doubles_str(m[i]);
            return s + "]";
          }};
}
Entry strings(const char* key, Acc<std::vector<std::string>> acc) {
  return {key, [acc](Config& c, const toml::node& n) { acc(c) = as_strings(n); },
          [acc](const Config& c) { return strings_str(acc(const_cast<Config&>(c))); }};
}
Entry eigen_vector(const char* key, Acc<Vector> acc) {
  return {key, [acc](Config& c, const toml::node& n) { acc(c) = to_vector(as_doubles(n)); },
          [acc](const Config& c) { return vector_str(acc(const_cast<Config&>(c))); }};
}
std::string list_str(const std::vector<int>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}
Entry ints(const char* key, Acc<std::vector<int>> acc) {
  return {key, [acc](Config& c, const toml::node& n) { acc(c) = as_ints(n); },
          [acc](const Config& c) { return list_str(acc(const_cast<Config&>(c))); }};
}

const std::vector<Entry>& entries() {
  static const std::vector<Entry> e = {
      text("data.file", [](Config& c) -> std::string& { return c.data.file; }),
      num("data.train_fraction", [](Config& c) -> double& { return c.data.train_fraction; }),
      num("data.val_fraction", [](Config& c) -> double& { return c.data.val_fraction; }),
      seed("data.split_seed", [](Config& c) -> std::uint64_t& { return c.data.split_seed; }),
      boolean("data.normalize", [](Config& c) -> bool& { return c.data.normalize; }),
      integer("data.max_series", [](Config& c) -> int& { return c.data.max_series; }),
      integer("data.window", [](Config& c) -> int& { return c.data.window; }),
      integer("data.window_epochs", [](Config& c) -> int& { return c.data.window_epochs; }),
      ints("data.window_stages", [](Config& c) -> std::vector<int>& { return c.data.window_stages; }),
      ints("data.window_stage_epochs", [](Config& c) -> std::vector<int>& { return c.data.window_stage_epochs; }),
      text("data.validation_file", [](Config& c) -> std::string& { return c.data.validation_file; }),
      text("data.test_file", [](Config& c) -> std::string& { return c.data.test_file; }),
      text("data.split", [](Config& c) -> std::string& { return c.data.split; }),
      doubles("data.time_cutoffs", [](Config& c) -> std::vector<double>& { return c.data.time_cutoffs; }),
      strings("data.transform", [](Config& c) -> std::vector<std::string>& { return c.data.transform; }),
      ints("data.compartment_states", [](Config& c) -> std::vector<int>& { return c.data.compartment_states; }),
      doubles("data.dose_scale", [](Config& c) -> std::vector<double>& { return c.data.dose_scale; }),
      text("data.window_start", [](Config& c) -> std::string& { return c.data.window_start; }),
      integer("data.forecast_history", [](Config& c) -> int& { return c.data.forecast_history; }),
      strings("data.ignore", [](Config& c) -> std::vector<std::string>& { return c.data.ignore; }),

      text("model.kind", [](Config& c) -> std::string& { return c.model.kind; }),
      {"model.hidden", [](Config& c, const toml::node& n) { c.model.hidden = as_ints(n); },
       [](const Config& c) { return list_str(c.model.hidden); }},
      choice<Activation>("model.activation", [](Config& c) -> Activation& { return c.model.activation; },
                         parse_activation, activation_name),
      integer("model.augment", [](Config& c) -> int& { return c.model.augment; }),
      boolean("model.time_input", [](Config& c) -> bool& { return c.model.time_input; }),
      boolean("model.bias", [](Config& c) -> bool& { return c.model.bias; }),
      choice<Init>("model.init", [](Config& c) -> Init& { return c.model.init; }, parse_init, init_name),
      seed("model.seed", [](Config& c) -> std::uint64_t& { return c.model.seed; }),
      choice<InitialState>("model.initial_state",
                           [](Config& c) -> InitialState& { return c.model.initial_state; },
                           parse_initial_state, initial_state_name),
      choice<Readout>("model.readout", [](Config& c) -> Readout& { return c.model.readout; }, parse_readout,
                      readout_name),
      integer("model.latent_dim", [](Config& c) -> int& { return c.latent.latent_dim; }),

      text("encoder.kind", [](Config& c) -> std::string& { return c.latent.encoder.kind; }),
      integer("encoder.hidden", [](Config& c) -> int& { return c.latent.encoder.hidden; }),
      ints("encoder.head_hidden", [](Config& c) -> std::vector<int>& { return c.latent.encoder.head_hidden; }),
      ints("encoder.ode_hidden", [](Config& c) -> std::vector<int>& { return c.latent.encoder.ode_hidden; }),
      choice<Activation>("encoder.activation", [](Config& c) -> Activation& { return c.latent.encoder.activation; },
                         parse_activation, activation_name),
      ints("decoder.hidden", [](Config& c) -> std::vector<int>& { return c.latent.decoder.hidden; }),
      choice<Activation>("decoder.activation", [](Config& c) -> Activation& { return c.latent.decoder.activation; },
                         parse_activation, activation_name),
      boolean("decoder.learn_noise", [](Config& c) -> bool& { return c.latent.decoder.learn_noise; }),
      doubles("decoder.noise_std", [](Config& c) -> std::vector<double>& { return c.latent.decoder.noise_std; }),

      text("physics.kind", [](Config& c) -> std::string& { return c.model.physics.kind; }),
      integer("physics.size", [](Config& c) -> int& { return c.model.physics.size; }),
      strings("physics.species", [](Config& c) -> std::vector<std::string>& { return c.model.physics.species; }),
      strings("physics.reactions", [](Config& c) -> std::vector<std::string>& { return c.model.physics.reactions; }),
      doubles("physics.initial", [](Config& c) -> std::vector<double>& { return c.model.physics.initial; }),
      text("physics.transform", [](Config& c) -> std::string& { return c.model.physics.transform; }),
      num("physics.lower", [](Config& c) -> double& { return c.model.physics.lower; }),
      num("physics.upper", [](Config& c) -> double& { return c.model.physics.upper; }),
      boolean("physics.network", [](Config& c) -> bool& { return c.model.physics.network; }),
      ints("physics.inputs", [](Config& c) -> std::vector<int>& { return c.model.physics.inputs; }),
      ints("physics.outputs", [](Config& c) -> std::vector<int>& { return c.model.physics.outputs; }),
      doubles("physics.output_mask", [](Config& c) -> std::vector<double>& { return c.model.physics.output_mask; }),
      doubles("physics.input_scale", [](Config& c) -> std::vector<double>& { return c.model.physics.input_scale; }),
      rows("physics.output_matrix", [](Config& c) -> std::vector<std::vector<double>>& { return c.model.physics.output_matrix; }),

      strings("random_effects.names", [](Config& c) -> std::vector<std::string>& { return c.model.random_effects.names; }),
      ints("random_effects.physics", [](Config& c) -> std::vector<int>& { return c.model.random_effects.physics; }),
      rows("random_effects.output_scale", [](Config& c) -> std::vector<std::vector<double>>& { return c.model.random_effects.output_scale; }),
      boolean("random_effects.network_input", [](Config& c) -> bool& { return c.model.random_effects.network_input; }),
      doubles("random_effects.omega", [](Config& c) -> std::vector<double>& { return c.model.random_effects.omega; }),
      boolean("random_effects.estimate_omega", [](Config& c) -> bool& { return c.model.random_effects.estimate_omega; }),

      registered("solver.method", [](Config& c) -> std::string& { return c.train.solver.method; }, check_method),
      choice<LinearSolver>("solver.linear_solver",
                           [](Config& c) -> LinearSolver& { return c.train.solver.cvodes.linear_solver; },
                           parse_linear_solver, linear_solver_name),
      choice<NonlinearSolver>("solver.nonlinear_solver",
                              [](Config& c) -> NonlinearSolver& { return c.train.solver.cvodes.nonlinear_solver; },
                              parse_nonlinear_solver, nonlinear_solver_name),
      num("solver.rtol", [](Config& c) -> double& { return c.train.solver.rtol; }),
      num("solver.atol", [](Config& c) -> double& { return c.train.solver.atol; }),
      eigen_vector("solver.atol_vector", [](Config& c) -> Vector& { return c.train.solver.atol_vector; }),
      eigen_vector("solver.constraints", [](Config& c) -> Vector& { return c.train.solver.cvodes.constraints; }),
      num("solver.adjoint_atol", [](Config& c) -> double& { return c.train.solver.cvodes.adjoint_atol; }),
      integer("solver.band_upper", [](Config& c) -> int& { return c.train.solver.cvodes.band_upper; }),
      integer("solver.band_lower", [](Config& c) -> int& { return c.train.solver.cvodes.band_lower; }),
      choice<Preconditioner>("solver.preconditioner",
                             [](Config& c) -> Preconditioner& { return c.train.solver.cvodes.preconditioner; },
                             parse_preconditioner, preconditioner_name),
      integer("solver.preconditioner_block", [](Config& c) -> int& { return c.train.solver.cvodes.preconditioner_block; }),
      integer("solver.max_order", [](Config& c) -> int& { return c.train.solver.cvodes.max_order; }),
      num("solver.initial_step", [](Config& c) -> double& { return c.train.solver.initial_step; }),
      num("solver.min_step", [](Config& c) -> double& { return c.train.solver.min_step; }),
      long_int("solver.max_steps", [](Config& c) -> long& { return c.train.solver.max_steps; }),
      num("solver.max_step", [](Config& c) -> double& { return c.train.solver.max_step; }),
      integer("solver.checkpoint_steps", [](Config& c) -> int& { return c.train.solver.cvodes.checkpoint_steps; }),
      boolean("solver.quadrature_error_control",
              [](Config& c) -> bool& { return c.train.solver.cvodes.quadrature_error_control; }),
      choice<Quadrature>("solver.quadrature", [](Config& c) -> Quadrature& { return c.train.solver.cvodes.quadrature; },
                         parse_quadrature, quadrature_name),
      choice<AdjointForm>("solver.adjoint_form", [](Config& c) -> AdjointForm& { return c.train.solver.cvodes.adjoint_form; },
                          parse_adjoint_form, adjoint_form_name),
      num("solver.dopri5_keep_mib", [](Config& c) -> double& { return c.train.solver.dopri5.keep_mib; }),
      num("solver.dopri5_fixed_step", [](Config& c) -> double& { return c.train.solver.dopri5.fixed_step; }),

      registered("loss.kind", [](Config& c) -> std::string& { return c.train.loss.kind; }, check_loss_kind),
      {"loss.sigma",
       [](Config& c, const toml::node& n) {
         const auto v = as_doubles(n);
         c.train.loss.sigma = Eigen::Map<const Vector>(v.data(), static_cast<Eigen::Index>(v.size()));
       },
       [](const Config& c) {
         std::string s = "[";
         for (Eigen::Index i = 0; i < c.train.loss.sigma.size(); ++i)
           s += (i ? ", " : "") + fmt_double(c.train.loss.sigma[i]);
         return s + "]";
       }},
      eigen_vector("loss.weight", [](Config& c) -> Vector& { return c.train.loss.weight; }),
      text("loss.scale", [](Config& c) -> std::string& { return c.loss_scale; }),
      num("loss.kinetic_weight", [](Config& c) -> double& { return c.train.run.kinetic_weight; }),
      integer("loss.samples", [](Config& c) -> int& { return c.latent.samples; }),
      {"loss.bound",
       [](Config& c, const toml::node& n) {
         const std::string b = as_string(n);
         if (b != "elbo" && b != "iwae") throw Bad{"expected \"elbo\" or \"iwae\", got \"" + b + "\""};
         c.latent.iwae = b == "iwae";
       },
       [](const Config& c) { return quote(c.latent.iwae ? "iwae" : "elbo"); }},
      integer("loss.kl_warmup_epochs", [](Config& c) -> int& { return c.latent.kl_warmup_epochs; }),
      boolean("loss.poisson", [](Config& c) -> bool& { return c.latent.poisson; }),
      ints("loss.intensity_hidden", [](Config& c) -> std::vector<int>& { return c.latent.intensity_hidden; }),
      num("regularization.kinetic_weight", [](Config& c) -> double& { return c.train.run.kinetic_weight; }),
      num("regularization.jacobian_weight", [](Config& c) -> double& { return c.train.regularization.jacobian_weight; }),
      choice<TraceEstimator>("regularization.jacobian_estimator",
                             [](Config& c) -> TraceEstimator& { return c.train.regularization.jacobian_estimator; },
                             parse_trace_estimator, trace_estimator_name),
      integer("regularization.jacobian_probes", [](Config& c) -> int& { return c.train.regularization.jacobian_probes; }),
      num("regularization.steer", [](Config& c) -> double& { return c.train.regularization.steer; }),
      num("regularization.error_weight", [](Config& c) -> double& { return c.train.regularization.error_weight; }),

      choice<OptimizerKind>("optimizer.name",
                            [](Config& c) -> OptimizerKind& { return c.train.optimizer.kind; },
                            parse_optimizer, optimizer_name),
      num("optimizer.lr", [](Config& c) -> double& { return c.train.optimizer.lr; }),
      num("optimizer.beta1", [](Config& c) -> double& { return c.train.optimizer.beta1; }),
      num("optimizer.beta2", [](Config& c) -> double& { return c.train.optimizer.beta2; }),
      num("optimizer.eps", [](Config& c) -> double& { return c.train.optimizer.eps; }),
      num("optimizer.momentum", [](Config& c) -> double& { return c.train.optimizer.momentum; }),
      boolean("optimizer.nesterov", [](Config& c) -> bool& { return c.train.optimizer.nesterov; }),
      boolean("optimizer.reset_at_phase", [](Config& c) -> bool& { return c.train.optimizer.reset_at_phase; }),
      num("optimizer.weight_decay", [](Config& c) -> double& { return c.train.optimizer.weight_decay; }),
      num("optimizer.clip_norm", [](Config& c) -> double& { return c.train.optimizer.clip_norm; }),

      choice<ScheduleKind>("schedule.kind", [](Config& c) -> ScheduleKind& { return c.train.schedule.kind; },
                           parse_schedule, schedule_name),
      integer("schedule.step_epochs", [](Config& c) -> int& { return c.train.schedule.step_epochs; }),
      num("schedule.gamma", [](Config& c) -> double& { return c.train.schedule.gamma; }),
      num("schedule.min_lr", [](Config& c) -> double& { return c.train.schedule.min_lr; }),
      integer("schedule.warmup_epochs", [](Config& c) -> int& { return c.train.schedule.warmup_epochs; }),
      integer("schedule.phase_warmup_epochs", [](Config& c) -> int& { return c.train.schedule.phase_warmup_epochs; }),
      integer("schedule.plateau_patience", [](Config& c) -> int& { return c.train.schedule.plateau_patience; }),
      num("schedule.plateau_factor", [](Config& c) -> double& { return c.train.schedule.plateau_factor; }),
      num("schedule.plateau_threshold", [](Config& c) -> double& { return c.train.schedule.plateau_threshold; }),

      integer("run.epochs", [](Config& c) -> int& { return c.train.run.epochs; }),
      integer("run.batch_size", [](Config& c) -> int& { return c.train.run.batch_size; }),
      integer("run.threads", [](Config& c) -> int& { return c.train.run.threads; }),
      choice<BatchMode>("run.batch_mode", [](Config& c) -> BatchMode& { return c.train.run.batch_mode; },
                        parse_batch_mode, batch_mode_name),
      integer("run.stack_size", [](Config& c) -> int& { return c.train.run.stack_size; }),
      choice<Reduction>("run.reduction", [](Config& c) -> Reduction& { return c.train.run.reduction; },
                        parse_reduction, reduction_name),
      choice<Balance>("run.balance", [](Config& c) -> Balance& { return c.train.run.balance; },
                      parse_balance, balance_name),
      seed("run.seed", [](Config& c) -> std::uint64_t& { return c.train.run.seed; }),
      integer("run.val_every", [](Config& c) -> int& { return c.train.run.val_every; }),
      integer("run.early_stop_patience", [](Config& c) -> int& { return c.train.run.early_stop_patience; }),
      num("run.failure_fraction", [](Config& c) -> double& { return c.train.run.failure_fraction; }),
      integer("run.failure_patience", [](Config& c) -> int& { return c.train.run.failure_patience; }),
      num("run.failure_lr_factor", [](Config& c) -> double& { return c.train.run.failure_lr_factor; }),
      integer("run.max_rollbacks", [](Config& c) -> int& { return c.train.run.max_rollbacks; }),

      integer("plot.series", [](Config& c) -> int& { return c.plot.series; }),
      num("plot.extrapolate", [](Config& c) -> double& { return c.plot.extrapolate; }),
      integer("plot.points", [](Config& c) -> int& { return c.plot.points; }),
      boolean("plot.log_time", [](Config& c) -> bool& { return c.plot.log_time; }),
  };
  return e;
}

const Entry* find(const std::string& key) {
  for (const auto& e : entries())
    if (e.key == key) return &e;
  return nullptr;
}

std::string unknown_key(const std::string& where, const std::string& key) {
  // Name the keys of the same section, which is where a typo usually belongs.
  const std::string section = key.substr(0, key.find('.'));
  std::string known;
  for (const auto& e : entries())
    if (e.key.compare(0, section.size() + 1, section + ".") == 0)
      known += (known.empty() ? "" : ", ") + e.key.substr(section.size() + 1);
  std::string msg = where + ": unknown key '" + key + "'";
  if (!known.empty()) msg += " (section [" + section + "] has: " + known + ")";
  else msg += " (sections: data, model, encoder, decoder, physics, random_effects, solver, loss, optimizer, schedule, run, plot)";
  return msg;
}

void apply(Config& c, const std::string& where, const std::string& key, const toml::node& n) {
  const Entry* e = find(key);
  if (!e) throw ConfigError(unknown_key(where, key));
  try {
    e->set(c, n);
  } catch (const Bad& b) {
    throw ConfigError(where + ": key '" + key + "': " + b.what);
  }
}

void apply_table(Config& c, const std::string& where, const toml::table& root) {
  for (const auto& [k, v] : root) {
    const std::string section(k.str());
    const auto* t = v.as_table();
    if (!t) throw ConfigError(unknown_key(where, section));
    for (const auto& [k2, v2] : *t) apply(c, where, section + "." + std::string(k2.str()), v2);
  }
}

void apply_override(Config& c, const std::string& ov) {
  const auto eq = ov.find('=');
  const std::string where = "--set " + ov;
  if (eq == std::string::npos || eq == 0)
    throw ConfigError(where + ": expected section.key=value");
  const std::string key = ov.substr(0, eq), value = ov.substr(eq + 1);
  if (!find(key)) throw ConfigError(unknown_key("--set", key));
  toml::table t;
  try {
    t = toml::parse("v = " + value);
  } catch (const toml::parse_error&) {
    // A number TOML cannot hold (an integer beyond 64 bits, an exponent beyond double's) is not
    // a bare word: say so instead of "expected an integer, got a string".
    static const std::regex number(R"([+-]?[0-9][0-9_]*(\.[0-9_]*)?([eE][+-]?[0-9]+)?)");
    if (std::regex_match(value, number))
      throw ConfigError("--set: key '" + key + "': " + (value.size() > 40 ? value.substr(0, 37) + "..." : value) +
                        " is out of range (integers must fit in 64 bits, numbers in double precision)");
    // Bare words (--set solver.method=bdf) are strings.
    t = toml::parse("v = " + quote(value));
  }
  apply(c, "--set", key, *t.get("v"));
}

void finish(Config& c, const std::vector<std::string>& overrides) {
  for (const auto& ov : overrides) apply_override(c, ov);
  const std::string why = c.validate();
  if (!why.empty()) throw ConfigError(c.source + ": " + why);
}

}  // namespace

std::string DataOptions::validate() const {
  std::ostringstream o;
  if (file.empty()) o << "data.file is empty: name the HDF5 dataset to fit";
  else if (!(train_fraction > 0 && train_fraction <= 1)) o << "data.train_fraction = " << train_fraction << " must lie in (0, 1]";
  else if (!(val_fraction >= 0 && train_fraction + val_fraction <= 1 + 1e-12))
    o << "data.val_fraction = " << val_fraction << " must be >= 0 with train_fraction + val_fraction <= 1";
  else if (max_series < 0) o << "data.max_series = " << max_series << " must be >= 0 (0 = all)";
  else if (window < 0 || window == 1) o << "data.window = " << window << " must be 0 (whole series) or >= 2";
  else if (window_epochs < 0) o << "data.window_epochs = " << window_epochs << " must be >= 0";
  else if (window_start != "model" && window_start != "zero")
    o << "data.window_start = \"" << window_start << "\" (expected model or zero)";
  else if (forecast_history < 1) o << "data.forecast_history = " << forecast_history << " must be >= 1";
  else if (forecast_history > 1 && split != "time")
    o << "data.forecast_history = " << forecast_history << " needs data.split = \"time\" (forecast windows)";
  else if (split != "series" && split != "time") o << "data.split = \"" << split << "\" (expected series or time)";
  else if (split == "time" && (!validation_file.empty() || !test_file.empty()))
    o << "data.split = \"time\" cuts the series of data.file in time: it does not take data.validation_file or "
         "data.test_file";
  else if (!time_cutoffs.empty() && split != "time") o << "data.time_cutoffs needs data.split = \"time\"";
  else if (time_cutoffs.size() > 2 || (time_cutoffs.size() == 2 && !(time_cutoffs[1] > time_cutoffs[0])) ||
           (time_cutoffs.size() >= 1 && !std::isfinite(time_cutoffs[0])) ||
           (time_cutoffs.size() == 2 && !std::isfinite(time_cutoffs[1])))
    o << "data.time_cutoffs must be [c1] or [c1, c2] with finite c1 < c2";
  else if (!test_file.empty() && validation_file.empty())
    o << "data.test_file needs data.validation_file (with separate files, data.file is the training set)";
  else if (window_stages.size() != window_stage_epochs.size())
    o << "data.window_stages has " << window_stages.size() << " entries, data.window_stage_epochs "
      << window_stage_epochs.size() << ": give one last epoch per stage";
  else if (!window_stages.empty() && (window < 2 || window_epochs < 1))
    o << "data.window_stages needs data.window >= 2 and data.window_epochs >= 1 (the first stage)";
  else if (std::any_of(transform.begin(), transform.end(),
                       [](const std::string& t) { return t != "none" && t != "log" && t != "log1p"; }))
    o << "data.transform has \"" << *std::find_if(transform.begin(), transform.end(), [](const std::string& t) {
      return t != "none" && t != "log" && t != "log1p";
    }) << "\" (expected none, log or log1p)";
  else if (std::any_of(dose_scale.begin(), dose_scale.end(), [](double v) { return !std::isfinite(v) || !(v > 0); }))
    o << "data.dose_scale entries must be finite and > 0";
  else if (std::any_of(compartment_states.begin(), compartment_states.end(), [](int v) { return v < 0; }))
    o << "data.compartment_states entries must be >= 0 (state components from 0)";
  else {
    int w = window, e = window_epochs;
    for (std::size_t i = 0; i < window_stages.size(); ++i) {
      if (window_stages[i] <= w) {
        o << "data.window_stages[" << i << "] = " << window_stages[i] << " must be larger than the previous window " << w;
        break;
      }
      if (window_stage_epochs[i] <= e) {
        o << "data.window_stage_epochs[" << i << "] = " << window_stage_epochs[i] << " must be larger than the previous stage's last epoch " << e;
        break;
      }
      w = window_stages[i];
      e = window_stage_epochs[i];
    }
  }
  return o.str();
}

std::string Config::validate() const {
  std::string why = data.validate();
  if (why.empty() && data.window_epochs > 0 && data.window < 2)
    why = "data.window_epochs = " + std::to_string(data.window_epochs) + " needs data.window >= 2";
  if (why.empty() && data.window_epochs > 0 && model.initial_state == InitialState::Learned)
    why = "data.window_epochs > 0 cannot be combined with model.initial_state = \"learned\" "
          "(windows and whole series have different initial states to learn)";
  if (why.empty()) why = model.validate();
  if (why.empty() && model_kind_command(model.kind) == "latent train") {
    why = latent.validate();
    if (why.empty() && model.physics.enabled())
      why = "model.kind = \"" + model.kind + "\" has no [physics] term (physics.kind must be \"none\")";
    if (why.empty() && (model.augment != 0 || model.readout != Readout::Identity || model.time_input ||
                        model.initial_state != InitialState::FirstObservation || data.window != 0))
      why = "model.kind = \"" + model.kind + "\" infers each series' initial state with its encoder: leave "
            "model.augment, model.readout, model.time_input, model.initial_state and data.window at their defaults";
  }
  if (why.empty()) why = model.random_effects.validate();
  if (why.empty() && model.random_effects.enabled()) {
    // The prior's weight against the data is sigma^2 / entries with sigma^2 the mean squared
    // residual: the loss must be that mean.
    if (model_kind_command(model.kind) != "fit")
      why = "[random_effects] is for the kinds `cvnode fit` trains, not model.kind = \"" + model.kind + "\"";
    else if (train.loss.kind != "mse_mean")
      why = "[random_effects] needs loss.kind = \"mse_mean\" (the residual variance sigma^2 it estimates weighs the "
            "prior), not \"" + train.loss.kind + "\"";
    else if (data.window != 0)
      why = "[random_effects] fits whole series per subject: data.window = " + std::to_string(data.window) +
            " must be 0";
    else if (data.split == "time")
      why = "[random_effects] needs subjects split into train / validation / test (data.split = \"series\"), not "
            "data.split = \"time\"";
  }
  if (why.empty() && loss_scale != "none" && loss_scale != "std" && loss_scale != "max")
    why = "loss.scale = \"" + loss_scale + "\" (expected none, std or max)";
  if (why.empty() && loss_scale != "none" && train.loss.weight.size() > 0)
    why = "loss.scale = \"" + loss_scale + "\" computes the weights: leave loss.weight empty";
  if (why.empty() && model.physics.enabled() && data.normalize)
    why = "physics.kind = \"" + model.physics.kind +
          "\" works in the data's units: set data.normalize = false";
  if (why.empty() && model.physics.enabled()) {
    // Build it (parses the reactions, checks the coupling) for the physics' own state size.
    const auto& p = model.physics;
    const int n = p.kind == "robertson" ? 3
                  : p.kind == "mass_action" ? std::max<int>(1, static_cast<int>(p.species.size()))
                  : std::max(1, p.size);
    try {
      const HybridModelSpec hs = hybrid_spec(model, n);
      const std::string w = hs.validate();
      if (!w.empty()) why = "[physics] " + w;
      else if (p.kind != "linear_decay" || p.size > 0) (void)build_hybrid(hs);
    } catch (const OptionsError& e) {
      why = std::string("[physics] ") + e.what();
    }
  }
  if (why.empty()) {
    why = train.solver.validate();
    if (!why.empty()) why = "[solver] " + why;
  }
  if (why.empty()) why = train.optimizer.validate();
  if (why.empty()) why = train.schedule.validate();
  if (why.empty()) why = train.run.validate();
  if (why.empty()) why = train.regularization.validate();
  if (why.empty()) why = error_penalty_refusal(train.solver, train.regularization.error_weight);
  if (why.empty() && train.run.batch_mode == BatchMode::Stacked && train.regularization.jacobian_weight > 0)
    why = "run.batch_mode = \"stacked\" does not take regularization.jacobian_weight > 0 (a running cost); use "
          "\"per_series\" or \"auto\"";
  if (why.empty() && train.loss.kind == "gaussian_nll" && train.loss.sigma.size() == 0)
    why = "loss.kind = \"gaussian_nll\" needs loss.sigma (one per channel)";
  if (why.empty() && plot.series < 0) why = "plot.series = " + std::to_string(plot.series) + " must be >= 0";
  if (why.empty() && !(plot.extrapolate >= 0)) why = "plot.extrapolate must be >= 0";
  if (why.empty() && plot.points < 2) why = "plot.points = " + std::to_string(plot.points) + " must be >= 2";
  return why;
}

Config Config::parse(const std::string& text, const std::string& name,
                     const std::vector<std::string>& overrides) {
  Config c;
  c.source = name;
  toml::table root;
  try {
    root = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    std::ostringstream o;
    o << name << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
      << e.description();
    throw ConfigError(o.str());
  }
  apply_table(c, name, root);
  finish(c, overrides);
  return c;
}

Config Config::load(const std::string& path, const std::vector<std::string>& overrides) {
  Config c;
  c.source = path;
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::ostringstream o;
    o << path << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
      << e.description();
    throw ConfigError(o.str());
  }
  apply_table(c, path, root);
  // A relative data path is relative to the config file, so a config works from any directory;
  // the resolved (absolute) path is what checkpoints store.
  namespace fs = std::filesystem;
  for (std::string* f : {&c.data.file, &c.data.validation_file, &c.data.test_file})
    if (!f->empty() && fs::path(*f).is_relative())
      *f = fs::weakly_canonical(fs::absolute(path).parent_path() / *f).string();
  finish(c, overrides);
  return c;
}

void Config::set(const std::string& key, const std::string& value) {
  apply_override(*this, key + "=" + value);
}

std::string Config::to_toml() const {
  std::vector<std::pair<std::string, std::string>> kv;
  for (const auto& e : entries()) kv.emplace_back(e.key, e.get(*this));
  return detail::toml_tables(kv);
}

std::vector<std::string> Config::keys() {
  std::vector<std::string> k;
  for (const auto& e : entries()) k.push_back(e.key);
  return k;
}

}  // namespace cvnode

// The configuration of a flow's fit (cvnode/cnf_fit.h): the shared sections go to Config (their
// keys, types, defaults and messages are Config's own), [cnf] and [regularization] are read here.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "app/toml_tables.h"
#include "models/cnf/cnf_fit.h"
#include "cvnode/errors.h"

namespace cvnode {

namespace {

namespace fs = std::filesystem;

// The keys of the shared sections a flow uses. Everything else there (windows, batch modes,
// the kinetic weight of [run] ...) would be ignored by a flow, so it is refused.
const std::map<std::string, std::set<std::string>>& shared_keys() {
  static const std::map<std::string, std::set<std::string>> k = {
      {"data", {"file", "train_fraction", "val_fraction", "split_seed", "normalize", "max_series"}},
      {"run", {"epochs", "batch_size", "threads", "stack_size", "seed", "val_every"}},
      {"solver", {}},     // all
      {"optimizer", {}},  // all
      {"schedule", {}}};  // all
  return k;
}

// A flow's defaults where the series fit's do not suit points: minibatches of hundreds of
// samples, solved in stacks of 128.
const std::vector<std::pair<std::string, long long>> kSharedDefaults = {
    {"batch_size", 256}, {"stack_size", 128}, {"epochs", 50}};

std::string number_text(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest exact text
  std::string s(buf, r.ptr);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  else if (s.find('.') == std::string::npos && s.find_first_of("eE") != std::string::npos)
    s.insert(s.find_first_of("eE"), ".0");
  return s;
}

// One key of [cnf] or [regularization]: how it reads a TOML value and how it prints.
struct Key {
  std::function<void(CnfFitConfig&, const toml::node&)> set;
  std::function<std::string(const CnfFitConfig&)> get;
};

struct Bad {
  std::string what;
};

double read_number(const toml::node& n) {
  if (auto v = n.as_floating_point()) return v->get();
  if (auto v = n.as_integer()) return static_cast<double>(v->get());
  throw Bad{"expected a number"};
}
int read_int(const toml::node& n) {
  auto v = n.as_integer();
  if (!v || v->get() < -2147483647LL || v->get() > 2147483647LL) throw Bad{"expected an integer"};
  return static_cast<int>(v->get());
}
std::string read_text(const toml::node& n) {
  if (auto v = n.as_string()) return v->get();
  throw Bad{"expected a string"};
}
template <class E>
E read_choice(const toml::node& n, E (*parse)(const std::string&)) {
  try {
    return parse(read_text(n));
  } catch (const std::invalid_argument& e) {
    throw Bad{e.what()};
  }
}

#define CNF_NUMBER(field) \
  {[](CnfFitConfig& c, const toml::node& n) { c.field = read_number(n); }, [](const CnfFitConfig& c) { return number_text(c.field); }}
#define CNF_INT(field) \
  {[](CnfFitConfig& c, const toml::node& n) { c.field = read_int(n); }, [](const CnfFitConfig& c) { return std::to_string(c.field); }}
#define CNF_CHOICE(field, parse, name)                                                           \
  {[](CnfFitConfig& c, const toml::node& n) { c.field = read_choice(n, parse); },                \
   [](const CnfFitConfig& c) { return "\"" + std::string(name(c.field)) + "\""; }}

const std::vector<std::pair<std::string, Key>>& own_keys() {
  static const std::vector<std::pair<std::string, Key>> k = {
      {"cnf.field", {[](CnfFitConfig& c, const toml::node& n) { c.model.field = read_text(n); },
                     [](const CnfFitConfig& c) { return "\"" + c.model.field + "\""; }}},
      {"cnf.hidden", {[](CnfFitConfig& c, const toml::node& n) {
                        const auto* a = n.as_array();
                        if (!a) throw Bad{"expected an array of integers"};
                        c.model.hidden.clear();
                        for (const auto& e : *a) c.model.hidden.push_back(read_int(e));
                      },
                      [](const CnfFitConfig& c) {
                        std::string s = "[";
                        for (std::size_t i = 0; i < c.model.hidden.size(); ++i)
                          s += (i ? ", " : "") + std::to_string(c.model.hidden[i]);
                        return s + "]";
                      }}},
      {"cnf.activation", CNF_CHOICE(model.activation, parse_activation, activation_name)},
      {"cnf.time_input", {[](CnfFitConfig& c, const toml::node& n) {
                            auto v = n.as_boolean();
                            if (!v) throw Bad{"expected true or false"};
                            c.model.time_input = v->get();
                          },
                          [](const CnfFitConfig& c) { return std::string(c.model.time_input ? "true" : "false"); }}},
      {"cnf.width", CNF_INT(model.width)},
      {"cnf.hyper_hidden", CNF_INT(model.hyper_hidden)},
      {"cnf.init", CNF_CHOICE(model.init, parse_init, init_name)},
      {"cnf.seed", {[](CnfFitConfig& c, const toml::node& n) {
                      const int v = read_int(n);
                      if (v < 0) throw Bad{"a seed must be >= 0"};
                      c.model.seed = static_cast<std::uint64_t>(v);
                    },
                    [](const CnfFitConfig& c) { return std::to_string(c.model.seed); }}},
      {"cnf.trace", CNF_CHOICE(model.trace, parse_trace_estimator, trace_estimator_name)},
      {"cnf.noise", CNF_CHOICE(model.noise, parse_probe_noise, probe_noise_name)},
      {"cnf.probes", CNF_INT(model.probes)},
      {"cnf.end_time", CNF_NUMBER(model.end_time)},
      {"cnf.base_std", CNF_NUMBER(model.base_std)},
      {"cnf.plot_grid", CNF_INT(plot_grid)},
      {"cnf.plot_flow_grid", CNF_INT(plot_flow_grid)},
      {"cnf.plot_samples", CNF_INT(plot_samples)},
      {"regularization.kinetic_weight", CNF_NUMBER(model.kinetic_weight)},
      {"regularization.jacobian_weight", CNF_NUMBER(model.jacobian_weight)},
      {"regularization.steer", CNF_NUMBER(model.steer)},
      {"regularization.error_weight", CNF_NUMBER(model.error_weight)},
  };
  return k;
}

#undef CNF_NUMBER
#undef CNF_INT
#undef CNF_CHOICE

const Key* own_key(const std::string& key) {
  for (const auto& [name, k] : own_keys())
    if (name == key) return &k;
  return nullptr;
}

void set_own(CnfFitConfig& c, const std::string& where, const std::string& key, const toml::node& n) {
  const Key* k = own_key(key);
  if (!k) {
    std::string known;
    const std::string section = key.substr(0, key.find('.'));
    for (const auto& [name, unused] : own_keys())
      if (name.rfind(section + ".", 0) == 0) known += (known.empty() ? "" : ", ") + name.substr(section.size() + 1);
    throw ConfigError(where + ": unknown key " + key + " (" + section + " has " + known + ")");
  }
  try {
    k->set(c, n);
  } catch (const Bad& b) {
    throw ConfigError(where + ": " + key + ": " + b.what);
  }
}

bool own_section(const std::string& s) { return s == "cnf" || s == "regularization"; }

void check_shared_key(const std::string& where, const std::string& section, const std::string& key) {
  const auto& k = shared_keys();
  const auto it = k.find(section);
  if (it == k.end())
    throw ConfigError(where + ": [" + section + "] does not apply to a flow ([cnf]): its sections are data, cnf, "
                      "regularization, solver, optimizer, schedule and run");
  if (!it->second.empty() && !it->second.count(key)) {
    std::string known;
    for (const auto& name : it->second) known += (known.empty() ? "" : ", ") + name;
    throw ConfigError(where + ": " + section + "." + key + " does not apply to a flow ([cnf]; " + section +
                      " takes " + known + ")");
  }
}

toml::table parse_toml(const std::string& text, const std::string& name) {
  try {
    return toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    std::ostringstream o;
    o << name << ":" << e.source().begin.line << ":" << e.source().begin.column << ": " << e.description();
    throw ConfigError(o.str());
  }
}

// `dir` non-empty: a relative data.file is relative to it (the configuration file's folder).
CnfFitConfig from_table(toml::table root, const std::string& name, const std::string& dir,
                        const std::vector<std::string>& overrides) {
  CnfFitConfig c;
  if (!root.contains("cnf")) throw ConfigError(name + ": no [cnf] section: not a flow's configuration");
  // [cnf] and [regularization] here; the shared sections checked against what a flow uses.
  for (const char* section : {"cnf", "regularization"}) {
    if (!root.contains(section)) continue;
    const auto* t = root[section].as_table();
    if (!t) throw ConfigError(name + ": " + section + " must be a table");
    for (const auto& [k, v] : *t) set_own(c, name, std::string(section) + "." + std::string(k.str()), v);
    root.erase(section);
  }
  for (const auto& [s, v] : root) {
    const auto* t = v.as_table();
    if (!t) throw ConfigError(name + ": " + std::string(s.str()) + " must be a table");
    for (const auto& [k, unused] : *t) check_shared_key(name, std::string(s.str()), std::string(k.str()));
  }
  if (dir.size() && root["data"]["file"].is_string()) {
    const fs::path f = root["data"]["file"].value_or(std::string());
    if (f.is_relative())
      root["data"].as_table()->insert_or_assign("file", fs::weakly_canonical(fs::path(dir) / f).string());
  }
  if (!root.contains("run")) root.insert("run", toml::table{});
  for (const auto& [k, v] : kSharedDefaults)
    if (!root["run"].as_table()->contains(k)) root["run"].as_table()->insert(k, v);
  std::vector<std::string> shared;
  for (const auto& ov : overrides) {
    const auto eq = ov.find('='), dot = ov.find('.');
    if (eq == std::string::npos || dot == std::string::npos || dot > eq)
      throw ConfigError(name + ": override '" + ov + "' is not section.key=value");
    const std::string key = ov.substr(0, eq), section = key.substr(0, dot), value = ov.substr(eq + 1);
    if (own_section(section)) {
      // A bare word is a string ("--set cnf.trace=hutchinson"), as in Config::set.
      toml::table t;
      try {
        t = toml::parse("v = " + value);
      } catch (const toml::parse_error&) {
        t = toml::parse("v = \"" + value + "\"");
      }
      set_own(c, name + " (override " + ov + ")", key, *t.get("v"));
    } else {
      check_shared_key(name + " (override " + ov + ")", section, key.substr(dot + 1));
      shared.push_back(ov);
    }
  }
  std::ostringstream rest;
  rest << root;
  c.base = Config::parse(rest.str(), name, shared);
  c.base.source = name;
  if (const std::string why = c.validate(); !why.empty()) throw ConfigError(name + ": " + why);
  return c;
}

}  // namespace

CnfFitConfig CnfFitConfig::parse(const std::string& text, const std::string& name,
                                 const std::vector<std::string>& overrides) {
  return from_table(parse_toml(text, name), name, "", overrides);
}

CnfFitConfig CnfFitConfig::load(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream f(path);
  if (!f) throw ConfigError(path + ": cannot read");
  std::stringstream text;
  text << f.rdbuf();
  return from_table(parse_toml(text.str(), path), path, fs::absolute(path).parent_path().string(), overrides);
}

bool CnfFitConfig::describes_cnf(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw ConfigError(path + ": cannot read");
  std::stringstream text;
  text << f.rdbuf();
  return parse_toml(text.str(), path).contains("cnf");
}

std::string CnfFitConfig::to_toml() const {
  // The shared sections as Config prints them, keeping only the keys a flow uses.
  std::istringstream in(base.to_toml());
  std::string out, line, section;
  while (std::getline(in, line)) {
    if (line.size() > 2 && line.front() == '[') {
      section = line.substr(1, line.size() - 2);
      if (shared_keys().count(section)) out += (out.empty() ? "" : "\n") + line + "\n";
      continue;
    }
    const auto eq = line.find(" = ");
    if (eq == std::string::npos || !shared_keys().count(section)) continue;
    const auto& keys = shared_keys().at(section);
    if (keys.empty() || keys.count(line.substr(0, eq))) out += line + "\n";
  }
  std::vector<std::pair<std::string, std::string>> own;
  for (const auto& [name, k] : own_keys()) own.emplace_back(name, k.get(*this));
  return out + "\n" + detail::toml_tables(own);
}

std::string CnfFitConfig::validate() const {
  if (std::string why = model.validate(); !why.empty()) return why;
  if (plot_grid < 2) return "cnf.plot_grid = " + std::to_string(plot_grid) + " must be >= 2";
  if (plot_flow_grid < 0) return "cnf.plot_flow_grid = " + std::to_string(plot_flow_grid) + " must be >= 0";
  if (plot_samples < 1) return "cnf.plot_samples = " + std::to_string(plot_samples) + " must be >= 1";
  if (!(base.data.val_fraction > 0))
    return "data.val_fraction = " + std::to_string(base.data.val_fraction) + " must be > 0 (the best flow is chosen on it)";
  return base.validate();
}

}  // namespace cvnode

// The registry of gradient engines: src/ode/engine_list.h.
#include "cvnode/engine.h"

#include "core/names.h"
#include "cvnode/errors.h"
#include "ode/engine_util.h"
#include "ode/segments.h"

namespace cvnode {

#define CVNODE_ENGINE(method, id)                                                                  \
  std::unique_ptr<GradientEngine> make_##id##_engine(const Dynamics&, const SolverOptions&);       \
  std::string validate_##id##_options(const SolverOptions&, int);
#include "ode/engine_list.h"
#undef CVNODE_ENGINE

namespace {
struct EngineEntry {
  std::unique_ptr<GradientEngine> (*make)(const Dynamics&, const SolverOptions&);
  std::string (*validate)(const SolverOptions&, int);
};

const detail::Registry<EngineEntry>& registry() {
  static const detail::Registry<EngineEntry> r("solver method", {
#define CVNODE_ENGINE(method, id) {method, {&make_##id##_engine, &validate_##id##_options}},
#include "ode/engine_list.h"
#undef CVNODE_ENGINE
  });
  return r;
}
}  // namespace

std::vector<std::string> engine_methods() { return registry().names(); }

std::string validate_engine_options(const SolverOptions& options, int state_size) {
  const auto* entry = registry().find(options.method);
  if (!entry)
    return "unknown solver method '" + options.method + "' (expected " + detail::choices(engine_methods()) + ")";
  return entry->factory.validate(options, state_size);
}

std::unique_ptr<GradientEngine> make_engine(const Dynamics& dynamics, const SolverOptions& options) {
  return std::make_unique<detail::SegmentedEngine>(dynamics, options, detail::make_registered_engine(dynamics, options));
}

std::unique_ptr<GradientEngine> detail::make_registered_engine(const Dynamics& dynamics, const SolverOptions& options) {
  options.check(dynamics.state_size());
  return registry().at(options.method).make(dynamics, options);
}

Solution GradientEngine::solve(ConstVectorRef theta, const Trajectory& ivp) {
  const int n = static_cast<int>(ivp.z0.size());
  detail::check_ivp(ivp, n);
  Vector times = ivp.times;
  if (ivp.horizon() > (times.size() ? times[times.size() - 1] : ivp.t0)) {
    times.conservativeResize(times.size() + 1);
    times[times.size() - 1] = ivp.horizon();
  }
  return solve(theta, ivp.t0, ivp.z0, times);
}

}  // namespace cvnode

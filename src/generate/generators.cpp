#include "cvnode/generators.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cvnode/errors.h"
#include "data/memory_check.h"
#include "cvnode/physics.h"
#include "cvnode/solver.h"
#include "core/random.h"

namespace cvnode {

namespace {

struct System {
  std::unique_ptr<Dynamics> dynamics;
  Vector theta;
  std::vector<std::string> names, units;
  double t_end = 10;
  bool log_grid = false;
  SolverOptions solver;
  // A random initial state from the system's typical range.
  Vector (*initial)(detail::Rng&, std::size_t series) = nullptr;
};

double uniform(detail::Rng& r, double a, double b) { return a + (b - a) * r.uniform(); }

System make_system(const std::string& name) {
  System s;
  s.solver.method = "adams";
  s.solver.rtol = 1e-11;
  s.solver.atol = 1e-12;
  s.solver.max_steps = 1000000;
  if (name == "spiral") {
    s.dynamics = std::make_unique<CubicSpiral>();
    s.theta = CubicSpiral::default_parameters();
    s.names = {"z1", "z2"};
    s.units = {"1", "1"};
    s.t_end = 25;
    // Series 0 starts at ode_demo's (2, 0); the others on a ring of radius 1.5 to 2.5 around it.
    s.initial = [](detail::Rng& r, std::size_t i) -> Vector {
      if (i == 0) return (Vector(2) << 2.0, 0.0).finished();
      const double rad = uniform(r, 1.5, 2.5), phi = uniform(r, 0, 2 * M_PI);
      return (Vector(2) << rad * std::cos(phi), rad * std::sin(phi)).finished();
    };
  } else if (name == "lotka_volterra") {
    s.dynamics = std::make_unique<LotkaVolterra>();
    s.theta = LotkaVolterra::default_parameters();
    s.names = {"prey", "predator"};
    s.units = {"1", "1"};
    s.t_end = 10;
    s.initial = [](detail::Rng& r, std::size_t) -> Vector {
      return (Vector(2) << uniform(r, 1.0, 5.0), uniform(r, 0.5, 3.0)).finished();
    };
  } else if (name == "damped_oscillator") {
    s.dynamics = std::make_unique<DampedOscillator>();
    s.theta = DampedOscillator::default_parameters();
    s.names = {"position", "velocity"};
    s.units = {"m", "m/s"};
    s.t_end = 20;
    s.initial = [](detail::Rng& r, std::size_t) -> Vector {
      return (Vector(2) << uniform(r, -2.0, 2.0), uniform(r, -2.0, 2.0)).finished();
    };
  } else if (name == "robertson") {
    s.dynamics = std::make_unique<Robertson>();
    s.theta = Robertson::default_parameters();
    s.names = {"y1", "y2", "y3"};
    s.units = {"mol/L", "mol/L", "mol/L"};
    s.t_end = 1e4;
    s.log_grid = true;
    s.solver.method = "bdf";
    s.solver.rtol = 1e-10;
    s.solver.atol_vector = (Vector(3) << 1e-14, 1e-18, 1e-14).finished();
    // Total mass y1 + y3 at the start in [0.5, 1.5], partly as product already.
    s.initial = [](detail::Rng& r, std::size_t) -> Vector {
      const double total = uniform(r, 0.5, 1.5), y3 = uniform(r, 0.0, 0.2) * total;
      return (Vector(3) << total - y3, 0.0, y3).finished();
    };
  } else {
    throw OptionsError("generator: unknown system '" + name + "' (expected spiral, lotka_volterra, "
                       "damped_oscillator or robertson)");
  }
  return s;
}

// The series' own stream: independent of how many series there are.
std::uint64_t series_seed(std::uint64_t seed, std::size_t i, std::uint64_t purpose) {
  detail::Rng r(seed ^ (0x9E3779B97F4A7C15ULL * (i + 1)) ^ (purpose << 56));
  return r.next();
}

}  // namespace

std::vector<std::string> generator_systems() { return {"spiral", "lotka_volterra", "damped_oscillator", "robertson"}; }

std::string GeneratorOptions::validate() const {
  std::ostringstream o;
  const auto systems = generator_systems();
  if (std::find(systems.begin(), systems.end(), system) == systems.end())
    o << "system = '" << system << "' (expected spiral, lotka_volterra, damped_oscillator or robertson)";
  else if (series < 1) o << "series = " << series << " must be at least 1";
  else if (observations < 1) o << "observations = " << observations << " must be at least 1";
  else if (grid != 0 && grid < observations)
    o << "grid = " << grid << " must be 0 or at least observations = " << observations;
  else if (!(t_end >= 0) || !std::isfinite(t_end)) o << "t_end = " << t_end << " must be 0 (default) or positive";
  else if (!(noise >= 0) || !std::isfinite(noise)) o << "noise = " << noise << " must be >= 0";
  else if (!(missing >= 0 && missing < 1)) o << "missing = " << missing << " must be in [0, 1)";
  else if (observations > (1 << 27) || grid > (1 << 30))
    o << "observations = " << observations << ", grid = " << grid << ": at most 134217728 observations a series and a grid of 1073741824 points";
  else  // A row of every series (time, values, mask, the clean copy, the file image): <= 128 bytes.
    o << io::memory_shortfall(128.0 * series * observations + 8.0 * (grid > 0 ? grid : 10.0 * observations),
                              std::to_string(series) + " series x " + std::to_string(observations) + " observations");
  return o.str();
}

Dataset generate(const GeneratorOptions& opt) {
  if (std::string why = opt.validate(); !why.empty()) throw OptionsError("generator: " + why);
  System sys = make_system(opt.system);
  const double t_end = opt.t_end > 0 ? opt.t_end : sys.t_end;
  const int G = opt.grid > 0 ? opt.grid : 10 * opt.observations;
  const int T = opt.observations, n = sys.dynamics->state_size();
  const auto S = static_cast<std::size_t>(opt.series);

  // Fine grid on (0, t_end]; a logarithmic one from t_start (default t_end * 1e-8).
  if (opt.t_start > 0 && !(opt.t_start < t_end))
    throw OptionsError("generator: t_start = " + std::to_string(opt.t_start) + " must be < t_end");
  const double decades = opt.t_start > 0 ? std::log10(t_end / opt.t_start) : 8.0;
  Vector grid(G);
  for (int k = 0; k < G; ++k)
    grid[k] = sys.log_grid ? t_end * std::pow(10.0, -decades * (G - 1 - k) / std::max(1, G - 1))
                           : t_end * (k + 1) / G;

  // Clean trajectories.
  Solver solver(*sys.dynamics, sys.solver);
  std::vector<Vector> z0(S), times(S);
  std::vector<Matrix> clean(S);
  for (std::size_t i = 0; i < S; ++i) {
    detail::Rng r(series_seed(opt.seed, i, 1));
    z0[i] = sys.initial(r, i);
    std::vector<int> pick(G);
    for (int k = 0; k < G; ++k) pick[k] = k;
    if (opt.irregular) {
      for (int k = 0; k < T; ++k) std::swap(pick[k], pick[k + static_cast<int>(r.next() % (G - k))]);
      pick.resize(T);
      std::sort(pick.begin(), pick.end());
    } else {
      for (int k = 0; k < T; ++k) pick[k] = static_cast<int>((static_cast<long>(k + 1) * G) / T - 1);
      pick.resize(T);
    }
    times[i].resize(T);
    for (int k = 0; k < T; ++k) times[i][k] = grid[pick[k]];
    clean[i] = solver.solve(sys.theta, 0.0, z0[i], times[i]).states;
  }

  // Noise relative to each channel's RMS over the clean set.
  Vector rms = Vector::Zero(n);
  for (const auto& c : clean) rms += c.colwise().squaredNorm().transpose();
  rms = (rms / static_cast<double>(S * T)).cwiseSqrt();

  Dataset d(sys.names, sys.units);
  for (std::size_t i = 0; i < S; ++i) {
    detail::Rng r(series_seed(opt.seed, i, 2));
    Series s;
    s.id = opt.system + "_" + std::to_string(i);
    s.t0 = 0;
    s.times = times[i];
    s.values = clean[i];
    s.mask = Matrix::Ones(T, n);
    s.initial_state = z0[i];
    for (int k = 0; k < T; ++k)
      for (int c = 0; c < n; ++c) {
        s.values(k, c) += opt.noise * (opt.relative_noise ? std::abs(clean[i](k, c)) : rms[c]) * r.normal();
        if (opt.missing > 0 && r.uniform() < opt.missing) s.mask(k, c) = 0;
      }
    d.add(s);
  }

  nlohmann::json p;
  p["generator"] = "cvnode generate";
  p["system"] = opt.system;
  p["parameters"] = std::vector<double>(sys.theta.data(), sys.theta.data() + sys.theta.size());
  p["series"] = opt.series;
  p["observations"] = opt.observations;
  p["grid"] = G;
  p["grid_spacing"] = sys.log_grid ? "logarithmic" : "uniform";
  p["irregular"] = opt.irregular;
  p["t_end"] = t_end;
  p["noise"] = opt.noise;
  p["relative_noise"] = opt.relative_noise;
  if (sys.log_grid) p["t_start"] = grid[0];
  p["noise_std"] = std::vector<double>(rms.data(), rms.data() + n);
  p["missing"] = opt.missing;
  p["seed"] = opt.seed;
  p["solver"] = {{"method", sys.solver.method}, {"rtol", sys.solver.rtol}};
  for (int c = 0; c < n; ++c) p["noise_std"][c] = opt.relative_noise ? 0.0 : opt.noise * rms[c];
  d.set_provenance(p.dump());
  return d;
}

}  // namespace cvnode

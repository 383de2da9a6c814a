// Synthetic datasets from known dynamics (include/cvnode/physics.h), integrated by cvnode's own
// CVODES solver at tight tolerance, then sampled irregularly, perturbed and partly masked: data
// with a known truth, for demos, tests and benchmarks. Same options, same arrays.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cvnode/dataset.h"

namespace cvnode {

struct GeneratorOptions {
  // "spiral" (torchdiffeq's ode_demo, B1), "lotka_volterra", "damped_oscillator", "robertson".
  std::string system = "lotka_volterra";
  int series = 64;
  int observations = 30;  // per series
  // Points of the fine grid on (t0, t_end] the observation times are drawn from; 0 means
  // 10 x observations. Robertson's grid is logarithmic (its time scales span 1e-4 to 1e4).
  int grid = 0;
  // true: each series observes a random subset of the grid; false: evenly spaced grid points,
  // the same for every series.
  bool irregular = true;
  double t_end = 0;     // 0: the system's natural horizon (spiral 25, LV 10, oscillator 20, Robertson 1e4)
  // First point of a logarithmic grid (Robertson); 0: t_end * 1e-8.
  double t_start = 0;
  double noise = 0.01;  // Gaussian noise, std relative to each channel's RMS over the clean set
  // true: the noise std is relative to each entry's own clean value instead (multiplicative
  // noise, a fixed relative error: for species spanning orders of magnitude).
  bool relative_noise = false;
  double missing = 0;   // probability that an entry is masked (independently per entry)
  std::uint64_t seed = 0;

  // Empty when valid, else the option and its value.
  std::string validate() const;
};

// The systems generate() knows, in documentation order.
std::vector<std::string> generator_systems();

// Throws OptionsError for invalid options and SolverError if an integration fails. Every series
// stores its true initial state (at t0 = 0) and the provenance (system, parameters, options,
// solver settings) as JSON.
Dataset generate(const GeneratorOptions& options);

}  // namespace cvnode

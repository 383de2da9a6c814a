// The latent models' pieces of the `cvnode` commands: `cvnode data spirals` (the paper's
// bidirectional spirals). Option parsing and printing only; the work is in the library.
#include <iostream>

#include "commands.h"
#include "cvnode/latent.h"

namespace cvnode::app {

void add_data_spirals(CLI::App& data) {
  auto o = std::make_shared<std::pair<SpiralOptions, std::string>>();
  CLI::App* sc = data.add_subcommand(
      "spirals", "Bidirectional 2-d spirals of the latent ODE experiment (Chen et al. 2018, section 5.1)");
  SpiralOptions& s = o->first;
  sc->add_option("--spirals", s.spirals, "Number of spirals")->capture_default_str();
  sc->add_option("--observed", s.observed, "Points kept of each observation window (irregular times)")->capture_default_str();
  sc->add_option("--window", s.window, "Equally spaced points of the observation window")->capture_default_str();
  sc->add_option("--extrapolate", s.extrapolate, "Target points after the window (<= window)")->capture_default_str();
  sc->add_option("--noise", s.noise, "Gaussian noise std of the observed points")->capture_default_str();
  sc->add_flag("--noisy-targets", s.noisy_targets, "Targets with the same noise (default: the clean curve)");
  sc->add_option("--total", s.total, "Points of each spiral's whole curve")->capture_default_str();
  sc->add_option("--stop", s.stop, "Last angle of the curve")->capture_default_str();
  sc->add_option("--a", s.a, "Spiral parameter a of r = a + b theta")->capture_default_str();
  sc->add_option("--b", s.b, "Spiral parameter b")->capture_default_str();
  sc->add_option("--seed", s.seed, "Random seed")->capture_default_str();
  sc->add_option("--out,-o", o->second, "Output HDF5 file")->required();
  sc->callback([o] {
    const Dataset d = generate_spirals(o->first);
    d.write(o->second);
    const double dt = o->first.stop / (o->first.total - 1);
    std::cout << o->second << ": " << d.size() << " spirals, " << d.observations()
              << " observation times; window ends at t = " << (o->first.window - 1) * dt << "\n";
  });
}

}  // namespace cvnode::app

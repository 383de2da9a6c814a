// Latent ODEs for irregularly sampled series (Chen et al. 2018, section 5; Rubanova et al. 2019):
// what a user configures ([encoder] and [decoder] of a fit with model.kind = "latent_ode"), and
// the paper's bidirectional spiral data. The model itself lives in src/models/latent/.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cvnode/activation.h"
#include "cvnode/dataset.h"

namespace cvnode {

// [encoder]: q(z0 | x) from a series' observations, read backwards in time.
struct EncoderOptions {
  // "rnn": a GRU reading [values, mask, time gap] (Chen et al. 2018); "ode_rnn": a GRU at the
  // observations with a neural ODE between them (Rubanova et al. 2019).
  std::string kind = "rnn";
  int hidden = 25;                 // GRU state size
  std::vector<int> head_hidden;    // hidden widths of the map from the GRU state to [mu; logvar]
  std::vector<int> ode_hidden = {25};  // ode_rnn: hidden widths of the ODE between observations
  Activation activation = Activation::Tanh;  // of the head's and the ODE's hidden layers
  std::string validate() const;
};

// [decoder]: from the latent state to the observed channels, and the observation noise.
struct DecoderOptions {
  std::vector<int> hidden = {20};
  Activation activation = Activation::Relu;
  bool learn_noise = false;        // learn log sigma per channel (started at noise_std)
  // Observation noise std in data units: one value for every channel or one per channel.
  std::vector<double> noise_std = {0.1};
  std::string validate(int channels = 0) const;
};

// The latent model as a whole: model.latent_dim and the ELBO's keys in [loss].
struct LatentOptions {
  int latent_dim = 4;
  int samples = 1;                 // loss.samples: K draws of z0 per series and step
  bool iwae = false;               // loss.bound = "iwae" (else "elbo")
  int kl_warmup_epochs = 0;        // loss.kl_warmup_epochs: KL weight rising linearly to 1
  bool poisson = false;            // loss.poisson: the observation times' Poisson likelihood
  std::vector<int> intensity_hidden = {20};
  EncoderOptions encoder;
  DecoderOptions decoder;
  std::string validate(int channels = 0) const;
};

// The paper's toy data (Chen et al. 2018, section 5.1 and its appendix; the generator of
// torchdiffeq's examples/latent_ode.py): Archimedean spirals r = a + b theta, half
// counter-clockwise around (5, 0) and half clockwise around (-5, 0) (r = a + 50 b / theta' with
// theta' = stop + 1 - theta), each a window of `window` equally spaced points (dt = stop /
// (total - 1)) from a random start in [window, total - 2 window], with Gaussian noise. Each series keeps `observed` of its
// window's points (drawn without replacement, sorted: irregular times), then `extrapolate` points
// after the window as targets. Times start at 0 (t0 = 0) for every series.
struct SpiralOptions {
  int spirals = 1000;
  int total = 1000;         // points on each spiral's full curve
  double stop = 6 * 3.14159265358979323846;  // theta runs over [0, stop]
  double a = 0, b = 0.3;
  int window = 100;         // points of the observation window
  int observed = 100;       // of them observed (<= window)
  int extrapolate = 0;      // target points after the window (<= window)
  double noise = 0.3;       // Gaussian noise std on the observed points
  bool noisy_targets = false;  // extrapolation targets with the same noise (else the clean spiral)
  // Within the window, each channel of an observed point is missing with this probability
  // (at least one channel of every point stays): channels observed at different times (masks).
  double missing = 0;
  std::uint64_t seed = 0;

  std::string validate() const;  // empty when valid
};

// Throws OptionsError for invalid options. The provenance records the options, each series'
// direction (1 = clockwise) and start index, and the end of the observation window
// ("window_end", the time up to which a series is observed).
Dataset generate_spirals(const SpiralOptions& options);

}  // namespace cvnode

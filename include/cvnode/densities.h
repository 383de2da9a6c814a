// Target densities for continuous normalizing flows: seeded samplers with their exact
// log-density, so that a flow's held-out negative log-likelihood can be set against the true
// entropy. The 2-D toys follow the geometry of FFJORD's (Grathwohl et al. 2019) generators, each
// made a smooth density with a known formula by its Gaussian noise:
//   moons            two half circles of radius 2 (sklearn's make_moons x 2 - (1, 0.2)) + N(0, s^2 I),
//                    s = 0.2; log p by Gauss-Legendre quadrature along the curves (1e-12 relative)
//   circles          circles of radius 3 and 1.5, half the mass each, + N(0, s^2 I), s = 0.24;
//                    log p closed form: log I0 (modified Bessel function)
//   eight_gaussians  8 equal Gaussians at radius 4/1.414 with std s = 0.5/1.414
//   checkerboard     uniform on 8 of the 4 x 4 squares of side 2 on [-4, 4]^2, + N(0, s^2 I),
//                    s = 0.1 (the board alone has no finite log-density off its squares);
//                    log p closed form with erfc
//   mixture          a Gaussian mixture in `dim` dimensions, `components` components: means
//                    N(0, spread^2 I), covariances Q diag(U[0.4, 1]^2) Q^T (Q a random rotation),
//                    weights U[1, 2] normalised; all from `seed`
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cvnode/dataset.h"
#include "cvnode/dynamics.h"

namespace cvnode {

struct DensityOptions {
  std::string kind = "moons";  // density_kinds()
  double noise = -1;           // the 2-D toys' Gaussian std; < 0: the default above
  int dim = 8;                 // mixture
  int components = 5;          // mixture
  double spread = 1.0;         // mixture: std of the component means
  std::uint64_t seed = 0;      // mixture: its parameters

  std::string validate() const;  // empty when valid
};

class Density {
 public:
  virtual ~Density() = default;
  virtual const std::string& kind() const = 0;
  virtual int dim() const = 0;
  // n independent samples as the rows of an n x dim matrix; the same seed, the same rows.
  virtual Matrix sample(int n, std::uint64_t seed) const = 0;
  virtual double log_density(ConstVectorRef x) const = 0;
  // Everything that defines the density, as JSON: density_from_json() rebuilds it exactly.
  virtual std::string to_json() const = 0;
};

std::vector<std::string> density_kinds();
// Throws OptionsError naming the option for invalid options.
std::unique_ptr<Density> make_density(const DensityOptions& options);
// Throws DataError (`where` names the source) when the JSON does not describe a density.
std::unique_ptr<Density> density_from_json(const std::string& json, const std::string& where);

// H = -E[log p(x)] by Monte Carlo over `samples` fresh samples, with its standard error.
struct EntropyEstimate {
  double value = 0, standard_error = 0;
  int samples = 0;
};
EntropyEstimate estimate_entropy(const Density& density, int samples, std::uint64_t seed);

// `samples` points of a density as a cvnode Dataset: one series per point ("p0", "p1", ...),
// observed once at t = 0, channels x1..xD. Its provenance (JSON) holds the density's description
// (density_from_json rebuilds it), the seed and the entropy from `entropy_samples` fresh samples
// (seed + 1), so a fit can set its held-out NLL against the truth.
Dataset density_dataset(const Density& density, int samples, std::uint64_t seed, int entropy_samples = 200000);
// The density stored in a dataset's provenance by density_dataset(), or null when it has none.
// Throws DataError (naming `where`) when the provenance claims a density it does not describe.
std::unique_ptr<Density> dataset_density(const Dataset& data, const std::string& where);
// The entropy stored with it (NaN when absent).
EntropyEstimate dataset_entropy(const Dataset& data);

}  // namespace cvnode

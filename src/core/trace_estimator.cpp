#include "cvnode/trace_estimator.h"

#include <stdexcept>

#include "core/random.h"

namespace cvnode {

TraceEstimator parse_trace_estimator(const std::string& name) {
  if (name == "exact") return TraceEstimator::Exact;
  if (name == "hutchinson") return TraceEstimator::Hutchinson;
  throw std::invalid_argument("unknown trace estimator '" + name + "' (exact, hutchinson)");
}
ProbeNoise parse_probe_noise(const std::string& name) {
  if (name == "rademacher") return ProbeNoise::Rademacher;
  if (name == "gaussian") return ProbeNoise::Gaussian;
  throw std::invalid_argument("unknown probe noise '" + name + "' (rademacher, gaussian)");
}
const char* trace_estimator_name(TraceEstimator t) { return t == TraceEstimator::Exact ? "exact" : "hutchinson"; }
const char* probe_noise_name(ProbeNoise n) { return n == ProbeNoise::Rademacher ? "rademacher" : "gaussian"; }

void draw_probes(ProbeNoise noise, std::uint64_t seed, VectorRef eps) {
  detail::Rng rng(seed);
  for (Eigen::Index i = 0; i < eps.size(); ++i)
    eps[i] = noise == ProbeNoise::Rademacher ? (rng.next() >> 63 ? 1.0 : -1.0) : rng.normal();
}

}  // namespace cvnode

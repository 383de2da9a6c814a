#include "cvnode/trace_estimator.h"

#include <stdexcept>

#include "core/names.h"
#include "core/random.h"

namespace cvnode {

namespace {
const detail::EnumName<TraceEstimator> kTraceEstimatorNames[] = {
    {TraceEstimator::Exact, "exact"},
    {TraceEstimator::Hutchinson, "hutchinson"}};
}  // namespace

TraceEstimator parse_trace_estimator(const std::string& name) {
  return detail::parse_enum(kTraceEstimatorNames, name, "trace estimator");
}
namespace {
const detail::EnumName<ProbeNoise> kProbeNoiseNames[] = {
    {ProbeNoise::Rademacher, "rademacher"},
    {ProbeNoise::Gaussian, "gaussian"}};
}  // namespace

ProbeNoise parse_probe_noise(const std::string& name) {
  return detail::parse_enum(kProbeNoiseNames, name, "probe noise");
}
const char* trace_estimator_name(TraceEstimator t) { return detail::enum_name(kTraceEstimatorNames, t); }
const char* probe_noise_name(ProbeNoise n) { return detail::enum_name(kProbeNoiseNames, n); }

void draw_probes(ProbeNoise noise, std::uint64_t seed, VectorRef eps) {
  detail::Rng rng(seed);
  for (Eigen::Index i = 0; i < eps.size(); ++i)
    eps[i] = noise == ProbeNoise::Rademacher ? (rng.next() >> 63 ? 1.0 : -1.0) : rng.normal();
}

}  // namespace cvnode

// How a trace tr(df/dz) is formed (exactly, or by Hutchinson's estimator with random probe
// vectors) and the probes' distribution: shared by the CNF dynamics (cnf.h) and the Jacobian
// regularisers (running_cost.h, regularization.h), so it sits in the core layer below both.
#pragma once

#include <cstdint>
#include <string>

#include "cvnode/dynamics.h"

namespace cvnode {

enum class TraceEstimator { Exact, Hutchinson };
enum class ProbeNoise { Rademacher, Gaussian };
TraceEstimator parse_trace_estimator(const std::string& name);  // exact | hutchinson
ProbeNoise parse_probe_noise(const std::string& name);          // rademacher | gaussian
const char* trace_estimator_name(TraceEstimator t);
const char* probe_noise_name(ProbeNoise n);
// Fills eps with Rademacher (+-1) or standard normal probe components drawn from `seed`.
void draw_probes(ProbeNoise noise, std::uint64_t seed, VectorRef eps);

}  // namespace cvnode

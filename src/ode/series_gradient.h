// One series of a problem through an engine: shared by Solver and BatchSolver.
#pragma once

#include "cvnode/engine.h"

namespace cvnode::detail {

// The gradient of series s of the problem (checked by the caller).
inline Gradient series_gradient(GradientEngine& engine, ConstVectorRef theta, const Problem& problem, int s) {
  return engine.gradient(theta, problem.series(s), [&](const Matrix& states) { return problem.observe(s, states); },
                         problem.running_costs());
}

}  // namespace cvnode::detail

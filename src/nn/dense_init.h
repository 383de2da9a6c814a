// Initial weights of one dense layer under an Init scheme: shared by Mlp and the networks of the
// continuous normalizing flows (ProbedMlp, the planar flow's hypernetwork), so a scheme and a
// seed mean the same numbers everywhere.
#pragma once

#include "cvnode/mlp.h"
#include "core/random.h"

namespace cvnode::detail {

// W (out x in, row-major) and b (out) of a layer; `last` marks the output layer (SmallOutput
// scales it by 0.1). Draws from `rng` in a fixed order: W, then b (PyTorch only).
void init_dense_layer(Init scheme, int in, int out, bool last, Rng& rng, double* W, double* b);

}  // namespace cvnode::detail

// What a gradient is taken of, as the bindings pass it around: series (Trajectory), immutable
// batches of them, and losses. Immutable on purpose: a solve runs without the GIL, so nothing it
// reads may be changed by another Python thread meanwhile.
#pragma once

#include <memory>
#include <vector>

#include "convert.h"
#include "cvnode/loss.h"
#include "cvnode/observations.h"

namespace cvnode::python {

struct Batch {
  std::vector<Trajectory> items;
};

// A cvnode.Batch as is, or any iterable of cvnode.Trajectory copied into `storage`.
const std::vector<Trajectory>& batch_arg(py::handle obj, std::vector<Trajectory>& storage);
// A loss name ("mse_mean"), or a cvnode.Loss.
Loss loss_arg(py::handle obj);
// None, or a readout matrix C (channels x state).
const Matrix* readout_arg(py::handle obj, Matrix& storage);

void bind_problem(py::module_& m);

}  // namespace cvnode::python

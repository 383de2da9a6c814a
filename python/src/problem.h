// What a gradient is taken of, as the bindings pass it around: series (Trajectory), immutable
// batches of them, losses and Problems (series + loss). Immutable on purpose: a solve runs
// without the GIL, so nothing it reads may be changed by another Python thread meanwhile.
#pragma once

#include <memory>
#include <vector>

#include "convert.h"
#include "cvnode/loss.h"
#include "cvnode/observations.h"
#include "cvnode/problem.h"

namespace cvnode::python {

struct Batch {
  std::vector<Trajectory> items;
};

// A cvnode.Batch as is, or any iterable of cvnode.Trajectory copied into `storage`.
const std::vector<Trajectory>& batch_arg(py::handle obj, std::vector<Trajectory>& storage);
// A loss name ("mse_mean"), or a cvnode.Loss.
std::shared_ptr<const Loss> loss_arg(py::handle obj);
// A cvnode.Problem as is (then `loss` must be None), or series (a Batch, a list of Trajectory,
// or one Trajectory when `one` is true) with `loss` (None: `default_loss`) made into one in
// `storage`.
const Problem& problem_arg(py::handle obj, py::handle loss, const char* default_loss, bool one,
                           std::unique_ptr<Problem>& storage);

void bind_problem(py::module_& m);

}  // namespace cvnode::python

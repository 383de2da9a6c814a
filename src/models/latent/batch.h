// Losses and gradients of many series of a sequence model (latent ODE, RNN baseline) in
// parallel over OpenMP threads: one context per thread, every series' draws from its own seed,
// sums in series order, so the result is bit-identical for every thread count.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "cvnode/batch.h"

namespace cvnode::latent {

struct SeriesResult {
  double loss = 0;
  Vector grad;  // empty when not asked for
  long nfe = 0;
};

struct SumResult {
  double loss = 0;
  Vector grad;
  long nfe = 0;
  std::vector<double> series_loss;   // NaN for a failed series
  std::vector<SeriesFailure> failures;
};

// Runs work(thread, s, result) for s in [0, count) on `threads` threads (<= 0: OpenMP's default)
// and sums the results in order of s; a series that throws is listed and left out.
SumResult sum_in_order(int count, int threads, int param_size, bool want_grad,
                       const std::function<void(int thread, int s, SeriesResult&)>& work);

// The number of threads sum_in_order will use.
int resolve_threads(int threads);

}  // namespace cvnode::latent

#include "models/latent/batch.h"

#include <omp.h>

#include <cmath>
#include <exception>

namespace cvnode::latent {

int resolve_threads(int threads) { return threads > 0 ? threads : omp_get_max_threads(); }

SumResult sum_in_order(int count, int threads, int param_size, bool want_grad,
                       const std::function<void(int, int, SeriesResult&)>& work) {
  std::vector<SeriesResult> res(count);
  std::vector<std::exception_ptr> err(count);
  const int nt = std::max(1, std::min(resolve_threads(threads), count));
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
  for (int s = 0; s < count; ++s) {
    try {
      if (want_grad) res[s].grad = Vector::Zero(param_size);
      work(omp_get_thread_num(), s, res[s]);
      if (!std::isfinite(res[s].loss) || (want_grad && !res[s].grad.allFinite()))
        throw std::runtime_error("the loss or its gradient is not finite");
    } catch (...) {
      err[s] = std::current_exception();
    }
  }
  SumResult out;
  if (want_grad) out.grad = Vector::Zero(param_size);
  out.series_loss.assign(count, std::nan(""));
  for (int s = 0; s < count; ++s) {
    if (err[s]) {
      out.failures.push_back(describe_failure(s, err[s]));
      continue;
    }
    out.loss += res[s].loss;
    out.series_loss[s] = res[s].loss;
    if (want_grad) out.grad += res[s].grad;
    out.nfe += res[s].nfe;
  }
  return out;
}

}  // namespace cvnode::latent

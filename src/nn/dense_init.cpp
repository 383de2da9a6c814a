#include "nn/dense_init.h"

#include <cmath>

namespace cvnode::detail {

void init_dense_layer(Init scheme, int in, int out, bool last, Rng& rng, double* W, double* b) {
  switch (scheme) {
    case Init::Glorot:
    case Init::SmallOutput: {
      const double r = std::sqrt(6.0 / (in + out));
      const double s = (scheme == Init::SmallOutput && last) ? 0.1 : 1.0;
      for (int i = 0; i < in * out; ++i) W[i] = s * r * (2 * rng.uniform() - 1);
      for (int i = 0; i < out; ++i) b[i] = 0;
      break;
    }
    case Init::He: {
      const double sd = std::sqrt(2.0 / in);
      for (int i = 0; i < in * out; ++i) W[i] = sd * rng.normal();
      for (int i = 0; i < out; ++i) b[i] = 0;
      break;
    }
    case Init::PyTorch: {
      const double r = 1.0 / std::sqrt(static_cast<double>(in));
      for (int i = 0; i < in * out; ++i) W[i] = r * (2 * rng.uniform() - 1);
      for (int i = 0; i < out; ++i) b[i] = r * (2 * rng.uniform() - 1);
      break;
    }
  }
}

}  // namespace cvnode::detail

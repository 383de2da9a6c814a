#include "models/latent/dense.h"

#include <cmath>
#include <string>

#include "cvnode/errors.h"
#include "nn/activation_kernels.h"
#include "core/random.h"

namespace cvnode::latent {

namespace {
using RowMap = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
using RowMapMut = Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
}  // namespace

std::vector<int> layer_widths(int in, const std::vector<int>& hidden, int out) {
  std::vector<int> w{in};
  w.insert(w.end(), hidden.begin(), hidden.end());
  w.push_back(out);
  return w;
}

Dense::Dense(DenseSpec spec) : spec_(std::move(spec)) {
  if (spec_.layers.size() < 2) throw OptionsError("a dense network needs an input and an output width");
  for (std::size_t i = 0; i < spec_.layers.size(); ++i)
    if (spec_.layers[i] < 1)
      throw OptionsError("dense network layer " + std::to_string(i) + " has width " +
                         std::to_string(spec_.layers[i]) + "; widths must be >= 1");
  for (std::size_t l = 0; l + 1 < spec_.layers.size(); ++l) {
    w_off_.push_back(n_params_);
    n_params_ += spec_.layers[l] * spec_.layers[l + 1];
    b_off_.push_back(n_params_);
    n_params_ += spec_.layers[l + 1];
  }
}

void Dense::initialize(Init scheme, std::uint64_t seed, VectorRef theta) const {
  detail::Rng rng(seed);
  theta.setZero();
  const int L = static_cast<int>(spec_.layers.size()) - 1;
  for (int l = 0; l < L; ++l) {
    const int in = spec_.layers[l], out = spec_.layers[l + 1];
    double* W = theta.data() + w_off_[l];
    double* b = theta.data() + b_off_[l];
    if (scheme == Init::He) {
      const double sd = std::sqrt(2.0 / in);
      for (int i = 0; i < in * out; ++i) W[i] = sd * rng.normal();
    } else if (scheme == Init::PyTorch) {
      const double r = 1.0 / std::sqrt(static_cast<double>(in));
      for (int i = 0; i < in * out; ++i) W[i] = r * (2 * rng.uniform() - 1);
      for (int i = 0; i < out; ++i) b[i] = r * (2 * rng.uniform() - 1);
    } else {
      const double r = std::sqrt(6.0 / (in + out)) * (scheme == Init::SmallOutput && l == L - 1 ? 0.1 : 1.0);
      for (int i = 0; i < in * out; ++i) W[i] = r * (2 * rng.uniform() - 1);
    }
  }
}

void Dense::forward(ConstVectorRef theta, ConstMatrixRef X, Tape& tape, Matrix& Y) const {
  const int L = static_cast<int>(spec_.layers.size()) - 1;
  tape.x.resize(L + 1);
  tape.u.resize(L + 1);
  tape.x[0] = X;
  for (int l = 1; l <= L; ++l) {
    const int in = spec_.layers[l - 1], out = spec_.layers[l];
    RowMap W(theta.data() + w_off_[l - 1], out, in);
    Eigen::Map<const Vector> b(theta.data() + b_off_[l - 1], out);
    tape.u[l].noalias() = W * tape.x[l - 1];
    tape.u[l].colwise() += b;
    if (l < L) {
      tape.x[l].resize(out, X.cols());
      detail::activate(spec_.activation, detail::ArrayMap(tape.u[l].data(), tape.u[l].size()),
                       detail::ArrayMap(tape.x[l].data(), tape.x[l].size()));
    }
  }
  Y = tape.u[L];
}

void Dense::backward(ConstVectorRef theta, const Tape& tape, ConstMatrixRef G, VectorRef dtheta,
                     Matrix* dX) const {
  const int L = static_cast<int>(spec_.layers.size()) - 1;
  Matrix g = G, d;
  for (int l = L; l >= 1; --l) {
    const int in = spec_.layers[l - 1], out = spec_.layers[l];
    RowMap W(theta.data() + w_off_[l - 1], out, in);
    RowMapMut(dtheta.data() + w_off_[l - 1], out, in).noalias() += g * tape.x[l - 1].transpose();
    Eigen::Map<Vector>(dtheta.data() + b_off_[l - 1], out) += g.rowwise().sum();
    if (l == 1 && !dX) break;
    Matrix gin = W.transpose() * g;
    if (l > 1) {
      // The kernel takes mutable maps but only reads u and x.
      const Matrix& u = tape.u[l - 1];
      const Matrix& x = tape.x[l - 1];
      d.resize(in, g.cols());
      detail::activate_derivative(spec_.activation, detail::ArrayMap(const_cast<double*>(u.data()), u.size()),
                                  detail::ArrayMap(const_cast<double*>(x.data()), x.size()),
                                  detail::ArrayMap(d.data(), d.size()));
      gin.array() *= d.array();
    }
    g = std::move(gin);
  }
  if (dX) *dX = std::move(g);
}

}  // namespace cvnode::latent

#include "cvnode/mlp.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "nn/activation_kernels.h"
#include "nn/dense_init.h"
#include "core/random.h"
#include "nn/thin_product.h"

namespace cvnode {

namespace {
using RowMajorMap = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
using RowMajorMapMut = Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
using VecMap = Eigen::Map<Eigen::VectorXd>;
using detail::ArrayMap;
}  // namespace

std::string MlpSpec::validate() const {
  if (layers.size() < 2) return "an MLP needs at least an input and an output width (layers = [n, ..., n])";
  for (size_t i = 0; i < layers.size(); ++i)
    if (layers[i] < 1) return "layer width " + std::to_string(i) + " is " + std::to_string(layers[i]) + "; widths must be >= 1";
  if (layers.front() != layers.back())
    return "first and last widths must both equal the state size: got " + std::to_string(layers.front()) +
           " and " + std::to_string(layers.back());
  if (k_diag.size() != 0 && k_diag.size() != layers.front())
    return "k_diag has " + std::to_string(k_diag.size()) + " entries, the state has " + std::to_string(layers.front());
  if (k_diag.size() != 0 && !k_diag.allFinite()) return "k_diag is not finite";
  if (inputs < 0) return "inputs = " + std::to_string(inputs) + " must be >= 0";
  return {};
}

Mlp::Mlp(MlpSpec spec) : spec_(std::move(spec)) {
  if (std::string why = spec_.validate(); !why.empty()) throw std::invalid_argument(why);
  const int L = static_cast<int>(spec_.layers.size()) - 1;
  const int n = spec_.layers.front();
  n_in_ = n + (spec_.time_input ? 1 : 0) + spec_.inputs;
  int off = 0, wmax = n_in_;
  for (int l = 0; l < L; ++l) {
    const int in = l == 0 ? n_in_ : spec_.layers[l];
    const int out = spec_.layers[l + 1];
    w_off_.push_back(off);
    off += in * out;
    b_off_.push_back(off);
    off += out;
    wmax = std::max(wmax, out);
  }
  n_params_ = off;
  // Workspace: x_0, then (u_l, x_l) per layer, then two width buffers and two Jacobian buffers.
  int w = 0;
  x_off_.push_back(w);
  w += n_in_;
  u_off_.push_back(-1);
  for (int l = 1; l <= L; ++l) {
    u_off_.push_back(w);
    w += spec_.layers[l];
    x_off_.push_back(w);
    w += spec_.layers[l];
  }
  g_off_ = w;
  w += wmax;
  g2_off_ = w;
  w += wmax;
  m_off_ = w;
  w += wmax * n;
  m2_off_ = w;
  w += wmax * n;
  n_work_ = w;
}

Vector Mlp::initial_parameters(Init scheme, std::uint64_t seed) const {
  detail::Rng rng(seed);
  Vector theta = Vector::Zero(n_params_);
  const int L = static_cast<int>(spec_.layers.size()) - 1;
  for (int l = 0; l < L; ++l) {
    const int in = l == 0 ? n_in_ : spec_.layers[l];
    const int out = spec_.layers[l + 1];
    detail::init_dense_layer(scheme, in, out, l == L - 1, rng, theta.data() + w_off_[l], theta.data() + b_off_[l]);
  }
  return theta;
}

void Mlp::forward(double t, ConstVectorRef z, ConstVectorRef theta, double* work, const double* u) const {
  const int L = static_cast<int>(spec_.layers.size()) - 1;
  const int n = state_size();
  VecMap x0(work + x_off_[0], n_in_);
  x0.head(n) = z;
  if (spec_.time_input) x0[n] = t;
  if (spec_.inputs > 0) {
    if (u) x0.tail(spec_.inputs) = Eigen::Map<const Eigen::VectorXd>(u, spec_.inputs);
    else x0.tail(spec_.inputs).setZero();
  }
  for (int l = 1; l <= L; ++l) {
    const int in = l == 1 ? n_in_ : spec_.layers[l - 1];
    const int out = spec_.layers[l];
    RowMajorMap W(theta.data() + w_off_[l - 1], out, in);
    Eigen::Map<const Eigen::VectorXd> b(theta.data() + b_off_[l - 1], out);
    VecMap xin(work + x_off_[l - 1], in);
    VecMap u(work + u_off_[l], out);
    detail::thin_product(W, xin, u);
    u += b;
    if (l < L) detail::activate(spec_.activation, ArrayMap(u.data(), out), ArrayMap(work + x_off_[l], out));
  }
}

void Mlp::rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const {
  rhs_at(t, z, nullptr, theta, f, work);
}

void Mlp::rhs_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, VectorRef f, VectorRef work) const {
  rhs_at(t, z, u.data(), theta, f, work);
}

void Mlp::rhs_at(double t, ConstVectorRef z, const double* u, ConstVectorRef theta, VectorRef f, VectorRef work) const {
  const int L = static_cast<int>(spec_.layers.size()) - 1;
  forward(t, z, theta, work.data(), u);
  f = VecMap(work.data() + u_off_[L], state_size());
  if (spec_.k_diag.size() > 0) f.array() -= spec_.k_diag.array() * z.array();
}

void Mlp::vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
              VectorRef a_dfdtheta, VectorRef work) const {
  forward(t, z, theta, work.data());
  backward(theta, a, a_dfdz, a_dfdtheta, work.data());
}

void Mlp::vjp_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, ConstVectorRef a,
                VectorRef a_dfdz, VectorRef a_dfdtheta, VectorRef work) const {
  forward(t, z, theta, work.data(), u.data());
  backward(theta, a, a_dfdz, a_dfdtheta, work.data());
}

void Mlp::vjp_again(double, ConstVectorRef, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                    VectorRef a_dfdtheta, VectorRef work) const {
  backward(theta, a, a_dfdz, a_dfdtheta, work.data());
}

void Mlp::backward(ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz, VectorRef a_dfdtheta,
                   double* w) const {
  const int L = static_cast<int>(spec_.layers.size()) - 1;
  const int n = state_size();
  const bool want_theta = a_dfdtheta.size() > 0;
  double* g = w + g_off_;   // dLoss/du_l for the current layer
  double* g2 = w + g2_off_;
  VecMap(g, n) = a;
  for (int l = L; l >= 1; --l) {
    const int in = l == 1 ? n_in_ : spec_.layers[l - 1];
    const int out = spec_.layers[l];
    RowMajorMap W(theta.data() + w_off_[l - 1], out, in);
    VecMap gl(g, out);
    if (want_theta) {
      RowMajorMapMut dW(a_dfdtheta.data() + w_off_[l - 1], out, in);
      dW.noalias() = gl * VecMap(w + x_off_[l - 1], in).transpose();
      VecMap(a_dfdtheta.data() + b_off_[l - 1], out) = gl;
    }
    if (l > 1) {
      VecMap gin(g2, in);
      detail::thin_product(W.transpose(), gl, gin);
      ArrayMap d(g, in);  // g is free now: reuse it for s'(u_{l-1})
      detail::activate_derivative(spec_.activation, ArrayMap(w + u_off_[l - 1], in),
                                  ArrayMap(w + x_off_[l - 1], in), d);
      gin.array() *= d;
      std::swap(g, g2);
    } else {
      detail::thin_product(W.leftCols(n).transpose(), gl, a_dfdz);
    }
  }
  if (spec_.k_diag.size() > 0) a_dfdz.array() -= spec_.k_diag.array() * a.array();
}

void Mlp::jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const {
  jacobian_at(t, z, nullptr, theta, J, work);
}

void Mlp::jacobian_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, MatrixRef J,
                     VectorRef work) const {
  jacobian_at(t, z, u.data(), theta, J, work);
}

void Mlp::jacobian_at(double t, ConstVectorRef z, const double* u, ConstVectorRef theta, MatrixRef J,
                      VectorRef work) const {
  const int L = static_cast<int>(spec_.layers.size()) - 1;
  const int n = state_size();
  double* w = work.data();
  forward(t, z, theta, w, u);
  // Forward accumulation: M_l = d u_l / d z, M_1 = W_1[:, :n], M_l = W_l diag(s'(u_{l-1})) M_{l-1}.
  double* m = w + m_off_;
  double* m2 = w + m2_off_;
  {
    RowMajorMap W1(theta.data() + w_off_[0], spec_.layers[1], n_in_);
    if (L == 1) {
      J = W1.leftCols(n);
    } else {
      Eigen::Map<Eigen::MatrixXd>(m, spec_.layers[1], n) = W1.leftCols(n);
    }
  }
  for (int l = 2; l <= L; ++l) {
    const int in = spec_.layers[l - 1];
    const int out = spec_.layers[l];
    RowMajorMap W(theta.data() + w_off_[l - 1], out, in);
    ArrayMap d(w + g_off_, in);
    detail::activate_derivative(spec_.activation, ArrayMap(w + u_off_[l - 1], in),
                                ArrayMap(w + x_off_[l - 1], in), d);
    Eigen::Map<Eigen::MatrixXd> M(m, in, n);
    M.array().colwise() *= d;
    // lazyProduct: Eigen's blocked GEMM would malloc packing buffers above 128 KiB (a 256-wide
    // layer); the coefficient-based product needs none, and the Jacobian is evaluated rarely.
    if (l == L) {
      J.noalias() = W.lazyProduct(M);
    } else {
      Eigen::Map<Eigen::MatrixXd>(m2, out, n).noalias() = W.lazyProduct(M);
      std::swap(m, m2);
    }
  }
  if (spec_.k_diag.size() > 0) J.diagonal() -= spec_.k_diag;
}

void Mlp::jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
              VectorRef work) const {
  jvp_at(t, z, nullptr, theta, v, Jv, work);
}

void Mlp::jvp_u(double t, ConstVectorRef z, ConstVectorRef u, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
                VectorRef work) const {
  jvp_at(t, z, u.data(), theta, v, Jv, work);
}

void Mlp::jvp_at(double t, ConstVectorRef z, const double* u, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
                 VectorRef work) const {
  const int L = static_cast<int>(spec_.layers.size()) - 1;
  const int n = state_size();
  double* w = work.data();
  forward(t, z, theta, w, u);
  double* g = w + g_off_;
  double* g2 = w + g2_off_;
  RowMajorMap W1(theta.data() + w_off_[0], spec_.layers[1], n_in_);
  if (L == 1) {
    detail::thin_product(W1.leftCols(n), v, Jv);
  } else {
    detail::thin_product(W1.leftCols(n), v, VecMap(g, spec_.layers[1]));
  }
  for (int l = 2; l <= L; ++l) {
    const int in = spec_.layers[l - 1];
    const int out = spec_.layers[l];
    RowMajorMap W(theta.data() + w_off_[l - 1], out, in);
    ArrayMap d(g2, in);
    detail::activate_derivative(spec_.activation, ArrayMap(w + u_off_[l - 1], in),
                                ArrayMap(w + x_off_[l - 1], in), d);
    VecMap(g, in).array() *= d;
    if (l == L) {
      detail::thin_product(W, VecMap(g, in), Jv);
    } else {
      detail::thin_product(W, VecMap(g, in), VecMap(g2, out));
      std::swap(g, g2);
    }
  }
  if (spec_.k_diag.size() > 0) Jv.array() -= spec_.k_diag.array() * v.array();
}

// ---- batched: B columns at once ----
// Workspace layout for B columns: the single-state layout with every offset scaled by B (x_0,
// then u_l and x_l per layer, then two width x B buffers); the Jacobian buffers are not used.

int Mlp::max_width() const {
  int w = n_in_;
  for (int x : spec_.layers) w = std::max(w, x);
  return w;
}

int Mlp::batch_workspace_size(int batch) const { return g_off_ * batch + 2 * max_width() * batch; }

void Mlp::forward_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, double* work) const {
  const int L = static_cast<int>(spec_.layers.size()) - 1;
  const int n = state_size();
  const Eigen::Index B = Z.cols();
  Eigen::Map<Eigen::MatrixXd> X0(work + x_off_[0] * B, n_in_, B);
  X0.topRows(n) = Z;
  if (spec_.time_input) X0.row(n).setConstant(t);
  if (spec_.inputs > 0) X0.bottomRows(spec_.inputs).setZero();  // the batched forms take no inputs
  for (int l = 1; l <= L; ++l) {
    const int in = l == 1 ? n_in_ : spec_.layers[l - 1];
    const int out = spec_.layers[l];
    RowMajorMap W(theta.data() + w_off_[l - 1], out, in);
    Eigen::Map<const Eigen::VectorXd> b(theta.data() + b_off_[l - 1], out);
    Eigen::Map<Eigen::MatrixXd> U(work + u_off_[l] * B, out, B);
    detail::thin_product(W, Eigen::Map<Eigen::MatrixXd>(work + x_off_[l - 1] * B, in, B), U);
    U.colwise() += b;
    if (l < L)
      detail::activate(spec_.activation, ArrayMap(U.data(), out * B), ArrayMap(work + x_off_[l] * B, out * B));
  }
}

void Mlp::rhs_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, MatrixRef F, VectorRef work) const {
  const int L = static_cast<int>(spec_.layers.size()) - 1;
  const Eigen::Index B = Z.cols();
  forward_batch(t, Z, theta, work.data());
  F = Eigen::Map<Eigen::MatrixXd>(work.data() + u_off_[L] * B, state_size(), B);
  if (spec_.k_diag.size() > 0) F.array() -= Z.array().colwise() * spec_.k_diag.array();
}

void Mlp::vjp_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef A, MatrixRef A_dfdz,
                    VectorRef a_dfdtheta, VectorRef work) const {
  forward_batch(t, Z, theta, work.data());
  backward_batch(theta, A, A_dfdz, a_dfdtheta, work.data());
}

void Mlp::vjp_batch_again(double, ConstMatrixRef, ConstVectorRef theta, ConstMatrixRef A, MatrixRef A_dfdz,
                          VectorRef a_dfdtheta, VectorRef work) const {
  backward_batch(theta, A, A_dfdz, a_dfdtheta, work.data());
}

void Mlp::backward_batch(ConstVectorRef theta, ConstMatrixRef A, MatrixRef A_dfdz, VectorRef a_dfdtheta,
                         double* w) const {
  const int L = static_cast<int>(spec_.layers.size()) - 1;
  const int n = state_size();
  const Eigen::Index B = A.cols();
  const bool want_theta = a_dfdtheta.size() > 0;
  double* g = w + g_off_ * B;
  double* g2 = g + max_width() * B;
  Eigen::Map<Eigen::MatrixXd>(g, n, B) = A;
  for (int l = L; l >= 1; --l) {
    const int in = l == 1 ? n_in_ : spec_.layers[l - 1];
    const int out = spec_.layers[l];
    RowMajorMap W(theta.data() + w_off_[l - 1], out, in);
    Eigen::Map<Eigen::MatrixXd> G(g, out, B);
    if (want_theta) {
      RowMajorMapMut dW(a_dfdtheta.data() + w_off_[l - 1], out, in);
      detail::thin_product(G, Eigen::Map<Eigen::MatrixXd>(w + x_off_[l - 1] * B, in, B).transpose(), dW);
      VecMap(a_dfdtheta.data() + b_off_[l - 1], out) = G.rowwise().sum();
    }
    if (l > 1) {
      Eigen::Map<Eigen::MatrixXd> Gin(g2, in, B);
      detail::thin_product(W.transpose(), G, Gin);
      ArrayMap d(g, in * B);
      detail::activate_derivative(spec_.activation, ArrayMap(w + u_off_[l - 1] * B, in * B),
                                  ArrayMap(w + x_off_[l - 1] * B, in * B), d);
      ArrayMap(g2, in * B) *= d;
      std::swap(g, g2);
    } else {
      detail::thin_product(W.leftCols(n).transpose(), G, A_dfdz);
    }
  }
  if (spec_.k_diag.size() > 0) A_dfdz.array() -= A.array().colwise() * spec_.k_diag.array();
}

void Mlp::jvp_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef V, MatrixRef JV,
                    VectorRef work) const {
  const int L = static_cast<int>(spec_.layers.size()) - 1;
  const int n = state_size();
  const Eigen::Index B = Z.cols();
  double* w = work.data();
  forward_batch(t, Z, theta, w);
  double* g = w + g_off_ * B;
  double* g2 = g + max_width() * B;
  RowMajorMap W1(theta.data() + w_off_[0], spec_.layers[1], n_in_);
  if (L == 1) {
    detail::thin_product(W1.leftCols(n), V, JV);
  } else {
    detail::thin_product(W1.leftCols(n), V, Eigen::Map<Eigen::MatrixXd>(g, spec_.layers[1], B));
  }
  for (int l = 2; l <= L; ++l) {
    const int in = spec_.layers[l - 1];
    const int out = spec_.layers[l];
    RowMajorMap W(theta.data() + w_off_[l - 1], out, in);
    ArrayMap d(g2, in * B);
    detail::activate_derivative(spec_.activation, ArrayMap(w + u_off_[l - 1] * B, in * B),
                                ArrayMap(w + x_off_[l - 1] * B, in * B), d);
    ArrayMap(g, in * B) *= d;
    if (l == L) {
      detail::thin_product(W, Eigen::Map<Eigen::MatrixXd>(g, in, B), JV);
    } else {
      detail::thin_product(W, Eigen::Map<Eigen::MatrixXd>(g, in, B), Eigen::Map<Eigen::MatrixXd>(g2, out, B));
      std::swap(g, g2);
    }
  }
  if (spec_.k_diag.size() > 0) JV.array() -= V.array().colwise() * spec_.k_diag.array();
}

}  // namespace cvnode

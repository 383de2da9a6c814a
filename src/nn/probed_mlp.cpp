// The network's forward pass carries K tangents per state beside its values (forward mode:
// dU_1 = W_1[:, :D] E, dX_l = s'(U_l) dU_l, dU_{l+1} = W_{l+1} dX_l, so dU_L = J E); the
// reverse pass differentiates both. With g = dS/dU_l (states) and h = dS/d(dU_l) (probes):
//   dS/dW_l = g X_{l-1}^T + h dX_{l-1}^T,   dS/db_l = sum of g over the states,
//   dS/dX_{l-1} = W_l^T g,   dS/d(dX_{l-1}) = W_l^T h,
//   dS/dU_{l-1} = s'(U) . W_l^T g + sum over the state's probes of s''(U) . dU_{l-1} . W_l^T h,
//   dS/d(dU_{l-1}) = s'(U) . W_l^T h,
// and at the input dS/dZ = W_1[:, :D]^T g, dS/dE = W_1[:, :D]^T h. The s'' term is the second
// derivative that the gradient of a trace or of a Jacobian norm needs.
#include "cvnode/probed_mlp.h"

#include <algorithm>
#include <stdexcept>

#include "nn/activation_kernels.h"
#include "nn/dense_init.h"
#include "core/random.h"
#include "nn/thin_product.h"

namespace cvnode {

namespace {
using RowMajorMap = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
using RowMajorMapMut = Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
using MatMap = Eigen::Map<Eigen::MatrixXd>;
using detail::ArrayMap;
}  // namespace

std::string ProbedMlpSpec::validate() const {
  if (layers.size() < 2) return "a network needs at least an input and an output width";
  for (size_t i = 0; i < layers.size(); ++i)
    if (layers[i] < 1)
      return "layer width " + std::to_string(i) + " is " + std::to_string(layers[i]) + "; widths must be >= 1";
  return {};
}

ProbedMlp::ProbedMlp(ProbedMlpSpec spec) : spec_(std::move(spec)) {
  if (std::string why = spec_.validate(); !why.empty()) throw std::invalid_argument(why);
  L_ = static_cast<int>(spec_.layers.size()) - 1;
  n_in_ = spec_.layers.front() + (spec_.time_input ? 1 : 0);
  wmax_ = n_in_;
  int off = 0;
  for (int l = 0; l < L_; ++l) {
    const int in = l == 0 ? n_in_ : spec_.layers[l];
    const int out = spec_.layers[l + 1];
    w_off_.push_back(off);
    off += in * out;
    b_off_.push_back(off);
    off += out;
    wmax_ = std::max(wmax_, out);
  }
  n_params_ = off;
  // Per state column: X_0 (n_in), then for l = 1..L: U_l, and for hidden l also X_l, s'(U_l).
  // Per probe column: dU_l for l = 1..L, dX_l for hidden l.
  x_col_.assign(L_, -1);
  u_col_.assign(L_ + 1, -1);
  d_col_.assign(L_, -1);
  du_col_.assign(L_ + 1, -1);
  dx_col_.assign(L_, -1);
  int s = 0, p = 0;
  x_col_[0] = s;
  s += n_in_;
  for (int l = 1; l <= L_; ++l) {
    const int w = spec_.layers[l];
    u_col_[l] = s;
    s += w;
    du_col_[l] = p;
    p += w;
    if (l < L_) {
      x_col_[l] = s;
      s += w;
      d_col_[l] = s;
      s += w;
      dx_col_[l] = p;
      p += w;
    }
  }
  state_cols_ = s;
  probe_cols_ = p;
}

int ProbedMlp::workspace_size(int batch, int probes) const {
  const int B = batch, BK = batch * probes;
  // Values and tangents, then g, g' and s'' (widest x B) and h, h' (widest x B K).
  return state_cols_ * B + probe_cols_ * BK + 3 * wmax_ * B + 2 * wmax_ * BK;
}

Vector ProbedMlp::initial_parameters(std::uint64_t seed) const {
  detail::Rng rng(seed);
  Vector theta(n_params_);
  for (int l = 0; l < L_; ++l) {
    const int in = l == 0 ? n_in_ : spec_.layers[l];
    detail::init_dense_layer(spec_.init, in, spec_.layers[l + 1], l == L_ - 1, rng, theta.data() + w_off_[l],
                             theta.data() + b_off_[l]);
  }
  return theta;
}

void ProbedMlp::forward(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef E, MatrixRef F,
                        MatrixRef JE, VectorRef work) const {
  const int D = input_size();
  const Eigen::Index B = Z.cols(), BK = E.cols();
  const Eigen::Index K = B > 0 ? BK / B : 0;
  double* w = work.data();
  double* wp = w + state_cols_ * B;  // probe part
  MatMap X0(w + x_col_[0] * B, n_in_, B);
  X0.topRows(D) = Z;
  if (spec_.time_input) X0.row(D).setConstant(t);
  for (int l = 1; l <= L_; ++l) {
    const int in = l == 1 ? n_in_ : spec_.layers[l - 1];
    const int out = spec_.layers[l];
    RowMajorMap W(theta.data() + w_off_[l - 1], out, in);
    Eigen::Map<const Eigen::VectorXd> b(theta.data() + b_off_[l - 1], out);
    MatMap U(w + u_col_[l] * B, out, B);
    detail::thin_product(W, MatMap(w + x_col_[l - 1] * B, in, B), U);
    U.colwise() += b;
    if (l < L_) {
      ArrayMap u(U.data(), out * B), x(w + x_col_[l] * B, out * B);
      detail::activate(spec_.activation, u, x);
      detail::activate_derivative(spec_.activation, u, x, ArrayMap(w + d_col_[l] * B, out * B));
    }
    if (K == 0) continue;
    MatMap dU(wp + du_col_[l] * BK, out, BK);
    if (l == 1)
      detail::thin_product(W.leftCols(D), E, dU);
    else
      detail::thin_product(W, MatMap(wp + dx_col_[l - 1] * BK, in, BK), dU);
    if (l < L_) {
      MatMap dX(wp + dx_col_[l] * BK, out, BK);
      MatMap Dl(w + d_col_[l] * B, out, B);
      for (Eigen::Index j = 0; j < BK; ++j) dX.col(j).array() = Dl.col(j / K).array() * dU.col(j).array();
    }
  }
  F = MatMap(w + u_col_[L_] * B, output_size(), B);
  if (K > 0) JE = MatMap(wp + du_col_[L_] * BK, output_size(), BK);
}

void ProbedMlp::reverse(double, ConstVectorRef theta, ConstMatrixRef E, ConstMatrixRef Fbar, ConstMatrixRef G,
                        MatrixRef Zbar, VectorRef theta_bar, MatrixRef Ebar, VectorRef work) const {
  const int D = input_size();
  const Eigen::Index B = Fbar.cols(), BK = G.cols();
  const Eigen::Index K = B > 0 ? BK / B : 0;
  const bool want_theta = theta_bar.size() > 0;
  double* w = work.data();
  double* wp = w + state_cols_ * B;
  double* g = wp + probe_cols_ * BK;  // dS/dU_l, widest x B
  double* g2 = g + wmax_ * B;
  double* s2 = g2 + wmax_ * B;        // s''(U_{l-1})
  double* h = s2 + wmax_ * B;         // dS/d(dU_l), widest x B K
  double* h2 = h + wmax_ * BK;
  MatMap(g, output_size(), B) = Fbar;
  if (K > 0) MatMap(h, output_size(), BK) = G;
  for (int l = L_; l >= 1; --l) {
    const int in = l == 1 ? n_in_ : spec_.layers[l - 1];
    const int out = spec_.layers[l];
    RowMajorMap W(theta.data() + w_off_[l - 1], out, in);
    MatMap Gl(g, out, B), Hl(h, out, BK);
    if (want_theta) {
      RowMajorMapMut dW(theta_bar.data() + w_off_[l - 1], out, in);
      detail::thin_product(Gl, MatMap(w + x_col_[l - 1] * B, in, B).transpose(), dW);
      if (K > 0) {
        if (l == 1)
          dW.leftCols(D).noalias() += Hl * E.transpose();
        else
          dW.noalias() += Hl * MatMap(wp + dx_col_[l - 1] * BK, in, BK).transpose();
      }
      Eigen::Map<Eigen::VectorXd>(theta_bar.data() + b_off_[l - 1], out) = Gl.rowwise().sum();
    }
    if (l == 1) {
      detail::thin_product(W.leftCols(D).transpose(), Gl, Zbar);
      if (K > 0) detail::thin_product(W.leftCols(D).transpose(), Hl, Ebar);
      break;
    }
    MatMap Gin(g2, in, B), Hin(h2, in, BK);
    detail::thin_product(W.transpose(), Gl, Gin);
    Gin.array() *= MatMap(w + d_col_[l - 1] * B, in, B).array();
    if (K > 0) {
      detail::thin_product(W.transpose(), Hl, Hin);
      ArrayMap S2(s2, in * B);
      detail::activate_second_derivative(spec_.activation, ArrayMap(w + u_col_[l - 1] * B, in * B),
                                         ArrayMap(w + x_col_[l - 1] * B, in * B), S2);
      MatMap S2m(s2, in, B), Dl(w + d_col_[l - 1] * B, in, B), dU(wp + du_col_[l - 1] * BK, in, BK);
      for (Eigen::Index j = 0; j < BK; ++j) {
        Gin.col(j / K).array() += S2m.col(j / K).array() * dU.col(j).array() * Hin.col(j).array();
        Hin.col(j).array() *= Dl.col(j / K).array();
      }
    }
    std::swap(g, g2);
    std::swap(h, h2);
  }
}

}  // namespace cvnode

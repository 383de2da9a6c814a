// Forward, with p = hypernet(t) = [W (M x D), U~ (M x D), G (M x D), b (M)], U = U~ . sigmoid(G):
//   A = W Z + b, S = tanh(A), D = 1 - S^2,   F = (1/M) U^T S,
//   WE = W E, P = D . WE (per probe's state),  J E = (1/M) U^T P.
// Reverse, for the cotangents Fbar of F and Gc of J E:
//   Sbar = (1/M) U Fbar, Pbar = (1/M) U Gc, Ubar = (1/M) (S Fbar^T + P Gc^T),
//   Dbar = sum over a state's probes of Pbar . WE, WEbar = D . Pbar,
//   Abar = D . Sbar - 2 S . D . Dbar   (d(1 - tanh^2)/dA = -2 S D),
//   Wbar = Abar Z^T + WEbar E^T, bbar = sum of Abar, Zbar = W^T Abar, Ebar = W^T WEbar,
//   U~bar = Ubar . sigmoid(G), Gbar = Ubar . U~ . sigmoid(G) (1 - sigmoid(G)),
// and [Wbar, U~bar, Gbar, bbar] goes back through the hypernetwork to its parameters.
#include "cvnode/planar_flow.h"

#include <cmath>
#include <stdexcept>

#include "nn/activation_kernels.h"

namespace cvnode {

namespace {
using MatMap = Eigen::Map<Eigen::MatrixXd>;
using RowMap = Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

struct Layout {
  Eigen::Index p, pbar, Ut, sg, Z, S, Dd, WE, P, Sbar, Dbar, Pbar, Utbar, T, Tbar, end;
  Layout(int hyper_work, int out, int M, int D, Eigen::Index B, Eigen::Index BK) {
    p = hyper_work;
    pbar = p + out;
    Ut = pbar + out;
    sg = Ut + M * D;
    Z = sg + M * D;
    S = Z + D * B;
    Dd = S + M * B;
    WE = Dd + M * B;
    P = WE + M * BK;
    Sbar = P + M * BK;
    Dbar = Sbar + M * B;
    Pbar = Dbar + M * B;
    Utbar = Pbar + M * BK;
    T = Utbar + M * D;
    Tbar = T + 1;
    end = Tbar + 1;
  }
};
}  // namespace

std::string PlanarFlowSpec::validate() const {
  if (dim < 1) return "planar flow dim = " + std::to_string(dim) + ": must be >= 1";
  if (width < 1) return "planar flow width = " + std::to_string(width) + ": must be >= 1";
  if (hyper_hidden < 1) return "planar flow hyper_hidden = " + std::to_string(hyper_hidden) + ": must be >= 1";
  return {};
}

ProbedMlpSpec PlanarFlow::hyper_spec(const PlanarFlowSpec& s) {
  if (std::string why = s.validate(); !why.empty()) throw std::invalid_argument(why);
  ProbedMlpSpec h;
  h.layers = {1, s.hyper_hidden, s.hyper_hidden, 3 * s.width * s.dim + s.width};
  h.activation = Activation::Tanh;
  h.init = s.init;
  return h;
}

PlanarFlow::PlanarFlow(PlanarFlowSpec spec) : spec_(spec), hyper_(hyper_spec(spec)) {
  hyper_out_ = hyper_.output_size();
  hyper_work_ = hyper_.workspace_size(1, 0);
}

int PlanarFlow::workspace_size(int batch, int probes) const {
  return static_cast<int>(Layout(hyper_work_, hyper_out_, spec_.width, spec_.dim, batch, batch * probes).end);
}

void PlanarFlow::forward(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef E, MatrixRef F,
                         MatrixRef JE, VectorRef work) const {
  const int M = spec_.width, D = spec_.dim;
  const Eigen::Index B = Z.cols(), BK = E.cols();
  const Eigen::Index K = B > 0 ? BK / B : 0;
  const Layout at(hyper_work_, hyper_out_, M, D, B, BK);
  double* w = work.data();
  // The hypernetwork at t (one input column, no probes).
  w[at.T] = t;
  hyper_.forward(0.0, MatMap(w + at.T, 1, 1), theta, MatMap(w + at.T, 1, 0), MatMap(w + at.p, hyper_out_, 1),
                 MatMap(w + at.p, hyper_out_, 0), work.head(hyper_work_));
  const double* p = w + at.p;
  RowMap W(const_cast<double*>(p), M, D);
  Eigen::Map<const Eigen::VectorXd> b(p + 3 * M * D, M);
  Eigen::Map<Eigen::ArrayXd> sg(w + at.sg, M * D), Ut(w + at.Ut, M * D);
  sg = 1.0 / (1.0 + (-Eigen::Map<const Eigen::ArrayXd>(p + 2 * M * D, M * D)).exp());
  Ut = Eigen::Map<const Eigen::ArrayXd>(p + M * D, M * D) * sg;
  RowMap U(w + at.Ut, M, D);
  MatMap Zc(w + at.Z, D, B), S(w + at.S, M, B), Dd(w + at.Dd, M, B);
  Zc = Z;
  S.noalias() = W * Z;
  S.colwise() += b;
  detail::fast_tanh(detail::ArrayMap(S.data(), M * B), detail::ArrayMap(S.data(), M * B));
  Dd.array() = 1.0 - S.array().square();
  F.noalias() = (1.0 / M) * U.transpose() * S;
  if (K == 0) return;
  MatMap WE(w + at.WE, M, BK), P(w + at.P, M, BK);
  WE.noalias() = W * E;
  for (Eigen::Index j = 0; j < BK; ++j) P.col(j).array() = Dd.col(j / K).array() * WE.col(j).array();
  JE.noalias() = (1.0 / M) * U.transpose() * P;
}

void PlanarFlow::reverse(double, ConstVectorRef theta, ConstMatrixRef E, ConstMatrixRef Fbar, ConstMatrixRef G,
                         MatrixRef Zbar, VectorRef theta_bar, MatrixRef Ebar, VectorRef work) const {
  const int M = spec_.width, D = spec_.dim;
  const Eigen::Index B = Fbar.cols(), BK = G.cols();
  const Eigen::Index K = B > 0 ? BK / B : 0;
  const Layout at(hyper_work_, hyper_out_, M, D, B, BK);
  double* w = work.data();
  const double* p = w + at.p;
  RowMap W(const_cast<double*>(p), M, D);
  RowMap U(w + at.Ut, M, D);
  MatMap Zc(w + at.Z, D, B), S(w + at.S, M, B), Dd(w + at.Dd, M, B);
  MatMap Sbar(w + at.Sbar, M, B), Dbar(w + at.Dbar, M, B);
  RowMap Utbar(w + at.Utbar, M, D);
  // Sbar becomes Abar in place below.
  Sbar.noalias() = (1.0 / M) * U * Fbar;
  Utbar.noalias() = (1.0 / M) * S * Fbar.transpose();
  Dbar.setZero();
  if (K > 0) {
    MatMap WE(w + at.WE, M, BK), P(w + at.P, M, BK), Pbar(w + at.Pbar, M, BK);
    Pbar.noalias() = (1.0 / M) * U * G;
    Utbar.noalias() += (1.0 / M) * P * G.transpose();
    for (Eigen::Index j = 0; j < BK; ++j) {
      Dbar.col(j / K).array() += Pbar.col(j).array() * WE.col(j).array();
      Pbar.col(j).array() *= Dd.col(j / K).array();  // now WEbar
    }
    Ebar.noalias() = W.transpose() * Pbar;
  }
  Sbar.array() = Dd.array() * (Sbar.array() - 2.0 * S.array() * Dbar.array());  // Abar
  Zbar.noalias() = W.transpose() * Sbar;
  if (theta_bar.size() == 0) return;
  double* pb = w + at.pbar;
  RowMap Wbar(pb, M, D);
  Wbar.noalias() = Sbar * Zc.transpose();
  if (K > 0) Wbar.noalias() += MatMap(w + at.Pbar, M, BK) * E.transpose();
  Eigen::Map<const Eigen::ArrayXd> sg(w + at.sg, M * D), Ur(p + M * D, M * D), ub(w + at.Utbar, M * D);
  Eigen::Map<Eigen::ArrayXd>(pb + M * D, M * D) = ub * sg;
  Eigen::Map<Eigen::ArrayXd>(pb + 2 * M * D, M * D) = ub * Ur * sg * (1.0 - sg);
  Eigen::Map<Eigen::VectorXd>(pb + 3 * M * D, M) = Sbar.rowwise().sum();
  hyper_.reverse(0.0, theta, MatMap(w + at.T, 1, 0), MatMap(pb, hyper_out_, 1), MatMap(pb, hyper_out_, 0),
                 MatMap(w + at.Tbar, 1, 1), theta_bar, MatMap(w + at.Tbar, 1, 0), work.head(hyper_work_));
}

}  // namespace cvnode

#include "cvnode/cnf.h"

#include <stdexcept>

namespace cvnode {

namespace {
using MatMap = Eigen::Map<Eigen::MatrixXd>;
using ConstMatMap = Eigen::Map<const Eigen::MatrixXd>;

// Offsets of the Cnf's buffers in a workspace for B samples with K probe columns each, after
// the field's own workspace: E, F, J E (the evaluation), then Fbar, G, Ebar (the pullback).
struct Layout {
  Eigen::Index E, F, JE, Fbar, G, Ebar, end;
  Layout(int field_work, int D, Eigen::Index B, Eigen::Index K) {
    const Eigen::Index BK = B * K;
    E = field_work;
    F = E + D * BK;
    JE = F + D * B;
    Fbar = JE + D * BK;
    G = Fbar + D * B;
    Ebar = G + D * BK;
    end = Ebar + D * BK;
  }
};
}  // namespace

std::string CnfOptions::validate() const {
  if (trace == TraceEstimator::Hutchinson && probes < 1)
    return "cnf probes = " + std::to_string(probes) + ": Hutchinson's estimator needs at least one probe vector";
  return {};
}

Cnf::Cnf(const ProbedField& field, CnfOptions options) : field_(field), o_(options) {
  if (std::string why = o_.validate(); !why.empty()) throw std::invalid_argument(why);
  D_ = field_.input_size();
  if (field_.output_size() != D_)
    throw std::invalid_argument("a flow's field maps R^D to R^D: input " + std::to_string(D_) + ", output " +
                                std::to_string(field_.output_size()));
  const bool hutchinson = o_.trace == TraceEstimator::Hutchinson;
  K_ = hutchinson ? o_.probes : D_;
  c_ = hutchinson ? 1.0 / K_ : 1.0;
  int n = D_ + 1;
  if (o_.kinetic) kin_ = n++;
  if (o_.frobenius) frob_ = n++;
  noise_ = n;
  if (hutchinson) n += D_ * K_;
  n_ = n;
}

void Cnf::draw_probes(std::uint64_t seed, VectorRef eps) const { cvnode::draw_probes(o_.noise, seed, eps); }

Vector Cnf::initial_state(ConstVectorRef x, std::uint64_t seed) const {
  if (x.size() != D_)
    throw std::invalid_argument("a sample of the flow has " + std::to_string(D_) + " components, got " +
                                std::to_string(x.size()));
  Vector y = Vector::Zero(n_);
  y.head(D_) = x;
  if (noise_ < n_) draw_probes(seed, y.tail(n_ - noise_));
  return y;
}

int Cnf::batch_workspace_size(int batch) const {
  return static_cast<int>(Layout(field_.workspace_size(batch, K_), D_, batch, K_).end);
}

void Cnf::evaluate(double t, ConstMatrixRef Y, ConstVectorRef theta, double* w) const {
  const Eigen::Index B = Y.cols(), BK = B * K_;
  const Layout at(field_.workspace_size(static_cast<int>(B), K_), D_, B, K_);
  MatMap E(w + at.E, D_, BK);
  if (o_.trace == TraceEstimator::Exact) {
    for (Eigen::Index b = 0; b < B; ++b) E.middleCols(b * K_, K_).setIdentity();
  } else {
    for (Eigen::Index b = 0; b < B; ++b)
      E.middleCols(b * K_, K_) = ConstMatMap(Y.col(b).data() + noise_, D_, K_);
  }
  Eigen::Map<Eigen::VectorXd> fw(w, at.E);
  field_.forward(t, Y.topRows(D_), theta, E, MatMap(w + at.F, D_, B), MatMap(w + at.JE, D_, BK), fw);
}

void Cnf::rates(MatrixRef out, Eigen::Index B, const double* w) const {
  const Eigen::Index BK = B * K_;
  const Layout at(field_.workspace_size(static_cast<int>(B), K_), D_, B, K_);
  ConstMatMap E(w + at.E, D_, BK), F(w + at.F, D_, B), JE(w + at.JE, D_, BK);
  out.topRows(D_) = F;
  for (Eigen::Index b = 0; b < B; ++b) {
    const auto Eb = E.middleCols(b * K_, K_);
    const auto JEb = JE.middleCols(b * K_, K_);
    out(D_, b) = -c_ * (Eb.array() * JEb.array()).sum();
    if (kin_ >= 0) out(kin_, b) = F.col(b).squaredNorm();
    if (frob_ >= 0) out(frob_, b) = c_ * JEb.squaredNorm();
  }
  if (noise_ < n_) out.bottomRows(n_ - noise_).setZero();
}

void Cnf::pullback(double t, ConstVectorRef theta, ConstMatrixRef A, MatrixRef A_dfdz, VectorRef a_dfdtheta,
                   double* w) const {
  const Eigen::Index B = A.cols(), BK = B * K_;
  const Layout at(field_.workspace_size(static_cast<int>(B), K_), D_, B, K_);
  ConstMatMap E(w + at.E, D_, BK), F(w + at.F, D_, B), JE(w + at.JE, D_, BK);
  MatMap Fbar(w + at.Fbar, D_, B), G(w + at.G, D_, BK), Ebar(w + at.Ebar, D_, BK);
  // S = a_z . f + a_l (-c sum E . JE) + a_kin |f|^2 + a_frob c |JE|^2: the cotangents of f and
  // of J E.
  for (Eigen::Index b = 0; b < B; ++b) {
    const double a_l = A(D_, b);
    Fbar.col(b) = A.col(b).head(D_);
    if (kin_ >= 0) Fbar.col(b) += 2 * A(kin_, b) * F.col(b);
    auto Gb = G.middleCols(b * K_, K_);
    Gb = (-c_ * a_l) * E.middleCols(b * K_, K_);
    if (frob_ >= 0) Gb += (2 * c_ * A(frob_, b)) * JE.middleCols(b * K_, K_);
  }
  Eigen::Map<Eigen::VectorXd> fw(w, at.E);
  field_.reverse(t, theta, E, Fbar, G, A_dfdz.topRows(D_), a_dfdtheta, Ebar, fw);
  // Nothing depends on l or the regularisers' integrals; the probes enter through J E (Ebar)
  // and directly as the left factor of the trace estimate.
  A_dfdz.middleRows(D_, noise_ - D_).setZero();
  if (noise_ < n_) {
    for (Eigen::Index b = 0; b < B; ++b) {
      MatMap out(A_dfdz.col(b).data() + noise_, D_, K_);
      out = Ebar.middleCols(b * K_, K_) + (-c_ * A(D_, b)) * JE.middleCols(b * K_, K_);
    }
  }
}

// ---- single sample: a batch of one ----

namespace {
ConstMatMap ccol(ConstVectorRef v) { return ConstMatMap(v.data(), v.size(), 1); }
MatMap mcol(VectorRef v) { return MatMap(v.data(), v.size(), 1); }
}  // namespace

void Cnf::rhs(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef f, VectorRef work) const {
  rhs_batch(t, ccol(z), theta, mcol(f), work);
}

void Cnf::vjp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
              VectorRef a_dfdtheta, VectorRef work) const {
  vjp_batch(t, ccol(z), theta, ccol(a), mcol(a_dfdz), a_dfdtheta, work);
}

void Cnf::vjp_again(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef a, VectorRef a_dfdz,
                    VectorRef a_dfdtheta, VectorRef work) const {
  vjp_batch_again(t, ccol(z), theta, ccol(a), mcol(a_dfdz), a_dfdtheta, work);
}

template <class RowFn>
void Cnf::for_each_row(double t, ConstVectorRef z, ConstVectorRef theta, VectorRef work, RowFn&& fn) const {
  double* w = work.data();
  evaluate(t, ccol(z), theta, w);
  const int end = batch_workspace_size(1);
  Eigen::Map<Eigen::VectorXd> a(w + end, n_), row(w + end + n_, n_);
  a.setZero();
  for (int i = 0; i < n_; ++i) {
    a[i] = 1;
    pullback(t, theta, ConstMatMap(a.data(), n_, 1), MatMap(row.data(), n_, 1), work.head(0), w);
    a[i] = 0;
    fn(i, row);
  }
}

void Cnf::jacobian(double t, ConstVectorRef z, ConstVectorRef theta, MatrixRef J, VectorRef work) const {
  for_each_row(t, z, theta, work, [&](int i, const auto& row) { J.row(i) = row.transpose(); });
}

void Cnf::jvp(double t, ConstVectorRef z, ConstVectorRef theta, ConstVectorRef v, VectorRef Jv,
              VectorRef work) const {
  for_each_row(t, z, theta, work, [&](int i, const auto& row) { Jv[i] = row.dot(v); });
}

// ---- batches ----

void Cnf::rhs_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, MatrixRef F, VectorRef work) const {
  evaluate(t, Z, theta, work.data());
  rates(F, Z.cols(), work.data());
}

void Cnf::vjp_batch(double t, ConstMatrixRef Z, ConstVectorRef theta, ConstMatrixRef A, MatrixRef A_dfdz,
                    VectorRef a_dfdtheta, VectorRef work) const {
  evaluate(t, Z, theta, work.data());
  pullback(t, theta, A, A_dfdz, a_dfdtheta, work.data());
}

void Cnf::vjp_batch_again(double t, ConstMatrixRef, ConstVectorRef theta, ConstMatrixRef A, MatrixRef A_dfdz,
                          VectorRef a_dfdtheta, VectorRef work) const {
  pullback(t, theta, A, A_dfdz, a_dfdtheta, work.data());
}

}  // namespace cvnode

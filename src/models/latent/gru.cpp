#include "models/latent/gru.h"

#include <cmath>

#include "cvnode/errors.h"
#include "core/random.h"

namespace cvnode::latent {

namespace {
using RowMap = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
using RowMapMut = Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
Vector sigmoid(const Vector& v) { return (1.0 / (1.0 + (-v.array()).exp())).matrix(); }
}  // namespace

GruCell::GruCell(int input, int hidden) : I_(input), H_(hidden) {
  if (input < 1 || hidden < 1)
    throw OptionsError("a GRU needs input and hidden sizes >= 1 (got " + std::to_string(input) + " and " +
                       std::to_string(hidden) + ")");
}

void GruCell::initialize(std::uint64_t seed, VectorRef theta) const {
  detail::Rng rng(seed);
  const double r = 1.0 / std::sqrt(static_cast<double>(H_));
  for (Eigen::Index i = 0; i < theta.size(); ++i) theta[i] = r * (2 * rng.uniform() - 1);
}

void GruCell::forward(ConstVectorRef theta, ConstVectorRef x, ConstVectorRef h, Step& s, Vector& h_out) const {
  const int H = H_;
  RowMap Wi(theta.data(), 3 * H, I_);
  RowMap Wh(theta.data() + 3 * H * I_, 3 * H, H);
  Eigen::Map<const Vector> bi(theta.data() + 3 * H * (I_ + H), 3 * H);
  Eigen::Map<const Vector> bh(theta.data() + 3 * H * (I_ + H + 1), 3 * H);
  s.x = x;
  s.h = h;
  const Vector gi = Wi * x + bi;
  const Vector gh = Wh * h + bh;
  s.r = sigmoid(gi.segment(0, H) + gh.segment(0, H));
  s.u = sigmoid(gi.segment(H, H) + gh.segment(H, H));
  s.hn = gh.segment(2 * H, H);
  s.n = (gi.segment(2 * H, H).array() + s.r.array() * s.hn.array()).tanh().matrix();
  h_out = ((1 - s.u.array()) * s.n.array() + s.u.array() * h.array()).matrix();
}

void GruCell::backward(ConstVectorRef theta, const Step& s, ConstVectorRef dh_out, Vector& dh, VectorRef dtheta,
                       Vector* dx) const {
  const int H = H_;
  RowMap Wi(theta.data(), 3 * H, I_);
  RowMap Wh(theta.data() + 3 * H * I_, 3 * H, H);
  // Cotangents of the pre-activations: gi (input side) and gh (hidden side) of the three blocks.
  const Eigen::ArrayXd dn = dh_out.array() * (1 - s.u.array());
  const Eigen::ArrayXd du = dh_out.array() * (s.h.array() - s.n.array());
  const Eigen::ArrayXd dan = dn * (1 - s.n.array().square());                   // through tanh
  const Eigen::ArrayXd dar = dan * s.hn.array() * s.r.array() * (1 - s.r.array());  // through sigmoid
  const Eigen::ArrayXd dau = du * s.u.array() * (1 - s.u.array());
  Vector gi(3 * H), gh(3 * H);
  gi << dar.matrix(), dau.matrix(), dan.matrix();
  gh << dar.matrix(), dau.matrix(), (dan * s.r.array()).matrix();
  RowMapMut(dtheta.data(), 3 * H, I_).noalias() += gi * s.x.transpose();
  RowMapMut(dtheta.data() + 3 * H * I_, 3 * H, H).noalias() += gh * s.h.transpose();
  dtheta.segment(3 * H * (I_ + H), 3 * H) += gi;
  dtheta.segment(3 * H * (I_ + H + 1), 3 * H) += gh;
  dh = Wh.transpose() * gh;
  dh.array() += dh_out.array() * s.u.array();
  if (dx) *dx = Wi.transpose() * gi;
}

}  // namespace cvnode::latent
